"""``volumenet models`` (the networks and the bundled weights) and ``volumenet benchmark`` (their speed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import __version__
from ..atomic import write_json_atomic
from ..errors import InputError, ModelError, VolumeNetError
from ._args import add_run_options, gigabytes_per_s, names_arg, positive_int, run_options, size_arg
from ._common import say, scale_suffix, shape_text
from ._files import check_report_path

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


def add_benchmark_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet benchmark`` to ``p``."""
    p.add_argument("--models", type=names_arg, default=["volumenet"], metavar="A,B,...",
                   help="registry model names (default: volumenet)")
    p.add_argument("--size", type=size_arg, default=(125, 125, 75), metavar="X,Y,Z",
                   help="LR volume shape (default 125,125,75)")
    add_run_options(p)
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                   help="timed runs after one warm-up (default 3); the median is reported")
    p.add_argument("--bandwidth", type=gigabytes_per_s, default=None, metavar="GB/S",
                   help="memory bandwidth for the roofline, e.g. 3000 for 3 TB/s (default: measure the "
                        "device's copy bandwidth)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the full report as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("-q", "--quiet", action="store_true", help="only the result table")


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import count_parameters, create_model, list_models
    from ..weights import list_bundled

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
    table = [["name", "model", "modality", "scale", "steps", "val PSNR", "vs tricubic", "default", "use"]]
    for w in bundled:
        table.append([w.name, w.model, w.modality, scale_suffix(w.scale), "-" if w.steps is None else f"{w.steps:,}",
                      _bundled_val_psnr(w), _gain_text(w), "yes" if w.default else "", w.use or "not recorded"])
    print(_columns(table))
    if any(w.beats_tricubic is False for w in bundled):
        print("  (!) these weights do not beat tricubic interpolation on their own validation volumes")
    for w in bundled:
        print(f"  {w.name}: {w.description}; trained on {w.data or 'unrecorded data'}")
        print(f"    terms: {w.terms}")
    _print_sample_paths()
    return 0


def _print_sample_paths() -> None:
    """Where the installed MRI sample lies (to try ``volumenet upscale`` on)."""
    from .._sample_data import MRI_HR, MRI_LR, sample_path

    try:
        lr, hr = sample_path(MRI_LR), sample_path(MRI_HR)
    except InputError:
        return
    print()
    print(f"MRI sample (MNI152 T1, licence notice beside it): {lr} (LR ×2), {hr} (HR)")


def _bundled_val_psnr(bundled: Any) -> str:
    from ..weights import read_weights_file

    try:
        value = read_weights_file(bundled.path)["metadata"].get("val_psnr")
    except VolumeNetError:
        return "missing file"
    return "-" if value is None else f"{float(value):.2f} dB"


def _gain_text(bundled: Any) -> str:
    """Validation PSNR over tricubic's, e.g. ``+1.59 dB``, marked ``(!)`` where it is not above it."""
    gain = bundled.val_gain
    if gain is None:
        return "-"
    return f"{gain:+.2f} dB" + (" (!)" if bundled.beats_tricubic is False else "")


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from ..benchmark import format_results, run_benchmark
    from ..models import list_models

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
