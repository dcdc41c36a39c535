"""Tricubic (cubic B-spline) upsampling, as exact separable FIR filters in PyTorch.

Cubic B-spline interpolation is an IIR prefilter (poles at ``√3 − 2``) followed by a
4-tap evaluation. For an integer factor ``s`` the HR sample ``m = s·i + p`` lies at the
LR coordinate ``i + (2p + 1 − s) / (2s)`` (SPEC §5 geometry), so each phase ``p`` is
one fixed FIR filter once the prefilter is truncated to ``±PREFILTER_TAPS`` samples
(truncation error < 1e-6 relative). Borders are extended half-sample symmetrically
(``b a | a b c d | d c``, SPEC §3 and §4), as ``scipy.ndimage.zoom(order=3, mode="reflect", grid_mode=True)``.

Being a finite filter, it is local: a voxel depends on ``HALO`` LR voxels each side,
which is what makes tiled inference of pre-upsampling networks exact.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .border import symmetric_indices
from .scale import Scale, as_scale

PREFILTER_TAPS = 12
HALO = PREFILTER_TAPS + 2
_POLE = math.sqrt(3.0) - 2.0


def _bspline3(u: np.ndarray) -> np.ndarray:
    """Centred cubic B-spline ``β³(u)``."""
    a = np.abs(u)
    return np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


@lru_cache(maxsize=16)
def phase_filters(factor: int) -> np.ndarray:
    """``(factor, 2·HALO + 1)`` float64 correlation kernels, one per output phase."""
    k = np.arange(-PREFILTER_TAPS, PREFILTER_TAPS + 1)
    prefilter = math.sqrt(3.0) * _POLE ** np.abs(k)
    taps = np.arange(-HALO, HALO + 1)
    filters = np.zeros((factor, taps.size))
    for p in range(factor):
        t = (2 * p + 1 - factor) / (2 * factor)
        weights = _bspline3(t - np.arange(-2, 3))  # on coefficients i-2 .. i+2
        for offset, w in zip(range(-2, 3), weights):
            # coefficient c[i + offset] = sum_j prefilter[j] f[i + offset - j]
            filters[p, np.searchsorted(taps, offset - k)] += w * prefilter
    return filters


def _upsample_axis(x: torch.Tensor, factor: int, axis: int) -> torch.Tensor:
    """Upsample ``(N, 1, D, H, W)`` by ``factor`` along spatial ``axis`` (0, 1 or 2)."""
    dim = axis + 2
    n = x.shape[dim]
    x = x.index_select(dim, torch.from_numpy(symmetric_indices(n, -HALO, n + HALO)).to(x.device))
    kernel_shape = [factor, 1, 1, 1, 1]
    kernel_shape[dim] = 2 * HALO + 1
    weight = torch.as_tensor(phase_filters(factor), dtype=x.dtype, device=x.device).reshape(kernel_shape)
    y = F.conv3d(x, weight)  # (N, factor, ...) one channel per phase
    shape = list(y.shape)
    y = y.unsqueeze(dim + 1)  # (N, factor, ..., 1 at dim+1, ...)
    y = y.transpose(1, dim + 1)  # phase next to its axis
    shape[1] = 1
    shape[dim] = n * factor
    return y.reshape(shape)


def tricubic_upsample(x: torch.Tensor, scale: int | Scale) -> torch.Tensor:
    """``(N, C, D, H, W)`` → ``(N, C, D·s0, H·s1, W·s2)`` by cubic B-spline interpolation."""
    scale = as_scale(scale)
    n, c = x.shape[:2]
    y = x.reshape(n * c, 1, *x.shape[2:])
    for axis, factor in enumerate(scale):
        if factor > 1:
            y = _upsample_axis(y, factor, axis)
    return y.reshape(n, c, *y.shape[2:])


def tricubic_upsample_numpy(volume: np.ndarray, scale: int | Scale) -> np.ndarray:
    """``(D, H, W)`` array → upsampled float32 array (CPU; same filter as :func:`tricubic_upsample`)."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
        return tricubic_upsample(x, scale)[0, 0].numpy()


class TricubicUpsample(nn.Module):
    """Module form of :func:`tricubic_upsample` (no parameters)."""

    halo = HALO

    def __init__(self, scale: int | Scale) -> None:
        super().__init__()
        self.scale = as_scale(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tricubic_upsample(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
