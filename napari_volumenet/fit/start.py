"""Where a fit starts: given weights, the bundled through-plane network for the factor (as a plane network), or
least squares."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..models import SuperResolutionNet
from ..models.parallelnet import ParallelNet
from ..models.planenet import PlaneNet
from ..slices import through_plane_factors
from ..training.linear_head import fit_linear_head
from ..weights import default_weights, load_weights
from .pairs import PlanePairs

SCRATCH = {"depth": 6, "channels": 16, "block": "queue"}
"""The plane network fitted where no bundled weights fit (the size of the bundled through-plane ×2)."""

SUMMED_MARGIN_DB = 0.1
"""Self-validation dB a fit started from a 3D network summed into a plane network must gain to replace the 3D
network: that start measured 0.13 dB below the 3D network on a ground truth (docs/fit.md)."""


@dataclass
class Start:
    """The plane network to fit, and the network it came from (None: least squares)."""

    plane: PlaneNet
    bundled: SuperResolutionNet | None
    """What the fit keeps where it does not beat it: the 3D through-plane network, or the plane network it
    started as (then ``plane`` is a copy)."""
    weights: Path | None
    label: str
    """E.g. ``bundled volumenet-d9c16-mri-slices-x4``, ``weights ct_protocol_fit`` or ``least-squares``."""
    keep_margin_db: float = 0.0
    """Self-validation dB the fit must gain over its start to replace :attr:`bundled`."""


def start_network(pairs: PlanePairs, factor: int, modality: str, *, seed: int = 0,
                  weights: Path | None = None) -> Start:
    """``weights`` (a plane network or a 3D through-plane network for ``(1, 1, factor)``, e.g. an earlier fit to a
    scan of the same protocol), else the bundled default through-plane network for ``modality`` and ``factor``,
    else (no such weights: other factors and modalities) a plane network whose head is the least-squares linear
    upsampler of ``pairs``' training planes and whose branches start silent (fusion 0)."""
    if weights is not None:
        return _from_weights(Path(weights), factor, f"weights {Path(weights).stem}")
    if factor in through_plane_factors(modality):
        path = default_weights(modality, (1, 1, factor))
        return _from_weights(path, factor, f"bundled {path.stem}")
    torch.manual_seed(seed)
    plane = PlaneNet(**SCRATCH, scale=(1, 1, factor))
    planes = ((d.lr[k][:, None], d.hr[k][:, None]) for d in pairs.directions for k in pairs.train_planes)
    weight, bias = fit_linear_head(planes, (1, 1, factor), kernel=(3, 1, 3), seed=seed,
                                   samples_per_volume=max(1000, 400_000 // max(1, 2 * len(pairs.train_planes))))
    plane.init_head(weight.float(), bias.float())
    return Start(plane, None, None, "least-squares")


def _from_weights(path: Path, factor: int, label: str) -> Start:
    """The start from the network in ``path``: a plane network as it is, a 3D one summed into a plane network."""
    network, _ = load_weights(path)
    if tuple(network.scale) != (1, 1, factor) or not isinstance(network, (PlaneNet, ParallelNet)):
        raise InputError(f"{path.name} holds a {type(network).__name__} for scale {tuple(network.scale)}; a fit "
                         f"for ×{factor} slices starts from a plane or through-plane network for (1, 1, {factor})")
    if isinstance(network, PlaneNet):
        return Start(copy.deepcopy(network), network, path, label)
    return Start(PlaneNet.from_volumetric(network), network, path, label, SUMMED_MARGIN_DB)
