"""Simulation of a low-resolution (LR) acquisition from a high-resolution (HR) volume.

This is the degradation of SPEC §3, used to make training pairs, by ``volumenet degrade``
and by ``volumenet evaluate``. It is deterministic (no noise, no randomness) and is exactly
``skimage.transform.resize`` with cubic B-spline interpolation and Gaussian anti-aliasing:

1. :func:`crop_to_multiple` drops the last ``n_i mod s_i`` HR voxels of every axis, so that
   ``s_i`` HR voxels make exactly one LR voxel.
2. The volume is converted to float32 and smoothed by a Gaussian of standard deviation
   ``(s_i − 1) / 2`` HR voxels along axis ``i`` (skimage's default anti-aliasing sigma; no
   smoothing at all along axes with factor 1), borders mirrored (``d c b | a b c d | c b a``).
3. It is resampled by cubic B-spline interpolation (``order=3``, with the B-spline prefilter,
   i.e. an interpolating spline) at the LR voxel centres, borders mirrored the same way.
4. The result is clipped to the HR volume's [min, max] (skimage's ``clip=True``), so a
   cubic overshoot never creates intensities that the HR volume does not have.

Geometry (pixel-area alignment, consistent with SPEC §5): LR voxel ``i`` covers HR voxels
``s·i … s·i + s − 1`` and its centre lies at HR coordinate ``s·i + (s − 1)/2``. Conversely HR
voxel ``m`` lies at LR coordinate ``(m − (s − 1)/2) / s``, which for ``m = 0`` is
``−(s − 1)/(2s)``, the convention that the SR affine and the tricubic upsampling use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.transform import resize

from ..errors import InputError
from .scale import Scale, as_scale

MIN_LR_SIZE = 4
"""Smallest LR axis length :func:`degrade` accepts."""


def _check_volume(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"Expected a 3D volume, got an array of shape {volume.shape} ({volume.ndim}D).")
    if volume.dtype.kind not in "biuf":
        raise InputError(f"Expected a real-valued numeric volume, got data type {volume.dtype}.")
    return volume


def crop_to_multiple(volume: np.ndarray, scale: int | Sequence[int]) -> np.ndarray:
    """Crop the end of every axis so that axis ``i``'s length is a multiple of ``scale[i]``.

    ``(n0, n1, n2)`` → ``(n0 − n0 mod s0, n1 − n1 mod s1, n2 − n2 mod s2)``. The voxels kept
    are the first ones, so voxel indices (and the affine) do not change. Returns a view
    (no copy) of ``volume``.
    """
    volume = _check_volume(volume)
    s = as_scale(scale)
    return volume[tuple(slice(0, n - n % f) for n, f in zip(volume.shape, s))]


def lr_shape(shape: Sequence[int], scale: int | Sequence[int]) -> Scale:
    """Shape of ``degrade(volume, scale)`` for a volume of ``shape``: ``n_i // s_i``."""
    s = as_scale(scale)
    return tuple(int(n) // f for n, f in zip(shape, s))  # type: ignore[return-value]


def degrade(hr: np.ndarray, scale: int | Sequence[int] = 2) -> np.ndarray:
    """Simulate the LR acquisition of ``hr``, downsampling axis ``i`` by ``scale[i]``.

    Parameters
    ----------
    hr
        3D volume ``(n0, n1, n2)`` of any real numeric dtype (bool, int, uint, float).
    scale
        ``s`` for all axes, or ``(s0, s1, s2)`` in array-axis order (e.g. ``(1, 1, 2)`` for
        through-plane only).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n0 // s0, n1 // s1, n2 // s2)``, in the units of ``hr``.

    The exact computation (see the module docstring): crop to a multiple of ``s``, then
    ``skimage.transform.resize(hr.astype(float32), lr_shape, order=3, anti_aliasing=True,
    mode="reflect", preserve_range=True)``: Gaussian anti-aliasing with sigma ``(s_i − 1)/2``
    (none where ``s_i = 1``), cubic B-spline resampling at LR centres ``s·i + (s − 1)/2`` (HR
    coordinates), mirrored borders, output clipped to the HR range.

    Raises
    ------
    InputError
        If ``hr`` is not a real 3D array, or an LR axis would be shorter than 4 voxels.
    """
    s = as_scale(scale)
    hr = _check_volume(hr)
    out_shape = lr_shape(hr.shape, s)
    if min(out_shape) < MIN_LR_SIZE:
        raise InputError(
            f"The volume of shape {hr.shape} is too small to degrade by {s}: every LR axis needs "
            f"at least {MIN_LR_SIZE} voxels, but the LR shape would be {out_shape}."
        )
    cropped = crop_to_multiple(hr, s)
    if s == (1, 1, 1):  # nothing to do: a float32 copy, as resize would return
        return np.array(cropped, dtype=np.float32)
    cropped = np.asarray(cropped, dtype=np.float32)
    lr = resize(
        cropped,
        out_shape,
        order=3,
        mode="reflect",
        anti_aliasing=True,
        preserve_range=True,
    )
    return np.asarray(lr, dtype=np.float32)


def slice_profile(factor: int, gap: float = 0.0) -> np.ndarray:
    """Weights ``(factor,)`` of the HR slices of one slab in a thick slice: a box of thickness
    ``factor − gap`` HR slices centred on the slab (HR slice ``j`` spans ``[j, j + 1)``), normalised to sum 1."""
    thickness = factor - gap
    if factor < 1 or not 0 < thickness <= factor:
        raise InputError(f"A thick slice needs a factor ≥ 1 and 0 ≤ gap < factor, got factor {factor}, gap {gap}.")
    low, high = (factor - thickness) / 2, (factor + thickness) / 2
    edges = np.arange(factor + 1, dtype=np.float64)
    overlap = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None)
    return overlap / thickness


def thick_slices(hr: np.ndarray, axis: int, factor: int, gap: float = 0.0) -> np.ndarray:
    """Simulate a thick-slice acquisition of ``hr`` along array ``axis`` (SPEC §3).

    A slice integrates the signal across its thickness, so LR slice ``i`` is the mean of the HR slices
    ``factor·i … factor·i + factor − 1`` it covers (a box slice profile), or of the central
    ``factor − gap`` of them when slices are separated by a gap (partial HR slices weighted by their
    overlap); the other axes are untouched. The axis is first cropped to a multiple of ``factor``.
    LR slice ``i`` is centred at HR coordinate ``factor·i + (factor − 1)/2``, the geometry of
    :func:`degrade` with scale ``factor`` along ``axis`` and 1 elsewhere.

    Returns a float32 array, ``factor`` times shorter along ``axis``, in the units of ``hr``.
    """
    hr = _check_volume(hr)
    if axis not in (0, 1, 2):
        raise InputError(f"The slice axis must be 0, 1 or 2 (array axes), got {axis}.")
    weights = slice_profile(int(factor), gap)
    n = hr.shape[axis] // factor
    if n < MIN_LR_SIZE:
        raise InputError(f"The volume of shape {hr.shape} is too small for {factor}× thick slices along axis "
                         f"{axis}: the LR axis needs at least {MIN_LR_SIZE} slices.")
    moved = np.moveaxis(np.asarray(hr, dtype=np.float32), axis, 0)[: n * factor]
    slabs = moved.reshape(n, factor, *moved.shape[1:])
    lr = np.tensordot(weights.astype(np.float32), slabs, axes=([0], [1]))
    return np.ascontiguousarray(np.moveaxis(lr, 0, axis), dtype=np.float32)
