"""One optimisation step: forward (autocast), L1 or L2 loss on the HR patch centre, backward, optimiser step."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

LOSSES = ("l1", "l2")


class OptimStep:
    """Train ``module`` on one batch; ``margin`` LR voxels around each patch are context only.

    ``scale`` is the network's factor per axis (the HR margin is ``margin·s``), ``scaler`` a
    ``torch.amp.GradScaler`` for fp16 (None otherwise), ``autocast`` the precision's context.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, *, device: torch.device,
                 loss: str = "l1", margin: int = 0, scale: tuple[int, int, int] = (1, 1, 1),
                 scaler: torch.amp.GradScaler | None = None,
                 autocast: AbstractContextManager | None = None) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.module = module
        self.optimizer = optimizer
        self.scaler = scaler
        self.device = device
        self.autocast = autocast or nullcontext()
        self.loss = loss
        self.centre = tuple(slice(margin * s, -margin * s) if margin else slice(None) for s in scale)

    def __call__(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> torch.Tensor:
        """Train on LR patches ``(N, 1, d, h, w)`` (margin included) against HR ``(N, 1, s0·pd, s1·ph, s2·pw)``;
        the batch's mean loss (normalised intensities, detached)."""
        import torch.nn.functional as F

        lr_batch = lr_batch.to(self.device, non_blocking=True)
        hr_batch = hr_batch.to(self.device, non_blocking=True)
        with self.autocast:
            prediction = self.module(lr_batch)[(..., *self.centre)]
        loss = (F.mse_loss if self.loss == "l2" else F.l1_loss)(prediction.float(), hr_batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach()

    @property
    def lr(self) -> float:
        """The learning rate of the latest step."""
        return self.optimizer.param_groups[0]["lr"]
