"""What the widget's "Fit to this scan" runs, as a plain generator (no Qt, no napari).

:func:`fit_steps` fits to the input layer's scan (:mod:`napari_volumenet.fit`, yielding a
:class:`~napari_volumenet.fit.FitUpdate` after every step), writes the weights it keeps into ``folder``, then
upscales the scan with them through :func:`~napari_volumenet._pipeline.run_steps` (the widget's own inference,
yielding its :class:`~napari_volumenet._pipeline.Step` per tile). Closing the generator (Cancel) stops it
between two steps: nothing is returned.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._geometry import LayerGeometry, from_view
from ._names import elide_middle
from ._pipeline import MIN_STEPS, RunRequest, RunResult, Step
from ._pipeline import run_steps as upscale_steps
from .evaluation import Method
from .fit import FitSettings, FitUpdate, Fitted, prepare, run
from .inference import RunOptions
from .io.volume import affine_zooms


@dataclass(frozen=True)
class FitRequest:
    """The widget's fit: ``minutes``, the slice thickness (None: the header's, else the spacing), modality."""

    minutes: float
    thickness_mm: float | None = None
    modality: str = "mri"
    options: RunOptions = RunOptions()
    max_steps: int | None = None
    batch: int = 8
    """Patches per step: small, so that a step (and a Cancel) takes well under 2 s."""


@dataclass
class FitResult:
    """The fitted weights (saved in ``weights``) and the run that upscaled the scan with them."""

    fitted: Fitted
    weights: Path
    run: RunResult
    label: str


def fit_steps(image: np.ndarray, geometry: LayerGeometry, name: str, request: FitRequest,
              folder: Path) -> Generator[FitUpdate | Step, None, FitResult]:
    """Fit to ``image`` (the layer's data, view order; ``geometry`` its stored grid), then upscale it."""
    stored = np.asarray(from_view(image, geometry.ornt), dtype=np.float32)
    job = prepare(stored, affine_zooms(geometry.affine), source=name, modality=request.modality,
                  slab=geometry.extra.get("slab"), thickness_mm=request.thickness_mm)
    settings = FitSettings(minutes=request.minutes, max_steps=request.max_steps, batch=request.batch)
    fitted = yield from run(job, settings)
    weights = fitted.save(folder / f"{name}-fit.pt")
    label = elide_middle(f"SR fitted {name}")
    run_request = RunRequest("upscale", ornt=geometry.ornt, options=request.options, tricubic=False,
                             min_steps=MIN_STEPS, slice_axis=job.profile.axis)
    result = yield from upscale_steps(image, [Method(label, weights)], run_request)
    return FitResult(fitted, weights, result, label)
