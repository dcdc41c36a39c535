"""Image-quality metrics, following the paper's protocol (SPEC §3).

Both volumes are rescaled to [0, 255] with the HR volume's [min, max] (:func:`rescale_255`),
the SR volume is then clipped to [0, 255], and on these:

- ``rmse``: root of the mean squared difference (in units of the 0–255 scale);
- ``psnr``: ``20·log10(255 / rmse)`` in dB (``inf`` for identical volumes);
- ``psnr_fg``: the same over the foreground only, the voxels whose rescaled HR value is above
  ``foreground_fraction · 255`` (default 5 %), i.e. above ``min + 5 % · (max − min)`` in the
  volume's units. For MRI (min ≈ 0) this is "HR > 5 % of its max"; for CT (min ≈ −1000 HU) it
  excludes air. Background voxels are easy to predict and inflate the plain PSNR;
- ``ssim``: ``skimage.metrics.structural_similarity`` with ``data_range=255`` and its default
  7-voxel uniform window, in 3D for volumes and in 2D for a slice (computed here slab by slab, :func:`ssim`);
- ``psnr_interior`` / ``psnr_border`` (whole volumes, when ``border`` is given): the PSNR inside and
  over the outer shell of ``border`` voxels per axis (one LR voxel, ``s`` HR voxels, in ``volumenet
  evaluate``), where a network that mishandles the scan's end leaves a bright frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter

from ..errors import InputError

PEAK = 255.0
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
"""skimage's (and Wang et al.'s) constants: ``C1 = (K1 · 255)²``, ``C2 = (K2 · 255)²``."""
SSIM_SLAB = 32
"""Planes along axis 0 per slab of :func:`ssim` (with its halo: 38 × 128 × 128 float64 = 5 MiB per map)."""


def rescale_255(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(x − low) / (high − low) · 255`` as float64 (``low``, ``high``: the HR volume's min and max)."""
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"Cannot rescale with the non-finite intensity range [{low}, {high}].")
    if high <= low:
        raise InputError("The HR volume is constant, so it cannot be rescaled to [0, 255] for the metrics.")
    y = np.subtract(x, low, dtype=np.float64)
    y /= high - low  # divide then multiply: low and high map to exactly 0 and 255
    y *= PEAK
    return y


def rmse(hr: np.ndarray, sr: np.ndarray) -> float:
    """Root mean squared error between two arrays of the same shape."""
    diff = np.subtract(hr, sr, dtype=np.float64)
    return float(np.sqrt(np.mean(np.square(diff, out=diff))))


def _psnr_from_rmse(error: float, peak: float) -> float:
    if error == 0:
        return float("inf")
    return float(20.0 * math.log10(peak) - 20.0 * math.log10(error))


def psnr(hr: np.ndarray, sr: np.ndarray, peak: float = PEAK) -> float:
    """``20·log10(peak / rmse)`` in dB; ``inf`` when the arrays are identical."""
    return _psnr_from_rmse(rmse(hr, sr), peak)


def psnr_foreground(
    hr: np.ndarray, sr: np.ndarray, foreground_fraction: float = 0.05, peak: float = PEAK
) -> float:
    """PSNR over the voxels where ``hr > foreground_fraction · peak``; ``nan`` if there are none."""
    mask = np.asarray(hr) > foreground_fraction * peak
    if not mask.any():
        return float("nan")
    return psnr(np.asarray(hr)[mask], np.asarray(sr)[mask], peak)


def ssim(hr: np.ndarray, sr: np.ndarray, data_range: float = PEAK) -> float:
    """Mean structural similarity, equal to ``skimage.metrics.structural_similarity`` (uniform window, sample
    covariance, in as many dimensions as the arrays) up to float64 rounding.

    The window is 7 voxels wide, or the largest odd width ≥ 3 that fits the smallest axis;
    ``nan`` if an axis is shorter than 3 voxels. skimage averages the similarity map without its outer
    ``win // 2`` voxels, whose windows are the only ones to leave the arrays; so the map is computed slab by
    slab along axis 0 (:data:`SSIM_SLAB` planes and their halo), on temporaries a few MiB large that the heap
    hands out again, instead of a dozen float64 copies of the volume, each page-faulted in afresh.
    """
    hr, sr = np.asarray(hr), np.asarray(sr)
    if hr.shape != sr.shape:
        raise InputError(f"SSIM needs arrays of the same shape, got {hr.shape} and {sr.shape}.")
    smallest = min(hr.shape) if hr.ndim else 0
    win = min(SSIM_WINDOW, smallest if smallest % 2 else smallest - 1)
    if win < 3:
        return float("nan")
    pad = win // 2
    inner = hr.shape[0] - 2 * pad
    total = sum(_ssim_sum(hr[start:start + SSIM_SLAB + 2 * pad], sr[start:start + SSIM_SLAB + 2 * pad], win,
                          data_range) for start in range(0, inner, SSIM_SLAB))
    return float(total / math.prod(n - 2 * pad for n in hr.shape))


