"""Intensity normalisation between a volume's units and the network's [0, 1] range (SPEC §3).

- MRI: ``low = 0``, ``high`` = the volume's 99.9th percentile (robust to a few bright voxels).
- CT: the fixed window ``[−1000, 1000]`` HU.

:class:`Normalization` is a linear map ``y = (x − low) / (high − low)`` and its exact inverse.
Training clips ``y`` to [0, 1] (``apply(x, clip=True)``); inference does not clip, so that
mapping the network output back with :meth:`Normalization.invert` gives the input's units and
untouched intensities beyond the window survive the round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import InputError, WeightsError

MODALITIES = ("mri", "ct")

MRI_PERCENTILE = 99.9
CT_WINDOW = (-1000.0, 1000.0)
MAX_PERCENTILE_SAMPLES = 16 * 1024 * 1024
"""Volumes with more voxels get their percentile from a regular strided subsample."""

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise InputError(f"Unknown modality {modality!r}: expected one of {', '.join(MODALITIES)}.")
    return modality


@dataclass(frozen=True)
class Normalization:
    """The linear map ``x ↦ (x − low) / (high − low)`` for one volume or one weights file.

    ``apply`` and ``invert`` accept numpy arrays (the result is float32) and torch tensors
    (floating tensors keep their dtype and device; integer tensors become float32).
    """

    modality: str
    low: float
    high: float

    def __post_init__(self) -> None:
        _check_modality(self.modality)
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise InputError(f"Invalid normalisation window [{low}, {high}]: it must be finite with high > low.")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def width(self) -> float:
        """``high − low``."""
        return self.high - self.low

    def apply(self, x: ArrayLike, clip: bool = False) -> ArrayLike:
        """``(x − low) / (high − low)``, clipped to [0, 1] only if ``clip``."""
        if isinstance(x, torch.Tensor):
            y = (x - self.low) / self.width
            return y.clamp_(0.0, 1.0) if clip else y
        x = np.asarray(x)
        y = np.subtract(x, self.low, dtype=np.float32)
        y /= np.float32(self.width)
        if clip:
            np.clip(y, 0.0, 1.0, out=y)
        return y

    def invert(self, y: ArrayLike) -> ArrayLike:
        """``y · (high − low) + low``: back to the volume's units (inverse of unclipped :meth:`apply`)."""
        if isinstance(y, torch.Tensor):
            return y * self.width + self.low
        x = np.multiply(np.asarray(y), self.width, dtype=np.float32)
        x += np.float32(self.low)
        return x

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe ``{"modality": str, "low": float, "high": float}``."""
        return {"modality": str(self.modality), "low": float(self.low), "high": float(self.high)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict` (as stored in weights metadata).

        Raises :class:`WeightsError` if a key is missing or a value cannot be used.
        """
        try:
            return cls(modality=str(d["modality"]), low=float(d["low"]), high=float(d["high"]))
        except (KeyError, TypeError, ValueError, InputError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc).rstrip(".")
            raise WeightsError(f"The stored normalisation {d!r} is invalid ({reason}).") from None


def _percentile_sample(volume: np.ndarray) -> np.ndarray:
    """The volume itself when it has at most ``MAX_PERCENTILE_SAMPLES`` voxels, otherwise the
    view ``volume[::k, ::k, ...]`` with the smallest stride ``k`` that brings it under the limit.

    The subsample is a regular grid, so it is deterministic and needs no copy of the volume.
    """
    if volume.size <= MAX_PERCENTILE_SAMPLES:
        return volume
    k = 2
    while math.prod(-(-n // k) for n in volume.shape) > MAX_PERCENTILE_SAMPLES:
        k += 1
    return volume[(slice(None, None, k),) * volume.ndim]


def fit_normalization(volume: np.ndarray, modality: str) -> Normalization:
    """The :class:`Normalization` of ``volume`` for ``modality`` (``"mri"`` or ``"ct"``).

    MRI: ``low = 0`` and ``high = np.percentile(volume, 99.9)``; if that is ≤ 0 (a mostly empty
    volume), ``high`` is the maximum instead. Volumes of more than 16 Mi voxels take the
    percentile over a regular strided subsample (every ``k``-th voxel along every axis, the
    smallest ``k`` that leaves at most 16 Mi voxels), which keeps memory bounded; the maximum
    fallback uses the whole volume. CT: the fixed window ``[−1000, 1000]`` HU (the volume is
    not looked at).

    Raises
    ------
    InputError
        Unknown modality; MRI volume with no positive intensity, or with NaN/infinite values.
    """
    _check_modality(modality)
    if modality == "ct":
        return Normalization("ct", *CT_WINDOW)
    volume = np.asarray(volume)
    if volume.size == 0 or volume.dtype.kind not in "biuf":
        raise InputError(f"Cannot normalise an array of shape {volume.shape} and data type {volume.dtype}.")
    high = float(np.percentile(_percentile_sample(volume), MRI_PERCENTILE))
    if not math.isfinite(high):
        raise InputError("The volume contains NaN or infinite values.")
    if high <= 0:
        high = float(np.max(volume))
        if not math.isfinite(high):
            raise InputError("The volume contains NaN or infinite values.")
        if high <= 0:
            raise InputError("The volume is empty (no positive intensity).")
    return Normalization("mri", 0.0, high)


CT_AIR_HU = -500.0
"""Below this a CT voxel is air or lung (air is −1000 HU); MRI intensities are not this negative."""
CT_AIR_FRACTION = 0.01
"""Share of voxels below :data:`CT_AIR_HU` from which a volume is taken for a CT in Hounsfield units."""


def modality_mismatch(volume: np.ndarray, modality: str, remedy: str | None = None) -> str | None:
    """Why ``volume`` does not look like ``modality`` (the weights' one), or ``None`` when it does.

    A CT in Hounsfield units has air (about −1000 HU) around or inside the body; MRI magnitudes are
    not negative. So MRI weights on a volume with ≥ 1 % of voxels below −500 (a CT), or CT weights
    on a volume with no negative value (an MRI, or a CT not in HU), give a one-sentence reason, meant
    as a warning: such a run gives far worse results (17 dB instead of 30 in the issue's test).
    The sentence ends with what to do: ``remedy`` when given, else the other modality's weights.
    Looks at a strided subsample of at most 16 Mi voxels.
    """
    _check_modality(modality)
    sample = _percentile_sample(np.asarray(volume))
    if sample.size == 0:
        return None
    if modality == "mri":
        share = float(np.count_nonzero(sample < CT_AIR_HU)) / sample.size
        if share >= CT_AIR_FRACTION:
            return (f"{share:.0%} of the voxels are below {CT_AIR_HU:g}, as air is in a CT in Hounsfield units, "
                    f"but the weights are for MRI; {remedy or 'use CT weights (--modality ct)'}")
        return None
    if float(np.min(sample)) >= 0:
        return ("no voxel is negative, so this is not a CT in Hounsfield units (air is −1000 HU), but the "
                f"weights are for CT; {remedy or 'use MRI weights (--modality mri), or convert the CT to HU'}")
    return None
