"""Several processes under ``torchrun``: who this one is, and the few collectives training needs.

Without torchrun (world size 1) every helper returns its argument: no process group is needed.
The collectives must be called in the same order on every process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """Who this process is in a torchrun job (world_size 1 without torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Distributed:
        """From torchrun's ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``."""
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        return cls(world, int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))))


@contextlib.contextmanager
def process_group(info: Distributed, device_option: str) -> Iterator[None]:
    """The torch.distributed group for the block (NCCL when ``--device`` means CUDA, else Gloo); none alone."""
    if not info.enabled:
        yield
        return
    import torch
    import torch.distributed as dist

    wants_cuda = device_option.startswith("cuda") or (device_option == "auto" and torch.cuda.is_available())
    dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def broadcast(info: Distributed, value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every process."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(info: Distributed, values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over all processes, in place (``values`` itself without torchrun)."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


def max_over_ranks(info: Distributed, value: float, device: Any) -> float:
    """The largest ``value`` over all processes (``value`` itself without torchrun); ``device``: the collective's."""
    if not info.enabled:
        return value
    import torch
    import torch.distributed as dist

    box = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return float(box.item())


def any_rank(info: Distributed, flag: bool, device: Any) -> bool:
    """True on every process if ``flag`` is true on any process."""
    return max_over_ranks(info, 1.0 if flag else 0.0, device) > 0


def all_ok(info: Distributed, ok: bool, device: Any) -> bool:
    """True on every process only if ``ok`` is true on every process."""
    return not any_rank(info, not ok, device)
