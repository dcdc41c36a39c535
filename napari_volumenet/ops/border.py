"""Half-sample symmetric border extension (SPEC §4).

A scan simply ends at its border; the anatomy would go on. Before the network runs, the LR volume
is extended by mirroring about the voxel boundary with the edge voxel repeated
(``… c b a | a b c …``; numpy ``symmetric``, scipy ``reflect`` / ``grid-mirror``), so that no
output voxel depends on zeros. Training patches that reach a volume edge get the same extension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def symmetric_indices(n: int, start: int, stop: int) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions ``start … stop − 1`` (any integers), mirrored
    half-sample symmetrically with period ``2n``: position ``−1`` → 0, ``n`` → ``n − 1``."""
    if n < 1:
        raise ValueError(f"cannot mirror an empty axis (n = {n})")
    i = np.remainder(np.arange(start, stop), 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def extended_window(volume: np.ndarray, window: Sequence[slice]) -> np.ndarray:
    """``volume[window]`` where the slices may reach past the volume (negative starts, stops beyond
    the end); the part outside is the half-sample symmetric extension. A copy when it reaches out."""
    if all(0 <= w.start and w.stop <= n for w, n in zip(window, volume.shape)):
        return volume[tuple(window)]
    index = np.ix_(*(symmetric_indices(n, w.start, w.stop) for w, n in zip(window, volume.shape)))
    return volume[index]


def extend_border(volume: np.ndarray, width: int | Sequence[int]) -> np.ndarray:
    """``volume`` grown by ``width`` voxels on both sides of every axis by half-sample mirroring
    (the same as ``np.pad(volume, width, mode="symmetric")``, also for widths beyond the axis)."""
    widths = (int(width),) * volume.ndim if isinstance(width, (int, np.integer)) else tuple(int(w) for w in width)
    return extended_window(volume, [slice(-w, n + w) for w, n in zip(widths, volume.shape)])
