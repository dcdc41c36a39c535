"""One optimisation step, and the training loss and time between two validations."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .config import TrainConfig
from .ddp import Distributed, sum_over_ranks
from .hardware import Hardware

if TYPE_CHECKING:
    import torch
    from torch import nn


class TrainStep:
    """Forward in the ``--amp`` precision (the faster equivalent network of
    :func:`~napari_volumenet.models.fast.accelerate`, under DDP with torchrun), L1 loss on the HR patch
    centre (``--margin`` is context only), backward (scaled for fp16), Adam step.

    ``--grad-checkpoint`` recomputes ParallelNet/VolumeNet's inner block features in the backward pass.
    """

    def __init__(self, network: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                 config: TrainConfig, hardware: Hardware, info: Distributed) -> None:
        from napari_volumenet.models.fast import accelerate

        if hasattr(network, "checkpoint_blocks"):
            network.checkpoint_blocks = config.grad_checkpoint == "on" or (
                config.grad_checkpoint == "auto" and hardware.device.type == "cpu")
        module = accelerate(network)  # same parameters and gradients, faster (ParallelNet / VolumeNet)
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [hardware.device.index] if hardware.device.type == "cuda" else None
            module = DistributedDataParallel(module, device_ids=device_ids)
        network.train()
        self.module = module
        self.optimizer = optimizer
        self.scaler = scaler
        self.device = hardware.device
        self.autocast = hardware.autocast()
        margin = config.margin
        self.centre = tuple(slice(margin * s, -margin * s) if margin else slice(None) for s in config.scale)

    def __call__(self, lr_batch: torch.Tensor, hr_batch: torch.Tensor) -> torch.Tensor:
        """Train on LR patches ``(N, 1, d, h, w)`` (margin included) against HR ``(N, 1, s0·pd, s1·ph, s2·pw)``;
        the batch's mean L1 loss (normalised intensities, detached)."""
        import torch.nn.functional as F

        lr_batch = lr_batch.to(self.device, non_blocking=True)
        hr_batch = hr_batch.to(self.device, non_blocking=True)
        with self.autocast:
            prediction = self.module(lr_batch)[(..., *self.centre)]
        loss = F.l1_loss(prediction.float(), hr_batch)
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


class EpochMeter:
    """The summed L1 loss, the steps and the seconds since the latest validation (or the start)."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.double()
        self.steps += 1

    def running_loss(self) -> float:
        """The mean loss of this process so far (waits for the device)."""
        return self.loss_sum.item() / self.steps

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def mean_loss(self, info: Distributed) -> float:
        """The mean loss over the steps of every process."""
        import torch

        totals = torch.tensor([self.loss_sum.item(), float(self.steps)], device=self.loss_sum.device,
                              dtype=torch.float64)
        sum_over_ranks(info, totals)
        return float(totals[0] / max(totals[1], 1))

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.steps = 0
        self.started = time.perf_counter()
