"""Peer (a) of the benchmarks: ParallelNet / VolumeNet as most published code writes it.

Branch by branch, every feature map kept, ``torch.cat`` before each branch, the network's own zero padding
at the volume's border, fp32, the whole volume at once. Only ``torch`` and the model's layers are imported,
so a whole-process run of this peer pays no start-up cost of ``napari_volumenet``'s command line.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_volumenet.models.parallelnet import ParallelNet
from napari_volumenet.ops.voxel_shuffle import voxel_shuffle


class PlainParallelNet(nn.Module):
    """Peer (a): the forward pass of ``net`` written plainly, on ``net``'s own layers (same function)."""

    def __init__(self, net: ParallelNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, D, H, W)`` LR → ``(N, 1, s0·D, s1·H, s2·W)`` HR."""
        net = self.net
        depth = net.depth
        f0 = net.head(x)
        outputs: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(depth):
            h = f0 if i == 0 else torch.cat([outputs[(b, i - 1 - b)] for b in range(i)], dim=1)
            for j in range(depth - i):
                h = net.branches[i][j](h)
                outputs[(i, j)] = h
        fused = net.fusion(torch.cat([outputs[(b, depth - 1 - b)] for b in range(depth)], dim=1))
        return voxel_shuffle(f0 + fused, net.scale)