def _ssim_sum(hr: np.ndarray, sr: np.ndarray, win: int, data_range: float) -> float:
    """The sum of the similarity map over the voxels whose ``win``-wide window lies inside the slab."""
    hr = hr.astype(np.float64, copy=False)
    sr = sr.astype(np.float64, copy=False)
    cov_norm = win**hr.ndim / (win**hr.ndim - 1)
    ux, uy = uniform_filter(hr, win), uniform_filter(sr, win)
    vx = cov_norm * (uniform_filter(hr * hr, win) - ux * ux)
    vy = cov_norm * (uniform_filter(sr * sr, win) - uy * uy)
    vxy = cov_norm * (uniform_filter(hr * sr, win) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    similarity = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = win // 2
    return float(similarity[(slice(pad, -pad),) * hr.ndim].sum(dtype=np.float64))


def border_shell(shape: Sequence[int], width: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels within ``width[a]`` voxels of either end of axis ``a``."""
    inner = tuple(slice(w, n - w) if n > 2 * w else slice(0, 0) for n, w in zip(shape, width))
    shell = np.ones(tuple(shape), dtype=bool)
    shell[inner] = False
    return shell


def compute_metrics(
    hr: np.ndarray,
    sr: np.ndarray,
    *,
    value_range: tuple[float, float] | None = None,
    region: tuple[slice, ...] | None = None,
    foreground_fraction: float = 0.05,
    border: Sequence[int] | None = None,
) -> dict[str, float]:
    """RMSE, PSNR, foreground PSNR and SSIM of ``sr`` against ``hr`` (see the module docstring).

    Parameters
    ----------
    hr, sr
        Arrays of the same shape (a volume, or a 2D slice), in the volume's units.
    value_range
        ``(low, high)`` mapped to ``(0, 255)``; default ``(hr.min(), hr.max())``. Pass the
        whole HR volume's range when ``hr`` is only a slice or a crop of it. It should contain
        the HR values: HR is not clipped, SR is clipped to [0, 255].
    region
        Index applied to both arrays after rescaling (the range is still that of the whole
        ``hr``, or ``value_range``), e.g. ``np.s_[10:50, :, 30]``.
    foreground_fraction
        Foreground threshold for ``psnr_fg``, as a fraction of 255 on the rescaled HR.
    border
        Shell width per axis (voxels): adds ``psnr_interior`` and ``psnr_border`` (``nan`` when the
        interior is empty).

    Returns
    -------
    dict
        ``{"rmse": float, "psnr": float, "psnr_fg": float, "ssim": float}`` (and the two above).
    """
    hr, sr = np.asarray(hr), np.asarray(sr)
    if hr.shape != sr.shape:
        raise InputError(f"The HR and SR volumes must have the same shape, got {hr.shape} and {sr.shape}.")
    if hr.size == 0:
        raise InputError("Cannot compute metrics on empty arrays.")
    if value_range is None:
        value_range = (float(np.min(hr)), float(np.max(hr)))
    low, high = value_range
    if region is not None:  # rescaling is voxel-wise, so slicing first gives the same values
        hr, sr = hr[region], sr[region]
        if hr.size == 0:
            raise InputError(f"The region {region!r} selects no voxel.")
    hr_r = rescale_255(hr, low, high)
    sr_r = rescale_255(sr, low, high)
    np.clip(sr_r, 0.0, PEAK, out=sr_r)
    error = rmse(hr_r, sr_r)
    metrics = {
        "rmse": error,
        "psnr": _psnr_from_rmse(error, PEAK),
        "psnr_fg": psnr_foreground(hr_r, sr_r, foreground_fraction),
        "ssim": ssim(hr_r, sr_r, PEAK),
    }
    if border is not None:
        shell = border_shell(hr_r.shape, border)
        metrics["psnr_border"] = psnr(hr_r[shell], sr_r[shell])
        metrics["psnr_interior"] = psnr(hr_r[~shell], sr_r[~shell]) if not shell.all() else float("nan")
    return metrics
