"""What the napari widget runs, as a plain generator (no Qt, no napari).

:func:`run_steps` does what a :class:`RunRequest` asks: it loads the networks, simulates the LR volume
(``mode="simulate"``), upscales with tricubic interpolation and with each network through
:func:`napari_volumenet.inference.upscale_steps` (the same tiled inference as ``volumenet
upscale``), and compares every output with the ground truth through
:func:`napari_volumenet.ops.metrics.compute_metrics`. It yields a :class:`Step` after every progress
unit of the inference (a block of ParallelNet/VolumeNet, else a tile) and at each stage, and returns a
:class:`RunResult` (``StopIteration.value``).

Each network runs in the tiles ``volumenet upscale`` would use (one window when it fits in memory).
With ``min_steps`` (the widget passes :data:`MIN_STEPS`) a network that reports fewer progress units
than that runs in at least that many tiles (:func:`progress_tile`), so that progress moves and a
cancel waits for one small part only.

The widget drives it from a ``thread_worker`` (progress bar, cancel at the next progress unit);
tests and scripts drive it synchronously with :func:`run_sync`. Closing the generator early
(cancel) drops everything: nothing is returned.

Arrays come in and go out in the layer's *view* order (see :mod:`napari_volumenet._geometry`);
``ornt`` puts them back in the stored order for the network, so that the result is exactly what
``volumenet upscale`` writes for the same file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ._geometry import IDENTITY_ORNT, from_view, to_view, view_factors
from .errors import InputError
from .evaluation import Degradation, Loaded, Method, Upscaled, load_methods, upscale_with
from .inference import MIN_TILE, Plan, RunOptions, progress_units, through_plane_axes
from .models import SuperResolutionNet, create_model
from .models.fast import accelerate
from .ops.degrade import crop_to_multiple
from .ops.metrics import compute_metrics
from .ops.normalize import modality_mismatch
from .ops.scale import along_axis
from .slices import modality_remedy

MODES = ("upscale", "simulate")
UNTRAINED = "untrained (random weights, speed only)"
TRICUBIC_LABEL = "tricubic"
DIFF_PERCENTILE = 99.5
"""The shared upper contrast limit of the difference maps: the largest of their 99.5th percentiles."""
MIN_STEPS = 12
"""Tiles per network in the widget: a progress step (and the longest wait for Cancel) is ≤ 1/12 of a run."""
HEAP_BLOCK_BYTES = 32 * 2**20
"""glibc's largest mmap threshold. A larger block (one feature map of a big window) is mapped afresh on every
allocation and page-faulted in; smaller ones are reused from the heap. The networks tiled by
:func:`progress_tile` (those without progress per block) run on glibc's defaults, outside
:func:`~napari_volumenet._allocator.reuse_freed_memory`."""
MAPPED_COST = 1.4
"""Time per window voxel of windows whose maps exceed :data:`HEAP_BLOCK_BYTES`, relative to smaller ones
(measured in a worker thread on VolumeNet D9C32: 25.4 µs for 85×64×60 windows, 18.5 µs for 64×64×60)."""


ModelSpec = Method
"""The widget's name for :class:`napari_volumenet.evaluation.Method` (a weights file, or an untrained network)."""


@dataclass(frozen=True)
class Step:
    """Progress report: ``done`` of ``total`` units of ``stage`` for output ``label``."""

    stage: str
    """``load``, ``degrade``, ``plan``, ``tiles``, ``metrics``."""
    label: str
    done: int = 0
    total: int = 0
    index: int = 0
    """Which output (0-based) among ``count``."""
    count: int = 1
    plan: Plan | None = None


@dataclass
class Output:
    """One upscaled volume (view order, input units) and how it was made."""

    label: str
    kind: str
    """``tricubic`` or ``sr``."""
    data: np.ndarray
    seconds: float
    params: int
    plan: Plan
    untrained: bool = False
    model_config: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    weights_metadata: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    difference: np.ndarray | None = None
    """``|data − ground truth|`` (view order) when there is a ground truth."""


