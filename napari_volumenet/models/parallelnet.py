"""ParallelNet and VolumeNet (SPEC §1, paper Fig. 1).

Branch ``i = 1..D`` has ``D − i + 1`` blocks. ``F(1,1)`` reads the head features ``F0``;
``F(i,1)`` reads the concatenation ``[F(1,i−1), F(2,i−2), …, F(i−1,1)]``, which is the
anti-diagonal ``i − 1`` of the grid of blocks; every other block reads the previous block
of its branch. The fusion conv reads anti-diagonal ``D``. The forward pass therefore walks
the anti-diagonals, keeping only two of them alive at a time.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ModelError
from ..ops.interpolate import phase_filters
from ..ops.scale import Scale, as_scale, volume
from ..ops.voxel_shuffle import VoxelShuffle
from .base import SuperResolutionNet
from .blocks import Block, init_conv


class ParallelNet(SuperResolutionNet):
    """ParallelNet(D, C, block): ``(N, 1, D, H, W)`` → ``(N, 1, D·s0, H·s1, W·s2)``.

    Parameters
    ----------
    depth
        ``D``, the number of blocks on the mainline (and the number of branches).
    channels
        ``C``, output channels of every block.
    block
        Name of the building block (see :mod:`napari_volumenet.models.blocks`).
    scale
        Upscaling factor, one int or one per array axis, e.g. ``(1, 1, 2)``.
    ratio
        ``R / C`` inside the lightweight blocks.
    """

    def __init__(
        self,
        depth: int = 5,
        channels: int = 32,
        block: str = "conv",
        scale: int | Scale = 2,
        ratio: float = 0.5,
        name: str = "parallelnet",
    ) -> None:
        super().__init__()
        if depth < 1 or channels < 1:
            raise ModelError(f"depth and channels must be positive, got depth={depth}, channels={channels}")
        self.scale = as_scale(scale)
        s3 = volume(self.scale)
        self.depth, self.channels = depth, channels
        self.head = nn.Conv3d(1, s3, 3, padding=1)
        self.branches = nn.ModuleList(
            nn.ModuleList(
                Block(block, (s3 if i == 0 else i * channels) if j == 0 else channels, channels, ratio)
                for j in range(depth - i)
            )
            for i in range(depth)
        )
        self.fusion = nn.Conv3d(depth * channels, s3, 3, padding=1)
        init_conv(self.head, relu=False)
        init_conv(self.fusion, relu=False)
        self.shuffle = VoxelShuffle(self.scale)
        self.checkpoint_blocks = False
        block_radius = self.branches[0][0].radius
        self.receptive_field = 1 + depth * block_radius + 1
        self.config = {"name": name, "depth": depth, "channels": channels, "block": block,
                       "scale": list(self.scale), "ratio": ratio}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.head(x)
        diagonal: list[torch.Tensor] = []
        for k in range(self.depth):
            first_input = f0 if k == 0 else torch.cat(diagonal, dim=1)
            diagonal = [self._block(i, k - i, diagonal[i]) for i in range(k)] + [self._block(k, 0, first_input)]
        return self.shuffle(f0 + self.fusion(torch.cat(diagonal, dim=1)))

    def _block(self, branch: int, layer: int, x: torch.Tensor) -> torch.Tensor:
        """``F(branch + 1, layer + 1)``; with :attr:`checkpoint_blocks` while training, its inner feature
        maps are recomputed in the backward pass instead of kept (≈ 4× less activation memory, ≈ 1.3× the
        time of a step)."""
        block = self.branches[branch][layer]
        if self.checkpoint_blocks and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    @torch.no_grad()
    def init_as_interpolation(self, kind: str = "cubic", fusion_gain: float = 0.0) -> None:
        """Start training from interpolation instead of from noise.

        The head ``F0`` becomes the polyphase form of a separable interpolation on the SPEC §5 grid
        (HR voxel ``d`` of LR voxel ``x`` sits at ``x + (d + ½)/s − ½``), so that ``VoxelShuffle(F0)``
        alone upsamples: ``kind="linear"`` is trilinear interpolation, ``kind="cubic"`` the cubic
        B-spline interpolation of :mod:`~napari_volumenet.ops.interpolate` cut to the 3 taps a 3×3×3
        kernel holds (renormalised; its outer taps are under 7 %). The fusion weights are scaled by
        ``fusion_gain``: 0 (the default) starts the output exactly at the interpolation, and the
        first optimiser step opens the fusion to the branches (their features are alive from the
        He initialisation, so the fusion weights get a gradient at once). The wiring and the parameter
        count do not change.
        """
        if kind not in ("linear", "cubic"):
            raise ModelError(f"kind must be 'linear' or 'cubic', got {kind!r}")
        weight = torch.ones(volume(self.scale), 1, 3, 3, 3, dtype=torch.float64)
        for axis, factor in enumerate(self.scale):
            taps = _interpolation_taps(factor, kind)  # (factor, 3): LR offsets −1, 0, +1
            # channel c = ((d0·s1 + d1)·s2 + d2): phase of this axis for every channel
            phase_of_channel = (torch.arange(volume(self.scale)) // math.prod(self.scale[axis + 1:])) % factor
            shape = [-1, 1, 1, 1, 1]
            shape[2 + axis] = 3
            weight = weight * taps[phase_of_channel].reshape(shape)
        self.init_head(weight, torch.zeros(volume(self.scale)), fusion_gain)

    @torch.no_grad()
    def init_head(self, weight: torch.Tensor, bias: torch.Tensor, fusion_gain: float = 0.0) -> None:
        """Set the head ``F0`` to a linear upsampling filter ``weight`` ``(s³, 1, 3, 3, 3)`` + ``bias``
        ``(s³,)`` (channel order of :func:`~napari_volumenet.ops.voxel_shuffle.voxel_shuffle`) and
        scale the fusion weights by ``fusion_gain``, so training starts from that upsampling."""
        self.head.weight.copy_(weight.reshape(self.head.weight.shape).to(self.head.weight.dtype))
        self.head.bias.copy_(bias.to(self.head.bias.dtype))
        self.fusion.weight.mul_(fusion_gain)
        self.fusion.bias.zero_()

    def floats_per_voxel(self) -> int:
        widest_inner = max(b.inner_channels for branch in self.branches for b in branch)
        s3 = volume(self.scale)
        return 3 * self.depth * self.channels + 2 * widest_inner + 4 * s3


def _interpolation_taps(factor: int, kind: str) -> torch.Tensor:
    """``(factor, 3)`` float64 weights of LR voxels ``x − 1, x, x + 1`` for each HR phase."""
    if kind == "cubic":
        full = torch.from_numpy(phase_filters(factor))
        centre = full.shape[1] // 2
        taps = full[:, centre - 1:centre + 2]
        return taps / taps.sum(dim=1, keepdim=True)
    taps = torch.zeros(factor, 3, dtype=torch.float64)
    for phase in range(factor):
        offset = (phase + 0.5) / factor - 0.5
        taps[phase, 1] = 1 - abs(offset)
        taps[phase, 2 if offset > 0 else 0] += abs(offset)
    return taps
