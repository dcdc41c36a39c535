"""``volumenet-train``'s command line: the options, their checks, and the :class:`TrainConfig` they make."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from napari_volumenet._parse import int_list

from .config import TrainConfig

PROG = "volumenet-train"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
DEFAULT_STEPS_PER_EPOCH = 1000
DEFAULT_EDGE_CUT = 0.05
"""Chance per side that a patch's margin is mirrored as at a cropped scan's edge (``--edge-cut``)."""

T = TypeVar("T")

EXAMPLES = """\
examples:
  # the paper's VolumeNet D9C32, ×2, on a folder of T1 MRI (10 % of the subjects held out for validation)
  volumenet-train --data scans/ --model volumenet --depth 9 --channels 32 --scale 2 --modality mri --out runs/vn

  # two folders mixed 70/30, an explicit validation folder, one hour on the GPU
  volumenet-train --data ixi/ --data oasis/ --data-weights 0.7,0.3 --val val/ --out runs/mix --max-minutes 60

  # continue a stopped run (same command plus --resume); fine-tune from existing weights
  volumenet-train --data scans/ --out runs/vn --resume
  volumenet-train --data ct/ --modality ct --init-from runs/vn/best.pt --out runs/ct

  # 4 GPUs (the batch is per GPU)
  torchrun --nproc_per_node=4 -m src_training.train --data scans/ --out runs/vn4

then: volumenet upscale scan.nii.gz -o scan_x2.nii.gz --weights runs/vn/best.pt
"""


def _int_tuple(text: str, option: str, minimum: int = 1) -> tuple[int, ...]:
    """``2`` → ``(2, 2, 2)``, ``1,1,2`` → ``(1, 1, 2)`` (:func:`napari_volumenet._parse.int_list`)."""
    values = int_list(text, option, minimum=minimum)
    return values * 3 if len(values) == 1 else values


def _scale(text: str) -> tuple[int, int, int]:
    return _int_tuple(text, "--scale")  # type: ignore[return-value]


def _patch(text: str) -> tuple[int, int, int]:
    return _int_tuple(text, "--patch", minimum=2)  # type: ignore[return-value]


def _thick_slices(text: str) -> tuple[int, float]:
    """``FACTOR[,GAP]`` → ``(factor, gap)``: factor ≥ 2, 0 ≤ gap < factor."""
    parts = str(text).split(",")
    try:
        factor, gap = int(parts[0]), float(parts[1]) if len(parts) == 2 else 0.0
    except ValueError:
        factor, gap = 0, 0.0
    if len(parts) > 2 or factor < 2 or not 0 <= gap < factor:
        raise argparse.ArgumentTypeError(f"--thick-slices needs FACTOR[,GAP] with FACTOR ≥ 2 and 0 ≤ GAP < FACTOR, "
                                         f"got {text!r}")
    return factor, gap


def resolve_scale(args: argparse.Namespace) -> None:
    """Set ``args.scale``: ``1,1,FACTOR`` with ``--thick-slices`` (which excludes another ``--scale``), else 2."""
    if args.thick_slices is None:
        args.scale = args.scale or (2, 2, 2)
        return
    thick = (1, 1, args.thick_slices[0])
    if args.scale is not None and tuple(args.scale) != thick:
        raise argparse.ArgumentTypeError(f"--thick-slices {args.thick_slices[0]} trains scale 1,1,"
                                         f"{args.thick_slices[0]}; leave out --scale")
    args.scale = thick


def _checked(text: str, convert: Callable[[str], T], accept: Callable[[T], bool], expected: str) -> T:
    """``convert(text)`` if it parses and ``accept`` holds, else an argparse error naming ``expected``."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 0, "an integer ≥ 0")


def _probability(text: str) -> float:
    return _checked(text, float, lambda v: 0 <= v <= 1, "a probability in [0, 1]")


