"""What every super-resolution network in the registry offers beyond ``nn.Module``."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..ops.scale import Scale


class SuperResolutionNet(nn.Module):
    """A network mapping a normalised LR volume ``(N, 1, D, H, W)`` to ``(N, 1, D·s0, H·s1, W·s2)``.

    Subclasses set:

    - ``scale``: the upscaling factor per array axis;
    - ``receptive_field``: radius in LR voxels; an output voxel depends on no LR voxel farther
      away than this (tiled inference uses it as the halo);
    - ``config``: ``{"name": ..., **kwargs}`` that :func:`create_model` turns back into this network;
    - :meth:`floats_per_voxel`: working memory per LR voxel at inference, in float32 values.
    """

    scale: Scale
    receptive_field: int
    config: dict[str, Any]

    def floats_per_voxel(self) -> int:
        raise NotImplementedError
