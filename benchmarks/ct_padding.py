"""CT padding outside the reconstruction circle (SPEC §4), measured on a real CT.

The scan's corners outside a circle in each axial slice are filled with a padding value as scanners do,
the padded volume is degraded with the paper's protocol, and tricubic, the network with the padding
rule (default) and the network without it (``pad_value=None``) are compared inside the field of view::

    python benchmarks/ct_padding.py splits/ct/test/pancreasctcbct_Pancreas-CT-CB-001.nii.gz --pad -3024

RMSE in HU over the field of view, its air (HR < −900 HU) and tissue, and the ring of HR voxels
within 2 voxels of the circle's edge; PSNR over the field of view on the 0–255 scale of its HR range.
"""

from __future__ import annotations

import argparse

import numpy as np

from napari_volumenet.inference import upscale
from napari_volumenet.io import read_volume
from napari_volumenet.models import create_model
from napari_volumenet.ops.degrade import crop_to_multiple, degrade
from napari_volumenet.ops.metrics import compute_metrics
from napari_volumenet.ops.normalize import fit_normalization
from napari_volumenet.weights import default_weights, load_weights


def field_of_view(shape: tuple[int, ...], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Boolean mask of the largest circle in the plane of ``axes``, the same in every slice."""
    grid = np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in shape), indexing="ij")
    radius = max(shape[axes[0]], shape[axes[1]]) / 2
    return grid[axes[0]] ** 2 + grid[axes[1]] ** 2 <= radius**2


def _rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a[mask].astype(np.float64) - b[mask]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ct", help="a CT NIfTI volume in HU (axial slices in the first two axes)")
    parser.add_argument("--pad", type=float, default=-3024.0, help="padding value (default -3024)")
    args = parser.parse_args()
    hr = np.ascontiguousarray(crop_to_multiple(read_volume(args.ct).data, 2), dtype=np.float32)
    fov = field_of_view(hr.shape)
    padded = np.where(fov, hr, np.float32(args.pad))
    lr = degrade(padded, 2)
    model, _ = load_weights(default_weights("ct"))
    norm = fit_normalization(lr, "ct")
    results = {
        "tricubic": upscale(lr, create_model("tricubic", scale=2), tile=0),
        "network, padding rule": upscale(lr, model, normalization=norm),
        "network, no rule": upscale(lr, model, normalization=norm, pad_value=None),
    }
    ring = fov & ~_eroded(fov, 2)
    regions = {"FOV": fov, "air": fov & (hr < -900), "tissue": fov & (hr >= -900), "edge ring": ring}
    low, high = float(hr[fov].min()), float(hr[fov].max())
    print(f"{args.ct}: HR {hr.shape}, padding {args.pad:g} HU on {100 * (1 - fov.mean()):.1f} % of the voxels")
    print("| method | " + " | ".join(f"RMSE {k} (HU)" for k in regions) + " | PSNR FOV (dB) | min output (HU) |")
    print("|---|" + "---:|" * (len(regions) + 2))
    for name, sr in results.items():
        psnr = compute_metrics(hr[fov], sr[fov], value_range=(low, high))["psnr"]
        cells = [f"{_rmse(hr, sr, mask):.1f}" for mask in regions.values()]
        print(f"| {name} | " + " | ".join(cells) + f" | {psnr:.2f} | {sr.min():.0f} |")


def _eroded(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` shrunk by ``width`` voxels in the first two axes."""
    out = mask.copy()
    for axis in (0, 1):
        for shift in range(1, width + 1):
            out &= np.roll(mask, shift, axis) & np.roll(mask, -shift, axis)
    return out


if __name__ == "__main__":
    main()
