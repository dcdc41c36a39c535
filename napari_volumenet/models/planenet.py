"""PlaneNet: a ParallelNet / VolumeNet that looks at 2D planes holding the slice axis (the fit to one scan).

A thick-slice scan is sharp in its slice plane and coarse along its slice axis (array axis 2 here). The
network's convolutions span array axes 0 and 2 only (every kernel is 1 long along axis 1), so it treats each
plane ``x[:, :, :, j, :]`` as a 2D image whose axis 2 it upscales. :meth:`PlaneNet.forward` runs it on the
planes holding axes 0 and 2, and again on those holding axes 1 and 2 (axes 0 and 1 swapped), and averages the
two. Trained on in-plane pairs (a sharp axis made thick, :mod:`napari_volumenet.fit.pairs`) it never sees
the coarse axis in a pair, and a step costs a fraction of a 3D step.

:meth:`PlaneNet.from_volumetric` starts it from a 3D through-plane network: each kernel summed along axis 1,
which is the 3D network on a volume that does not change along axis 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..ops.scale import Scale, as_scale
from .base import SuperResolutionNet
from .parallelnet import ParallelNet

FLAT_AXIS = 1
"""The array axis the kernels do not span (swapped with axis 0 for the second orientation)."""


def flat_conv(conv: nn.Conv3d) -> nn.Conv3d:
    """``conv`` 1 long along :data:`FLAT_AXIS`, its weights summed along that axis (He scale kept)."""
    kernel, padding = list(conv.kernel_size), list(conv.padding)
    kernel[FLAT_AXIS], padding[FLAT_AXIS] = 1, 0
    flat = nn.Conv3d(conv.in_channels, conv.out_channels, tuple(kernel), padding=tuple(padding), groups=conv.groups,
                     bias=conv.bias is not None)
    with torch.no_grad():
        flat.weight.copy_(flat_weight(conv.weight))
        if conv.bias is not None:
            flat.bias.copy_(conv.bias)
    return flat


def flat_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3D kernel ``(T, S, kd, kh, kw)`` summed along :data:`FLAT_AXIS` → ``(T, S, kd, 1, kw)``."""
    return weight.sum(dim=2 + FLAT_AXIS, keepdim=True)


def _flatten(module: nn.Module) -> None:
    """Every Conv3d below ``module`` replaced by its :func:`flat_conv`, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv3d):
            setattr(module, name, flat_conv(child))
        else:
            _flatten(child)


def both_orientations(core: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of ``core`` on the planes holding axes 0 and 2 of ``x`` ``(N, 1, D, H, W)`` and on those holding
    axes 1 and 2 (axes 0 and 1 swapped there and back)."""
    swapped = core(x.transpose(2, 3)).transpose(2, 3)
    return 0.5 * (core(x) + swapped)


class PlaneNet(SuperResolutionNet):
    """``(N, 1, D, H, W)`` → ``(N, 1, D, H, W·s)``: the mean of a 2D ParallelNet on the (0, 2) and (1, 2) planes.

    ``depth``, ``channels``, ``block``, ``ratio`` as :class:`ParallelNet`; ``scale`` is ``(1, 1, s)`` (or ``s``).
    """

    def __init__(self, depth: int = 9, channels: int = 16, block: str = "queue", scale: int | Scale = (1, 1, 4),
                 ratio: float = 0.5) -> None:
        super().__init__()
        self.scale = (1, 1, scale) if isinstance(scale, int) else as_scale(scale)
        if self.scale[:2] != (1, 1) or self.scale[2] < 1:
            raise ModelError(f"planenet upscales array axis 2 only: scale (1, 1, s), got {self.scale}")
        self.core = ParallelNet(depth, channels, block, self.scale, ratio, name="planenet")
        _flatten(self.core)
        self.receptive_field = self.core.receptive_field
        self.config = {**self.core.config, "name": "planenet"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return both_orientations(self.core, x)

    def floats_per_voxel(self) -> int:
        return self.core.floats_per_voxel() + 2 * self.scale[2]

    @torch.no_grad()
    def init_head(self, weight: torch.Tensor, bias: torch.Tensor, fusion_gain: float = 0.0) -> None:
        """:meth:`ParallelNet.init_head` with a ``(s, 1, 3, 1, 3)`` filter (a 3D one is summed along axis 1)."""
        flat = flat_weight(weight) if weight.shape[2 + FLAT_AXIS] > 1 else weight
        self.core.init_head(flat, bias, fusion_gain)

    @classmethod
    def from_volumetric(cls, net: ParallelNet) -> PlaneNet:
        """The plane network of a 3D through-plane ParallelNet / VolumeNet (its weights summed along axis 1)."""
        kwargs: dict[str, Any] = {k: v for k, v in net.config.items() if k != "name"}
        plane = cls(**kwargs)
        state = {k: flat_weight(v) if v.ndim == 5 else v for k, v in net.state_dict().items()}
        plane.core.load_state_dict(state)
        return plane
