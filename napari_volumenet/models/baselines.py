"""The pre-upsampling networks the paper compares against, and plain tricubic interpolation.

Each takes the LR volume, upsamples it with :func:`~napari_volumenet.ops.interpolate.tricubic_upsample`
(a fixed, exact FIR filter) and refines it at HR resolution, so every registry model maps
``(N, 1, D, H, W)`` LR → ``(N, 1, D·s0, H·s1, W·s2)`` HR and tiles the same way.

- 3D SRCNN (Pham et al. 2017): conv 9³ 1→64, ReLU, conv 1³ 64→32, ReLU, conv 5³ 32→1.
- DCSRN (Chen et al. 2018): conv 3³ 1→2k, one dense block of 4 units (BN, ELU, conv 3³ → k),
  conv 1³ → 1; k = 24.
- mDCSRN (Chen et al. 2018b): conv 3³ 1→2k, 4 dense blocks of 4 units each followed by a 1³
  compressor back to 2k, the head and every block output concatenated, conv 1³ → 1; k = 16.

``block`` replaces the 3×3×3 convolutions inside the dense units (never the first or last conv).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ModelError
from ..ops.interpolate import HALO as TRICUBIC_HALO
from ..ops.interpolate import TricubicUpsample
from ..ops.scale import Scale, as_scale, volume
from .base import SuperResolutionNet
from .blocks import Block, conv_radius, init_conv


class PreUpsamplingNet(SuperResolutionNet):
    """Tricubic upsampling followed by ``body`` at HR resolution."""

    def __init__(self, body: nn.Module | None, scale: int | Scale, hr_floats: int, config: dict) -> None:
        super().__init__()
        self.scale = as_scale(scale)
        self.upsample = TricubicUpsample(self.scale)
        self.body = body if body is not None else nn.Identity()
        hr_radius = conv_radius(self.body)
        self.receptive_field = TRICUBIC_HALO + math.ceil(hr_radius / min(self.scale))
        self._hr_floats = hr_floats
        self.config = {**config, "scale": list(self.scale)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(x))

    def floats_per_voxel(self) -> int:
        return 2 + self._hr_floats * volume(self.scale)

    def pass_through_path(self) -> tuple[nn.Conv3d, list[nn.Conv3d], nn.Conv3d]:
        """The first conv, the 1³ convs between, and the last conv of the path that channel 0 can carry."""
        raise ModelError(f"{self.config['name']} has no convolution to start as the identity")

    @torch.no_grad()
    def init_as_upsampler(self) -> None:
        """Start training as the tricubic upsampler alone instead of from noise.

        Channel 0 of the first convolution becomes a centred unit impulse, every 1³ convolution on
        the way passes channel 0 on, and the last convolution reads channel 0 only, so the body is
        the identity on non-negative volumes (the ReLUs of 3D SRCNN clip tricubic's undershoot
        below 0) and the network starts at interpolation quality. Every other channel keeps its He
        initialisation: the last convolution's weights get a gradient at the first step, which
        opens the path through the other channels. The wiring and the parameter count do not change.
        """
        first, between, last = self.pass_through_path()
        _set_impulse(first.weight[0], first.bias, 0)
        for conv in between:
            _set_impulse(conv.weight[0], conv.bias, 0)
        last.weight.zero_()
        _set_impulse(last.weight[0], last.bias, 0)


def _set_impulse(weight: torch.Tensor, bias: torch.Tensor | None, channel: int) -> None:
    """Kernel ``(C_in, k, k, k)`` of one output channel → unit impulse at the centre of input ``channel``."""
    weight.zero_()
    weight[(channel, *(k // 2 for k in weight.shape[1:]))] = 1.0
    if bias is not None:
        bias[0] = 0.0


class Tricubic(PreUpsamplingNet):
    """Cubic B-spline interpolation alone: the reference every network must beat."""

    def __init__(self, scale: int | Scale = 2) -> None:
        super().__init__(None, scale, hr_floats=2, config={"name": "tricubic"})


class SRCNN3D(PreUpsamplingNet):
    """3D SRCNN: 9³ 1→64, ReLU, 1³ 64→32, ReLU, 5³ 32→1 (≈ 0.053 M parameters)."""

    def __init__(self, scale: int | Scale = 2, block: str = "conv") -> None:
        if block != "conv":
            raise ModelError("srcnn3d has no 3×3×3 convolution to replace; use block='conv'")
        body = nn.Sequential(
            nn.Conv3d(1, 64, 9, padding=4), nn.ReLU(inplace=True),
            nn.Conv3d(64, 32, 1), nn.ReLU(inplace=True),
            nn.Conv3d(32, 1, 5, padding=2),
        )
        for conv, relu in zip(body[::2], (True, True, False)):
            init_conv(conv, relu)
        super().__init__(body, scale, hr_floats=2 * 64 + 32 + 2, config={"name": "srcnn3d", "block": block})

    def pass_through_path(self) -> tuple[nn.Conv3d, list[nn.Conv3d], nn.Conv3d]:
        return self.body[0], [self.body[2]], self.body[4]


class DenseUnit(nn.Module):
    """BN, ELU, 3×3×3 (or ``block``) ``in → growth``; its output is appended to its input."""

    def __init__(self, in_channels: int, growth: int, block: str) -> None:
        super().__init__()
        self.norm = nn.BatchNorm3d(in_channels)
        self.act = nn.ELU(inplace=True)
        self.conv = Block(block, in_channels, growth, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.act(self.norm(x)))], dim=1)


class DenseBlock(nn.Sequential):
    """``units`` dense units: ``(N, S, …)`` → ``(N, S + units·growth, …)``."""

    def __init__(self, in_channels: int, growth: int, units: int, block: str) -> None:
        super().__init__(*(DenseUnit(in_channels + u * growth, growth, block) for u in range(units)))
        self.out_channels = in_channels + units * growth


class DCSRN(PreUpsamplingNet):
    """DCSRN: 3³ 1→2k, one dense block of 4 units, 1³ → 1 (k = 24, ≈ 0.22 M parameters)."""

    def __init__(self, scale: int | Scale = 2, growth: int = 24, units: int = 4, block: str = "conv") -> None:
        dense = DenseBlock(2 * growth, growth, units, block)
        body = nn.Sequential(nn.Conv3d(1, 2 * growth, 3, padding=1), dense, nn.Conv3d(dense.out_channels, 1, 1))
        super().__init__(body, scale, hr_floats=3 * dense.out_channels,
                         config={"name": "dcsrn", "growth": growth, "units": units, "block": block})

    def pass_through_path(self) -> tuple[nn.Conv3d, list[nn.Conv3d], nn.Conv3d]:
        # the dense block appends to its input, so channel 0 of the head reaches the last conv
        return self.body[0], [], self.body[2]


class MDCSRNBody(nn.Module):
    """Head conv, dense blocks each compressed back to ``2k`` by a 1³ conv, 1³ reconstruction of all of them."""

    def __init__(self, growth: int, blocks: int, units: int, block: str) -> None:
        super().__init__()
        width = 2 * growth
        self.head = nn.Conv3d(1, width, 3, padding=1)
        self.stages = nn.ModuleList(
            nn.Sequential(DenseBlock(width, growth, units, block), nn.Conv3d(width + units * growth, width, 1))
            for _ in range(blocks)
        )
        self.reconstruct = nn.Conv3d(width * (blocks + 1), 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.head(x)]
        for stage in self.stages:
            features.append(stage(features[-1]))
        return self.reconstruct(torch.cat(features, dim=1))


class MDCSRN(PreUpsamplingNet):
    """mDCSRN: 4 compressed dense blocks of 4 units (k = 16, ≈ 0.40 M parameters)."""

    def __init__(
        self, scale: int | Scale = 2, growth: int = 16, blocks: int = 4, units: int = 4, block: str = "conv"
    ) -> None:
        body = MDCSRNBody(growth, blocks, units, block)
        width = 2 * growth
        super().__init__(body, scale, hr_floats=width * (blocks + 1) + 2 * (width + units * growth),
                         config={"name": "mdcsrn", "growth": growth, "blocks": blocks, "units": units,
                                 "block": block})

    def pass_through_path(self) -> tuple[nn.Conv3d, list[nn.Conv3d], nn.Conv3d]:
        # the head's output is the first part of the reconstruction's input
        return self.body.head, [], self.body.reconstruct
