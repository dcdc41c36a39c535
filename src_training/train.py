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

The parts: :mod:`.cli` (options → :class:`~.config.TrainConfig`), :mod:`.run_setup` (device, network,
data, run folder), :mod:`.loop` (the loop, with :mod:`.step`, :mod:`.schedule`, :mod:`.validator`,
:mod:`.reporting`), :mod:`.run_folder` and :mod:`.resume` (the files), :mod:`.ddp` (torchrun).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from napari_volumenet.atomic import termination_unwinds

from .cli import EXIT_ERROR, EXIT_INTERRUPTED, PROG, parse_config
from .ddp import Distributed, process_group
from .run_folder import METRIC_COLUMNS

__all__ = ["METRIC_COLUMNS", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``volumenet-train``; returns the exit code (2 for a user error, 130 interrupted)."""
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = parse_config(argv)
    except SystemExit as exit_:  # --help, or a bad option (argparse already printed why)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_ERROR
    info = Distributed.from_env()

    from napari_volumenet.errors import VolumeNetError

    from .loop import train
    from .run_setup import prepare

    try:
        with process_group(info, config.device):
            with termination_unwinds():  # SIGTERM / SIGHUP stop like Ctrl-C: checkpoint kept, no temporary file
                setup, resume = prepare(config, info, started, argv)
                return train(setup, resume)
    except (VolumeNetError, OSError) as error:  # OSError: a write into the run folder failed (a full disk)
        if info.is_main:
            if isinstance(error, OSError):
                from napari_volumenet.atomic import write_failure

                error = write_failure(Path(error.filename or config.out), error)
            message = str(error).strip().replace("\n", " ")
            print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if info.is_main:
            print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
