"""The training loop: steps until a stop rule holds; after every epoch (and at the end) a validation,
a metrics.csv row, the checkpoints and a line. Ctrl-C (or SIGTERM) keeps a checkpoint to ``--resume`` from."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from .cli import EXIT_INTERRUPTED
from .ddp import broadcast
from .model_setup import describe_config
from .progress import Progress
from .reporting import Reporter, Validation, fmt
from .schedule import LRSchedule, StopPolicy
from .step import EpochMeter, TrainStep

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .run_setup import Setup


def train(setup: Setup, resume: dict[str, Any] | None) -> int:
    """Train from the start or from a resume.pt ``resume`` payload; the exit code (0, or
    :data:`EXIT_INTERRUPTED` after an interruption)."""
    import torch

    from napari_volumenet.training.optimizer import adam

    from .resume import restore
    from .training_data import patch_loader

    config, hardware, model, info = setup.config, setup.hardware, setup.model, setup.dist
    optimizer = adam(model.parameters(), config.lr)
    scaler = torch.amp.GradScaler("cuda") if hardware.amp == "fp16" else None
    progress = Progress() if resume is None else restore(resume, model, optimizer, scaler, config.lr, hardware.device)
    stop = StopPolicy(config, setup.started, info, hardware.device, setup.validator.voxels if info.is_main else 0)
    done = stop.already_done(progress, setup.folder.path)
    if done is not None:
        setup.console.say(done)
        return 0
    train_step = TrainStep(model, optimizer, scaler, config, hardware, info)
    step = int(progress.step)
    loader = patch_loader(setup.data, config, info.rank, hardware, step, stop.end_step)
    reporter = Reporter(config, setup.folder.path, setup.console, info.is_main and not config.no_tensorboard, step,
                        stop.end_step)
    reporter.line((f"resuming at step {step}: " if resume is not None else "training ") + _describe_run(setup))
    schedule = LRSchedule(config, setup.started, info, hardware.device)
    return _loop(setup, progress, train_step, loader, schedule, stop, reporter)


def _loop(setup: Setup, progress: Progress, train_step: TrainStep, loader: Iterable, schedule: LRSchedule,
          stop: StopPolicy, reporter: Reporter) -> int:
    """Step, and validate at the end of each epoch, until ``stop`` says why; the exit code."""
    spe = setup.config.steps_per_epoch
    step = int(progress.step)
    meter = EpochMeter(setup.hardware.device)
    stop_reason: str | None = None
    exit_code = 0
    iterator = iter(loader)
    try:
        while stop_reason is None:
            lr_batch, hr_batch = next(iterator)
            schedule.apply(train_step.optimizer, step)
            meter.add(train_step(lr_batch, hr_batch))
            step += 1
            reporter.step(step, meter.running_loss, progress.best_val_psnr)
            stop_reason = stop.after_step(step, meter)
            if step % spe != 0 and stop_reason is None:
                continue
            val_seconds = _end_epoch(setup, progress, train_step, meter, reporter, step)
            if stop_reason is None:
                stop_reason = stop.after_validation(progress.bad_epochs, val_seconds)
            meter.reset()
            reporter.next_epoch(step)
    except KeyboardInterrupt:
        stop_reason, exit_code = "interrupted", EXIT_INTERRUPTED
        if setup.dist.is_main and step > int(progress.step):
            progress.record_interruption(step, (step - 1) // spe + 1, meter.seconds())
            _save_checkpoints(setup, train_step, progress, best=False)
    finally:
        reporter.close()
        del iterator  # ends the DataLoader's workers
    setup.console.say(
        f"stopped at step {step} ({stop_reason}); best val PSNR {fmt(progress.best_val_psnr)} dB at step "
        f"{progress.best_step} (tricubic {fmt(setup.tricubic.get('psnr', math.nan))} dB) → "
        f"{setup.folder.path / 'best.pt'}" + ("; continue with --resume" if exit_code else ""))
    return exit_code


def _end_epoch(setup: Setup, progress: Progress, train_step: TrainStep, meter: EpochMeter, reporter: Reporter,
               step: int) -> float:
    """Validate after ``step``, record it, then (main process) the metrics row, checkpoints, curve and line;
    the validation's seconds. A loss that is no longer finite ends the run with one clear error."""
    from napari_volumenet.errors import VolumeNetError

    config, info = setup.config, setup.dist
    train_seconds, train_cpu = meter.seconds(), meter.cpu_seconds()
    train_loss = meter.mean_loss(info)
    if not math.isfinite(train_loss):
        raise VolumeNetError(
            f"the training loss became {train_loss} before step {step}; the last good weights are in "
            f"{setup.folder.path}; lower --lr{' or use --amp off' if setup.hardware.amp != 'off' else ''}"
        )
    patches_per_s = meter.steps * config.batch * info.world_size / max(train_seconds, 1e-9)
    val_start = time.perf_counter()
    metrics = broadcast(info, setup.validator.measure(setup.model) if info.is_main else None)
    val_seconds = time.perf_counter() - val_start
    epoch = (step - 1) // config.steps_per_epoch + 1
    full_epoch = step % config.steps_per_epoch == 0
    improved = progress.record_validation(step, epoch, metrics["psnr"], full_epoch, train_seconds, val_seconds,
                                          train_cpu)
    if info.is_main:
        record = Validation(step, epoch, full_epoch, train_loss, metrics, train_step.lr, progress.seconds,
                            patches_per_s, progress.train_cpu_seconds)
        setup.folder.append_metrics(record.csv_row())
        _save_checkpoints(setup, train_step, progress, best=improved)
        setup.folder.plot(config.steps_per_epoch, setup.tricubic.get("psnr"),
                          f"{describe_config(setup.model.config)} · {setup.folder.path.name}", setup.console.say)
        reporter.validation(record, setup.tricubic.get("psnr", math.nan), improved)
    return val_seconds


def _save_checkpoints(setup: Setup, train_step: TrainStep, progress: Progress, best: bool) -> None:
    """best.pt (when ``best``), last.pt and resume.pt as the run stands."""
    from .metadata import training_summary
    from .resume import resume_payload

    extra = {"step": progress.step, "epoch": progress.epoch, "best_val_psnr": progress.best_val_psnr,
             "best_step": progress.best_step}
    setup.folder.save_checkpoints(
        setup.model, modality=setup.config.modality, training=training_summary(setup, progress.step, progress.epoch),
        extra=extra, val_psnr=progress.last_val_psnr, best=best,
        resume=resume_payload(setup.model, train_step.optimizer, train_step.scaler, progress, setup.hardware.device),
    )


def _describe_run(setup: Setup) -> str:
    """E.g. ``volumenet D9 C32 ×2×2×2, 40 training / 4 validation volumes, batch 8×1, cuda bf16; tricubic …``."""
    config, hardware, data = setup.config, setup.hardware, setup.data
    amp = "" if hardware.amp == "off" else " " + hardware.amp
    return (f"{describe_config(setup.model.config)}, {len(data.train_pairs)} training / {len(data.val_pairs)} "
            f"validation volumes, batch {config.batch}×{setup.dist.world_size}, {hardware.device.type}{amp}; "
            f"tricubic val PSNR {fmt(setup.tricubic.get('psnr', math.nan))} dB")
