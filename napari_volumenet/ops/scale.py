"""The upscaling factor: one positive integer per array axis."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from ..errors import ModelError

Scale = tuple[int, int, int]


def as_scale(scale: int | Sequence[int]) -> Scale:
    """Normalise ``2`` or ``(1, 1, 2)`` to a 3-tuple of positive ints, in array-axis order.

    Raises :class:`ModelError` for anything else (floats, zero, wrong length).
    """
    def is_factor(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1

    values = (scale,) * 3 if isinstance(scale, numbers.Integral) else tuple(scale) if isinstance(scale, Sequence) else ()
    if len(values) != 3 or not all(is_factor(v) for v in values):
        raise ModelError(f"scale must be a positive integer or three of them, got {scale!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def along_axis(axis: int, factor: int) -> Scale:
    """``factor`` along array ``axis`` and 1 on the others: the scale of thick slices along ``axis``."""
    scale = [1, 1, 1]
    scale[axis] = int(factor)
    return tuple(scale)  # type: ignore[return-value]


def volume(scale: Scale) -> int:
    """``s³ = s0·s1·s2``: how many HR voxels one LR voxel becomes."""
    return scale[0] * scale[1] * scale[2]
