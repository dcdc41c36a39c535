"""``volumenet-train``: train a super-resolution network on your own NIfTI volumes (SPEC §3).

The paper's protocol: random LR patches 16³ (HR 32³), batch 8, Adam (lr 1e-4), L1 loss on
normalised intensities, validation PSNR on whole held-out volumes every epoch (degrade the HR
volume, exact tiled inference, metrics against the HR volume as ``volumenet evaluate`` does),
early stopping after ``--patience`` epochs without improvement, best weights kept. One default
differs: ParallelNet/VolumeNet start from the least-squares linear upsampler of the training data
(``--init least-squares``; ``--init random`` is the paper's). ``--margin`` and
``--lr-schedule cosine`` help short runs.

Run folder (``--out``)::

    best.pt      weights of the best validation PSNR (napari-volumenet weights file, SPEC §5b;
                 use with ``volumenet upscale --weights``)
    last.pt      weights after the latest epoch (same format)
    resume.pt    optimizer, step counter and RNG state for ``--resume`` (weights_only-loadable)
    metrics.csv  one row per validation: step, epoch, train_loss, val_psnr, val_ssim, val_psnr_fg,
                 lr, seconds, patches_per_s
    curve.png    training L1 and validation PSNR against epochs, tricubic PSNR dashed (needs matplotlib)
    config.json  every argument, every data file with its sha256 and split role, versions, device
    tensorboard/ only when TensorBoard is installed

Several GPUs: ``torchrun --nproc_per_node=N -m src_training.train ...`` (DistributedDataParallel;
NCCL on GPUs, Gloo on CPUs). ``--batch`` is per process; every process draws its own patches
(the sampling seed includes the rank); only rank 0 validates, prints and writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_volumenet.atomic import atomic_path, termination_unwinds, write_json_atomic

PROG = "volumenet-train"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
RESUME_FORMAT = "napari-volumenet-resume"
METRIC_COLUMNS = [
    "step", "epoch", "train_loss", "val_psnr", "val_ssim", "val_psnr_fg", "lr", "seconds", "patches_per_s",
]
DEFAULT_STEPS_PER_EPOCH = 1000
DEFAULT_EDGE_CUT = 0.05
"""Chance per side that a patch's margin is mirrored as at a cropped scan's edge (``--edge-cut``)."""

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


# ----------------------------------------------------------------------------- arguments


def _int_tuple(text: str, option: str, minimum: int = 1) -> tuple[int, ...]:
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option} must be one integer or 3 comma-separated integers, got {text!r}")
    if len(values) not in (1, 3) or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(
            f"{option} must be one integer or 3 comma-separated integers (each ≥ {minimum}), got {text!r}"
        )
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


def _checked(text: str, convert, accept, expected: str):
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
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a 3D super-resolution network (VolumeNet, ParallelNet or a baseline) on NIfTI volumes "
        "with the paper's protocol; the run folder's best.pt works with `volumenet upscale --weights`.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
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

    model = parser.add_argument_group("model")
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

    loop = parser.add_argument_group("training")
    loop.add_argument("--out", required=True, metavar="DIR", help="run folder (created; never overwritten)")
    loop.add_argument("--batch", type=_positive_int, default=8, help="patches per step and process (default 8)")
    loop.add_argument("--lr", type=_positive_float, default=1e-4, help="Adam learning rate (default 1e-4)")
    loop.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                      help="constant (the paper's), or cosine decay to 1 %% of --lr over the run's length "
                      "(--max-steps/--epochs, or --max-minutes of wall time)")
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
                      help="mixed precision: auto = bf16 (or fp16) on CUDA, off on CPU (default auto)")
    loop.add_argument("--grad-checkpoint", choices=("auto", "on", "off"), default="auto",
                      help="recompute each block's inner feature maps in the backward pass instead of keeping "
                      "them (ParallelNet/VolumeNet): about half the memory of a step for about 1.3× its time; "
                      "auto = on on the CPU, where memory, not arithmetic, limits how many runs fit (default auto)")
    loop.add_argument("--val-tile", type=_non_negative_int, default=None, metavar="N",
                      help="tile edge (LR voxels) of the validation inference; 0 = whole volume (default: from memory)")
    loop.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs even if installed")
    loop.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    return parser


# ----------------------------------------------------------------------------- small helpers




def _torch_save_atomic(payload: dict, path: Path) -> None:
    import torch

    from napari_volumenet.atomic import write_failure

    try:
        with atomic_path(path) as temp:
            torch.save(payload, temp)
    except (OSError, RuntimeError) as error:  # torch reports a failed write (a full disk) as a RuntimeError
        raise write_failure(path, error) from None


def _check_writable(out: Path) -> None:
    """The run folder exists and is writable, or can be created: else one clear :class:`OutputError`."""
    from napari_volumenet.errors import OutputError

    existing = next(p for p in [out, *out.parents] if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot create the run folder {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write into the run folder" if existing == out else "create the run folder"
        raise OutputError(f"cannot {what} {out}: permission denied on {existing}")


def _read_run_config(path: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A run's config.json and the sha256 of its training and validation files; a damaged file is one clear error."""
    from napari_volumenet.errors import VolumeNetError

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        files = config.get("files", [])
        saved = {role: sorted(f["sha256"] for f in files if f.get("role") == role) for role in ("train", "val")}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as error:
        raise VolumeNetError(f"--resume: {path} is damaged or unreadable ({type(error).__name__}: "
                             f"{str(error)[:120]}); start a new run from its last.pt with --init-from") from None
    return config, saved


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


