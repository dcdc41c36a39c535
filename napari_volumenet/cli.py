"""The ``volumenet`` command line (SPEC §6): upscale, degrade, evaluate, models, benchmark.

Every command is a thin adapter over the library (:mod:`napari_volumenet.inference`,
:mod:`napari_volumenet.io`, :mod:`napari_volumenet.evaluation`, :mod:`napari_volumenet.benchmark`);
the CLI adds no science. Errors a user can cause (:class:`~napari_volumenet.errors.VolumeNetError`)
are printed as one line ``volumenet: error: <message>`` with exit code 2, Ctrl-C gives
``volumenet: interrupted`` (exit 130, no partial file), SIGTERM / SIGHUP ``volumenet: terminated
(SIGTERM)`` (exit 143 / 129, no partial file either), anything else one line
``volumenet: internal error: ...`` (exit 1); ``--debug`` adds the traceback.

Heavy modules (torch, nibabel, ...) are imported inside the commands, so ``--help`` is fast, and
nothing here ever imports Qt or napari (the CLI runs on headless servers).
"""

from __future__ import annotations

import argparse
import csv
import io as _stdio
import math
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from ._parse import int_list
from .atomic import Terminated, termination_unwinds, write_json_atomic, write_text_atomic
from .errors import (
    Cancelled, InputError, ModelError, OutputError, VolumeNetError, VolumeNetWarning, WeightsError,
)

if TYPE_CHECKING:
    from .evaluation import Degradation
    from .inference import RunOptions

PROG = "volumenet"
EXIT_ERROR = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

# ----------------------------------------------------------------------------- argument types


def scale_arg(text: str) -> int | tuple[int, int, int]:
    """``--scale 2`` → 2; ``--scale 1,1,2`` → (1, 1, 2) (array-axis order)."""
    values = int_list(text, "--scale")
    return values[0] if len(values) == 1 else values  # type: ignore[return-value]


def tile_arg(text: str) -> int | tuple[int, int, int]:
    """``--tile 64`` (LR voxels per axis), ``--tile 64,64,32``, or ``--tile 0`` (whole volume at once)."""
    values = int_list(text, "--tile", minimum=0)
    if len(values) == 3 and 0 in values and values != (0, 0, 0):
        raise argparse.ArgumentTypeError(f"--tile: use 0 alone for the whole volume, got {text!r}")
    return values[0] if len(values) == 1 else values  # type: ignore[return-value]


def size_arg(text: str) -> tuple[int, int, int]:
    """``--size 125,125,75`` or ``--size 64`` (a cube)."""
    values = int_list(text, "--size")
    return values * 3 if len(values) == 1 else values  # type: ignore[return-value]


def positive_int(text: str) -> int:
    return int_list(text, "the value", lengths=(1,))[0]


