"""What larger through-plane networks would cost: time per HR voxel against the isotropic ×2 default.

The thick-slice goal (issue 14) asks the through-plane path to be no slower per HR voxel than the
isotropic ×2 default (VolumeNet D9C32). This times the bundled sizes and the next sizes up, random
weights, on LR volumes of the held-out 1 mm head's HR size (192×114×188 voxels after upscaling, slice
axis last), interleaved in one process (each round runs every network once; the best round counts)::

    python benchmarks/through_plane_sizes.py --repeats 2 --json through_plane_sizes.json

Speed only, never quality. Compare the ratios (the last column), not absolute times from other runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_volumenet.inference import upscale
from napari_volumenet.models import count_parameters, create_model
from napari_volumenet.ops.scale import as_scale

HR_SHAPE = (192, 114, 188)
"""HR grid of the held-out 1 mm head, slice axis last (voxels); each LR volume is this over the network's scale."""

SIZES = {
    "isotropic x2 D9C32 (default)": (9, 32, 2),
    "x2 D6C16 (bundled)": (6, 16, (1, 1, 2)),
    "x2 D6C24": (6, 24, (1, 1, 2)),
    "x2 D9C16": (9, 16, (1, 1, 2)),
    "x4 D9C16 (bundled)": (9, 16, (1, 1, 4)),
    "x4 D9C24": (9, 24, (1, 1, 4)),
    "x4 D12C16": (12, 16, (1, 1, 4)),
}
"""Label → (depth, channels, scale) of a VolumeNet; the first is the reference."""


def time_sizes(repeats: int) -> dict[str, dict[str, float]]:
    """Best seconds per HR voxel (µs) of every size over ``repeats`` interleaved rounds, and its ratio."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    nets, volumes = {}, {}
    for label, (depth, channels, scale) in SIZES.items():
        nets[label] = create_model("volumenet", depth=depth, channels=channels, scale=scale).eval()
        lr_shape = tuple(n // s for n, s in zip(HR_SHAPE, as_scale(scale)))
        volumes[label] = rng.random(lr_shape, dtype=np.float32)
    best = {label: float("inf") for label in SIZES}
    for _ in range(repeats):
        for label, net in nets.items():
            start = time.perf_counter()
            out = upscale(volumes[label], net, tile=0, device="cpu", precision="fp32")
            best[label] = min(best[label], (time.perf_counter() - start) / out.size * 1e6)
    reference = best[next(iter(SIZES))]
    return {label: {"us_per_hr_voxel": best[label], "ratio": best[label] / reference,
                    "params": count_parameters(nets[label])} for label in SIZES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--json", type=Path, help="write the table as JSON")
    args = parser.parse_args()
    rows = time_sizes(args.repeats)
    threads = torch.get_num_threads()
    print(f"{'network':30s} {'µs / HR voxel':>14s} {'÷ default':>10s} {'#params':>9s}   ({threads} threads)")
    for label, row in rows.items():
        print(f"{label:30s} {row['us_per_hr_voxel']:14.2f} {row['ratio']:10.2f} {row['params']:9,d}")
    if args.json:
        args.json.write_text(json.dumps({"threads": threads, "hr_shape": HR_SHAPE, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
