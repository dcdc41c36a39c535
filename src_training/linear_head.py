"""The best linear 3×3×3 upsampling filter for the training data, by least squares.

ParallelNet's head ``F0`` (a 3×3×3 convolution to ``s³`` channels, then voxel shuffle) is a
linear upsampler on its own. Fitting it to the training pairs — every HR voxel predicted from
the 27 LR voxels around its parent — gives the Wiener-optimal linear filter for this
degradation, typically a little better than tricubic interpolation, and a much better start
for the branches than noise: they only have to learn the non-linear rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from napari_volumenet.ops.scale import Scale, volume

from .dataset import VolumePair

RIDGE = 1e-6


def _phases(hr: np.ndarray, scale: Scale) -> np.ndarray:
    """``(D·s0, H·s1, W·s2)`` → ``(s³, D, H, W)`` in voxel-shuffle channel order."""
    s0, s1, s2 = scale
    d, h, w = (n // s for n, s in zip(hr.shape, scale))
    return hr.reshape(d, s0, h, s1, w, s2).transpose(1, 3, 5, 0, 2, 4).reshape(volume(scale), d, h, w)


def fit_linear_head(
    pairs: Sequence[VolumePair], scale: Scale, *, samples_per_volume: int = 100_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``(weight (s³, 1, 3, 3, 3), bias (s³,))`` mapping normalised LR neighbourhoods
    to normalised HR voxels, from up to ``samples_per_volume`` interior LR voxels of each pair."""
    rng = np.random.default_rng(seed)
    s3 = volume(scale)
    gram = np.zeros((28, 28))
    cross = np.zeros((28, s3))
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    for pair in pairs:
        lr = pair.normalization.apply(pair.lr).astype(np.float64)
        hr = _phases(pair.normalization.apply(pair.hr).astype(np.float64), scale)
        inner = [np.arange(1, n - 1) for n in lr.shape]
        count = min(samples_per_volume, int(np.prod([len(i) for i in inner])))
        z, y, x = (rng.choice(i, count) for i in inner)
        features = np.stack([lr[z + a, y + b, x + c] for a, b, c in offsets] + [np.ones(count)], axis=1)
        gram += features.T @ features
        cross += features.T @ hr[:, z, y, x].T
    solution = np.linalg.solve(gram + RIDGE * np.trace(gram) / 28 * np.eye(28), cross)  # (28, s³)
    weight = torch.from_numpy(solution[:27].T.reshape(s3, 1, 3, 3, 3).copy())
    bias = torch.from_numpy(solution[27].copy())
    return weight, bias