def gigabytes_per_s(text: str) -> float:
    """``--bandwidth 3000`` (GB/s) → 3e12 bytes/s."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GB/s, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of GB/s, got {text!r}")
    return value * 1e9


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_arg(text: str) -> str:
    if not DEVICE_PATTERN.match(text.strip()):
        raise argparse.ArgumentTypeError(f"choose auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text.strip()


def names_arg(text: str) -> list[str]:
    """Comma-separated list; empty items are dropped."""
    return [p.strip() for p in text.split(",") if p.strip()]


# ----------------------------------------------------------------------------- helpers


def scale_suffix(scale: Sequence[int]) -> str:
    """``(2, 2, 2)`` → ``x2``; ``(1, 1, 2)`` → ``x1x1x2``."""
    scale = tuple(int(s) for s in scale)
    return f"x{scale[0]}" if len(set(scale)) == 1 else "".join(f"x{s}" for s in scale)


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def plan_outputs(
    raw_inputs: Sequence[str], inputs: Sequence[Path], output: str, suffix: str | Callable[[Path], str],
    overwrite: bool,
) -> list[tuple[Path, Path]]:
    """Pair every input volume with its output path and check all outputs before any work starts.

    One file in → ``output`` is that file (or, if ``output`` is an existing folder, the file
    ``<stem><suffix>.nii.gz`` inside it). Several files or a folder in → ``output`` is a folder
    (created if needed) holding ``<stem><suffix>.nii.gz`` for each input.
    """
    from .io import check_output_path, volume_stem

    out = Path(output).expanduser()
    single = len(raw_inputs) == 1 and not Path(raw_inputs[0]).expanduser().is_dir() and len(inputs) == 1
    created: list[Path] = []
    if single and not out.is_dir():
        pairs = [(inputs[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file, but with several inputs or a folder -o must be a folder")
        if not out.exists():
            missing = [p for p in [out, *out.parents] if not p.exists()]
            try:
                out.mkdir(parents=True)
            except OSError as error:
                raise OutputError(f"cannot create the output folder {out}: {error.strerror or error}") from None
            created = missing
        pairs = [(src, out / f"{volume_stem(src)}{suffix if isinstance(suffix, str) else suffix(src)}.nii.gz")
                 for src in inputs]
    try:
        seen: dict[Path, Path] = {}
        for src, dst in pairs:
            if _same_file(src, dst):
                raise OutputError(f"the output {dst} would replace its input; choose another -o")
            key = dst.resolve()
            if key in seen:
                raise OutputError(
                    f"{seen[key]} and {src} would both be written to {dst}; give them different names"
                )
            seen[key] = src
        return [(src, check_output_path(dst, overwrite)) for src, dst in pairs]
    except VolumeNetError:
        for folder in created:  # leave nothing behind when we refuse to run
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def resolve_weights(spec: str) -> Path:
    """``--weights``: a weights file, or the name of bundled weights."""
    from .weights import find_bundled, list_bundled

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in {w.name for w in list_bundled()}:
        return find_bundled(spec).path
    if path.exists():
        raise WeightsError(f"{path} is not a weights file")
    bundled = ", ".join(w.name for w in list_bundled()) or "none are bundled yet"
    raise WeightsError(f"weights file not found: {spec} (nor bundled weights of that name: {bundled})")


def check_report_path(path: str | None, overwrite: bool) -> Path | None:
    """Check a JSON/CSV report path before any work: its folder exists, it does not exist unless ``overwrite``."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"{p} is a folder; give a file name for the report")
    if p.exists() and not overwrite:
        raise OutputError(f"{p} already exists; pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {p}: the folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise OutputError(f"cannot write {p}: the folder {p.parent} is not writable")
    return p


class TileBars:
    """tqdm progress bars on stderr, one per label, driven by ``(label, done, total)`` callbacks."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar: Any = None
        self.label: str | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if label != self.label:
            self.close()
            self.bar = tqdm(total=total, desc=label, unit="tile", file=sys.stderr, leave=False,
                            disable=self.disable, dynamic_ncols=True)
            self.label = label
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.label = None

    def __enter__(self) -> TileBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def say(quiet: bool, *parts: Any) -> None:
    if not quiet:
        print(*parts, flush=True)


# ----------------------------------------------------------------------------- commands


def collect_inputs(raw_inputs: Sequence[str], tool: str, quiet: bool) -> list[Path]:
    """The volumes named by ``raw_inputs``, less what ``tool`` wrote earlier into the folders given.

    ``upscale D -o D`` run twice must not upscale its own outputs: a file found in a folder whose
    JSON sidecar says ``tool`` wrote it is skipped (a file named on its own is always taken).
    """
    from .io import find_volumes, written_by

    found = find_volumes([Path(p).expanduser() for p in raw_inputs])
    named = {Path(p).expanduser().resolve() for p in raw_inputs if not Path(p).expanduser().is_dir()}
    inputs = [p for p in found if p.resolve() in named or not written_by(p, tool)]
    skipped = len(found) - len(inputs)
    if skipped and not inputs:
        raise InputError(f"every volume found ({skipped}) is an output of an earlier `{tool}`; nothing to do")
    if skipped:
        say(quiet, f"skipping {skipped} output(s) of an earlier `{tool}` found in the input folder(s)")
    return inputs


def _naming(src: Path, error: BaseException) -> str:
    """The error's message, prefixed with the file it is about unless it already names it."""
    message = str(error) if isinstance(error, VolumeNetError) else "out of memory; pass a smaller --tile"
    return message if str(src) in message or src.name in message else f"{src}: {message}"


def run_batch(jobs: Sequence[tuple[Path, Path]], process: Callable[[Path, Path], None]) -> None:
    """``process(src, dst)`` for every job; a bad volume does not stop the others.

    Each failure is one ``volumenet: error:`` line naming its file as it happens; at the end, a
    :class:`VolumeNetError` lists the files that failed (exit 2). Every good output is kept. With a
    single job its error is raised as it is. Cancelling (Ctrl-C, SIGTERM) stops the batch.
    """
    failed: list[Path] = []
    for src, dst in jobs:
        try:
            process(src, dst)
        except (VolumeNetError, MemoryError) as error:
            if isinstance(error, Cancelled):
                raise
            if len(jobs) == 1:
                raise VolumeNetError(_naming(src, error)) from None
            _fail(f"error: {_naming(src, error)}")
            failed.append(src)
    if failed:
        names = ", ".join(str(p) for p in failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise VolumeNetError(f"{len(failed)} of {len(jobs)} volumes failed (see above) and have no output: {names}; "
                             f"the {len(jobs) - len(failed)} other outputs were written")


def _header_zooms(path: Path) -> tuple[float, ...]:
    """Voxel sizes from the header alone (``()`` when it cannot be read: the read itself then says why)."""
    import nibabel

    try:
        return tuple(float(z) for z in nibabel.load(str(path)).header.get_zooms()[:3])
    except Exception:  # noqa: BLE001 - any unreadable file is reported by read_volume later, with its reason
        return ()


class _WeightsCache:
    """Each weights file loaded and hashed once for a batch (files may need different weights)."""

    def __init__(self, model: str | None, modality: str | None) -> None:
        self.model, self.modality, self.loaded = model, modality, {}

    def __call__(self, path: Path) -> tuple[Any, dict[str, Any], str]:
        from .io import sha256_file
        from .weights import load_weights

        if path not in self.loaded:
            model, meta = load_weights(path, model=self.model, modality=self.modality)
            self.loaded[path] = (model, meta, sha256_file(path))
        return self.loaded[path]


def cmd_upscale(args: argparse.Namespace) -> int:
    from .models import list_models
    from .slices import choose

    if args.model is not None and args.model not in list_models():
        raise ModelError(f"unknown model {args.model!r}; choose one of {', '.join(list_models())}")
    if args.weights and args.scale is not None:
        raise InputError("--weights sets the scale; leave out --scale")
    inputs = collect_inputs(args.inputs, f"{PROG} upscale", args.quiet)
    cache = _WeightsCache(args.model, args.modality)
    weights = resolve_weights(args.weights) if args.weights else None
    network_scale = tuple(cache(weights)[0].scale) if weights is not None else None
    modality = args.modality or (str(cache(weights)[1]["modality"]) if weights is not None else "mri")
    choices = {src: choose(_header_zooms(src), modality=modality, scale=args.scale, weights=weights,
                           network_scale=network_scale, model=args.model) for src in inputs}
    for choice in {c.weights for c in choices.values()}:
        cache(choice)  # every weights file checked before any work
    jobs = plan_outputs(args.inputs, inputs, args.output, lambda src: f"_{scale_suffix(choices[src].scale)}",
                        args.overwrite)
    with TileBars(disable=args.quiet) as bars:
        run_batch(jobs, lambda src, dst: _upscale_one(args, src, dst, choices[src], cache, bars))
    return 0


def _upscale_one(args: argparse.Namespace, src: Path, dst: Path, choice: Any, cache: _WeightsCache,
                 bars: TileBars) -> None:
    """Upscale one volume file by the evaluation protocol and write it with its sidecar (see :func:`cmd_upscale`)."""
    from .errors import ModalityWarning
    from .evaluation import upscale_with
    from .inference import drive, through_plane_axes
    from .io import provenance_description, read_volume, sr_affine, write_volume
    from .ops.normalize import modality_mismatch

    model, meta, sha = cache(choice.weights)
    modality, model_name = str(meta["modality"]), str(meta["model"])
    volume = read_volume(src)
    mismatch = modality_mismatch(volume.data, modality)
    if mismatch is not None:
        warnings.warn(f"{src}: {mismatch}", ModalityWarning, stacklevel=2)
    axes = None if choice.slice_axis is None else through_plane_axes(choice.slice_axis)
    done = drive(upscale_with(volume.data, model, modality=modality, options=run_options(args), axes=axes,
                            pad_value=args.pad_value), lambda d, t, _n=src.name: bars(_n, d, t))
    bars.close()
    sidecar = _upscale_sidecar(src, dst, volume.data.shape, done, choice, model, meta, sha)
    description = provenance_description(model_name, choice.scale, sha, __version__)
    write_volume(dst, done.data, sr_affine(volume.affine, choice.scale), volume.header, overwrite=args.overwrite,
                 description=description, sidecar=sidecar)
    tiles = f"{done.plan.tiles} tile{'s' if done.plan.tiles != 1 else ''}"
    say(args.quiet, f"{src} → {dst}  ({shape_text(volume.data.shape)} → {shape_text(done.data.shape)}, "
                    f"{done.seconds:.1f} s, {done.plan.device} {done.plan.precision}, {tiles}; {choice.reason})")


def _upscale_sidecar(src: Path, dst: Path, shape: Sequence[int], done: Any, choice: Any, model: Any,
                     meta: dict[str, Any], sha: str) -> dict[str, Any]:
    """The JSON sidecar of one upscaled volume: input, output, network, weights, choice, plan, time."""
    from .models import count_parameters

    return {
        "tool": f"{PROG} upscale", "version": __version__, "input": str(src), "output": str(dst),
        "input_shape": list(shape), "output_shape": list(done.data.shape), "model": str(meta["model"]),
        "model_kwargs": meta.get("model_kwargs", {}), "params": count_parameters(model),
        "weights": str(choice.weights), "weights_sha256": sha, "weights_version": meta.get("version"),
        "scale": list(choice.scale), "network_scale": list(choice.network_scale), "slice_axis": choice.slice_axis,
        "choice": choice.reason, "modality": str(meta["modality"]), "pad_value": done.pad_value,
        "normalization": None if done.normalization is None else done.normalization.to_dict(),
        "plan": done.plan.to_dict(), "seconds": done.seconds,
    }


def cmd_degrade(args: argparse.Namespace) -> int:
    from .ops.scale import as_scale

    try:
        scale = as_scale(args.scale)
    except ModelError as error:
        raise InputError(str(error)) from None
    if args.thick_slices is not None:
        axis, factor, _ = args.thick_slices
        scale = tuple(factor if a == axis else 1 for a in range(3))
    inputs = collect_inputs(args.inputs, f"{PROG} degrade", args.quiet)
    jobs = plan_outputs(args.inputs, inputs, args.output, f"_lr_{scale_suffix(scale)}", args.overwrite)
    run_batch(jobs, lambda src, dst: _degrade_one(args, src, dst, scale))
    return 0


def _degrade_one(args: argparse.Namespace, src: Path, dst: Path, scale: tuple[int, int, int]) -> None:
    """Write the LR simulation of one HR volume file with its sidecar (see :func:`cmd_degrade`)."""
    from .io import lr_affine, read_volume, write_volume
    from .ops.degrade import crop_to_multiple, degrade, thick_slices

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


def run_options(args: argparse.Namespace) -> RunOptions:
    """The request object of the shared ``--device/--precision/--tile/--engine`` options."""
    from .inference import RunOptions

    return RunOptions(device=args.device, precision=args.precision, tile=args.tile, engine=args.engine)


def _degradation(args: argparse.Namespace) -> Degradation:
    from .evaluation import Degradation

    if args.thick_slices is not None:
        if args.scale is not None:
            raise InputError("--thick-slices sets the factor; leave out --scale")
        axis, factor, gap = args.thick_slices
        return Degradation.thick(axis, factor, gap)
    try:
        return Degradation.resize(args.scale or 2)
    except ModelError as error:
        raise InputError(str(error)) from None


def _evaluation_reports(args: argparse.Namespace) -> dict[str, Path | None]:
    reports = {key: check_report_path(getattr(args, key), args.overwrite) for key in ("json", "csv", "markdown", "plot")}
    paths = [p for p in reports.values() if p is not None]
    if any(_same_file(a, b) for i, a in enumerate(paths) for b in paths[i + 1:]):
        raise OutputError("--json, --csv, --markdown and --plot must name different files")
    return reports


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import SUMMARY_COLUMNS, default_methods, evaluate, format_table, summarize, to_json

    degradation = _degradation(args)
    reports = _evaluation_reports(args)
    factors = scale_suffix(degradation.network_scale)
    specs = list(args.models) if args.models else default_methods(args.modality, degradation.network_scale)
    with TileBars(disable=args.quiet) as bars:
        rows = evaluate(args.inputs, specs, degradation=degradation, modality=args.modality,
                        options=run_options(args), progress=bars)
    summary = summarize(rows)
    volumes = len({row["volume"] for row in rows})
    print(f"{volumes} volume(s), {degradation.describe()}, modality {args.modality}; "
          "means over volumes, metrics on the 0–255 scale of each HR volume's min/max")
    print(format_table(summary))
    if not specs:
        print(f"(no bundled weights yet for {args.modality} {factors}; pass --models path/to/weights.pt)")
    if reports["json"] is not None:
        write_json_atomic(reports["json"], to_json(rows, summary, scale=list(degradation.scale),
                                                   degradation=degradation.describe(), modality=args.modality,
                                                   models=["tricubic", *specs], version=__version__))
        say(args.quiet, f"wrote {reports['json']}")
    if reports["csv"] is not None:
        buffer = _stdio.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        write_text_atomic(reports["csv"], buffer.getvalue())
        say(args.quiet, f"wrote {reports['csv']}")
    if reports["markdown"] is not None:
        write_text_atomic(reports["markdown"], format_table(summary) + "\n")
        say(args.quiet, f"wrote {reports['markdown']}")
    if reports["plot"] is not None:
        from .plots import plot_psnr_vs_params

        if plot_psnr_vs_params(summary, reports["plot"], title=f"{args.modality.upper()} "
                               f"{scale_suffix(degradation.scale)}, {volumes} volume(s)") is None:
            raise OutputError("--plot needs matplotlib (pip install matplotlib)")
        say(args.quiet, f"wrote {reports['plot']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import count_parameters, create_model, list_models
    from .weights import list_bundled

    rows = [["model", "#params", "RF", "default arguments"]]
    for name in list_models():
        model = create_model(name)
        kwargs = {k: v for k, v in model.config.items() if k not in ("name", "scale")}
        rows.append([
            name,
            f"{count_parameters(model) / 1e6:.3f} M",
            str(model.receptive_field),
            " ".join(f"{k}={v}" for k, v in kwargs.items()) or "-",
        ])
    print("Networks (#params with the default arguments at scale 2; RF = receptive-field radius in LR voxels):")
    print(_columns(rows))
    print()
    bundled = list_bundled()
    if not bundled:
        print("Bundled weights: no bundled weights yet (train with volumenet-train, then pass --weights FILE).")
        return 0
    print("Bundled weights (use the name with --weights, or with --models in evaluate):")
    table = [["name", "model", "modality", "scale", "val PSNR", "default", "use"]]
    for w in bundled:
        val = _bundled_val_psnr(w)
        table.append([w.name, w.model, w.modality, scale_suffix(w.scale), val, "yes" if w.default else "",
                      w.use or "not recorded"])
    print(_columns(table))
    for w in bundled:
        print(f"  {w.name}: {w.description}; trained on {w.data or 'unrecorded data'}")
        print(f"    terms: {w.terms}")
    _print_sample_paths()
    return 0


def _print_sample_paths() -> None:
    """Where the installed MRI sample lies (to try ``volumenet upscale`` on)."""
    from ._sample_data import MRI_HR, MRI_LR, sample_path

    try:
        lr, hr = sample_path(MRI_LR), sample_path(MRI_HR)
    except InputError:
        return
    print()
    print(f"MRI sample (MNI152 T1, licence notice beside it): {lr} (LR ×2), {hr} (HR)")


def _bundled_val_psnr(bundled: Any) -> str:
    from .weights import read_weights_file

    try:
        value = read_weights_file(bundled.path)["metadata"].get("val_psnr")
    except VolumeNetError:
        return "missing file"
    return "-" if value is None else f"{float(value):.2f} dB"


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import format_results, run_benchmark
    from .models import list_models

    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        raise ModelError(f"unknown model {unknown[0]!r}; choose one of {', '.join(list_models())}")
    if not args.models:
        raise ModelError("--models is empty; name at least one model")
    json_path = check_report_path(args.json, args.overwrite)
    if not args.quiet:
        print(f"benchmarking {', '.join(args.models)} on a random {shape_text(args.size)} LR volume "
              "(random weights: speed only)...", file=sys.stderr, flush=True)
    report = run_benchmark(args.models, args.size, options=run_options(args), repeats=args.repeats,
                           bandwidth=args.bandwidth)
    print(format_results(report))
    if json_path is not None:
        write_json_atomic(json_path, {**report, "version": __version__})
        say(args.quiet, f"wrote {json_path}")
    return 0


# ----------------------------------------------------------------------------- parser

MAIN_EPILOG = """\
examples:
  volumenet upscale scan.nii.gz -o scan_x2.nii.gz --weights volumenet_mri.pt
  volumenet degrade hr.nii.gz -o lr.nii.gz --scale 2
  volumenet evaluate hr_folder/ --models runs/volumenet.pt --json results.json
  volumenet models
  volumenet benchmark --models volumenet,parallelnet --size 125,125,75

Run 'volumenet COMMAND --help' for the options of one command.
"""

UPSCALE_EPILOG = """\
examples:
  # one file in, one file out
  volumenet upscale scan.nii.gz -o scan_x2.nii.gz --weights volumenet_mri.pt
  # a folder (or several files) in, a folder out: out/<name>_x2.nii.gz
  volumenet upscale scans/ -o upscaled/ --weights volumenet_mri.pt
  # CT weights on the GPU in bf16, 64-voxel tiles, replace existing outputs
  volumenet upscale ct.nii.gz -o ct_x2.nii.gz --weights volumenet_ct.pt --modality ct \\
      --device cuda --precision bf16 --tile 64 --overwrite
  # whole volume at once, no progress output
  volumenet upscale scan.nii.gz -o scan_x2.nii.gz --weights volumenet_mri.pt --tile 0 --quiet

The scale comes from the weights; outputs are float32 NIfTI with the voxel size divided by the
scale and the same physical extent, the provenance in the header description, and a JSON
sidecar (model, weights sha256, normalisation, tiling, time).
"""

DEGRADE_EPILOG = """\
examples:
  volumenet degrade hr.nii.gz -o lr.nii.gz
  volumenet degrade hr.nii.gz -o lr_z.nii.gz --scale 1,1,2     # through-plane only
  volumenet degrade hr_folder/ -o lr_folder/                   # out: <name>_lr_x2.nii.gz

The LR simulation of the paper: crop to a multiple of the scale, Gaussian anti-aliasing,
cubic B-spline downsampling (deterministic). LR voxel size = HR voxel size × scale.
"""

EVALUATE_EPILOG = """\
examples:
  volumenet evaluate hr_folder/ --models runs/volumenet.pt
  volumenet evaluate a.nii.gz b.nii.gz --models runs/volumenet.pt,runs/parallelnet.pt \\
      --json results.json --csv results.csv
  volumenet evaluate test/ --models srcnn3d,volumenet --markdown table.md --plot fig5.png
  volumenet evaluate ct_folder/ --modality ct --models runs/volumenet_ct.pt --device cuda

Each HR volume is cropped to a multiple of the scale and degraded; tricubic interpolation and
each model upscale it back. A model is a weights file, a bundled weights name, or a model name
(its bundled default weights). Metrics on the 0–255 scale of the HR volume (paper's protocol).
"""

MODELS_EPILOG = """\
examples:
  volumenet models
"""

BENCHMARK_EPILOG = """\
examples:
  volumenet benchmark
  volumenet benchmark --models volumenet,parallelnet,srcnn3d --size 125,125,75 --repeats 5
  volumenet benchmark --device cuda --precision fp16 --bandwidth 3000 --json bench.json

Random weights and a random volume: speed and memory only, never quality. The time is the
median over --repeats runs after one warm-up; peak memory is CUDA's max_memory_allocated, or
on the CPU the peak RSS above the baseline, sampled every ~5 ms. "roofline" is the time the
bytes every layer must read and write would take at the memory bandwidth (--bandwidth, or the
device's measured copy bandwidth), as a fraction of the measured time; GFLOP/s counts the
convolutions' multiply-adds as two operations.
"""


def _thick_slices(text: str) -> tuple[int, int, float]:
    """``--thick-slices AXIS,FACTOR[,GAP]`` → ``(axis, factor, gap)``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        axis, factor, gap = int(parts[0]), int(parts[1]), float(parts[2]) if len(parts) == 3 else 0.0
    except (ValueError, IndexError):
        axis = factor = -1
        gap = 0.0
    if len(parts) not in (2, 3) or axis not in (0, 1, 2) or factor < 2 or not 0 <= gap < factor:
        raise argparse.ArgumentTypeError(f"expected AXIS,FACTOR[,GAP] with AXIS 0, 1 or 2, FACTOR ≥ 2 and "
                                         f"0 ≤ GAP < FACTOR, got {text!r}")
    return axis, factor, gap


def _pad_value(text: str) -> float | str:
    """``--pad-value``: ``auto``, ``none`` or a number (HU)."""
    if text in ("auto", "none"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or a number of HU, got {text!r}") from None


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tile", type=tile_arg, default=None, metavar="N",
                        help="tile edge in LR voxels (N or N,N,N); 0 = whole volume at once; "
                             "default: chosen from free memory")
    parser.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                        help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="auto (default: fp16 on CUDA, fp32 elsewhere), fp32, bf16 or fp16")
    parser.add_argument("--engine", choices=["fast", "reference"], default="fast",
                        help="fast (default): ParallelNet/VolumeNet in channels-last without concatenations; "
                             "reference: the plain forward pass (same result up to float rounding)")


def build_parser() -> argparse.ArgumentParser:
    """The `volumenet` parser; each subcommand's options come from its own ``_<command>_options``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of errors")
    fmt = argparse.RawDescriptionHelpFormatter

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=fmt, parents=[common], epilog=MAIN_EPILOG,
        description="Learned 3D super-resolution (ParallelNet / VolumeNet) of MRI and CT NIfTI volumes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def subcommand(name: str, func: Callable[[argparse.Namespace], int], epilog: str, summary: str,
                   description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], formatter_class=fmt, epilog=epilog, help=summary,
                           description=description)
        p.set_defaults(func=func)
        return p

    _upscale_options(subcommand(
        "upscale", cmd_upscale, UPSCALE_EPILOG, "super-resolve NIfTI volumes",
        "Super-resolve NIfTI volumes with a trained network (exact tiled inference)."))
    _degrade_options(subcommand(
        "degrade", cmd_degrade, DEGRADE_EPILOG, "simulate a low-resolution acquisition",
        "Simulate the LR acquisition of HR NIfTI volumes (the paper's degradation)."))
    _evaluate_options(subcommand(
        "evaluate", cmd_evaluate, EVALUATE_EPILOG, "Table III: tricubic and models on degraded HR volumes",
        "Degrade HR volumes, upscale them with tricubic and each model, and print RMSE, PSNR, foreground PSNR, "
        "SSIM, time and #params (the paper's Table III)."))
    subcommand(
        "models", cmd_models, MODELS_EPILOG, "list the networks and the bundled weights",
        "List the registry's networks (#params, receptive field) and the bundled weights.")
    _benchmark_options(subcommand(
        "benchmark", cmd_benchmark, BENCHMARK_EPILOG, "throughput and peak memory (random weights)",
        "Measure the speed and peak memory of networks with random weights on a random LR volume (speed only, "
        "not quality)."))
    return parser


def _upscale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="NIfTI file(s) (.nii, .nii.gz) or folder(s) of them")
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
    p.add_argument("--pad-value", type=_pad_value, default="auto", metavar="HU",
                   help="CT padding outside the scanner's field of view (e.g. -3024): shown to the network as "
                   "air and written back; auto (default) detects a constant below -1024 HU in CT, none turns it off")
    _add_run_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary lines")