@dataclass
class RunResult:
    """Everything :func:`run_steps` produced."""

    mode: str
    scale: tuple[int, int, int]
    """Upscaling factor per *stored* axis."""
    view_scale: tuple[int, int, int]
    """The same in view order."""
    modality: str
    lr: np.ndarray
    """The LR volume that was upscaled (view order); the simulated one in ``simulate`` mode."""
    ground_truth: np.ndarray | None
    """The HR volume compared with (view order, cropped to a multiple of the scale), if any."""
    outputs: list[Output]
    value_range: tuple[float, float] | None = None
    """``(min, max)`` of the ground truth: the 0–255 mapping of every metric."""
    diff_limits: tuple[float, float] = (0.0, 1.0)
    """One contrast range shared by every difference map."""
    gt_cropped: bool = False
    """Whether the ground truth lost voxels to :func:`~napari_volumenet.ops.degrade.crop_to_multiple`."""
    modality_warning: str | None = None
    """Why the input does not look like the trained networks' modality (:func:`modality_mismatch`), if so."""

    def output(self, label: str) -> Output:
        for out in self.outputs:
            if out.label == label:
                return out
        raise KeyError(label)


def _widest_map(model: nn.Module) -> int:
    """Channels of the widest feature map a network makes (its convolutions' largest output)."""
    return max((m.out_channels for m in model.modules() if isinstance(m, nn.Conv3d)), default=1)