@dataclass
class Distributed:
    """Who this process is in a torchrun job (world_size 1 without torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _distributed_from_env() -> Distributed:
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Distributed()
    return Distributed(world, int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")),
                       int(env.get("LOCAL_WORLD_SIZE", str(world))))


# ----------------------------------------------------------------------------- the run


class Trainer:
    """One training run: set up (no writes), then the loop. Only rank 0 writes or prints."""

    def __init__(self, args: argparse.Namespace, dist_info: Distributed, started: float) -> None:
        self.args = args
        self.dist = dist_info
        self.started = started
        self.out = Path(args.out).expanduser()
        self.say_enabled = dist_info.is_main and not args.quiet
        self.writer = None

    # ---------------------------------------------------------------- output
    def say(self, message: str) -> None:
        if self.say_enabled:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    # ---------------------------------------------------------------- setup
    def setup_device(self) -> None:
        import torch

        from napari_volumenet.errors import VolumeNetError
        from napari_volumenet.inference import resolve_device

        args = self.args
        if args.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = resolve_device(args.device)
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.backends.cudnn.benchmark = True
        if self.dist.enabled and device.type == "mps":
            raise VolumeNetError("distributed training (torchrun) supports CUDA and CPU, not MPS")
        if self.dist.enabled and device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, self.dist.local_world_size)))
        self.device = device
        amp = args.amp
        if amp == "auto":
            if device.type == "cuda":
                amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                amp = "off"
        if amp == "fp16" and device.type != "cuda":
            raise VolumeNetError("--amp fp16 needs a CUDA GPU; use --amp bf16 or --amp off")
        self.amp = amp
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)

    def check_run_folder(self) -> None:
        from napari_volumenet.errors import OutputError, VolumeNetError

        args, out = self.args, self.out
        if args.resume and args.init_from:
            raise VolumeNetError("--resume continues a run from its own checkpoint; do not combine it with --init-from")
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder.")
        if args.resume:
            missing = [n for n in ("resume.pt", "config.json") if not (out / n).is_file()]
            if missing:
                raise VolumeNetError(f"--resume: {out} holds no run to resume (missing {', '.join(missing)}); "
                                     "a run that stopped before its first checkpoint starts again without --resume.")
        else:
            # config.json and metrics.csv alone are a run that died before its first checkpoint: start it again
            taken = [n for n in ("last.pt", "best.pt", "resume.pt") if (out / n).exists()]
            if taken:
                raise OutputError(
                    f"--out {out} already holds a training run ({', '.join(taken)}); pass --resume to continue it "
                    "or choose another folder."
                )
        _check_writable(out)

    def build_model(self):
        import torch

        from napari_volumenet.errors import ModelError, WeightsError
        from napari_volumenet.models import count_parameters, create_model, list_models
        from napari_volumenet.weights import load_weights

        args = self.args
        if args.model not in list_models():
            raise ModelError(f"unknown model {args.model!r}; choose one of {', '.join(list_models())}")
        if args.model == "tricubic":
            raise ModelError("tricubic interpolation has no parameters to train; choose a network")
        kwargs: dict[str, Any] = {"scale": tuple(args.scale)}
        for key in ("depth", "channels", "block"):
            if getattr(args, key) is not None:
                kwargs[key] = getattr(args, key)
        torch.manual_seed(args.seed)
        try:
            model = create_model(args.model, **kwargs)
        except (ValueError, KeyError) as error:
            raise ModelError(f"invalid arguments for model {args.model!r}: {error}") from None
        if count_parameters(model) == 0:
            raise ModelError(f"model {args.model!r} has no parameters to train")
        self.init_meta = None
        if args.init in ("cubic", "linear") and not args.init_from and hasattr(model, "init_as_interpolation"):
            model.init_as_interpolation(args.init)
        if args.init != "random" and not args.init_from and hasattr(model, "init_as_upsampler"):
            model.init_as_upsampler()
        if args.init_from:
            source, meta = load_weights(Path(args.init_from).expanduser())
            theirs = {k: v for k, v in source.config.items()}
            ours = {k: v for k, v in model.config.items()}
            if theirs != ours:
                raise WeightsError(
                    f"--init-from {Path(args.init_from).name} holds {_describe_config(theirs)}, which does not match "
                    f"the requested {_describe_config(ours)}; pass the same --model/--depth/--channels/--block/--scale"
                )
            model.load_state_dict(source.state_dict())
            if meta.get("modality") != args.modality:
                self.say(f"note: --init-from weights were trained on {meta.get('modality')!r} data, "
                         f"fine-tuning on {args.modality!r}")
            self.init_meta = {"path": str(Path(args.init_from).expanduser()), "model": meta.get("model"),
                              "modality": meta.get("modality"), "val_psnr": meta.get("val_psnr")}
        if hasattr(model, "checkpoint_blocks"):
            model.checkpoint_blocks = args.grad_checkpoint == "on" or (
                args.grad_checkpoint == "auto" and self.device.type == "cpu")
        self.model = model.to(self.device)

    def load_data(self) -> None:
        from tqdm import tqdm

        from napari_volumenet.errors import InputError

        from .dataset import (
            DataFile,
            find_files,
            load_pair,
            load_thick_slice_pairs,
            parse_group_weights,
            split_by_subject,
            subject_id,
        )

        args = self.args
        groups: list[list[DataFile]] = []
        for g, folder in enumerate(args.data):
            groups.append([DataFile(p, g, subject_id(p)) for p in find_files(folder, "--data")])
        everything = [f for group in groups for f in group]
        if args.val:
            train_files = everything
            val_files = []
            for folder in args.val:
                val_files += [DataFile(p, -1, subject_id(p), "val") for p in find_files(folder, "--val")]
            train_paths = {f.path.resolve() for f in train_files}
            shared = [f.path for f in val_files if f.path.resolve() in train_paths]
            if shared:
                raise InputError(f"{shared[0]} is in both --data and --val; validation volumes must not be trained on.")
            self.split_method = "--val folder"
        else:
            train_files, val_files = split_by_subject(everything, args.val_fraction, args.seed)
            self.split_method = f"by subject, seed {args.seed}, fraction {args.val_fraction}"
        counts = [sum(1 for f in train_files if f.group == g) for g in range(len(groups))]
        self.group_weights = parse_group_weights(args.data_weights, len(groups), counts)
        if args.data_weights is not None:
            empty = [args.data[g] for g in range(len(groups)) if counts[g] == 0 and self.group_weights[g] > 0]
            if empty:
                raise InputError(f"--data {empty[0]} has no training volume left after the validation split.")

        cache = self.out / "cache" if args.disk_cache else None
        jobs = [(f, True) for f in train_files] + [(f, False) for f in val_files]
        bar = tqdm(jobs, desc="loading + degrading volumes", unit="vol", disable=None if self.say_enabled else True,
                   file=sys.stderr, dynamic_ncols=True, leave=False)
        self.train_pairs, self.val_pairs = [], []
        for f, is_train in bar:
            patch = tuple(args.patch) if is_train else None
            if args.thick_slices is not None:
                factor, gap = args.thick_slices
                pairs = load_thick_slice_pairs(f.path, factor=factor, gap=gap, modality=args.modality, patch=patch,
                                               group=f.group, subject=f.subject)
            else:
                pairs = [load_pair(f.path, scale=tuple(args.scale), modality=args.modality, patch=patch,
                                   group=f.group, subject=f.subject, cache_dir=cache if self.dist.is_main else None)]
            (self.train_pairs if is_train else self.val_pairs).extend(pairs)
        bar.close()

    def fit_head(self) -> None:
        """``--init least-squares``: the head becomes the best linear upsampler of the training pairs."""
        model, args = self.model, self.args
        if args.init != "least-squares" or args.init_from or not hasattr(model, "init_head"):
            return
        from .linear_head import fit_linear_head

        self.say("initialisation: least-squares linear upsampling filter for the head…")
        weight, bias = fit_linear_head(self.train_pairs, tuple(args.scale), seed=args.seed)
        model.init_head(weight.to(self.device), bias.to(self.device))

    # ---------------------------------------------------------------- run-folder files
    def data_fingerprint(self) -> dict[str, list[str]]:
        return {
            "train": sorted(p.sha256 for p in self.train_pairs),
            "val": sorted(p.sha256 for p in self.val_pairs),
        }

    def training_summary(self, step: int, epoch: int) -> dict[str, Any]:
        """What goes into the weights files' metadata (``training``)."""
        fingerprint = self.data_fingerprint()
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        args = self.args
        return {
            "tool": PROG,
            "data": [str(Path(d).expanduser()) for d in args.data],
            "data_weights": self.group_weights,
            "val": [str(Path(d).expanduser()) for d in args.val] if args.val else None,
            "split": self.split_method,
            "train_volumes": len(self.train_pairs),
            "val_volumes": len(self.val_pairs),
            "train_files": [p.path.name for p in self.train_pairs],
            "val_files": [p.path.name for p in self.val_pairs],
            "data_sha256": digest,
            "degradation": ({"kind": "thick-slices", "axis": 2, "factor": args.thick_slices[0],
                             "gap": args.thick_slices[1], "volume_axes": [0, 1, 2]}
                            if args.thick_slices is not None else {"kind": "degrade", "scale": list(args.scale)}),
            "patch": list(args.patch),
            "batch": args.batch,
            "world_size": self.dist.world_size,
            "optimizer": "adam",
            "lr": args.lr,
            "lr_schedule": args.lr_schedule,
            "init": "from weights" if args.init_from else args.init,
            "margin": args.margin,
            "edge_cut": args.edge_cut,
            "loss": "l1",
            "steps": step,
            "epoch": epoch,
            "steps_per_epoch": args.steps_per_epoch,
            "seed": args.seed,
            "tricubic_val_psnr": self.tricubic.get("psnr"),
            "init_from": self.init_meta,
        }

    def config_payload(self, argv: Sequence[str]) -> dict[str, Any]:
        import nibabel
        import numpy
        import scipy
        import skimage
        import torch

        from napari_volumenet import __version__
        from napari_volumenet.models import count_parameters

        args = self.args
        device_name = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                       else platform.processor() or platform.machine())
        return {
            "tool": PROG,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "argv": list(argv),
            "args": vars(args),
            "model": {**self.model.config, "params": count_parameters(self.model),
                      "receptive_field": self.model.receptive_field},
            "data": [
                {"folder": str(Path(d).expanduser()), "weight": w,
                 "train_volumes": sum(1 for p in self.train_pairs if p.group == g),
                 "val_volumes": sum(1 for p in self.val_pairs if p.group == g)}
                for g, (d, w) in enumerate(zip(args.data, self.group_weights))
            ],
            "split": {
                "method": self.split_method,
                "train": [str(p.path) for p in self.train_pairs],
                "val": [str(p.path) for p in self.val_pairs],
            },
            "files": [{**p.describe(), "role": "train"} for p in self.train_pairs]
            + [{**p.describe(), "role": "val"} for p in self.val_pairs],
            "tricubic_val": self.tricubic,
            "device": {"type": self.device.type, "name": device_name, "amp": self.amp,
                       "world_size": self.dist.world_size, "threads": torch.get_num_threads(),
                       "workers": self.workers},
            "versions": {"napari_volumenet": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
                         "scipy": scipy.__version__, "scikit-image": skimage.__version__,
                         "nibabel": nibabel.__version__, "python": platform.python_version()},
            "init_from": self.init_meta,
            "resumes": [],
        }

    # ---------------------------------------------------------------- validation
    def validate(self, network) -> dict[str, float]:
        """Mean PSNR / SSIM / foreground PSNR of ``network`` over the whole validation volumes."""
        from napari_volumenet.inference import upscale
        from napari_volumenet.ops.metrics import compute_metrics

        rows = []
        for pair in self.val_pairs:
            sr = upscale(pair.lr, network, normalization=pair.normalization, tile=self.args.val_tile,
                         device=str(self.device), precision="fp32")
            rows.append(compute_metrics(pair.hr, sr))
        network.train()
        return {key: _mean([r[key] for r in rows]) for key in ("psnr", "ssim", "psnr_fg")}

    def tricubic_baseline(self) -> dict[str, float]:
        from napari_volumenet.inference import upscale
        from napari_volumenet.models import create_model
        from napari_volumenet.ops.metrics import compute_metrics

        tricubic = create_model("tricubic", scale=tuple(self.args.scale))
        rows = []
        for pair in self.val_pairs:
            sr = upscale(pair.lr, tricubic, tile=self.args.val_tile, device="cpu", precision="fp32")
            rows.append(compute_metrics(pair.hr, sr))
        return {key: _mean([r[key] for r in rows]) for key in ("psnr", "ssim", "psnr_fg")}

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoints(self, network, optimizer, scaler, state: dict[str, Any], best: bool) -> None:
        import torch

        from napari_volumenet.weights import save_weights

        training = self.training_summary(state["step"], state["epoch"])
        extra = {"step": state["step"], "epoch": state["epoch"], "best_val_psnr": state["best_val_psnr"],
                 "best_step": state["best_step"]}
        if best:
            save_weights(self.out / "best.pt", network, modality=self.args.modality, training=training,
                         val_psnr=state["last_val_psnr"], extra=extra)
        last_psnr = state["last_val_psnr"] if math.isfinite(state["last_val_psnr"]) else None
        save_weights(self.out / "last.pt", network, modality=self.args.modality, training=training,
                     val_psnr=last_psnr, extra=extra)
        resume = {
            "format": RESUME_FORMAT,
            "format_version": 1,
            **{k: v for k, v in state.items()},
            "model_config": json.dumps(network.config, sort_keys=True),
            "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }
        _torch_save_atomic(resume, self.out / "resume.pt")

    def load_resume(self) -> dict[str, Any]:
        import torch

        from napari_volumenet.errors import VolumeNetError

        path = self.out / "resume.pt"
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file is a user-facing problem
            raise VolumeNetError(
                f"--resume: {path} cannot be read ({type(error).__name__}); it may be damaged"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
            raise VolumeNetError(f"--resume: {path} is not a volumenet-train resume file")
        self.check_resume_payload(path, payload)
        ours = json.dumps(self.model.config, sort_keys=True)
        if payload.get("model_config") != ours:
            raise VolumeNetError(
                f"--resume: the run in {self.out} trained {_describe_config(json.loads(payload['model_config']))}, "
                f"not {_describe_config(self.model.config)}; pass the run's --model/--depth/--channels/--block/--scale"
            )
        config, saved = _read_run_config(self.out / "config.json")
        if saved != self.data_fingerprint():
            raise VolumeNetError(
                f"--resume: the training or validation volumes differ from those in {self.out / 'config.json'}; "
                "resume with the same --data, --val, --val-fraction and --seed"
            )
        for key in ("modality", "patch"):
            before = config.get("args", {}).get(key)
            now = getattr(self.args, key)
            if before is not None and json.loads(json.dumps(before)) != json.loads(json.dumps(now)):
                raise VolumeNetError(f"--resume: the run used --{key} {before}, not {now}")
        self.saved_config = config
        return payload

    def check_resume_payload(self, path: Path, payload: dict[str, Any]) -> None:
        """Every part of a resume file is there and fits (weights, optimizer), else one clear error."""
        import torch

        from napari_volumenet.errors import VolumeNetError

        try:
            missing = [k for k in ("model_config", "state_dict", "optimizer", "step") if k not in payload]
            if missing:
                raise KeyError(missing[0])
            if payload["model_config"] == json.dumps(self.model.config, sort_keys=True):  # else load_resume says so
                self.model.load_state_dict(payload["state_dict"])
                torch.optim.Adam(self.model.parameters()).load_state_dict(payload["optimizer"])
            int(payload["step"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise VolumeNetError(f"--resume: {path} is damaged ({type(error).__name__}: {str(error)[:120]}); "
                                 "start a new run from its last.pt with --init-from") from None

    # ---------------------------------------------------------------- metrics file
    def metrics_rows(self) -> list[dict[str, str]]:
        path = self.out / "metrics.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))

    def start_metrics(self, resumed_step: int | None) -> None:
        path = self.out / "metrics.csv"
        if resumed_step is None or not path.is_file():
            with open(path, "w", newline="") as handle:
                csv.writer(handle).writerow(METRIC_COLUMNS)
            return
        # rows written after the checkpoint we resume from (a crash between the two) and rows cut short
        # (a full disk) are dropped
        rows = [r for r in self.metrics_rows() if None not in r.values() and _step_of(r) <= resumed_step]
        with atomic_path(path) as temp, open(temp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.out / "metrics.csv", "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=METRIC_COLUMNS).writerow(
                {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            )

    def plot(self) -> None:
        from .plots import plot_training_curves, read_metrics

        try:
            plot_training_curves(
                read_metrics(self.out / "metrics.csv"), self.out / "curve.png",
                steps_per_epoch=self.args.steps_per_epoch, tricubic_psnr=self.tricubic.get("psnr"),
                title=f"{_describe_config(self.model.config)} · {self.out.name}",
            )
        except Exception as error:  # noqa: BLE001 - a plotting problem must never stop training
            self.say(f"warning: curve.png not written ({type(error).__name__}: {error})")

    def cosine_lr(self, step: int, end_step: int | None) -> float:
        """``--lr`` decayed along half a cosine to 1 % of it over the run (steps, or else wall time)."""
        args = self.args
        progress = 0.0
        if end_step:
            progress = step / end_step
        elif args.max_minutes is not None:  # the same on every process, or their weights would drift apart
            progress = self.max_over_ranks(time.perf_counter() - self.started) / (args.max_minutes * 60)
        progress = min(max(progress, 0.0), 1.0)
        return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    # ---------------------------------------------------------------- distributed helpers
    def broadcast(self, value: Any) -> Any:
        if not self.dist.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def max_over_ranks(self, value: float) -> float:
        """The largest ``value`` over all processes (``value`` itself without torchrun)."""
        if not self.dist.enabled:
            return value
        import torch
        import torch.distributed as dist

        box = torch.tensor([value], device=self.device, dtype=torch.float64)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return float(box.item())

    def any_rank(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any process."""
        return self.max_over_ranks(1.0 if flag else 0.0) > 0

    def all_ok(self, ok: bool) -> bool:
        """True on every process only if ``ok`` is true on every process."""
        return not self.any_rank(not ok)

    # ---------------------------------------------------------------- main
    def run(self, argv: Sequence[str]) -> int:
        from napari_volumenet.errors import VolumeNetError

        args = self.args
        error: VolumeNetError | None = None
        try:
            self.setup_device()
            self.check_run_folder()
            self.build_model()
            self.load_data()
            resume = self.load_resume() if args.resume else None
            if resume is None:
                self.fit_head()
        except VolumeNetError as caught:
            error = caught
        if not self.all_ok(error is None):
            if error is not None:
                raise error
            raise VolumeNetError("another training process failed during setup (see its message)")

        if self.dist.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                from napari_volumenet.atomic import write_failure

                raise write_failure(self.out, error) from None
        if resume is None:
            self.say(f"validation: tricubic baseline on {len(self.val_pairs)} volume(s)…")
            self.tricubic = self.broadcast(self.tricubic_baseline() if self.dist.is_main else None)
            if self.dist.is_main:
                write_json_atomic(self.out / "config.json", self.config_payload(argv))
        else:
            self.tricubic = self.saved_config.get("tricubic_val") or {}
            if self.dist.is_main:
                self.saved_config.setdefault("resumes", []).append({
                    "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "argv": list(argv), "from_step": int(resume["step"]),
                })
                write_json_atomic(self.out / "config.json", self.saved_config)
        if self.dist.is_main:
            self.start_metrics(None if resume is None else int(resume["step"]))
        return self.loop(resume)

    def loop(self, resume: dict[str, Any] | None) -> int:
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        from napari_volumenet.errors import VolumeNetError

        from .dataset import IndexRange, PatchDataset, worker_init

        args, device = self.args, self.device
        network = self.model
        optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
        scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        state = {"step": 0, "epoch": 0, "seconds": 0.0, "best_val_psnr": -math.inf, "best_step": 0,
                 "bad_epochs": 0, "last_val_psnr": math.nan}
        if resume is not None:
            network.load_state_dict(resume["state_dict"])
            optimizer.load_state_dict(resume["optimizer"])
            for group in optimizer.param_groups:
                group["lr"] = args.lr
            if scaler is not None and resume.get("scaler"):
                scaler.load_state_dict(resume["scaler"])
            with contextlib.suppress(Exception):  # best effort: RNG state of another device type
                torch.set_rng_state(resume["torch_rng"])
                if device.type == "cuda" and resume.get("cuda_rng"):
                    torch.cuda.set_rng_state_all(resume["cuda_rng"])
            for key in state:
                if key in resume:
                    value = resume[key]
                    state[key] = value.item() if isinstance(value, torch.Tensor) else value
        spe = args.steps_per_epoch
        step = int(state["step"])
        limits = [args.max_steps] if args.max_steps else []
        if args.epochs:
            limits.append(args.epochs * spe)
        end_step = min(limits) if limits else None
        if end_step is not None and step >= end_step:
            self.say(f"{self.out} is already at step {step}; raise --max-steps or --epochs to train further")
            return 0
        if state["bad_epochs"] >= args.patience:
            self.say(f"{self.out} already stopped early ({state['bad_epochs']} epochs without improvement); "
                     "raise --patience to train further")
            return 0

        from napari_volumenet.models.fast import accelerate

        ddp = accelerate(network)  # same parameters and gradients, faster (ParallelNet / VolumeNet)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(ddp, device_ids=[device.index] if device.type == "cuda" else None)
        dataset = PatchDataset(self.train_pairs, patch=tuple(args.patch), scale=tuple(args.scale), seed=args.seed,
                               rank=self.dist.rank, group_weights=self.group_weights, augment=not args.no_augment,
                               margin=args.margin, edge_cut=args.edge_cut)
        centre = tuple(slice(args.margin * s, -args.margin * s) if args.margin else slice(None) for s in args.scale)
        stop_index = (end_step if end_step is not None else step + (1 << 40)) * args.batch
        loader = DataLoader(
            dataset, batch_size=args.batch, sampler=IndexRange(step * args.batch, stop_index),
            num_workers=self.workers, worker_init_fn=worker_init if self.workers else None,
            pin_memory=device.type == "cuda", persistent_workers=False,
        )
        autocast = (torch.autocast(device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())

        writer = None
        if self.dist.is_main and not args.no_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:  # noqa: BLE001 - TensorBoard is optional
                writer = None

        # one bar for the whole run when its end is known (ETA of the run), else one per epoch (ETA of
        # the epoch); only on a terminal (disable=None); the per-epoch lines are printed either way
        per_epoch = end_step is None
        bar = tqdm(total=spe if per_epoch else end_step, initial=step % spe if per_epoch else step, unit="step",
                   disable=None if self.say_enabled else True, file=sys.stderr, dynamic_ncols=True,
                   desc=f"epoch {step // spe + 1}")
        if self.say_enabled:
            what = (f"{_describe_config(network.config)}, {len(self.train_pairs)} training / {len(self.val_pairs)} "
                    f"validation volumes, batch {args.batch}×{self.dist.world_size}, {device.type}"
                    f"{'' if self.amp == 'off' else ' ' + self.amp}; tricubic val PSNR "
                    f"{_fmt(self.tricubic.get('psnr', math.nan))} dB")
            bar.write((f"resuming at step {step}: " if resume is not None else "training ") + what, file=sys.stderr)

        network.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        loss_count = 0
        interval_start = time.perf_counter()
        interval_steps = 0
        last_val_seconds = 0.0
        # until the first validation is timed, guess it from the training speed: a forward pass costs
        # about a third of a training step per voxel, and whole volumes run about twice slower per voxel
        val_voxels = sum(pair.lr.size for pair in self.val_pairs) if self.dist.is_main else 0
        step_voxels = args.batch * math.prod(p + 2 * args.margin for p in args.patch)  # LR voxels a step runs
        stop_reason = None
        exit_code = 0
        iterator = iter(loader)
        try:
            while stop_reason is None:
                lr_batch, hr_batch = next(iterator)
                if args.lr_schedule == "cosine":
                    for group in optimizer.param_groups:
                        group["lr"] = self.cosine_lr(step, end_step)
                lr_batch = lr_batch.to(device, non_blocking=True)
                hr_batch = hr_batch.to(device, non_blocking=True)
                with autocast:
                    prediction = ddp(lr_batch)[(..., *centre)]
                loss = F.l1_loss(prediction.float(), hr_batch)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                step += 1
                interval_steps += 1
                loss_sum += loss.detach().double()
                loss_count += 1
                bar.update(1)
                if self.say_enabled and (step % 10 == 0 or step % spe == 0):
                    bar.set_postfix(loss=f"{loss_sum.item() / loss_count:.4f}",
                                    best=f"{_fmt(state['best_val_psnr'])}dB", refresh=False)

                if end_step is not None and step >= end_step:
                    stop_reason = "--epochs" if args.epochs and step >= args.epochs * spe else "--max-steps"
                elif args.max_minutes is not None:
                    elapsed = time.perf_counter() - self.started
                    val_guess = last_val_seconds or (
                        0.7 * val_voxels / step_voxels * (time.perf_counter() - interval_start) / interval_steps
                    )
                    over = elapsed + val_guess >= args.max_minutes * 60
                    stop_reason = "--max-minutes" if self.any_rank(over) else None
                if step % spe != 0 and stop_reason is None:
                    continue

                # -------- end of an epoch (or of the run): validate, log, checkpoint
                train_seconds = time.perf_counter() - interval_start
                totals = torch.tensor([loss_sum.item(), float(loss_count)], device=device, dtype=torch.float64)
                if self.dist.enabled:
                    import torch.distributed as dist

                    dist.all_reduce(totals)
                train_loss = float(totals[0] / max(totals[1], 1))
                if not math.isfinite(train_loss):
                    raise VolumeNetError(
                        f"the training loss became {train_loss} before step {step}; the last good weights are in "
                        f"{self.out}; lower --lr{' or use --amp off' if self.amp != 'off' else ''}"
                    )
                patches_per_s = interval_steps * args.batch * self.dist.world_size / max(train_seconds, 1e-9)
                val_start = time.perf_counter()
                metrics = self.broadcast(self.validate(network) if self.dist.is_main else None)
                last_val_seconds = time.perf_counter() - val_start
                epoch = (step - 1) // spe + 1
                full_epoch = step % spe == 0
                improved = math.isfinite(metrics["psnr"]) and metrics["psnr"] > state["best_val_psnr"]
                if improved:
                    state["best_val_psnr"], state["best_step"], state["bad_epochs"] = metrics["psnr"], step, 0
                elif full_epoch:
                    state["bad_epochs"] += 1
                state["seconds"] = float(state["seconds"]) + train_seconds + last_val_seconds
                state.update(step=step, epoch=epoch, last_val_psnr=metrics["psnr"])
                lr_now = optimizer.param_groups[0]["lr"]
                if self.dist.is_main:
                    self.append_metrics({
                        "step": step, "epoch": epoch, "train_loss": f"{train_loss:.6g}",
                        "val_psnr": f"{metrics['psnr']:.4f}", "val_ssim": f"{metrics['ssim']:.5f}",
                        "val_psnr_fg": f"{metrics['psnr_fg']:.4f}", "lr": f"{lr_now:.3g}",
                        "seconds": f"{state['seconds']:.1f}", "patches_per_s": f"{patches_per_s:.2f}",
                    })
                    self.save_checkpoints(network, optimizer, scaler, state, best=improved)
                    self.plot()
                    if writer is not None:
                        writer.add_scalar("train/l1", train_loss, step)
                        writer.add_scalar("val/psnr", metrics["psnr"], step)
                        writer.add_scalar("val/ssim", metrics["ssim"], step)
                        writer.add_scalar("val/psnr_fg", metrics["psnr_fg"], step)
                        writer.add_scalar("train/lr", lr_now, step)
                        writer.add_scalar("train/patches_per_s", patches_per_s, step)
                        writer.flush()
                    gain = metrics["psnr"] - self.tricubic.get("psnr", math.nan)
                    sign = "+" if gain >= 0 else ""
                    if self.say_enabled:
                        bar.write(
                            f"epoch {epoch}{'' if full_epoch else ' (partial)'} step {step}: L1 {train_loss:.5f}, "
                            f"val PSNR {_fmt(metrics['psnr'])} dB ({sign}{_fmt(gain)} vs tricubic), "
                            f"SSIM {_fmt(metrics['ssim'], 4)}, {patches_per_s:.1f} patches/s"
                            f"{', new best → best.pt' if improved else ''}", file=sys.stderr)
                if stop_reason is None:
                    if args.epochs and epoch >= args.epochs:
                        stop_reason = "--epochs"
                    elif state["bad_epochs"] >= args.patience:
                        stop_reason = f"--patience ({args.patience} epochs without improvement)"
                    elif args.max_minutes is not None:
                        # another epoch is only worth starting if it can train longer than its validation takes
                        elapsed = time.perf_counter() - self.started
                        over = elapsed + 2 * last_val_seconds >= args.max_minutes * 60
                        stop_reason = "--max-minutes" if self.any_rank(over) else None
                loss_sum.zero_()
                loss_count = 0
                interval_steps = 0
                if per_epoch:
                    bar.reset(total=spe)
                bar.set_description(f"epoch {step // spe + 1}")
                interval_start = time.perf_counter()
        except KeyboardInterrupt:
            stop_reason = "interrupted"
            exit_code = EXIT_INTERRUPTED
            if self.dist.is_main and step > int(state["step"]):
                state["seconds"] = float(state["seconds"]) + time.perf_counter() - interval_start
                state["step"], state["epoch"] = step, (step - 1) // spe + 1
                self.save_checkpoints(network, optimizer, scaler, state, best=False)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            del iterator
        if self.say_enabled:
            print(
                f"stopped at step {step} ({stop_reason}); best val PSNR {_fmt(state['best_val_psnr'])} dB at step "
                f"{state['best_step']} (tricubic {_fmt(self.tricubic.get('psnr', math.nan))} dB) → "
                f"{self.out / 'best.pt'}" + ("; continue with --resume" if exit_code else ""),
                file=sys.stderr,
            )
        return exit_code


def _step_of(row: dict[str, str]) -> float:
    """The step of a metrics.csv row; infinity for one that cannot be read (so that it is dropped)."""
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return math.inf


def _describe_config(config: dict[str, Any]) -> str:
    name = config.get("name", "?")
    parts = [name]
    if "depth" in config:
        parts.append(f"D{config['depth']}")
    if "channels" in config:
        parts.append(f"C{config['channels']}")
    if config.get("block") not in (None, "conv") or name == "parallelnet":
        parts.append(str(config.get("block")))
    scale = config.get("scale")
    if scale is not None:
        parts.append("×" + "×".join(str(s) for s in scale))
    return " ".join(parts)


# ----------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``volumenet-train``; returns the exit code (2 for a user error)."""
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        try:
            resolve_scale(args)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    except SystemExit as exit_:  # --help, or a bad option (argparse already printed why)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_ERROR
    info = _distributed_from_env()

    from napari_volumenet.errors import VolumeNetError

    initialised = False
    try:
        if info.enabled:
            import torch
            import torch.distributed as dist

            wants_cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
            dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
            initialised = True
        trainer = Trainer(args, info, started)
        with termination_unwinds():  # SIGTERM / SIGHUP stop like Ctrl-C: checkpoint kept, no temporary file
            return trainer.run(argv)
    except (VolumeNetError, OSError) as error:  # OSError: a write into the run folder failed (a full disk)
        if info.is_main:
            if isinstance(error, OSError):
                from napari_volumenet.atomic import write_failure

                error = write_failure(Path(error.filename or args.out), error)
            message = str(error).strip().replace("\n", " ")
            print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if info.is_main:
            print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if initialised:
            import torch.distributed as dist

            with contextlib.suppress(Exception):
                dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
