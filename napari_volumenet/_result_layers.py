"""The layers a finished run adds to the viewer, as plain data and layer arguments (no Qt, no napari).

:func:`result_layers` turns a :class:`~napari_volumenet._pipeline.RunResult` into the simulated LR
volume (Simulate mode), one layer per output (tricubic first) and one difference map per output with a
ground truth, each with the geometry of its grid (SPEC §5 affines for the scale of the run) and the
provenance a saved layer carries (header description and JSON sidecar, as ``volumenet upscale`` writes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from ._geometry import LayerGeometry
from ._names import difference_names, output_name, simulated_lr_name
from ._pipeline import Output, RunResult

DIFF_COLORMAP = "magma"


@dataclass
class RunContext:
    """What a run was started with (the layers are looked up again when it returns)."""

    input_name: str
    geometry: LayerGeometry
    mode: str
    gt_name: str | None
    comparison: bool
    window: tuple[float, float]
    """Contrast limits of the ground truth (else the input): shared by every output layer."""
    choice: str | None = None
    """Why these weights (the voxel-size rule, :mod:`napari_volumenet.slices`), shown with the result."""
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class NewLayer:
    """One image layer to add: its data (view order) and ``viewer.add_image`` keyword arguments."""

    data: np.ndarray
    kwargs: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.kwargs["name"])


@dataclass(frozen=True)
class ResultLayers:
    """Every layer of one run, in the order they are added."""

    lr: NewLayer | None
    """The simulated LR volume (Simulate mode), else ``None``: the input layer is the LR."""
    lr_name: str
    outputs: list[NewLayer]
    """Tricubic first, then the trained networks (untrained ones are speed only and add no layer)."""
    differences: list[NewLayer]
    """``|output − GT|`` for every output with a ground truth, one contrast range for all."""


def result_layers(context: RunContext, result: RunResult, *, differences_visible: bool) -> ResultLayers:
    """The layers of ``result`` on the grids of ``context.geometry``: [simulated LR], outputs, difference maps."""
    from .io import lr_affine, sr_affine

    geometry, scale = context.geometry, result.scale
    lr, lr_name, base_affine = None, context.input_name, geometry.affine
    if result.mode == "simulate":
        lr_geometry = geometry.replace(lr_affine(geometry.affine, scale), role="lr", made_by="widget", scale=scale)
        lr_name = simulated_lr_name(result.view_scale)
        lr = NewLayer(result.lr, {"name": lr_name, "colormap": "gray", "contrast_limits": context.window,
                                  **lr_geometry.layer_kwargs(lr_geometry.stored(result.lr).shape)})
        base_affine = lr_geometry.affine
    hr_affine = sr_affine(base_affine, scale)
    hr_shape = tuple(n * s for n, s in zip(geometry.stored(result.lr).shape, scale))
    ordered = sorted((o for o in result.outputs if not o.untrained), key=lambda o: o.kind != "tricubic")
    outputs = [
        NewLayer(out.data, {"name": out.label, "colormap": "gray", "contrast_limits": context.window,
                            **geometry.replace(hr_affine, role=out.kind, made_by="widget",
                                               **provenance(out, context, result)).layer_kwargs(hr_shape)})
        for out in ordered
    ]
    compared = [out for out in ordered if out.difference is not None]
    differences = [
        NewLayer(out.difference, {"name": name, "colormap": DIFF_COLORMAP,
                                  "contrast_limits": result.diff_limits, "visible": differences_visible,
                                  **geometry.replace(hr_affine, role="difference", made_by="widget", of=out.label,
                                                     description=f"|{out.label} - GT|"[:80]).layer_kwargs(hr_shape)})
        for out, name in zip(compared, difference_names([out.label for out in compared]))
    ]
    return ResultLayers(lr, lr_name, outputs, differences)


def provenance(out: Output, context: RunContext, result: RunResult) -> dict[str, Any]:
    """The header description and JSON sidecar of one output layer, as ``volumenet upscale`` writes them."""
    from .io import provenance_description, sha256_file

    scale = list(result.scale)
    sha = sha256_file(out.weights) if out.weights is not None else None
    if out.kind == "tricubic":
        description = f"napari-volumenet {__version__} tricubic x{'x'.join(map(str, scale))}"
    elif sha is not None:
        description = provenance_description(str(out.model_config.get("name")), tuple(scale), sha, __version__)
    else:
        description = f"napari-volumenet {__version__} {out.model_config.get('name')} untrained (random weights)"
    sidecar = {
        "tool": "napari-volumenet widget", "version": __version__, "input_layer": context.input_name,
        "input": context.geometry.extra.get("path"), "mode": result.mode, "output": out.label,
        "full_name": output_name(out),
        "model": out.model_config.get("name"), "model_config": out.model_config, "params": out.params,
        "weights": None if out.weights is None else str(out.weights), "weights_sha256": sha,
        "untrained": out.untrained, "scale": scale, "choice": context.choice, "modality": result.modality,
        "normalization": out.normalization, "plan": out.plan.to_dict(), "seconds": out.seconds,
    }
    return {"description": description[:80], "sidecar": sidecar, "output": out.label}