def _axis_cores(n: int, smallest: int) -> list[int]:
    """Every distinct core length that cuts an axis of ``n`` into k ≥ 1 nearly equal parts (≥ ``smallest``)."""
    return sorted({math.ceil(n / k) for k in range(1, max(1, n // smallest) + 1)}, reverse=True)


def progress_tile(shape: Sequence[int], model: nn.Module, *, min_tiles: int = MIN_STEPS,
                  max_window: int | None = None, border: int | None = None) -> tuple[int, int, int]:
    """Core per axis that cuts ``shape`` into ≥ ``min_tiles`` tiles at the least estimated cost.

    Cost: window voxels (core + 2 × receptive field per axis, but never more than the axis and its
    mirrored ``border``, default the receptive field, as in :func:`~napari_volumenet.inference.make_plan`),
    times :data:`MAPPED_COST` where one feature map exceeds :data:`HEAP_BLOCK_BYTES`. ``max_window``
    (voxels) bounds a window (free memory).
    A core is never shorter than twice the receptive field (nor :data:`~napari_volumenet.inference.MIN_TILE`),
    so the halo at most doubles a window along an axis; volumes too small for ``min_tiles`` such
    tiles get as many as they hold.
    """
    halo = int(model.receptive_field)
    map_bytes = 4 * _widest_map(model)
    smallest = max(MIN_TILE, 2 * halo)
    options = []
    for cores in itertools.product(*(_axis_cores(int(n), smallest) for n in shape)):
        tiles = math.prod(math.ceil(n / c) for n, c in zip(shape, cores))
        window = math.prod(min(c + 2 * halo, int(n) + 2 * (halo if border is None else border))
                           for n, c in zip(shape, cores))
        if max_window is not None and window > max_window:
            continue
        cost = tiles * window * (MAPPED_COST if window * map_bytes > HEAP_BLOCK_BYTES else 1.0)
        options.append((tiles < min_tiles, cost if tiles >= min_tiles else -tiles, cores))
    if not options:
        return tuple(MIN_TILE if n > MIN_TILE else int(n) for n in shape)  # type: ignore[return-value]
    return min(options)[2]  # type: ignore[return-value]


def _network_plan(shape: Sequence[int], model: SuperResolutionNet, *, options: RunOptions, min_steps: int) -> Plan:
    """The tile plan of one network: ``options.tile`` when given, else the fewest tiles that fit in free memory
    (as ``volumenet upscale``) when they report ≥ ``min_steps`` progress units (a network that reports each
    block needs one window), else ≥ ``min_steps`` tiles."""
    plan = options.plan(shape, model)
    units = plan.tiles * progress_units(accelerate(model) if plan.engine == "fast" else model)
    if options.tile is not None or min_steps <= 1 or units >= min_steps:
        return plan
    cores = progress_tile(shape, model, min_tiles=min_steps, max_window=math.prod(plan.window), border=plan.border)
    return replace(options, tile=cores).plan(shape, model)


def _match_ground_truth(gt_view: np.ndarray, lr_view_shape: Sequence[int], view_scale: Sequence[int],
                        ornt: np.ndarray, scale: Sequence[int]) -> tuple[np.ndarray, bool]:
    expected = tuple(n * s for n, s in zip(lr_view_shape, view_scale))
    if tuple(gt_view.shape) == expected:
        return gt_view, False
    if gt_view.ndim == 3:
        cropped = to_view(crop_to_multiple(from_view(gt_view, ornt), scale), ornt)
        if tuple(cropped.shape) == expected:
            return cropped, True
    raise InputError(
        f"Ground truth: the layer has shape {tuple(gt_view.shape)}, but ×{'×'.join(map(str, view_scale))} "
        f"of the input {tuple(lr_view_shape)} is {expected}; choose the HR volume this LR volume was made from."
    )


def _run_network(
    label: str, network: SuperResolutionNet, lr: np.ndarray, *, modality: str, plan: Plan, index: int, count: int,
    axes: Sequence[int] | None,
) -> Generator[Step, None, Upscaled]:
    """Upscale ``lr`` (stored order) by the evaluation protocol; yields a :class:`Step` per batch of tiles."""
    yield Step("plan", label, 0, plan.tiles, index, count, plan)
    steps = upscale_with(lr, network, modality=modality, plan=plan, axes=axes)
    try:
        while True:
            try:
                done, total = next(steps)
            except StopIteration as finished:
                return finished.value
            yield Step("tiles", label, done, total, index, count, plan)
    finally:
        steps.close()


def _prepare(image: np.ndarray, ornt: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(stored float volume, ornt)`` of a layer's data; one clear error for anything unusable."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise InputError(f"Input layer: it must be a 3D volume, got shape {image.shape}.")
    if image.dtype.kind not in "biuf":
        raise InputError(f"Input layer: it must be a real-valued volume, got data type {image.dtype}.")
    ornt = IDENTITY_ORNT if ornt is None else np.asarray(ornt, dtype=float)
    stored = from_view(image, ornt)
    if not np.all(np.isfinite(stored)):
        raise InputError("Input layer: the volume contains NaN or infinite values.")
    return stored, ornt


def _volume_scale(network_scale: Sequence[int], slice_axis: int | None) -> tuple[int, int, int]:
    """The factor per stored axis of networks of ``network_scale`` run with ``slice_axis`` last."""
    if slice_axis is None:
        return tuple(int(v) for v in network_scale)  # type: ignore[return-value]
    if tuple(network_scale[:2]) != (1, 1):
        raise InputError(f"A slice axis needs through-plane networks (scale 1×1×f), "
                         f"not ×{'×'.join(map(str, network_scale))}.")
    return along_axis(slice_axis, network_scale[2])


@dataclass(frozen=True, eq=False)
class RunRequest:
    """What :func:`run_steps` is asked for, beyond the input volume and the networks."""

    mode: str = "upscale"
    """``upscale``: the input is the LR volume. ``simulate``: it is an HR volume; it is cropped to a multiple
    of the scale, degraded (:class:`~napari_volumenet.evaluation.Degradation`), upscaled and compared with itself."""
    ground_truth: np.ndarray | None = None
    """``upscale`` only: the HR volume (view order) to compare with; its shape must be ``s`` × the input's
    (after cropping to a multiple of ``s``)."""
    ornt: np.ndarray | None = None
    """The layer's view transform (:func:`napari_volumenet._geometry.view_ornt`); identity if ``None``."""
    modality: str | None = None
    """Needed only when no network has a weights file (untrained models, tricubic only); otherwise taken
    from, and checked against, the weights' metadata (network order). The same holds for ``scale``."""
    scale: int | Sequence[int] | None = None
    options: RunOptions = RunOptions()
    """Device, precision, tile, engine (:class:`~napari_volumenet.inference.RunOptions`)."""
    tricubic: bool = True
    """Also produce the tricubic (cubic B-spline) upsampling, as the first output."""
    seed: int = 0
    """The initialisation of untrained networks."""
    min_steps: int = 1
    """Without a tile in ``options``: run each network in at least this many tiles (:func:`progress_tile`)."""
    thick_slices: tuple[int, int] | None = None
    """``simulate`` only: ``(stored axis, factor)``: thick slices along that axis instead of
    :func:`~napari_volumenet.ops.degrade.degrade`; the networks must be through-plane ones."""
    slice_axis: int | None = None
    """``upscale`` only: the stored axis of the input's thick slices, for through-plane networks
    (scale ``(1, 1, f)``), which run with it moved to their axis 2."""
    cache: NetworkCache | None = None
    """Where networks built from weights files are kept for the next run (the widget's), if anywhere."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"Unknown mode {self.mode!r}; choose one of {', '.join(MODES)}.")


def run_steps(image: np.ndarray, specs: Sequence[ModelSpec],
              request: RunRequest = RunRequest()) -> Generator[Step, None, RunResult]:
    """Upscale ``image`` (the input layer's data, view order) with every network of ``specs`` (``[]``:
    tricubic interpolation only) as ``request`` says, and compare with the ground truth.

    Untrained networks (speed only) get no metrics and no difference map.
    """
    stored, ornt = _prepare(image, request.ornt)
    if not specs and not request.tricubic:
        raise InputError("Nothing to run: choose a model or tricubic interpolation.")
    slice_axis, scale = request.slice_axis, request.scale
    if request.mode == "simulate" and request.thick_slices is not None:
        slice_axis, scale = int(request.thick_slices[0]), scale or (1, 1, int(request.thick_slices[1]))
    count = len(specs) + int(request.tricubic)
    yield Step("load", "models", 0, count, 0, count)
    models, network_scale, modality = load_methods(specs, modality=request.modality, scale=scale, seed=request.seed,
                                                   cache=request.cache)
    s = _volume_scale(network_scale, slice_axis)
    if request.mode == "simulate":
        yield Step("degrade", "LR simulation", 0, 1, 0, count)
    lr_stored, gt_view, gt_cropped = _lr_and_truth(stored, request.mode, request.ground_truth, ornt, s, slice_axis)
    axes = None if slice_axis is None else through_plane_axes(slice_axis)
    outputs = yield from _run_all(lr_stored, models, s, axes, modality=modality, ornt=ornt, request=request)
    result = RunResult(request.mode, s, view_factors(s, ornt), modality, to_view(lr_stored, ornt), gt_view, outputs,
                       gt_cropped=gt_cropped)
    if any(not spec.untrained for spec in specs):
        result.modality_warning = modality_mismatch(lr_stored, modality, modality_remedy(modality, network_scale))
    if gt_view is not None:
        yield from _compare(result, count)
    return result


def _lr_and_truth(stored: np.ndarray, mode: str, ground_truth: np.ndarray | None, ornt: np.ndarray,
                  scale: tuple[int, int, int], slice_axis: int | None) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """``(LR stored, ground truth in view order or None, whether the ground truth was cropped)``: in
    ``simulate`` mode the input degraded (thick slices along ``slice_axis`` when given), else the input."""
    if mode == "simulate":
        degradation = Degradation(scale) if slice_axis is None else Degradation.thick(slice_axis, scale[slice_axis])
        hr_stored, lr_stored = degradation.apply(stored)
        return lr_stored, to_view(hr_stored, ornt), hr_stored.shape != stored.shape
    lr_stored = np.ascontiguousarray(stored, dtype=np.float32)
    if ground_truth is None:
        return lr_stored, None, False
    gt_view, cropped = _match_ground_truth(np.asarray(ground_truth), to_view(lr_stored, ornt).shape,
                                           view_factors(scale, ornt), ornt, scale)
    return lr_stored, gt_view, cropped


def _run_all(lr: np.ndarray, models: Sequence[Loaded], scale: tuple[int, int, int],
             axes: tuple[int, int, int] | None, *, modality: str, ornt: np.ndarray,
             request: RunRequest) -> Generator[Step, None, list[Output]]:
    """Tricubic (first, when ``request`` asks) and every network on ``lr`` (stored order) with the request's
    options and tile count; outputs in view order."""
    options = request.options
    count = len(models) + int(request.tricubic)
    outputs: list[Output] = []
    if request.tricubic:
        model = create_model("tricubic", scale=scale)
        done = yield from _run_network(TRICUBIC_LABEL, model, lr, modality=modality, axes=None, index=0,
                                       count=count, plan=options.plan(lr.shape, model, precision="fp32"))
        outputs.append(Output(TRICUBIC_LABEL, "tricubic", to_view(done.data, ornt), done.seconds, 0, done.plan,
                              model_config=dict(model.config)))
    for item in models:
        shape = lr.shape if axes is None else tuple(lr.shape[a] for a in axes)
        plan = _network_plan(shape, item.network, options=options, min_steps=request.min_steps)
        done = yield from _run_network(item.label, item.network, lr, modality=modality, axes=axes,
                                       index=len(outputs), count=count, plan=plan)
        outputs.append(Output(item.label, "sr", to_view(done.data, ornt), done.seconds, item.params, done.plan,
                              untrained=item.method.untrained, model_config=dict(item.network.config),
                              weights=item.method.weights, weights_metadata=dict(item.metadata),
                              normalization=None if done.normalization is None else done.normalization.to_dict()))
    return outputs


def _compare(result: RunResult, count: int) -> Generator[Step, None, None]:
    """Metrics and difference maps of every trained output against the ground truth (one shared contrast)."""
    gt = np.asarray(result.ground_truth)
    result.value_range = (float(gt.min()), float(gt.max()))
    high = 0.0
    for i, out in enumerate(result.outputs):
        if out.untrained:
            continue
        yield Step("metrics", out.label, i, len(result.outputs), i, count)
        out.metrics = compute_metrics(gt, out.data)
        out.difference = np.abs(out.data - gt.astype(np.float32, copy=False))
        high = max(high, float(np.percentile(out.difference, DIFF_PERCENTILE)))
    result.diff_limits = (0.0, high if high > 0 else 1.0)


def run_sync(steps: Generator[Step, None, RunResult], on_step: Callable[[Step], Any] | None = None) -> RunResult:
    """Drive :func:`run_steps` to the end in the calling thread; returns its result."""
    while True:
        try:
            step = next(steps)
        except StopIteration as finished:
            return finished.value
        if on_step is not None:
            on_step(step)


def describe_plan(plan: Plan) -> str:
    """``cpu · fp32 · 8 tiles``: the device badge."""
    tiles = f"{plan.tiles} tile{'s' if plan.tiles != 1 else ''}"
    return f"{plan.device} · {plan.precision} · {tiles}"


__all__ = [
    "MIN_STEPS", "MODES", "UNTRAINED", "ModelSpec", "Output", "RunRequest", "RunResult", "Step", "describe_plan",
    "load_methods", "progress_tile", "run_steps", "run_sync",
]
