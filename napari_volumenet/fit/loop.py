"""The fit loop: steps of the library's optimisation step on plane pairs, self-validation, the stop rule."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from .._allocator import settle_mmap_threshold
from ..models.fast import accelerate
from ..ops.interpolate import tricubic_upsample
from ..training.schedule import RateSchedule
from ..training.optimizer import adam
from ..training.step import OptimStep
from .pairs import PlanePairs
from .start import Start

RATE_FROM_WEIGHTS = 2e-4
"""Adam's rate for a fit that starts from trained weights (a higher one undoes what they learnt first)."""
RATE_FROM_LEAST_SQUARES = 3e-3
"""Adam's rate for a fit from the least-squares start. Measured in 10-minute fits on 2 cores, paired in one hour
(``benchmarks/fit_study.py CASE --lr R``): CT 4.5 mm +1.59 / +1.71 / +1.69 dB over cubic at 1e-3 / 3e-3 / 6e-3,
a 1 mm head made of 5 mm slices (×5) +1.37 / +1.46 at 1e-3 / 3e-3 (docs/fit.md)."""
SCORE_MARGIN = 4
"""LR pixels at each side of a self-validation crop left out of its score (zeros beyond the crop)."""


@dataclass(frozen=True)
class FitSettings:
    """How long and how a fit trains: ``minutes`` of wall time (validation included), or ``max_steps`` steps
    (whichever comes first); batches of ``batch`` patches of ``patch_hr`` × ``patch_hr`` HR pixels; Adam at ``lr``
    (None: :data:`RATE_FROM_WEIGHTS` from weights, :data:`RATE_FROM_LEAST_SQUARES` from least squares), cosine
    after ``warmup`` steps; ``validations`` self-validations over the run; past half of the run, stop after ``patience`` of them without improvement
    (a fine-tune's self-validation first dips, for about 150 steps from bundled weights)."""

    minutes: float = 5.0
    max_steps: int | None = None
    batch: int = 16
    patch_hr: int = 64
    lr: float | None = None
    warmup: int = 20
    validations: int = 20
    patience: int = 6
    seed: int = 0


@dataclass(frozen=True)
class FitUpdate:
    """Progress after a step: ``psnr`` the latest self-validation (dB, normalised intensities, peak 1)."""

    step: int
    seconds: float
    loss: float
    psnr: float
    best_psnr: float
    cubic_psnr: float
    start_psnr: float
    fraction: float
    """How much of the run is done (0–1), by time or steps."""


@dataclass
class Outcome:
    """The best weights (the start's when nothing beat it) and the run's numbers."""

    state: dict[str, torch.Tensor]
    improved: bool
    steps: int
    seconds: float
    cubic_psnr: float
    start_psnr: float
    best_psnr: float
    best_step: int


def psnr_interior(prediction: torch.Tensor, target: torch.Tensor, factor: int) -> float:
    """PSNR (peak 1) of plane crops ``(n, 1, a, 1, b·f)`` without :data:`SCORE_MARGIN` LR pixels at each side
    (fewer in crops too small to keep anything)."""
    m = min(SCORE_MARGIN, (min(prediction.shape[2], prediction.shape[4] // factor) - 1) // 2)
    inner = (..., slice(m, prediction.shape[2] - m), slice(None), slice(m * factor, prediction.shape[4] - m * factor))
    mse = float(torch.mean((prediction[inner].float() - target[inner]) ** 2))
    return 10 * math.log10(1 / max(mse, 1e-12))


class SelfValidation:
    """Held-back crops of the scan's sharp planes; the cubic baseline scored once."""

    def __init__(self, pairs: PlanePairs) -> None:
        self.lr, self.hr = pairs.validation()
        self.factor = pairs.factor
        self.cubic = psnr_interior(tricubic_upsample(self.lr, (1, 1, self.factor)), self.hr, self.factor)

    @torch.no_grad()
    def __call__(self, module: torch.nn.Module) -> float:
        was_training = module.training
        module.eval()
        psnr = psnr_interior(module(self.lr), self.hr, self.factor)
        module.train(was_training)
        return psnr


def fit_steps(start: Start, pairs: PlanePairs, settings: FitSettings) -> Generator[FitUpdate, None, Outcome]:
    """Fit ``start.plane`` to ``pairs``; yields after every step (close the generator to cancel: nothing is
    kept), returns the :class:`Outcome`."""
    started = time.perf_counter()
    settle_mmap_threshold()  # each step's tensors from the heap, not mapped and faulted in afresh
    core = start.plane.core
    module = accelerate(core)
    optimizer = adam(core.parameters(), settings.lr or (RATE_FROM_WEIGHTS if start.bundled
                                                        else RATE_FROM_LEAST_SQUARES))
    step = OptimStep(module, optimizer, device=torch.device("cpu"))
    schedule = RateSchedule(optimizer.param_groups[0]["lr"], "cosine", settings.warmup)
    validate = SelfValidation(pairs)
    rng = np.random.default_rng(settings.seed)
    patch = (settings.patch_hr, max(1, settings.patch_hr // pairs.factor))
    clock = _Clock(settings, started)
    outcome = Outcome(copy.deepcopy(core.state_dict()), False, 0, 0.0, validate.cubic, 0.0, 0.0, 0)
    outcome.start_psnr = outcome.best_psnr = clock.timed(validate, module)
    bad, steps, psnr = 0, 0, outcome.start_psnr
    core.train()
    while not clock.done(steps) and not (bad >= settings.patience and clock.fraction(steps) >= 0.5):
        schedule.apply(optimizer, steps, clock.fraction(steps))
        loss = float(step(*pairs.batch(rng, settings.batch, patch)))
        steps += 1
        if clock.validation_due(steps):
            psnr = clock.timed(validate, module)
            if psnr > outcome.best_psnr:
                outcome.state, outcome.improved = copy.deepcopy(core.state_dict()), True
                outcome.best_psnr, outcome.best_step, bad = psnr, steps, 0
            else:
                bad += 1
        yield FitUpdate(steps, clock.elapsed(), loss, psnr, outcome.best_psnr, validate.cubic, outcome.start_psnr,
                        clock.fraction(steps))
    outcome.steps, outcome.seconds = steps, clock.elapsed()
    return outcome


class _Clock:
    """When to validate and when to stop: by wall time (the last validation's length kept in reserve) and steps."""

    def __init__(self, settings: FitSettings, started: float) -> None:
        self.settings, self.started = settings, started
        self.budget = settings.minutes * 60
        self.last = started
        self.val_seconds = 0.0
        self.val_every_steps = max(1, (settings.max_steps or 0) // settings.validations)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timed(self, validate: SelfValidation, module: torch.nn.Module) -> float:
        """``validate(module)``, its length kept as the reserve at the end of the run."""
        before = time.perf_counter()
        psnr = validate(module)
        self.last = time.perf_counter()
        self.val_seconds = self.last - before
        return psnr

    def fraction(self, steps: int) -> float:
        by_time = self.elapsed() / self.budget
        return min(1.0, max(by_time, steps / self.settings.max_steps if self.settings.max_steps else 0.0))

    def validation_due(self, steps: int) -> bool:
        if self.settings.max_steps and steps % self.val_every_steps == 0:
            return True
        return time.perf_counter() - self.last >= self.budget / self.settings.validations or self.done(steps)

    def done(self, steps: int) -> bool:
        if self.settings.max_steps and steps >= self.settings.max_steps:
            return True
        return self.elapsed() + self.val_seconds >= self.budget
