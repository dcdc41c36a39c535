"""Where training runs: the device (``--device``), mixed precision (``--amp``) and DataLoader workers."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import TrainConfig
from .ddp import Distributed

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Hardware:
    """The resolved ``--device``, ``--amp`` (``"off"``, ``"bf16"`` or ``"fp16"``) and ``--workers``."""

    device: torch.device
    amp: str
    workers: int

    def autocast(self) -> contextlib.AbstractContextManager:
        """A reusable context that runs its block in the ``--amp`` precision (nothing with ``off``)."""
        import torch

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def setup_hardware(config: TrainConfig, info: Distributed) -> Hardware:
    """Pick and prepare the device (one GPU per local rank, a share of the CPU threads per process)."""
    import torch

    from napari_volumenet.errors import VolumeNetError
    from napari_volumenet.inference import resolve_device

    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = resolve_device(config.device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if info.enabled and device.type == "mps":
        raise VolumeNetError("distributed training (torchrun) supports CUDA and CPU, not MPS")
    if info.enabled and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, info.local_world_size)))
    workers = config.workers if config.workers is not None else (4 if device.type == "cuda" else 0)
    return Hardware(device, _resolve_amp(config.amp, device), workers)


def _resolve_amp(option: str, device: torch.device) -> str:
    """``--amp`` with ``auto`` made concrete: bf16 (or fp16 without bf16) on CUDA, bf16 on a CPU with native
    bf16 instructions (AVX-512 BF16 or AMX: about twice the patches per second of fp32), off elsewhere."""
    import torch

    from napari_volumenet.errors import VolumeNetError
    from napari_volumenet.inference import cpu_has_native_bf16

    amp = option
    if amp == "auto":
        if device.type == "cuda":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            amp = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "off"
    if amp == "fp16" and device.type != "cuda":
        raise VolumeNetError("--amp fp16 needs a CUDA GPU; use --amp bf16 or --amp off")
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        raise VolumeNetError("--amp bf16: this CPU has no native bf16 instructions, so it would train about 100× "
                             "slower than fp32; use --amp off")
    return amp
