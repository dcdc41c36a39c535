"""What the widget shows, computed without Qt or napari: layer choice, grid layout, metric rows, crops.

The widget (:mod:`napari_volumenet._qt.widget`) reads the viewer into plain values (names, shapes,
metadata roles) and hands them here; the slice and region it shows, in voxel indices, come from
:mod:`napari_volumenet._view`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._names import elide_middle, network_name, output_name
from ._pipeline import TRICUBIC_LABEL, RunResult
from .ops.metrics import compute_metrics
from ._view import Region, region_size

MADE_BY_WIDGET = ("sr", "tricubic", "difference")
"""Metadata roles of the layers a run adds: never chosen as input or ground truth automatically."""
TARGET_PIXELS = 128
"""The longer side of a magnified HR crop, about (integer magnification, at most ×16)."""
MAX_MAGNIFICATION = 16


# ---------------------------------------------------------------------- input and ground truth
@dataclass(frozen=True)
class LayerInfo:
    """What the choice of input and ground truth needs to know about an image layer."""

    name: str
    shape: tuple[int, ...]
    role: str | None = None
    """The plugin's metadata role: ``lr``, ``hr``, ``volume``, ``sr``, ``tricubic``, ``difference``."""
    pair: str | None = None
    """Sample layers of one HR/LR pair share this key."""