def _degrade_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="HR", help="HR NIfTI file(s) or folder(s)")
    p.add_argument("-o", "--output", required=True, metavar="LR", help="output file or folder")
    p.add_argument("--scale", type=scale_arg, default=2, metavar="S",
                   help="factor per axis: 2 (default) or three values such as 1,1,2 (array-axis order)")
    p.add_argument("--thick-slices", type=_thick_slices, default=None, metavar="AXIS,FACTOR[,GAP]",
                   help="instead of --scale: thick slices along array AXIS (0, 1, 2), each the mean of the FACTOR HR "
                   "slices it covers (box profile), with an optional GAP in HR slices, e.g. 2,4 for 4 mm slices "
                   "from a 1 mm scan")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary lines")


def _evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="HR_FILES_OR_DIRS", help="HR NIfTI file(s) or folder(s)")
    p.add_argument("--models", type=names_arg, action="extend", default=[], metavar="A,B,...",
                   help="weights files, bundled weights names or model names (comma-separated); "
                        "default: all bundled weights for the modality")
    p.add_argument("--scale", type=scale_arg, default=None, metavar="S", help="2 (default) or e.g. 1,1,2")
    p.add_argument("--thick-slices", type=_thick_slices, default=None, metavar="AXIS,FACTOR[,GAP]",
                   help="instead of --scale: simulate thick slices along array AXIS (each the mean of FACTOR HR "
                        "slices, GAP HR slices apart) and compare cubic interpolation along that axis with the "
                        "through-plane networks (default: the bundled ones for FACTOR)")
    p.add_argument("--modality", choices=["mri", "ct"], default="mri", help="mri (default) or ct")
    _add_run_options(p)
    p.add_argument("--json", default=None, metavar="PATH", help="write per-volume rows and the summary as JSON")
    p.add_argument("--csv", default=None, metavar="PATH", help="write the summary table as CSV")
    p.add_argument("--markdown", default=None, metavar="PATH", help="write the summary table as Markdown")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="write the paper's Fig. 5 as PNG: PSNR against #params, marker area ∝ time")
    p.add_argument("--overwrite", action="store_true", help="replace existing --json / --csv / --markdown / --plot")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _benchmark_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", type=names_arg, default=["volumenet"], metavar="A,B,...",
                   help="registry model names (default: volumenet)")
    p.add_argument("--size", type=size_arg, default=(125, 125, 75), metavar="X,Y,Z",
                   help="LR volume shape (default 125,125,75)")
    _add_run_options(p)
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                   help="timed runs after one warm-up (default 3); the median is reported")
    p.add_argument("--bandwidth", type=gigabytes_per_s, default=None, metavar="GB/S",
                   help="memory bandwidth for the roofline, e.g. 3000 for 3 TB/s (default: measure the "
                        "device's copy bandwidth)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the full report as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("-q", "--quiet", action="store_true", help="only the result table")


# ----------------------------------------------------------------------------- entry point


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str) -> None:
    print(f"{PROG}: {_one_line(message)}", file=sys.stderr, flush=True)


