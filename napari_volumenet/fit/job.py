"""One fit from scan to weights: :func:`prepare` (profile, pairs, start), :func:`run` (the loop), :class:`Fitted`."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import through_plane_axes
from ..io.volume import Slab
from ..models import SuperResolutionNet
from ..ops.normalize import fit_normalization
from .loop import FitSettings, FitUpdate, Outcome, fit_steps
from .pairs import PlanePairs
from .profile import SliceProfile, slice_profile_of
from .start import Start, start_network


@dataclass
class FitJob:
    """A scan made ready to fit: its slice profile, its plane pairs and the network to start from."""

    source: str
    """The scan's name without suffixes (the weights' metadata)."""
    modality: str
    profile: SliceProfile
    pairs: PlanePairs
    start: Start


def prepare(data: np.ndarray, zooms: Sequence[float], *, source: str, modality: str = "mri",
            slab: Slab | None = None, thickness_mm: float | None = None, factor: int | None = None,
            seed: int = 0, weights: Path | None = None) -> FitJob:
    """Profile (:func:`slice_profile_of`), pairs and start for a scan ``data`` ``(X, Y, Z)`` of voxel sizes ``zooms``
    (mm); raises
    :class:`~napari_volumenet.errors.InputError` where no fit can be made (near-isotropic voxels, a bad thickness,
    ``weights`` for another factor). ``weights``: start from them (:func:`~napari_volumenet.fit.start.start_network`)."""
    profile = slice_profile_of(zooms, slab=slab, thickness_mm=thickness_mm, factor=factor)
    normalised = fit_normalization(data, modality).apply(data)
    pairs = PlanePairs(np.transpose(normalised, through_plane_axes(profile.axis)), profile)
    return FitJob(source, modality, profile, pairs, start_network(pairs, profile.factor, modality, seed=seed,
                                                                            weights=weights))


@dataclass
class Fitted:
    """The weights a fit keeps: ``network`` (the fitted plane network, or the start where nothing beat it on the
    scan's self-validation) and ``fit``, the metadata its weights file carries."""

    network: SuperResolutionNet
    kept: str
    """``fitted``, ``bundled`` (the weights it started from were better on self-validation) or ``least-squares``."""
    fit: dict[str, Any]

    def summary(self) -> str:
        """One line: what was kept and the self-validation PSNRs."""
        v = self.fit["self_validation"]
        line = (f"{self.fit['steps']:,} steps in {self.fit['minutes']:.1f} min; self-validation: "
                f"cubic {v['cubic']:.2f}, start ({self.fit['start']}) {v['start']:.2f}, fitted {v['fitted']:.2f} dB")
        if self.kept == "bundled":
            which = "bundled weights" if self.fit["start"].startswith("bundled") else "weights it started from"
            return line + f"; the fit did not beat the {which} on this scan: keeping the {which}"
        return line + f" ({v['fitted'] - v['cubic']:+.2f} dB over cubic)"

    def save(self, path: str | Path) -> Path:
        """Write the weights with their metadata (atomically); accepted wherever weights are."""
        from ..weights import save_weights

        fit = self.fit
        return save_weights(path, self.network, modality=fit["modality"], val_psnr=fit["self_validation"]["fitted"],
                            training={"data": f"self-supervised fit to {fit['source']}", "steps": fit["steps"]},
                            extra={"fit": fit})


def run(job: FitJob, settings: FitSettings) -> Generator[FitUpdate, None, Fitted]:
    """Fit ``job``, yielding after every step (close the generator to cancel); returns what to keep."""
    outcome: Outcome = yield from fit_steps(job.start, job.pairs, settings)
    plane = job.start.plane
    plane.core.load_state_dict(outcome.state)
    improved = outcome.improved and outcome.best_psnr - outcome.start_psnr >= job.start.keep_margin_db
    kept = "fitted" if improved else "bundled" if job.start.bundled is not None else "least-squares"
    network = job.start.bundled if kept == "bundled" else plane
    return Fitted(network.eval(), kept, _metadata(job, outcome, kept))


def _metadata(job: FitJob, outcome: Outcome, kept: str) -> dict[str, Any]:
    """The ``fit`` entry of the weights' metadata (checked by :func:`napari_volumenet.weights.check_fit`)."""
    return {"source": job.source, "modality": job.modality, "factor": job.profile.factor, "axis": job.profile.axis,
            "profile": job.profile.to_dict(), "start": job.start.label, "kept": kept,
            "minutes": round(outcome.seconds / 60, 3), "steps": outcome.steps, "best_step": outcome.best_step,
            "self_validation": {"cubic": round(outcome.cubic_psnr, 3), "start": round(outcome.start_psnr, 3),
                                "fitted": round(outcome.best_psnr, 3)}}
