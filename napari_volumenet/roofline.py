"""Memory traffic and arithmetic of a network, and the bandwidth roofline they set.

A layer *must* read its input feature map and its weights and write its output feature map
once; everything else (the ReLU/ELU after a convolution, an eval-mode batch norm folded into it,
ParallelNet's concatenations as views, the voxel shuffle as the last convolution's store
pattern) can be fused away. :func:`layer_costs` counts exactly that for every convolution and
interpolation of a forward pass over a whole LR volume, on PyTorch's ``meta`` device (shapes
only, no memory, no arithmetic), so the totals are a lower bound on the bytes any
implementation moves. ``bytes ÷ bandwidth`` is then the shortest time the memory system
allows, and ``that ÷ measured time`` the fraction of the bandwidth roofline a run reaches.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .ops.interpolate import TricubicUpsample


@dataclass(frozen=True)
class LayerCost:
    """What one layer of a forward pass reads, writes (bytes) and computes (floating-point operations)."""

    name: str
    kind: str
    bytes_read: int
    bytes_written: int
    flops: int

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written


def _conv_flops(conv: nn.Conv3d, out: torch.Tensor) -> int:
    """2 × (multiply-adds per output value) × output values."""
    return 2 * out.numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)


def layer_costs(model: nn.Module, lr_shape: Sequence[int], bytes_per_element: int = 4) -> list[LayerCost]:
    """Per-layer traffic and arithmetic of ``model`` on one ``(1, 1, D, H, W)`` LR volume, in forward order.

    Counted layers: every ``Conv3d`` (input + weights + bias read, output written, ``2·k³·C_in/g``
    FLOPs per output value) and every tricubic upsampling (input read, output written); the
    element size is ``bytes_per_element`` (4 for fp32, 2 for fp16/bf16).
    """
    shadow = copy.deepcopy(model).to("meta").eval()
    costs: list[LayerCost] = []

    def record(name: str, module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        read = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))
        flops = 0
        if isinstance(module, nn.Conv3d):
            read += sum(p.numel() for p in module.parameters(recurse=False))
            flops = _conv_flops(module, out)
        costs.append(LayerCost(name, type(module).__name__, read * bytes_per_element,
                               out.numel() * bytes_per_element, flops))

    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: record(name, m, i, o))
        for name, module in shadow.named_modules()
        if isinstance(module, (nn.Conv3d, TricubicUpsample))
    ]
    try:
        with torch.no_grad():
            shadow(torch.empty((1, 1, *(int(n) for n in lr_shape)), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return costs


def measure_bandwidth(device: str | torch.device = "cpu", nbytes: int = 1 << 28, repeats: int = 5) -> float:
    """Copy bandwidth of ``device`` in bytes/s: the best of ``repeats`` copies of ``nbytes`` (read + write)."""
    dev = torch.device(device)
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    best = math.inf
    for _ in range(repeats + 1):  # the first copy faults the destination's pages in
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        dst.copy_(src)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def roofline(costs: Sequence[LayerCost], seconds: float, bandwidth: float) -> dict[str, float]:
    """Totals of ``costs`` against a run that took ``seconds`` on memory of ``bandwidth`` bytes/s.

    ``fraction`` is the bandwidth-bound time (``bytes / bandwidth``) over the measured time.
    """
    total_bytes = sum(c.bytes for c in costs)
    total_flops = sum(c.flops for c in costs)
    bound = total_bytes / bandwidth
    return {
        "bytes": total_bytes,
        "flops": total_flops,
        "bandwidth_bytes_per_s": bandwidth,
        "roofline_seconds": bound,
        "fraction": bound / seconds,
        "achieved_bytes_per_s": total_bytes / seconds,
        "achieved_flops_per_s": total_flops / seconds,
    }
