"""The learning rate over a run: constant or half a cosine down to 1 %, either after a linear warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SCHEDULES = ("constant", "cosine")


def warmup_factor(step: int, warmup: int) -> float:
    """The share of the rate for the step after ``step`` steps, rising linearly to 1 over ``warmup`` steps."""
    return 1.0 if step >= warmup else (step + 1) / (warmup + 1)


def cosine_rate(lr: float, progress: float) -> float:
    """Half a cosine from ``lr`` (``progress`` 0) to 1 % of it (``progress`` 1; clipped to [0, 1])."""
    progress = min(max(progress, 0.0), 1.0)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class RateSchedule:
    """``lr`` per step: ``kind`` ``constant`` or ``cosine`` (over a run's progress from 0 to 1), after a
    linear warm-up of ``warmup`` steps."""

    lr: float
    kind: str = "constant"
    warmup: int = 0

    def rate(self, step: int, progress: float) -> float:
        """The rate of the step after ``step`` steps, ``progress`` (0–1) of the way through the run."""
        base = cosine_rate(self.lr, progress) if self.kind == "cosine" else self.lr
        return base * warmup_factor(step, self.warmup)

    def changes(self, step: int) -> bool:
        """Whether the rate may differ from the previous step's (a constant rate is left alone after warm-up)."""
        return self.kind == "cosine" or 0 < self.warmup and step <= self.warmup

    def apply(self, optimizer: torch.optim.Optimizer, step: int, progress: float) -> None:
        """Set ``optimizer``'s rate for the step after ``step`` steps (nothing where :meth:`changes` is False)."""
        if not self.changes(step):
            return
        for group in optimizer.param_groups:
            group["lr"] = self.rate(step, progress)
