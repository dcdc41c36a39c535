"""The upscaling factor: one positive integer per array axis."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ModelError

Scale = tuple[int, int, int]


def as_scale(scale: int | Sequence[int]) -> Scale:
    """Normalise ``2`` or ``(1, 1, 2)`` to a 3-tuple of positive ints, in array-axis order.

    Raises :class:`ModelError` for anything else (floats, zero, wrong length).
    """
    if isinstance(scale, bool):
        raise ModelError(f"scale must be a positive integer or three of them, got {scale!r}")
    values = (scale,) * 3 if isinstance(scale, int) else tuple(scale)
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ModelError(f"scale must be a positive integer or three of them, got {scale!r}")
    return values  # type: ignore[return-value]


def volume(scale: Scale) -> int:
    """``s³ = s0·s1·s2``: how many HR voxels one LR voxel becomes."""
    return scale[0] * scale[1] * scale[2]