def factors_between(lr_shape: Sequence[int], hr_shape: Sequence[int]) -> tuple[int, ...] | None:
    """Integer factors ``s`` (not all 1) with ``hr // s == lr`` per axis, else ``None``.

    The remainder is allowed: the pipeline crops the ground truth to a multiple of ``s``.
    """
    if len(lr_shape) != len(hr_shape) or not all(n > 0 for n in lr_shape):
        return None
    factors = tuple(h // n for n, h in zip(lr_shape, hr_shape))
    if any(s < 1 or h // s != n for s, n, h in zip(factors, lr_shape, hr_shape)) or max(factors) < 2:
        return None
    return factors


def _candidates(layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    return [lyr for lyr in layers if lyr.role not in MADE_BY_WIDGET]


def auto_input(layers: Sequence[LayerInfo], active: str | None = None) -> str | None:
    """The layer to upscale when the user has not chosen one.

    A sample's LR layer; else the coarser layer of a pair whose shapes differ by integer factors;
    else the active layer; else the last one.
    """
    own = _candidates(layers) or list(layers)
    lr = [lyr for lyr in own if lyr.role == "lr"]
    if lr:
        return lr[-1].name
    coarse = [a for a in own if any(factors_between(a.shape, b.shape) for b in own if b.name != a.name)]
    if coarse:
        return coarse[-1].name
    names = [lyr.name for lyr in own]
    if active in names:
        return active
    return names[-1] if names else None


def auto_truth(layers: Sequence[LayerInfo], input_name: str | None) -> str | None:
    """The ground truth for ``input_name``: its sample pair's HR layer, else a layer ``s`` × its shape."""
    source = next((lyr for lyr in layers if lyr.name == input_name), None)
    if source is None:
        return None
    others = [lyr for lyr in _candidates(layers) if lyr.name != source.name]
    paired = [lyr for lyr in others if lyr.role == "hr" and source.pair and lyr.pair == source.pair]
    if paired:
        return paired[-1].name
    finer = [lyr for lyr in others if factors_between(source.shape, lyr.shape)]
    return finer[-1].name if finer else None


def choose_layers(layers: Sequence[LayerInfo], current_input: str | None, current_truth: str | None, *,
                  input_fixed: bool = False, truth_fixed: bool = False, active: str | None = None,
                  ) -> tuple[str | None, str | None]:
    """(input, ground truth) names: the user's choices where they still exist, otherwise automatic.

    A fixed ``current_truth`` of ``None`` is the user's "no ground truth". Never the same layer
    twice: a ground truth equal to the input is replaced by the automatic one.
    """
    names = {lyr.name for lyr in layers}
    keep_input = input_fixed and current_input in names
    input_name = current_input if keep_input else auto_input(layers, active)
    exists = current_truth is None or current_truth in names
    keep_truth = truth_fixed and exists and current_truth != input_name
    truth = current_truth if keep_truth else auto_truth(layers, input_name)
    return input_name, (None if truth == input_name else truth)


def same_layer(a: Any, b: Any) -> bool:
    """Whether two (possibly proxied) napari layers are one: by name, else by their data."""
    if a is None or b is None:
        return False
    if a.name == b.name:
        return True
    data_a, data_b = getattr(a, "data", None), getattr(b, "data", None)
    return isinstance(data_a, np.ndarray) and isinstance(data_b, np.ndarray) and data_a is data_b


# ---------------------------------------------------------------------- side by side
def grid_order(truth: str | None, outputs: Sequence[str], lr: str | None, differences: Sequence[str]) -> list[str]:
    """Layer names in grid order: ground truth, tricubic, SR…, LR, then the difference maps."""
    tricubic = [name for name in outputs if name == TRICUBIC_LABEL]
    networks = [name for name in outputs if name != TRICUBIC_LABEL]
    diffs = sorted(differences, key=lambda name: TRICUBIC_LABEL not in name)
    return [name for name in (truth, *tricubic, *networks, lr, *diffs) if name]


def grid_shape(count: int, canvas: tuple[float, float], image: tuple[float, float]) -> tuple[int, int]:
    """(rows, columns) for ``count`` cells that shows an ``image`` (width, height) largest on ``canvas``."""
    if count <= 0:
        return (1, 1)
    width, height = max(canvas[0], 1.0), max(canvas[1], 1.0)
    image_w, image_h = max(image[0], 1e-9), max(image[1], 1e-9)

    def zoom(columns: int) -> tuple[float, int]:
        rows = math.ceil(count / columns)
        return min(width / columns / image_w, height / rows / image_h), -(rows * columns)

    columns = max(range(1, count + 1), key=zoom)
    return math.ceil(count / columns), columns


# ---------------------------------------------------------------------- metric rows
def _with_gain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``gain``: PSNR minus tricubic's PSNR in the same scope (``None`` for tricubic itself)."""
    reference = {r["scope"]: r.get("psnr") for r in rows if r["output"] == TRICUBIC_LABEL}
    for row in rows:
        base = reference.get(row["scope"])
        psnr = row.get("psnr")
        finite = base is not None and psnr is not None and math.isfinite(base) and math.isfinite(psnr)
        row["gain"] = psnr - base if finite and row["output"] != TRICUBIC_LABEL else None
    return rows


def metric_rows(result: RunResult, labels: Iterable[str], where: tuple[int, int] | None = None,
                region: Region | None = None) -> list[dict[str, Any]]:
    """Rows of the metrics table: region first (when drawn), then the current slice, then the volume.

    ``where``: (axis, index) of the displayed slice in the HR grid; ``region``: HR voxels on the
    other two axes. Outputs without quality (untrained networks) are left out.
    """
    gt = result.ground_truth
    if gt is None or result.value_range is None:
        return []
    shown = [label for label in labels if not result.output(label).untrained]
    rows: list[dict[str, Any]] = []
    if where is not None and region is not None:
        scope = f"region {region_size(region)}"
        rows += [{"output": label, "scope": scope, **slice_metrics(gt, result.output(label).data, *where,
                                                                   result.value_range, region)}
                 for label in shown]
    if where is not None:
        rows += [{"output": label, "scope": f"slice {where[1]}",
                  **slice_metrics(gt, result.output(label).data, *where, result.value_range)} for label in shown]
    rows += [{"output": label, "scope": "volume", **(result.output(label).metrics or {})} for label in shown]
    return [{**row, "_tooltip": output_name(result.output(row["output"]))} for row in _with_gain(rows)]


def comparison_rows(result: RunResult, untrained_note: str, bundled: Collection[Path] = ()) -> list[dict[str, Any]]:
    """Rows of the block-comparison table; untrained (speed-only) networks show no quality.

    ``source`` says in a word where the weights come from (``bundled``: these files); ``weights`` names the file.
    """
    rows = []
    for out in result.outputs:
        quality = out.metrics if (out.metrics is not None and not out.untrained) else {}
        rows.append({
            "model": out.label,
            "network": network_name(out.model_config),
            "source": "speed only" if out.untrained else "—" if out.weights is None
            else "bundled" if out.weights in bundled else elide_middle(out.weights.name),
            "weights": untrained_note if out.untrained else ("—" if out.weights is None else out.weights.name),
            "psnr": quality.get("psnr"),
            "ssim": quality.get("ssim"),
            "seconds": out.seconds,
            "params": out.params,
            "_tooltip": output_name(out) + (". Speed only: the time and size are real; no image and no quality "
                                           "are shown." if out.untrained else ""),
        })
    return rows


# ---------------------------------------------------------------------- crops
@dataclass
class Crop:
    """One magnified image: a 2D crop and how much to magnify it (per axis, nearest neighbour)."""

    title: str
    data: np.ndarray
    magnification: tuple[int, int]


def magnification_for(shape: Sequence[int]) -> int:
    """Integer magnification that brings the longer side of ``shape`` near :data:`TARGET_PIXELS`."""
    longest = max(int(n) for n in shape) if len(shape) else 1
    return int(min(MAX_MAGNIFICATION, max(1, TARGET_PIXELS // max(longest, 1))))


def _plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    take: list[Any] = [slice(None)] * 3
    take[axis] = index
    return np.asarray(volume[tuple(take)])


def slice_metrics(ground_truth: np.ndarray, output: np.ndarray, axis: int, index: int,
                  value_range: tuple[float, float], region: tuple[slice, slice] | None = None) -> dict[str, float]:
    """Metrics of one 2D slice (``index`` along ``axis``) and optionally a rectangle of it.

    The 0–255 mapping uses ``value_range``, the whole ground truth's range (SPEC §3).
    """
    return compute_metrics(_plane(ground_truth, axis, index), _plane(output, axis, index), value_range=value_range,
                           region=region)


def crops(result: RunResult, labels: Iterable[str], where: tuple[int, int], region: Region,
          lr_region: Region | None) -> list[Crop]:
    """GT, LR, then each output at the current slice, over the same physical region."""
    axis, index = where
    rows, cols = region
    magnification = magnification_for((rows.stop - rows.start, cols.stop - cols.start))
    square = (magnification, magnification)
    out: list[Crop] = []
    if result.ground_truth is not None:
        out.append(Crop("GT", _plane(result.ground_truth, axis, index)[rows, cols], square))
    if lr_region is not None:
        displayed = [a for a in range(3) if a != axis]
        factors = (magnification * result.view_scale[displayed[0]], magnification * result.view_scale[displayed[1]])
        lr_plane = _plane(result.lr, axis, index // result.view_scale[axis])  # the LR slice this HR slice is in
        out.append(Crop("LR", lr_plane[lr_region[0], lr_region[1]], factors))
    for label in labels:
        out.append(Crop(label, _plane(result.output(label).data, axis, index)[rows, cols], square))
    return out


# ---------------------------------------------------------------------- which networks to compare
def comparison_weights(bundled: Sequence[Any], block_of: Any) -> dict[str, Any]:
    """One bundled weights entry per block, all of one modality and scale (MRI first).

    Entries marked ``comparison`` are preferred; otherwise any VolumeNet/ParallelNet weights count.
    ``block_of(entry)`` gives the entry's block.
    """
    pool = [w for w in bundled if w.model in ("volumenet", "parallelnet")]
    pool = [w for w in pool if getattr(w, "comparison", False)] or pool
    if not pool:
        return {}
    first = next((w for w in pool if w.modality == "mri"), pool[0])
    chosen: dict[str, Any] = {}
    for entry in pool:
        if entry.modality == first.modality and tuple(entry.scale) == tuple(first.scale):
            chosen.setdefault(block_of(entry), entry)
    return chosen


@dataclass(frozen=True)
class BlockRow:
    """One row of the Compare tab's checklist: a block in its backbone, or a baseline.

    With ``weights`` the file decides the network (``model`` and ``kwargs`` only name it); without,
    ``model`` and ``kwargs`` build an untrained network for a speed-only run.
    """

    name: str
    """Block first, then the network: ``xception · ParallelNet D9C32``."""
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    checked: bool = True
    weights: Path | None = None
    note: str = ""
    """How the weights were trained (steps, validation against tricubic); empty without weights."""
    below_tricubic: bool = False
    """The weights do not beat tricubic on their own validation."""
    gain: float | None = None
    """Their validation PSNR gain over tricubic (dB), where recorded."""


def block_backbone(block: str) -> str:
    """The backbone a block is compared in: VolumeNet for Queue (its own block), ParallelNet otherwise."""
    return "volumenet" if block == "queue" else "parallelnet"


def block_candidates(bundled: Sequence[Any], blocks: Sequence[str]) -> list[BlockRow]:
    """Each of ``blocks`` (checked, with its bundled comparison weights where they exist), then the baselines.

    ``bundled``: :class:`~napari_volumenet.weights.BundledWeights` (their ``model`` and ``model_kwargs``
    name the network without opening the files).
    """
    from .models import display_name

    trained = comparison_weights(bundled, lambda e: str(e.model_kwargs.get("block", "conv")))
    rows = []
    for block in blocks:
        entry = trained.get(block)
        if entry is None:
            model = block_backbone(block)
            rows.append(BlockRow(f"{block} · {display_name(model)}", model, {"block": block}, checked=False))
            continue
        name = f"{block} · {display_name(entry.model, entry.model_kwargs)}"
        rows.append(BlockRow(name, entry.model, {"block": block}, weights=entry.path, note=entry.training_note,
                             below_tricubic=entry.beats_tricubic is False, gain=entry.val_gain))
    return rows + [BlockRow(display_name(name), name, {}, checked=False) for name in ("srcnn3d", "dcsrn", "mdcsrn")]
