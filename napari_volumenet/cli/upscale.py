"""``volumenet upscale``: super-resolve NIfTI volumes and DICOM series, the weights chosen from the voxel sizes."""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .._allocator import prefault_heap
from ..errors import InputError, ModelError, VolumeNetError
from ._args import add_run_options, check_device, pad_value_arg, run_options, scale_arg
from ._common import PROG, TileBars, say, scale_suffix, shape_text
from ._batch import add_batch_options, take_part, unfinished
from ._files import Jobs, collect_inputs, plan_outputs, require_series, resolve_weights, run_batch
from .fit import add_fit_options, upscale_fitted

EPILOG = """\
examples:
  # one file in, one file out: the bundled weights chosen from the voxel sizes
  volumenet upscale scan.nii.gz -o scan_sr.nii.gz
  # a folder (or several files) in, a folder out: out/<name>_x2.nii.gz, <name>_x1x1x4.nii.gz, ...
  volumenet upscale scans/ -o upscaled/
  # your own weights; CT on the GPU in bf16, 64-voxel tiles, replace existing outputs
  volumenet upscale ct.nii.gz -o ct_x2.nii.gz --weights runs/ct/best.pt --modality ct \\
      --device cuda --precision bf16 --tile 64 --overwrite
  # 4 mm slices along array axis 2 made 1 mm, whole volume at once, no progress output
  volumenet upscale t1_axial.nii.gz -o t1_1mm.nii.gz --scale 1,1,4 --tile 0 --quiet
  # a DICOM series in, a new series in its study out (its slice thickness and gap choose the weights)
  volumenet upscale dicom/t1_sag/ -o dicom/t1_sag_x4/ --format dicom
  # a cluster array job of 10 tasks over the inputs listed in a file, restartable
  volumenet upscale inputs.txt -o out/ --part $((SLURM_ARRAY_TASK_ID+1))/10 --skip-existing

Without --weights or --scale the voxel sizes choose: a scan whose slice axis is >= 1.5x coarser than
the other two gets the bundled through-plane weights for the nearest factor, any other scan the
isotropic x2 default (--modality ct or a CT series: the CT weights); a DICOM series whose slices are
thinner than their spacing (a gap) is matched by its slice thickness (SPEC 3's slab model). Outputs are
float32 NIfTI (or, --format dicom, int16 DICOM series with rescale slope/intercept) with the voxel size
divided by the scale and the same physical extent, the provenance in the header description, and a
JSON sidecar (model, weights sha256, the choice and why, normalisation, tiling, time).
"""

