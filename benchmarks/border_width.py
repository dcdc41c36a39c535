"""What a narrower mirrored border costs in quality and saves in time (SPEC §4, the speed issue's item 1).

For each width of the half-sample mirrored extension (LR voxels; the network's own zero padding beyond
it), the border-shell PSNR (the outer shell one LR voxel deep), the whole-volume PSNR and the seconds of
the default ×2 weights on HR test volumes degraded by the paper's protocol, against tricubic's border
shell (tricubic keeps its full mirror). One window per volume, one process, the widths interleaved per
volume, so the times compare.

    python benchmarks/border_width.py splits/ixi/test splits/heads/test sample_data/mni152_t1_hr.nii.gz \
        --widths 0,2,4,6,8,full --json benchmarks/results/border_width.json
    python benchmarks/border_width.py splits/heads/test --weights volumenet-d9c16-mri-slices-x4 --thick-slices 1,4
    python benchmarks/border_width.py splits/ct/test --weights volumenet-d9c32-ct-x2 --modality ct
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from napari_volumenet.evaluation import Degradation, evaluate
from napari_volumenet.inference import RunOptions
from napari_volumenet.io import find_volumes


def _width(text: str) -> int | str:
    return text if text == "full" else int(text)


def measure(paths: list[Path], weights: str, widths: list[int | str], degradation: Degradation,
            modality: str) -> list[dict[str, Any]]:
    """One row per (volume, width): border and whole PSNR, seconds; tricubic's border once per volume."""
    rows = []
    for path in paths:
        full = RunOptions(device="cpu", precision="fp32", tile=0, mirror="full")
        tricubic = evaluate([path], [], degradation=degradation, modality=modality, options=full)[0]
        for width in widths:
            options = RunOptions(device="cpu", precision="fp32", tile=0, mirror=width)
            net = evaluate([path], [weights], degradation=degradation, modality=modality, options=options)[-1]
            rows.append({"volume": path.name, "width": width,
                         "psnr_border": net["psnr_border"], "psnr": net["psnr"], "seconds": net["seconds"],
                         "tricubic_border": tricubic["psnr_border"], "window": net["plan"]["window"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over the volumes per width, and the worst border margin over tricubic."""
    out = []
    for width in dict.fromkeys(r["width"] for r in rows):
        mine = [r for r in rows if r["width"] == width]
        out.append({"width": width, "psnr_border": float(np.mean([r["psnr_border"] for r in mine])),
                    "psnr": float(np.mean([r["psnr"] for r in mine])),
                    "worst_border_over_tricubic": min(r["psnr_border"] - r["tricubic_border"] for r in mine),
                    "seconds": float(np.sum([r["seconds"] for r in mine]))})
    full = next((s for s in out if s["width"] == "full"), None)
    for s in out:
        s["time_vs_full"] = s["seconds"] / full["seconds"] if full else math.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="HR volumes or folders of them")
    parser.add_argument("--weights", default="volumenet-d9c32-mri-x2")
    parser.add_argument("--widths", default="0,2,4,6,8,full")
    parser.add_argument("--thick-slices", default=None, metavar="AXIS,FACTOR",
                        help="thick slices along an array axis instead of the ×2 degradation")
    parser.add_argument("--modality", default="mri", choices=("mri", "ct"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    degradation = Degradation.resize(2)
    if args.thick_slices:
        axis, factor = (int(v) for v in args.thick_slices.split(","))
        degradation = Degradation.thick(axis, factor)
    widths = [_width(w) for w in args.widths.split(",")]
    rows = measure(find_volumes(args.inputs), args.weights, widths, degradation, args.modality)
    table = summary(rows)
    for s in table:
        print(f"width {s['width']!s:>4}: border {s['psnr_border']:.2f} dB (worst vs tricubic "
              f"{s['worst_border_over_tricubic']:+.2f}), PSNR {s['psnr']:.3f} dB, {s['time_vs_full']:.2f}x the time")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
