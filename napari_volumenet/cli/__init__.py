"""The ``volumenet`` command line (SPEC §6): upscale, degrade, evaluate, models, benchmark, info, convert.

Every command is a thin adapter over the library (:mod:`napari_volumenet.inference`,
:mod:`napari_volumenet.io`, :mod:`napari_volumenet.evaluation`, :mod:`napari_volumenet.benchmark`);
the CLI adds no science. Errors a user can cause (:class:`~napari_volumenet.errors.VolumeNetError`)
are printed as one line ``volumenet: error: <message>`` with exit code 2, Ctrl-C gives
``volumenet: interrupted`` (exit 130, no partial file), SIGTERM / SIGHUP ``volumenet: terminated
(SIGTERM)`` (exit 143 / 129, no partial file either), anything else one line
``volumenet: internal error: ...`` (exit 1); ``--debug`` adds the traceback.

Heavy modules (torch, nibabel, ...) are imported inside the commands, so ``--help`` is fast, and
nothing here ever imports Qt or napari (the CLI runs on headless servers).

One module per command (:mod:`.upscale`, :mod:`.degrade`, :mod:`.evaluate`, :mod:`.listing` for
``models`` and ``benchmark``, :mod:`.info`, :mod:`.convert`), each with its options, examples and handler; ``_files`` finds, pairs and
checks inputs and outputs before any work, ``_args`` holds the argument types, ``_common`` the messages.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import __version__
from .._allocator import keep_heap_until_exit
from ..atomic import Terminated, termination_unwinds
from ..errors import VolumeNetError, VolumeNetWarning
from . import convert, degrade, evaluate, fit, info, listing, upscale
from ._common import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, PROG, fail, one_line

MAIN_EPILOG = """\
examples:
  volumenet upscale scan.nii.gz -o scan_x2.nii.gz --weights volumenet_mri.pt
  volumenet degrade hr.nii.gz -o lr.nii.gz --scale 2
  volumenet evaluate hr_folder/ --models runs/volumenet.pt --json results.json
  volumenet models
  volumenet benchmark --models volumenet,parallelnet --size 125,125,75
  volumenet info dicom/t1_sag/
  volumenet convert dicom/t1_sag/ -o t1_sag.nii.gz

Run 'volumenet COMMAND --help' for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``volumenet`` parser: one subparser per command, its options from the command's module."""
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

    upscale.add_options(subcommand(
        "upscale", upscale.cmd_upscale, upscale.EPILOG, "super-resolve NIfTI volumes and DICOM series",
        "Super-resolve NIfTI volumes and DICOM series with a trained network (exact tiled inference)."))
    fit.add_options(subcommand(
        "fit", fit.cmd_fit, fit.EPILOG, "fit weights to one thick-slice scan from its own sharp plane",
        "Self-supervised super-resolution: learn a thick-slice scan's slice axis from its in-plane axes "
        "(made as thick as its slices), and write weights that upscale accepts."))
    degrade.add_options(subcommand(
        "degrade", degrade.cmd_degrade, degrade.EPILOG, "simulate a low-resolution acquisition",
        "Simulate the LR acquisition of HR NIfTI volumes (the paper's degradation)."))
    evaluate.add_options(subcommand(
        "evaluate", evaluate.cmd_evaluate, evaluate.EPILOG, "Table III: tricubic and models on degraded HR volumes",
        "Degrade HR volumes, upscale them with tricubic and each model, and print RMSE, PSNR, foreground PSNR, "
        "SSIM, time and #params (the paper's Table III)."))
    subcommand(
        "models", listing.cmd_models, listing.MODELS_EPILOG, "list the networks and the bundled weights",
        "List the registry's networks (#params, receptive field) and the bundled weights.")
    listing.add_benchmark_options(subcommand(
        "benchmark", listing.cmd_benchmark, listing.BENCHMARK_EPILOG, "throughput and peak memory (random weights)",
        "Measure the speed and peak memory of networks with random weights on a random LR volume (speed only, "
        "not quality)."))
    info.add_options(subcommand(
        "info", info.cmd_info, info.EPILOG, "what the tool sees in a file or DICOM series",
        "Shape, voxel sizes, affine, orientation, slice thickness and gap, modality, series description, and the "
        "weights `volumenet upscale` would pick and why (headers only)."))
    convert.add_options(subcommand(
        "convert", convert.cmd_convert, convert.EPILOG, "DICOM series to NIfTI, NIfTI to a DICOM series",
        "Convert a DICOM series to NIfTI (dcm2niix's grid and values), or a NIfTI volume to a new DICOM series in "
        "the study of a template series."))
    return parser


def _one_line_warnings(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing ours as one line of stderr, like errors, others via ``fallback``."""

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, VolumeNetWarning):
            fail(f"warning: {message}")
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
        fail(f"error: {error}")
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM / SIGHUP (Terminated): no partial file is left
        if debug:
            traceback.print_exc()
        if isinstance(interrupt, Terminated):
            fail(f"terminated ({interrupt.name})")
            return 128 + interrupt.signum
        fail("interrupted")
        return EXIT_INTERRUPTED
    except MemoryError:
        if debug:
            traceback.print_exc()
        fail("error: out of memory; pass a smaller --tile or close other programs")
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
        message = one_line(str(error))[:300]
        fail(f"internal error: {type(error).__name__}: {message} (rerun with --debug for details)")
        return EXIT_INTERNAL


def run() -> NoReturn:
    """The ``volumenet`` program: :func:`main` on ``sys.argv``, then a quick exit with its code.

    Every file a command writes is complete and renamed into place before :func:`main` returns, so the
    process flushes its streams and leaves without Python's finalisation (freeing PyTorch's modules and
    objects one by one) and keeps its heap instead of trimming it (:func:`keep_heap_until_exit`): ~0.5 s of a
    4 s upscale. Tests and other callers in a long-lived process use :func:`main`.
    """
    keep_heap_until_exit()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


__all__ = ["EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "PROG", "build_parser", "main", "run"]