HEAP_BYTES_PER_VOXEL = 2048
"""Heap the default network touches per LR voxel (VolumeNet D9C32: a peak of 2.2–2.5 KB per window voxel,
measured on a 112×112×72 volume), faulted in ahead while PyTorch loads (:func:`~napari_volumenet._allocator.prefault_heap`)."""


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet upscale`` to ``p``."""
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="NIfTI file(s) (.nii, .nii.gz), DICOM series folder(s), folder(s) of them, or .txt file(s) "
                        "listing them one a line")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (one input file) or folder (several inputs or a folder)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="expected network (volumenet, parallelnet, ...); the weights must be for it")
    p.add_argument("--weights", default=None, metavar="PATH_OR_NAME",
                   help="weights file (.pt) or bundled weights name; default: the bundled default weights")
    p.add_argument("--modality", choices=["mri", "ct"], default=None,
                   help="modality of the input; must match the weights (default: that of the weights)")
    p.add_argument("--scale", type=scale_arg, default=None, metavar="S",
                   help="choose the bundled weights by factor: 2 (isotropic) or one axis's factor such as 1,1,4 "
                        "(through-plane along that array axis); default: from the voxel sizes (a slice axis ≥ 1.5× "
                        "coarser than the others gets through-plane weights, other scans isotropic ×2)")
    p.add_argument("--pad-value", type=pad_value_arg, default="auto", metavar="HU",
                   help="CT padding outside the scanner's field of view (e.g. -3024): shown to the network as "
                   "air and written back; auto (default) detects a constant below -1024 HU in CT, none turns it off")
    p.add_argument("--fit", type=float, default=None, metavar="MINUTES",
                   help="fit weights to the scan first, from its own sharp plane, for MINUTES (one thick-slice scan; "
                        "see volumenet fit --help)")
    add_fit_options(p)
    add_run_options(p)
    add_batch_options(p)
    p.add_argument("--format", choices=["nifti", "dicom"], default="nifti",
                   help="nifti (default): <name>_x2.nii.gz files; dicom: each input DICOM series gives a new series "
                        "folder in its study (one input: -o is that folder)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary lines")


def _choose_each(inputs: Sequence[Path], **options: Any) -> tuple[dict[Path, Any], dict[Path, VolumeNetError]]:
    """The :func:`~napari_volumenet.slices.choose_for` of every input (the voxel sizes of the affine it is read and
    written with, its slab, a series' modality), or why none can be made for it (a bad header, no weights fit)."""
    from ..slices import choose_for

    choices: dict[Path, Any] = {}
    refused: dict[Path, VolumeNetError] = {}
    for src in inputs:
        try:
            choices[src] = choose_for(src, **options)
        except VolumeNetError as error:
            refused[src] = error
    return choices, refused


class _WeightsCache:
    """Each weights file loaded and hashed once for a batch (files may need different weights)."""

    def __init__(self, model: str | None, modality: str | None) -> None:
        self.model, self.modality, self.loaded = model, modality, {}

    def __call__(self, path: Path) -> tuple[Any, dict[str, Any], str]:
        from ..io import sha256_file
        from ..weights import load_weights

        if path not in self.loaded:
            model, meta = load_weights(path, model=self.model, modality=self.modality)
            self.loaded[path] = (model, meta, sha256_file(path))
        return self.loaded[path]


def cmd_upscale(args: argparse.Namespace) -> int:
    if args.fit is not None:
        return upscale_fitted(args, cmd_upscale)
    if args.weights and args.scale is not None:
        raise InputError("--weights sets the scale; leave out --scale")
    inputs = take_part(collect_inputs(args.inputs, f"{PROG} upscale", args.quiet), args.part, args.quiet)
    with prefault_heap(_heap_to_prefault(args.device, inputs)):  # while PyTorch loads and the weights are checked
        jobs, choices, refused, cache = _prepare(args, inputs)
    with TileBars(disable=args.quiet) as bars:
        run_batch(jobs, lambda src, dst: _upscale_one(args, src, dst, choices[src], cache, bars), refused)
    return 0


def _prepare(args: argparse.Namespace, inputs: list[Path]) -> tuple[Jobs, dict[Path, Any], Any, _WeightsCache]:
    """Everything :func:`cmd_upscale` checks and decides before the first volume: jobs, weights per input."""
    from ..models import list_models

    if args.model is not None and args.model not in list_models():
        raise ModelError(f"unknown model {args.model!r}; choose one of {', '.join(list_models())}")
    check_device(args)
    if args.format == "dicom":
        require_series(inputs)
    cache = _WeightsCache(args.model, args.modality)
    weights = resolve_weights(args.weights) if args.weights else None
    network_scale = tuple(cache(weights)[0].scale) if weights is not None else None
    modality = args.modality or (str(cache(weights)[1]["modality"]) if weights is not None else None)
    choices, refused = _choose_each(inputs, modality=modality, scale=args.scale, weights=weights,
                                    network_scale=network_scale, model=args.model)
    for choice in {c.weights for c in choices.values()}:
        cache(choice)  # every weights file checked before any work
    jobs = plan_outputs(args.inputs, list(choices), args.output, lambda src: f"_{scale_suffix(choices[src].scale)}",
                        args.overwrite or args.skip_existing, dicom=args.format == "dicom") if choices else Jobs()
    if args.skip_existing or args.part:  # other shares may be writing into the output folder: never remove it
        jobs = Jobs(unfinished(jobs, args.quiet) if args.skip_existing else jobs)
    return jobs, choices, refused, cache


def _heap_to_prefault(device: str, inputs: Sequence[Path]) -> int:
    """Bytes of heap worth faulting in while PyTorch loads: the first input's voxels at
    :data:`HEAP_BYTES_PER_VOXEL` (the heap is kept for the files after it), within the tile planner's CPU
    budget; 0 for a DICOM series, an unreadable file, or where a GPU may take the work."""
    import nibabel as nib

    from .._memory import MEMORY_FRACTION, available_memory

    if not inputs or device not in ("auto", "cpu") or (device == "auto" and Path("/dev/nvidia0").exists()):
        return 0
    try:
        voxels = math.prod(nib.load(inputs[0]).shape[:3])
    except Exception:  # noqa: BLE001 - DICOM folders, unreadable files: the run itself reports them
        return 0
    return min(voxels * HEAP_BYTES_PER_VOXEL, int(available_memory() * MEMORY_FRACTION["cpu"]))


def _upscale_one(args: argparse.Namespace, src: Path, dst: Path, choice: Any, cache: _WeightsCache,
                 bars: TileBars) -> None:
    """Upscale one volume file by the evaluation protocol and write it with its sidecar (see :func:`cmd_upscale`)."""
    from ..errors import ModalityWarning
    from ..evaluation import upscale_with
    from ..inference import drive, through_plane_axes
    from ..io import provenance_description, read_volume, sr_affine, write_volume
    from ..io.dicom import series_description, write_series
    from ..ops.normalize import modality_mismatch
    from ..slices import modality_remedy

    model, meta, sha = cache(choice.weights)
    modality, model_name = str(meta["modality"]), str(meta["model"])
    volume = read_volume(src)
    mismatch = modality_mismatch(volume.data, modality, modality_remedy(modality, choice.network_scale))
    if mismatch is not None:
        warnings.warn(f"{src}: {mismatch}", ModalityWarning, stacklevel=2)
    axes = None if choice.slice_axis is None else through_plane_axes(choice.slice_axis)
    done = drive(upscale_with(volume.data, model, modality=modality, options=run_options(args), axes=axes,
                            pad_value=args.pad_value), lambda d, t, _n=src.name: bars(_n, d, t))
    bars.close()
    sidecar = _upscale_sidecar(src, dst, volume, done, choice, model, meta, sha)
    affine = sr_affine(volume.affine, choice.scale)
    if args.format == "dicom":
        write_series(dst, done.data, affine, volume.series, overwrite=args.overwrite, sidecar=sidecar,
                     description=series_description(volume.series.description, model_name, choice.scale))
    else:
        write_volume(dst, done.data, affine, volume.header, overwrite=args.overwrite, sidecar=sidecar,
                     description=provenance_description(model_name, choice.scale, sha, __version__))
    tiles = f"{done.plan.tiles} tile{'s' if done.plan.tiles != 1 else ''}"
    say(args.quiet, f"{src} → {dst}  ({shape_text(volume.data.shape)} → {shape_text(done.data.shape)}, "
                    f"{done.seconds:.1f} s, {done.plan.device} {done.plan.precision}, {tiles}; {choice.reason})")


def _upscale_sidecar(src: Path, dst: Path, volume: Any, done: Any, choice: Any, model: Any,
                     meta: dict[str, Any], sha: str) -> dict[str, Any]:
    """The JSON sidecar of one upscaled volume: input (its slab where known), output, network, weights, choice,
    plan, time."""
    from ..models import count_parameters
    from ..slices import slab_record

    return {
        "tool": f"{PROG} upscale", "version": __version__, "input": str(src), "output": str(dst),
        "input_shape": list(volume.data.shape), "slab": slab_record(volume.slab, choice.network_scale[2]),
        "output_shape": list(done.data.shape), "model": str(meta["model"]),
        "model_kwargs": meta.get("model_kwargs", {}), "params": count_parameters(model),
        "weights": str(choice.weights), "weights_sha256": sha, "weights_version": meta.get("version"),
        "fit": meta.get("fit"),
        "scale": list(choice.scale), "network_scale": list(choice.network_scale), "slice_axis": choice.slice_axis,
        "choice": choice.reason, "modality": str(meta["modality"]), "pad_value": done.pad_value,
        "normalization": None if done.normalization is None else done.normalization.to_dict(),
        "plan": done.plan.to_dict(), "seconds": done.seconds,
    }
