"""3D pixel shuffle: trade channels for resolution.

Channel ``c·s³ + (d0·s1 + d1)·s2 + d2`` of the input becomes channel ``c`` at
output voxel ``(s0·z + d0, s1·y + d1, s2·x + d2)``: the offset along the first
array axis is the most significant digit, as in 2D ``torch.nn.PixelShuffle``.
"""

from __future__ import annotations

import torch
from torch import nn

from .scale import Scale, as_scale, volume


def voxel_shuffle(x: torch.Tensor, scale: Scale) -> torch.Tensor:
    """``(N, C·s³, D, H, W)`` → ``(N, C, D·s0, H·s1, W·s2)``."""
    s0, s1, s2 = scale
    n, c, d, h, w = x.shape
    out_channels = c // volume(scale)
    x = x.reshape(n, out_channels, s0, s1, s2, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(n, out_channels, d * s0, h * s1, w * s2)


def voxel_unshuffle(x: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Inverse of :func:`voxel_shuffle`: ``(N, C, D·s0, H·s1, W·s2)`` → ``(N, C·s³, D, H, W)``."""
    s0, s1, s2 = scale
    n, c, d, h, w = x.shape
    x = x.reshape(n, c, d // s0, s0, h // s1, s1, w // s2, s2)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(n, c * volume(scale), d // s0, h // s1, w // s2)


class VoxelShuffle(nn.Module):
    """Module form of :func:`voxel_shuffle` (no parameters)."""

    def __init__(self, scale: int | tuple[int, int, int]) -> None:
        super().__init__()
        self.scale = as_scale(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return voxel_shuffle(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
