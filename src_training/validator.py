"""Validation on the whole held-out volumes, as ``volumenet evaluate`` measures: exact tiled inference on
the degraded volume, then PSNR (dB), SSIM and foreground PSNR (dB) against the HR volume (SPEC §3)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .dataset import VolumePair

METRICS = ("psnr", "ssim", "psnr_fg")


class Validator:
    """Mean metrics over ``pairs``; ``tile``: inference tile edge in LR voxels (0 whole volume, None from memory)."""

    def __init__(self, pairs: Sequence[VolumePair], tile: int | None, device: torch.device) -> None:
        self.pairs = pairs
        self.tile = tile
        self.device = device

    def measure(self, network: nn.Module) -> dict[str, float]:
        """``{psnr, ssim, psnr_fg}`` of ``network`` (in fp32 on the training device; its mode is left as it was)."""
        return self._run(network, str(self.device), normalize=True)

    def tricubic(self, scale: Sequence[int]) -> dict[str, float]:
        """``{psnr, ssim, psnr_fg}`` of tricubic upsampling by ``scale`` (the baseline, on the CPU)."""
        from napari_volumenet.models import create_model

        return self._run(create_model("tricubic", scale=tuple(scale)), "cpu", normalize=False)

    def _run(self, network: nn.Module, device: str, normalize: bool) -> dict[str, float]:
        """The evaluation protocol of :mod:`napari_volumenet.evaluation` on every pair (LR already simulated)."""
        from napari_volumenet.evaluation import score, upscale_with
        from napari_volumenet.inference import RunOptions, drive

        options = RunOptions(device=device, precision="fp32", tile=self.tile)
        rows = []
        for pair in self.pairs:
            done = drive(upscale_with(pair.lr, network, modality=pair.normalization.modality, options=options,
                                    normalization=pair.normalization if normalize else None))
            rows.append(score(pair.hr, done.data, [h // n for h, n in zip(pair.hr.shape, pair.lr.shape)]))
        return _means(rows)

    @property
    def voxels(self) -> int:
        """LR voxels one validation runs through the network."""
        return sum(pair.lr.size for pair in self.pairs)


def _means(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over the volumes, NaN and infinities left out (NaN when none is left)."""
    return {key: _mean([row[key] for row in rows]) for key in METRICS}


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan
