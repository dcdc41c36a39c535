"""When a run stops (``--max-steps``, ``--epochs``, ``--patience``, ``--max-minutes``) and its learning
rate over time (``--lr-schedule``).

Rules that depend on the clock agree over all processes (a collective per check), so every process
stops at the same step with the same weights.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from napari_volumenet.training.schedule import RateSchedule, cosine_rate, warmup_factor

from .config import TrainConfig
from .ddp import Distributed, any_rank, max_over_ranks
from .progress import Progress

if TYPE_CHECKING:
    import torch

    from .step import EpochMeter


class StopPolicy:
    """Every stop rule, each written once; ``started``: ``time.perf_counter()`` when the command began."""

    def __init__(self, config: TrainConfig, started: float, info: Distributed, device: torch.device,
                 val_voxels: int) -> None:
        self.config = config
        self.end_step = config.end_step
        self.started = started
        self.info = info
        self.device = device
        self.val_voxels = val_voxels
        self.step_voxels = config.batch * math.prod(p + 2 * config.margin for p in config.patch)  # LR, one step
        self.val_seconds = 0.0  # of the latest validation

    def already_done(self, progress: Progress, out: Path) -> str | None:
        """Why a resumed run has nothing left to do (a note for the user), or None."""
        step = int(progress.step)
        if self._steps_reached(step):
            return f"{out} is already at step {step}; raise --max-steps or --epochs to train further"
        if self._patience_spent(progress.bad_epochs):
            return (f"{out} already stopped early ({progress.bad_epochs} epochs without improvement); "
                    "raise --patience to train further")
        return None

    def after_step(self, step: int, meter: EpochMeter) -> str | None:
        """The option that stops the run after ``step``, or None: the step limit, or too little time left to
        validate (the latest validation's time; before the first, a guess from the training speed)."""
        if self._steps_reached(step):
            return "--epochs" if self.config.epochs and step >= self.config.epochs * self.config.steps_per_epoch \
                else "--max-steps"
        if self.config.max_minutes is None:
            return None
        # a forward pass costs about a third of a training step per voxel, and whole volumes run about
        # twice slower per voxel
        guess = self.val_seconds or 0.7 * self.val_voxels / self.step_voxels * meter.seconds() / meter.steps
        return self._time_up(guess)

    def after_validation(self, bad_epochs: int, val_seconds: float) -> str | None:
        """After an epoch's validation (``val_seconds`` long): ``--patience`` spent, or too little time for another
        epoch, which is only worth starting if it can train longer than its validation takes; else None."""
        self.val_seconds = val_seconds
        if self._patience_spent(bad_epochs):
            return f"--patience ({self.config.patience} epochs without improvement)"
        if self.config.max_minutes is None:
            return None
        return self._time_up(2 * val_seconds)

    def _steps_reached(self, step: int) -> bool:
        return self.end_step is not None and step >= self.end_step

    def _patience_spent(self, bad_epochs: int) -> bool:
        return bad_epochs >= self.config.patience

    def _time_up(self, reserve: float) -> str | None:
        """``--max-minutes`` when ``reserve`` seconds more would pass the limit on any process."""
        over = time.perf_counter() - self.started + reserve >= self.config.max_minutes * 60
        return "--max-minutes" if any_rank(self.info, over, self.device) else None


class LRSchedule:
    """``--lr-schedule``: constant ``--lr``, or ``cosine``: half a cosine down to 1 % of it over the run's
    steps (``--max-steps`` / ``--epochs``), else over ``--max-minutes`` of wall time; either after a linear
    ``--warmup`` (the rates of :class:`~napari_volumenet.training.schedule.RateSchedule`)."""

    def __init__(self, config: TrainConfig, started: float, info: Distributed, device: torch.device) -> None:
        self.config = config
        self.end_step = config.end_step
        self.started = started
        self.info = info
        self.device = device
        self.rates = RateSchedule(config.lr, config.lr_schedule, config.warmup)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set the rate of the step that follows ``step`` steps (nothing for a constant rate after warm-up)."""
        if self.rates.changes(step):
            self.rates.apply(optimizer, step, self.progress(step))

    def warmup_factor(self, step: int) -> float:
        """``--warmup``: the share of the rate for the step after ``step`` steps, rising linearly to 1."""
        return warmup_factor(step, self.config.warmup)

    def cosine(self, step: int) -> float:
        """The cosine schedule's rate for the step after ``step`` steps (``--lr`` at 0, 1 % of it at the end)."""
        return cosine_rate(self.config.lr, self.progress(step))

    def progress(self, step: int) -> float:
        """How far the run is after ``step`` steps (0–1): by steps, else by ``--max-minutes`` (0 without either)."""
        if self.end_step:
            return step / self.end_step
        if self.config.max_minutes is not None:  # the same on every process, or their weights would drift apart
            elapsed = max_over_ranks(self.info, time.perf_counter() - self.started, self.device)
            return elapsed / (self.config.max_minutes * 60)
        return 0.0
