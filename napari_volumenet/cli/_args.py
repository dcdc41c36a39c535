"""Argument types and the options several commands share (``--tile/--device/--precision/--engine``)."""

from __future__ import annotations

import argparse
import math
import re
import warnings
from typing import TYPE_CHECKING

from .._parse import int_list

if TYPE_CHECKING:
    from ..evaluation import Degradation
    from ..inference import RunOptions


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


def thick_slices_arg(text: str) -> tuple[int, int, float]:
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


def degradation_arg(args: argparse.Namespace) -> Degradation:
    """The LR simulation ``--scale`` (default 2) or ``--thick-slices`` asks for; both at once are refused."""
    from ..errors import InputError, ModelError
    from ..evaluation import Degradation

    if args.thick_slices is not None:
        if args.scale is not None:
            raise InputError("--thick-slices sets the factor; leave out --scale")
        axis, factor, gap = args.thick_slices
        return Degradation.thick(axis, factor, gap)
    try:
        return Degradation.resize(args.scale or 2)
    except ModelError as error:
        raise InputError(str(error)) from None


def pad_value_arg(text: str) -> float | str:
    """``--pad-value``: ``auto``, ``none`` or a number (HU)."""
    if text in ("auto", "none"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected auto, none or a finite number of HU, got {text!r}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
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


def check_device(args: argparse.Namespace) -> None:
    """``--device`` and ``--precision`` usable on this machine, checked once before any work: a missing GPU is
    one error, not one per volume (the warning of a slow setting comes with the first volume)."""
    from ..inference import resolve_device, resolve_precision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolve_precision(args.precision, resolve_device(args.device))


def run_options(args: argparse.Namespace) -> RunOptions:
    """The request object of the shared ``--device/--precision/--tile/--engine`` options."""
    from ..inference import RunOptions

    return RunOptions(device=args.device, precision=args.precision, tile=args.tile, engine=args.engine)
