"""Make docs/thick_slices.png: thick slices seen from the side, where they show as stair-steps.

An HR volume (default: the bundled MNI152 sample) is made of thick slices along one array axis
(:class:`napari_volumenet.evaluation.Degradation`), upscaled by cubic interpolation along that axis and by
the bundled through-plane weights (or ``--weights``) through the evaluation protocol, and one slice across
the thick axis is drawn: GT, thick LR (each slice repeated over its thickness), cubic, SR, with each
method's PSNR over the whole volume::

    python docs/make_thick_slices_figure.py --axis 2 --factor 4 --across 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hr", type=Path, default=None, help="HR volume (default: the bundled MRI sample)")
    parser.add_argument("--axis", type=int, default=2, help="array axis of the thick slices (default 2)")
    parser.add_argument("--factor", type=int, default=4, help="HR slices per thick slice (default 4)")
    parser.add_argument("--across", type=int, default=1, help="array axis of the slice shown (default 1)")
    parser.add_argument("--weights", type=Path, default=None, help="through-plane weights (default: bundled)")
    parser.add_argument("--out", type=Path, default=HERE / "thick_slices.png")
    args = parser.parse_args(argv)

    from napari_volumenet._sample_data import sample_path
    from napari_volumenet.evaluation import Degradation, score, upscale_with
    from napari_volumenet.inference import drive, through_plane_axes
    from napari_volumenet.io import read_volume
    from napari_volumenet.models import create_model
    from napari_volumenet.plots import plot_slices
    from napari_volumenet.weights import default_weights, load_weights

    hr_path = args.hr or sample_path("mni152_t1_hr.nii.gz")
    degradation = Degradation.thick(args.axis, args.factor)
    hr, lr = degradation.apply(read_volume(hr_path).data)
    network, _ = load_weights(args.weights or default_weights("mri", (1, 1, args.factor)))
    cubic = drive(upscale_with(lr, create_model("tricubic", scale=degradation.scale), modality="mri")).data
    sr = drive(upscale_with(lr, network, modality="mri", axes=through_plane_axes(args.axis))).data
    blocky = np.repeat(lr, args.factor, axis=args.axis)
    index = hr.shape[args.across] // 2

    def cut(volume: np.ndarray) -> np.ndarray:
        plane = np.take(volume, index, axis=args.across)  # the two remaining axes, in order
        thick_first = [a for a in range(3) if a != args.across].index(args.axis) == 0
        return plane if thick_first else plane.T

    panels = [("ground truth", cut(hr)), (f"thick slices ×{args.factor}", cut(blocky))]
    for name, volume in (("cubic along the slices", cubic), ("VolumeNet through-plane", sr)):
        panels.append((f"{name}\n{score(hr, volume, degradation.scale)['psnr']:.2f} dB", cut(volume)))
    low, high = np.percentile(hr, [0.5, 99.5])
    plot_slices(panels, args.out, value_range=(float(low), float(high)),
                title=f"{hr_path.name}: slice {index} across array axis {args.across}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
