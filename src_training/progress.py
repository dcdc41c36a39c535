"""How far a run has come: the counters resume.pt keeps and the weights files' metadata reports."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class Progress:
    """The state after the latest validation (PSNR in dB, ``seconds`` of training and validation in all)."""

    step: int = 0
    epoch: int = 0
    seconds: float = 0.0
    best_val_psnr: float = -math.inf
    best_step: int = 0
    bad_epochs: int = 0
    last_val_psnr: float = math.nan
    train_cpu_seconds: float = 0.0
    """CPU seconds spent in training steps (validation excluded), resumes included."""

    @classmethod
    def from_resume(cls, payload: dict[str, Any]) -> Progress:
        """The counters of a resume.pt payload (tensors made numbers; a missing one keeps its default)."""
        import torch

        values = {key: payload[key] for key in cls.__dataclass_fields__ if key in payload}
        return cls(**{key: v.item() if isinstance(v, torch.Tensor) else v for key, v in values.items()})

    def as_dict(self) -> dict[str, Any]:
        """The counters in resume.pt's order: step, epoch, seconds, best_val_psnr, best_step, bad_epochs,
        last_val_psnr, train_cpu_seconds."""
        return dataclasses.asdict(self)

    def record_validation(self, step: int, epoch: int, psnr: float, full_epoch: bool, train_seconds: float,
                          val_seconds: float, train_cpu_seconds: float = 0.0) -> bool:
        """A validation at ``step`` after ``train_seconds`` of training and ``val_seconds`` of validating;
        True when ``psnr`` is a new best.

        Only a whole epoch without a better PSNR counts towards ``--patience``."""
        improved = math.isfinite(psnr) and psnr > self.best_val_psnr
        if improved:
            self.best_val_psnr, self.best_step, self.bad_epochs = psnr, step, 0
        elif full_epoch:
            self.bad_epochs += 1
        self.seconds = float(self.seconds) + train_seconds + val_seconds
        self.train_cpu_seconds = float(self.train_cpu_seconds) + train_cpu_seconds
        self.step, self.epoch, self.last_val_psnr = step, epoch, psnr
        return improved

    def record_interruption(self, step: int, epoch: int, seconds: float) -> None:
        """Training stopped at ``step`` between validations, ``seconds`` after the latest one."""
        self.seconds = float(self.seconds) + seconds
        self.step, self.epoch = step, epoch
