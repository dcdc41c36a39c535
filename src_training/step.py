"""One optimisation step, and the training loss and time between two validations."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from napari_volumenet.training.step import OptimStep

from .config import TrainConfig
from .ddp import Distributed, sum_over_ranks
from .hardware import Hardware

if TYPE_CHECKING:
    import torch
    from torch import nn


class TrainStep(OptimStep):
    """:class:`~napari_volumenet.training.step.OptimStep` with the run's options: forward in the ``--amp``
    precision (the faster equivalent network of :func:`~napari_volumenet.models.fast.accelerate`, under DDP with
    torchrun), ``--loss`` (L1 or L2) on the HR patch centre (``--margin`` is context only), backward (scaled for
    fp16), Adam step.

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
        super().__init__(module, optimizer, device=hardware.device, loss=config.loss, margin=config.margin,
                         scale=tuple(config.scale), scaler=scaler, autocast=hardware.autocast())


class EpochMeter:
    """The summed loss, the steps, and the wall and CPU seconds since the latest validation (or the start)."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.steps = 0
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.cpu_started = time.process_time()

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.double()
        self.steps += 1

    def running_loss(self) -> float:
        """The mean loss of this process so far (waits for the device)."""
        return self.loss_sum.item() / self.steps

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def cpu_seconds(self) -> float:
        """CPU seconds of this process (all threads) since the latest reset."""
        return time.process_time() - self.cpu_started

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
