"""Training and self-validation pairs from a thick-slice scan's own sharp plane.

The scan (normalised, its slice axis moved last: ``(X, Y, Z)``) is sharp in each plane ``[:, :, k]``. Making
one in-plane axis thick the way the scanner made the slice axis (:func:`~napari_volumenet.ops.degrade.thick_slices`,
box profile and gap of :class:`~napari_volumenet.fit.profile.SliceProfile`) gives "thick → sharp" pairs of this
scan's anatomy, contrast and noise. A pair is a 2D plane laid out as a
:class:`~napari_volumenet.models.planenet.PlaneNet` reads it: ``(A, 1, B)`` with ``B`` the thick axis. Planes ``k`` are split: every :data:`HOLD_OUT`-th one is held
back for self-validation, never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..ops.degrade import thick_slices
from .profile import SliceProfile

HOLD_OUT = 8
"""One plane in this many is held back for self-validation (at least one)."""

MIN_SIGNAL = 0.05
"""A training patch is redrawn (a few times) while its mean normalised intensity is below this (background)."""


@dataclass(frozen=True)
class Direction:
    """Sharp planes with one in-plane axis made thick: ``hr`` ``(Z, A, B·f)``, ``lr`` ``(Z, A, B)``."""

    hr: np.ndarray
    lr: np.ndarray


def _direction(volume: np.ndarray, thick_axis: int, profile: SliceProfile) -> Direction:
    """The planes of ``volume`` ``(X, Y, Z)`` with in-plane ``thick_axis`` (0 or 1) made thick, as ``(Z, A, B)``."""
    lr = thick_slices(volume, thick_axis, profile.factor, profile.gap)
    order = (2, 1 - thick_axis, thick_axis)
    n = lr.shape[thick_axis] * profile.factor
    hr = np.take(volume, np.arange(n), axis=thick_axis)
    return Direction(np.ascontiguousarray(hr.transpose(order)), np.ascontiguousarray(lr.transpose(order)))


class PlanePairs:
    """Both in-plane directions of a scan ``(X, Y, Z)`` (normalised, slice axis last) as plane pairs."""

    def __init__(self, volume: np.ndarray, profile: SliceProfile) -> None:
        self.factor = profile.factor
        self.directions = [_direction(volume, axis, profile) for axis in (0, 1)]
        planes = volume.shape[2]
        held = np.arange(planes // HOLD_OUT // 2, planes, HOLD_OUT) if planes >= 2 else np.arange(0)
        self.val_planes = held if held.size else np.array([planes // 2])
        self.train_planes = np.setdiff1d(np.arange(planes), self.val_planes) if planes > 1 else self.val_planes

    def batch(self, rng: np.random.Generator, size: int, patch: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random training pairs: LR ``(size, 1, a, 1, b)``, HR ``(size, 1, a, 1, b·f)``; ``patch`` =
        ``(a, b)`` LR pixels (cut to the smaller planes' size), flipped at random along both axes."""
        patch = tuple(min(p, *(d.lr.shape[1 + i] for d in self.directions)) for i, p in enumerate(patch))
        lrs, hrs = [], []
        for _ in range(size):
            lr, hr = self._patch(rng, patch)
            flips = tuple(axis for axis in (0, 1) if rng.random() < 0.5)
            lrs.append(np.flip(lr, flips) if flips else lr)
            hrs.append(np.flip(hr, flips) if flips else hr)
        return (torch.from_numpy(np.stack(lrs)[:, None, :, None].copy()),
                torch.from_numpy(np.stack(hrs)[:, None, :, None].copy()))

    def _patch(self, rng: np.random.Generator, patch: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """One LR ``(a, b)`` / HR ``(a, b·f)`` patch of a training plane, redrawn a few times while background."""
        f = self.factor
        for _ in range(4):
            direction = self.directions[rng.integers(2)]
            k = int(rng.choice(self.train_planes))
            a, b = patch
            i, j = rng.integers(direction.lr.shape[1] - a + 1), rng.integers(direction.lr.shape[2] - b + 1)
            lr = direction.lr[k, i:i + a, j:j + b]
            if lr.mean() >= MIN_SIGNAL:
                break
        return lr, direction.hr[k, i:i + a, j * f:(j + b) * f]

    def validation(self, size: tuple[int, int] = (96, 32), count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``count`` fixed crops of held-back planes (the most signal first), both directions: LR
        ``(n, 1, a, 1, b)``, HR ``(n, 1, a, 1, b·f)`` with ``size`` = ``(a, b)`` LR pixels (cut to the planes)."""
        crops = []
        for direction in self.directions:
            a, b = (min(p, n) for p, n in zip(size, direction.lr.shape[1:]))
            i, j = (direction.lr.shape[1] - a) // 2, (direction.lr.shape[2] - b) // 2
            for k in self.val_planes:
                lr = direction.lr[k, i:i + a, j:j + b]
                crops.append((float(lr.mean()), lr, direction.hr[k, i:i + a, j * self.factor:(j + b) * self.factor]))
        crops.sort(key=lambda c: -c[0])
        by_shape: dict[tuple[int, ...], list] = {}
        for _, lr, hr in crops:
            by_shape.setdefault(lr.shape, []).append((lr, hr))
        chosen = max(by_shape.values(), key=len)[:count]  # one shape, so they stack
        return (torch.from_numpy(np.stack([lr for lr, _ in chosen])[:, None, :, None].copy()),
                torch.from_numpy(np.stack([hr for _, hr in chosen])[:, None, :, None].copy()))
