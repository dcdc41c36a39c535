"""``volumenet degrade``: the LR simulation of HR volumes (the paper's degradation, or thick slices)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import __version__
from ._args import degradation_arg, scale_arg, thick_slices_arg
from ._common import PROG, say, scale_suffix, shape_text
from ._files import collect_inputs, plan_outputs, run_batch

EPILOG = """\
examples:
  volumenet degrade hr.nii.gz -o lr.nii.gz
  volumenet degrade hr.nii.gz -o lr_z.nii.gz --scale 1,1,2     # through-plane only
  volumenet degrade hr_folder/ -o lr_folder/                   # out: <name>_lr_x2.nii.gz
  volumenet degrade hr.nii.gz -o lr_4mm.nii.gz --thick-slices 2,4   # 4 mm slices from a 1 mm scan

The LR simulation of the paper: crop to a multiple of the scale, Gaussian anti-aliasing,
cubic B-spline downsampling (deterministic). --thick-slices instead makes each slice the mean of
the HR slices it covers (box profile, as a 2D acquisition integrates across its slice).
LR voxel size = HR voxel size × scale.
"""


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet degrade`` to ``p``."""
    p.add_argument("inputs", nargs="+", metavar="HR", help="HR NIfTI file(s) or folder(s)")
    p.add_argument("-o", "--output", required=True, metavar="LR", help="output file or folder")
    p.add_argument("--scale", type=scale_arg, default=None, metavar="S",
                   help="factor per axis: 2 (default) or three values such as 1,1,2 (array-axis order)")
    p.add_argument("--thick-slices", type=thick_slices_arg, default=None, metavar="AXIS,FACTOR[,GAP]",
                   help="instead of --scale: thick slices along array AXIS (0, 1, 2), each the mean of the FACTOR HR "
                   "slices it covers (box profile), with an optional GAP in HR slices, e.g. 2,4 for 4 mm slices "
                   "from a 1 mm scan")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary lines")


def cmd_degrade(args: argparse.Namespace) -> int:
    scale = degradation_arg(args).scale
    inputs = collect_inputs(args.inputs, f"{PROG} degrade", args.quiet)
    jobs = plan_outputs(args.inputs, inputs, args.output, f"_lr_{scale_suffix(scale)}", args.overwrite)
    run_batch(jobs, lambda src, dst: _degrade_one(args, src, dst, scale))
    return 0


def _degrade_one(args: argparse.Namespace, src: Path, dst: Path, scale: tuple[int, int, int]) -> None:
    """Write the LR simulation of one HR volume file with its sidecar (see :func:`cmd_degrade`)."""
    from ..io import lr_affine, read_volume, write_volume
    from ..ops.degrade import crop_to_multiple, degrade, thick_slices

    volume = read_volume(src)
    start = time.perf_counter()
    cropped_shape = crop_to_multiple(volume.data, scale).shape
    if args.thick_slices is None:
        lr = degrade(volume.data, scale)
        method = ("napari_volumenet.ops.degrade.degrade: crop to a multiple of the scale, Gaussian "
                  "anti-aliasing sigma (s-1)/2, cubic B-spline resampling (order 3), clipped to the HR range")
    else:
        axis, factor, gap = args.thick_slices
        lr = thick_slices(volume.data, axis, factor, gap)
        method = (f"napari_volumenet.ops.degrade.thick_slices: slices of {factor} HR slices along axis {axis} "
                  f"(box profile, gap {gap:g} HR slices), other axes untouched")
    seconds = time.perf_counter() - start
    sidecar = {
        "tool": f"{PROG} degrade",
        "version": __version__,
        "input": str(src),
        "output": str(dst),
        "input_shape": list(volume.data.shape),
        "cropped_shape": list(cropped_shape),
        "output_shape": list(lr.shape),
        "scale": list(scale),
        "method": method,
        "seconds": seconds,
    }
    write_volume(dst, lr, lr_affine(volume.affine, scale), volume.header, overwrite=args.overwrite,
                 description=f"volumenet {__version__} degrade {scale_suffix(scale)}", sidecar=sidecar)
    say(args.quiet, f"{src} → {dst}  ({shape_text(volume.data.shape)} → {shape_text(lr.shape)}, "
                    f"{scale_suffix(scale)} LR simulation)")
