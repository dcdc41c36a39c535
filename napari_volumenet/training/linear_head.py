"""The best linear upsampling filter for the training data, by least squares.

ParallelNet's head ``F0`` (a 3×3×3 convolution to ``s³`` channels, then voxel shuffle; 3×1×3 in a plane
network) is a linear upsampler on its own. Fitting it to the training pairs — every HR voxel predicted from
the LR voxels of the kernel around its parent — gives the Wiener-optimal linear filter for this degradation,
typically a little better than tricubic interpolation, and a much better start for the branches than noise:
they only have to learn the non-linear rest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import torch

from ..ops.scale import Scale, volume

RIDGE = 1e-6


def _phases(hr: np.ndarray, scale: Scale) -> np.ndarray:
    """``(D·s0, H·s1, W·s2)`` → ``(s³, D, H, W)`` in voxel-shuffle channel order."""
    s0, s1, s2 = scale
    d, h, w = (n // s for n, s in zip(hr.shape, scale))
    return hr.reshape(d, s0, h, s1, w, s2).transpose(1, 3, 5, 0, 2, 4).reshape(volume(scale), d, h, w)


def fit_linear_head(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], scale: Scale, *, kernel: tuple[int, int, int] = (3, 3, 3),
    samples_per_volume: int = 100_000, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``(weight (s³, 1, *kernel), bias (s³,))`` mapping normalised LR neighbourhoods to normalised
    HR voxels, from up to ``samples_per_volume`` interior LR voxels of each ``(lr, hr)`` pair (normalised
    ``(D, H, W)`` and ``(D·s0, H·s1, W·s2)``); ``kernel`` sizes are odd (1 or 3)."""
    rng = np.random.default_rng(seed)
    s3 = volume(scale)
    offsets = list(itertools.product(*(range(-(k // 2), k // 2 + 1) for k in kernel)))
    taps = len(offsets) + 1
    gram = np.zeros((taps, taps))
    cross = np.zeros((taps, s3))
    for lr, hr in pairs:
        lr = np.asarray(lr, dtype=np.float64)
        hr = _phases(np.asarray(hr, dtype=np.float64), scale)
        inner = [np.arange(k // 2, n - k // 2) for n, k in zip(lr.shape, kernel)]
        count = min(samples_per_volume, int(np.prod([len(i) for i in inner])))
        z, y, x = (rng.choice(i, count) for i in inner)
        features = np.stack([lr[z + a, y + b, x + c] for a, b, c in offsets] + [np.ones(count)], axis=1)
        gram += features.T @ features
        cross += features.T @ hr[:, z, y, x].T
    solution = np.linalg.solve(gram + RIDGE * np.trace(gram) / taps * np.eye(taps), cross)  # (taps, s³)
    weight = torch.from_numpy(solution[:-1].T.reshape(s3, 1, *kernel).copy())
    bias = torch.from_numpy(solution[-1].copy())
    return weight, bias
