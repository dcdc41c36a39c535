"""Where a fit starts: the bundled through-plane network for the factor, as a plane network, or least squares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.parallelnet import ParallelNet
from ..models.planenet import PlaneNet
from ..slices import through_plane_factors
from ..training.linear_head import fit_linear_head
from ..weights import default_weights, load_weights
from .pairs import PlanePairs

SCRATCH = {"depth": 6, "channels": 16, "block": "queue"}
"""The plane network fitted where no bundled weights fit (the size of the bundled through-plane ×2)."""


@dataclass
class Start:
    """The plane network to fit, and the 3D network it came from (None: least squares)."""

    plane: PlaneNet
    bundled: ParallelNet | None
    weights: Path | None
    label: str
    """E.g. ``bundled volumenet-d9c16-mri-slices-x4`` or ``least-squares``."""


def start_network(pairs: PlanePairs, factor: int, modality: str, *, seed: int = 0) -> Start:
    """The bundled default through-plane network for ``modality`` and ``factor`` summed into a plane network, or
    (no such weights: CT, other factors) a plane network whose head is the least-squares linear upsampler of
    ``pairs``' training planes and whose branches start silent (fusion 0)."""
    if factor in through_plane_factors(modality):
        path = default_weights(modality, (1, 1, factor))
        bundled, _ = load_weights(path)
        assert isinstance(bundled, ParallelNet)
        return Start(PlaneNet.from_volumetric(bundled), bundled, path, f"bundled {path.stem}")
    torch.manual_seed(seed)
    plane = PlaneNet(**SCRATCH, scale=(1, 1, factor))
    planes = ((d.lr[k][:, None], d.hr[k][:, None]) for d in pairs.directions for k in pairs.train_planes)
    weight, bias = fit_linear_head(planes, (1, 1, factor), kernel=(3, 1, 3), seed=seed,
                                   samples_per_volume=max(1000, 400_000 // max(1, 2 * len(pairs.train_planes))))
    plane.init_head(weight.float(), bias.float())
    return Start(plane, None, None, "least-squares")