def _one_line_warnings(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing ours as one line of stderr, like errors, others via ``fallback``."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, VolumeNetWarning):
            _fail(f"warning: {message}")
        else:
            fallback(message, category, *args, **kwargs)

    return show


def _use_replacement_characters() -> None:
    """Never crash on printing '→' or '×' to a terminal or pipe that cannot encode them."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``volumenet`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    _use_replacement_characters()
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exit_:  # --help, --version, usage errors (exit 2, argparse's message)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_ERROR)
    debug = bool(getattr(args, "debug", False))
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings.catch_warnings(), termination_unwinds():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(command(args) or 0)
    except VolumeNetError as error:
        if debug:
            traceback.print_exc()
        _fail(f"error: {error}")
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM / SIGHUP (Terminated): no partial file is left
        if debug:
            traceback.print_exc()
        if isinstance(interrupt, Terminated):
            _fail(f"terminated ({interrupt.name})")
            return 128 + interrupt.signum
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        if debug:
            traceback.print_exc()
        _fail("error: out of memory; pass a smaller --tile or close other programs")
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `volumenet models | head -1`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - avoid a second error at exit
        except OSError:
            pass
        return EXIT_INTERNAL
    except Exception as error:  # noqa: BLE001 - one line instead of a traceback
        if debug:
            traceback.print_exc()
        message = _one_line(str(error))[:300]
        _fail(f"internal error: {type(error).__name__}: {message} (rerun with --debug for details)")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
