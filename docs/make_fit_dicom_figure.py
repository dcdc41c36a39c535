"""Make docs/fit_dicom.png: a real thick-slice DICOM series seen across its slices (issue 26 item 5).

A 2D sagittal series (4 mm slices every 4.8 mm; no ground truth exists) is shown in the acquired sagittal plane
and across its slices, coronal and axial, superior up: the acquisition (each slice repeated over the output
spacing), cubic interpolation along the slices, the bundled through-plane weights, and weights fitted to this
series (``volumenet fit``; pass ``--fitted`` to reuse a file, else ``--minutes`` of fitting run first)::

    python docs/make_fit_dicom_figure.py ../shared/data/dicom_mri_t1_2d_sag/series --minutes 10 \
        --fitted runs/fit/dicom-sag/fit-10min.pt
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def upscaled(lr: np.ndarray, weights: Path | str, axis: int, factor: int) -> np.ndarray:
    """``lr`` upscaled ×``factor`` along array ``axis`` as every entry point does (``weights``: a file or
    ``"cubic"``), in the input's array order."""
    from napari_volumenet.evaluation import upscale_with
    from napari_volumenet.inference import drive, through_plane_axes
    from napari_volumenet.models import create_model
    from napari_volumenet.weights import load_weights

    network = (create_model("tricubic", scale=(1, 1, factor)) if weights == "cubic" else load_weights(weights)[0])
    return drive(upscale_with(lr, network, modality="mri", axes=through_plane_axes(axis))).data


def view(volume: np.ndarray, affine: np.ndarray, fixed: int, spacing: np.ndarray) -> tuple[np.ndarray, float]:
    """The middle plane of ``volume`` across array axis ``fixed``, drawn as radiologists do: superior (else
    anterior) at the top, the patient's right on the left (axial, coronal), anterior on the left (sagittal);
    and its aspect (row spacing over column spacing, mm)."""
    world = np.argmax(np.abs(affine[:3, :3]), axis=0)  # per array axis: 0 = L/R, 1 = A/P, 2 = S/I
    row, col = sorted((a for a in range(3) if a != fixed), key=lambda a: -world[a])
    plane = np.take(volume, volume.shape[fixed] // 2, axis=fixed)
    plane = plane if row < col else plane.T
    if affine[world[row], row] > 0:  # index grows superior/anterior: flip so that it is at the top
        plane = plane[::-1]
    if affine[world[col], col] > 0:  # index grows right (axial, coronal) or anterior (sagittal)
        plane = plane[:, ::-1]
    return plane, float(spacing[row] / spacing[col])


def fit(series: Path, out: Path, minutes: float) -> None:
    """``volumenet fit SERIES -o OUT --minutes M`` as a user runs it."""
    subprocess.run([sys.executable, "-m", "napari_volumenet", "fit", str(series), "-o", str(out),
                    "--minutes", str(minutes), "--overwrite"], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("series", type=Path, help="the thick-slice DICOM series folder (or a NIfTI file)")
    parser.add_argument("--fitted", type=Path, required=True, help="fitted weights (made first if missing)")
    parser.add_argument("--minutes", type=float, default=10.0, help="fitting minutes when --fitted is missing")
    parser.add_argument("--out", type=Path, default=HERE / "fit_dicom.png")
    args = parser.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_volumenet.io import read_volume
    from napari_volumenet.slices import slice_axis
    from napari_volumenet.weights import default_weights

    if not args.fitted.exists():
        fit(args.series, args.fitted, args.minutes)
    volume = read_volume(args.series)
    zooms = np.sqrt((volume.affine[:3, :3] ** 2).sum(axis=0))
    axis = slice_axis(tuple(float(z) for z in zooms))
    factor = 4
    rows = [("acquired", np.repeat(volume.data, factor, axis=axis)),
            ("cubic", upscaled(volume.data, "cubic", axis, factor)),
            ("bundled ×4", upscaled(volume.data, default_weights("mri", (1, 1, factor)), axis, factor)),
            ("fitted to this series", upscaled(volume.data, args.fitted, axis, factor))]
    low, high = np.percentile(volume.data[volume.data > np.percentile(volume.data, 60)], [1, 99.5])
    figure = Figure(figsize=(10, 12.5))
    FigureCanvasAgg(figure)
    spacing = np.where(np.arange(3) == axis, zooms / factor, zooms)
    titles = {axis: "acquired plane", **{a: "across the slices" for a in range(3) if a != axis}}
    for r, (name, data) in enumerate(rows):
        for c, fixed in enumerate((axis, *(a for a in range(3) if a != axis))):
            plane, aspect = view(data, volume.affine, fixed, spacing)
            panel = figure.add_subplot(len(rows), 3, 3 * r + c + 1)
            panel.imshow(plane, cmap="gray", vmin=low, vmax=high, interpolation="nearest", aspect=aspect)
            panel.set_xticks([]), panel.set_yticks([])
            panel.set_title(f"{name} · {titles[fixed]}", fontsize=9)
    figure.suptitle(f"{args.series.name}: {zooms[axis]:.1f} mm slice spacing, ×{factor} along the slices", fontsize=11)
    figure.tight_layout()
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