def _positive_float(text: str) -> float:
    return _checked(text, float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def build_parser() -> argparse.ArgumentParser:
    """Every option of ``volumenet-train`` (``--scale`` is left None for :func:`resolve_scale`)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a 3D super-resolution network (VolumeNet, ParallelNet or a baseline) on NIfTI volumes "
        "with the paper's protocol; the run folder's best.pt works with `volumenet upscale --weights`.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(parser.add_argument_group("data"))
    _add_model_options(parser.add_argument_group("model"))
    _add_training_options(parser.add_argument_group("training"))
    return parser


def _add_data_options(data: argparse._ArgumentGroup) -> None:
    data.add_argument("--data", action="append", required=True, metavar="DIR",
                      help="folder of HR .nii/.nii.gz volumes, searched recursively (repeat to mix folders)")
    data.add_argument("--data-weights", metavar="W1,W2,...",
                      help="sampling weight of each --data folder (default: every volume equally likely)")
    data.add_argument("--val", action="append", metavar="DIR",
                      help="validation folder (repeatable); default: hold out whole subjects of --data")
    data.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                      help="fraction of the subjects held out for validation without --val (default 0.1, at least 1)")
    data.add_argument("--modality", choices=("mri", "ct"), default="mri",
                      help="intensity normalisation: MRI 99.9th percentile, CT [-1000, 1000] HU (default mri)")
    data.add_argument("--scale", type=_scale, default=None, metavar="S",
                      help="upscaling factor, 2 or per array axis such as 1,1,2 (default 2)")
    data.add_argument("--thick-slices", type=_thick_slices, default=None, metavar="FACTOR[,GAP]",
                      help="through-plane training instead of --scale: every volume is made of thick slices "
                      "(the mean of FACTOR HR slices, GAP HR slices apart) along each of its three axes in turn, "
                      "moved to array axis 2; the network upscales by 1,1,FACTOR")
    data.add_argument("--patch", type=_patch, default=(16, 16, 16), metavar="P",
                      help="LR patch size in voxels (HR patch = scale × P; default 16)")
    data.add_argument("--margin", type=_non_negative_int, default=0, metavar="M",
                      help="LR voxels of real context around each patch; the loss sees only the central "
                      "patch, so it is not spent on the zero padding at patch borders (default 0, the paper's; "
                      "up to the receptive field, e.g. 6 for VolumeNet D9, makes short runs learn much faster)")
    data.add_argument("--edge-cut", type=_probability, default=DEFAULT_EDGE_CUT, metavar="P",
                      help="chance per side that a patch's margin is replaced by the mirror of the patch, as at "
                      "the edge of a scan whose anatomy goes on past it (cropped field of view); teaches the "
                      "network the mirrored border it meets there at inference "
                      f"(default {DEFAULT_EDGE_CUT}; needs --margin ≤ --patch)")
    data.add_argument("--no-augment", action="store_true", help="no flips, axis permutations or intensity jitter")
    data.add_argument("--disk-cache", action="store_true",
                      help="also keep the degraded LR volumes in OUT/cache/ (faster --resume)")
    data.add_argument("--workers", type=_non_negative_int, default=None, metavar="N",
                      help="DataLoader worker processes (default: 0 on CPU, 4 on CUDA)")


def _add_model_options(model: argparse._ArgumentGroup) -> None:
    model.add_argument("--model", default="volumenet", help="network name (default volumenet; see `volumenet models`)")
    model.add_argument("--depth", type=_positive_int, default=None,
                       help="D, layers of the mainline (default: the model's)")
    model.add_argument("--channels", type=_positive_int, default=None,
                       help="C, channels per layer (default: the model's)")
    model.add_argument("--block", default=None,
                       help="building block: conv, xception, mobilenetv2, cpd, lwv1, lwv2, queue "
                       "(default: the model's)")
    model.add_argument("--init-from", metavar="WEIGHTS.pt", help="start from these weights (same architecture)")
    model.add_argument("--init", choices=("least-squares", "cubic", "linear", "random"), default="least-squares",
                       help="ParallelNet/VolumeNet start: 'least-squares' (default) sets the head conv to the best "
                       "linear 3×3×3 upsampling filter for the training data, 'cubic' / 'linear' to interpolation, "
                       "and zeroes the fusion, so training starts from (better than) interpolation quality; "
                       "the pre-upsampling baselines (srcnn3d, dcsrn, mdcsrn) start as their tricubic upsampler "
                       "under every choice but 'random' (He initialisation throughout)")


def _add_training_options(loop: argparse._ArgumentGroup) -> None:
    loop.add_argument("--out", required=True, metavar="DIR", help="run folder (created; never overwritten)")
    loop.add_argument("--batch", type=_positive_int, default=8, help="patches per step and process (default 8)")
    loop.add_argument("--lr", type=_positive_float, default=1e-4, help="Adam learning rate (default 1e-4)")
    loop.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                      help="constant (the paper's), or cosine decay to 1 %% of --lr over the run's length "
                      "(--max-steps/--epochs, or --max-minutes of wall time)")
    loop.add_argument("--warmup", type=_non_negative_int, default=0, metavar="N",
                      help="raise the learning rate linearly from 0 over the first N steps (default 0)")
    loop.add_argument("--loss", choices=("l1", "l2"), default="l1",
                      help="l1 (mean absolute error, the paper's) or l2 (mean squared error, which PSNR measures)")
    loop.add_argument("--steps-per-epoch", type=_positive_int, default=DEFAULT_STEPS_PER_EPOCH, metavar="N",
                      help=f"steps between validations (default {DEFAULT_STEPS_PER_EPOCH})")
    loop.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                      help="stop after N epochs in all (default: only early stopping)")
    loop.add_argument("--patience", type=_positive_int, default=50, metavar="N",
                      help="stop after N epochs without a better validation PSNR (default 50, as the paper)")
    loop.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                      help="stop cleanly at step N (counted over the whole run, resumes included)")
    loop.add_argument("--max-minutes", type=_positive_float, default=None, metavar="M",
                      help="stop cleanly so that this command ends after about M minutes (validation included)")
    loop.add_argument("--resume", action="store_true",
                      help="continue the run in --out (same step counter and optimizer)")
    loop.add_argument("--seed", type=int, default=0, help="random seed: split, initialisation, patches (default 0)")
    loop.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N or mps")
    loop.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                      help="mixed precision (the weights stay fp32): auto = bf16 (or fp16) on CUDA, bf16 on a CPU "
                      "with native bf16 (AVX-512 BF16, AMX: about 2× faster), else off (default auto)")
    loop.add_argument("--grad-checkpoint", choices=("auto", "on", "off"), default="auto",
                      help="recompute each block's inner feature maps in the backward pass instead of keeping "
                      "them (ParallelNet/VolumeNet): about half the memory of a step for about 1.3× its time; "
                      "auto = on on the CPU, where memory, not arithmetic, limits how many runs fit (default auto)")
    loop.add_argument("--val-tile", type=_non_negative_int, default=None, metavar="N",
                      help="tile edge (LR voxels) of the validation inference; 0 = whole volume (default: from memory)")
    loop.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs even if installed")
    loop.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")


def parse_config(argv: Sequence[str]) -> TrainConfig:
    """The options in ``argv`` as a :class:`TrainConfig`; argparse's ``SystemExit`` on ``--help`` or a bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve_scale(args)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    return TrainConfig.from_namespace(args)
