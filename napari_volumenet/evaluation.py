"""The one evaluation protocol (SPEC §3), used by ``volumenet evaluate``, ``volumenet upscale``, the
napari widget and training validation.

For an HR volume: crop every axis to a multiple of the factor, simulate the LR acquisition
(:class:`Degradation`: :func:`~napari_volumenet.ops.degrade.degrade`, or thick slices along one
axis), upscale it with each :class:`Method` (tricubic interpolation first, then networks) through
:func:`upscale_with`, and score each result against the cropped HR volume (:func:`score`: RMSE,
PSNR, PSNR of the interior and of the outer shell one LR voxel deep, foreground PSNR and SSIM on
the 0–255 scale of the HR volume's min/max).

A network gets the modality's normalisation fitted on the LR volume (what a user has); tricubic
interpolation is linear, so it runs on the raw intensities in fp32. A through-plane network (scale
``(1, 1, f)``) runs with the slice axis moved to its axis 2
(:func:`~napari_volumenet.inference.through_plane_axes`). ``seconds`` is the wall time of the
upscaling alone (tiling, transfer and network), not of reading or metrics.

Library use::

    rows = evaluate(["hr_folder/"], ["volumenet"], degradation=Degradation.resize(2), modality="mri")
    print(format_table(summarize(rows)))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import json_safe
from .errors import InputError, ModelError, WeightsError
from .inference import Plan, RunOptions, drive, through_plane_axes, upscale_steps
from .io import find_volumes, read_volume
from .models import SuperResolutionNet, count_parameters, create_model, list_models
from .ops.normalize import MODALITIES, Normalization, fit_normalization
from .ops.padding import resolve_padding
from .ops.scale import Scale, along_axis, as_scale
from .weights import default_weights, list_bundled, load_weights

TRICUBIC = "tricubic"
METRICS = ("rmse", "psnr", "psnr_interior", "psnr_border", "psnr_fg", "ssim")
SUMMARY_COLUMNS = ("model", "architecture", "weights", "volumes", *METRICS, "seconds", "params")

Progress = Callable[[str, int, int], None]
"""``progress(label, tiles_done, tiles_total)``; ``label`` names the volume and the method."""


# ----------------------------------------------------------------------------- degradation


@dataclass(frozen=True)
class Degradation:
    """How the LR volume is simulated from an HR one.

    ``scale``: factor per volume axis. ``thick_axis`` ``None``: SPEC §3 anti-aliased cubic
    downsampling (:func:`~napari_volumenet.ops.degrade.degrade`); an axis: thick slices of
    ``scale[thick_axis]`` HR slices along it (box profile, ``gap`` HR slices between slabs).
    """

    scale: Scale
    thick_axis: int | None = None
    gap: float = 0.0

    @classmethod
    def resize(cls, scale: int | Sequence[int] = 2) -> Degradation:
        return cls(as_scale(scale))

    @classmethod
    def thick(cls, axis: int, factor: int, gap: float = 0.0) -> Degradation:
        if axis not in (0, 1, 2) or factor < 2:
            raise InputError(f"Thick slices need an axis 0, 1 or 2 and a factor ≥ 2, got axis {axis}, factor {factor}.")
        return cls(along_axis(axis, factor), int(axis), float(gap))

    @property
    def network_scale(self) -> Scale:
        """The scale of the networks that undo it: ``scale``, or ``(1, 1, f)`` for thick slices."""
        return self.scale if self.thick_axis is None else (1, 1, self.scale[self.thick_axis])

    @property
    def network_axes(self) -> tuple[int, int, int] | None:
        """The volume's axes in a through-plane network's order (``None``: as they are)."""
        return None if self.thick_axis is None else through_plane_axes(self.thick_axis)

    def apply(self, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(hr_cropped, lr)``: ``hr`` float32 cropped to a multiple of the scale, and its LR simulation."""
        from .ops.degrade import crop_to_multiple, degrade, thick_slices  # scikit-image: only where LR is simulated

        if self.thick_axis is None:  # both crop as crop_to_multiple does; a refusal names the shape as read
            lr = degrade(hr, self.scale)
        else:
            lr = thick_slices(hr, self.thick_axis, self.scale[self.thick_axis], self.gap)
        return np.ascontiguousarray(crop_to_multiple(hr, self.scale), dtype=np.float32), lr

    def describe(self) -> str:
        factors = "×".join(map(str, self.scale))
        if self.thick_axis is None:
            return f"LR = degrade(HR, {factors})"
        gap = f", gap {self.gap:g}" if self.gap else ""
        return f"LR = thick slices of {self.scale[self.thick_axis]} HR slices along axis {self.thick_axis}{gap}"


# ----------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Method:
    """One way to upscale: tricubic interpolation, a network with weights, or an untrained network (speed only)."""

    label: str
    weights: Path | None = None
    model: str | None = None
    """Registry name: required without weights (``tricubic`` or an untrained network); with weights,
    the file must hold this model."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Architecture arguments of an untrained network (``depth``, ``channels``, ``block``...)."""

    @property
    def interpolation(self) -> bool:
        return self.weights is None and self.model == TRICUBIC

    @property
    def untrained(self) -> bool:
        return self.weights is None and not self.interpolation


def tricubic_method() -> Method:
    return Method(TRICUBIC, model=TRICUBIC)


def resolve_method(spec: str, *, scale: Scale, modality: str) -> Method:
    """One ``--models`` entry (``tricubic``, a weights path, bundled weights name or registry name) → :class:`Method`.

    A registry name stands for its bundled default weights for ``modality`` and ``scale``; never random weights.
    """
    spec = str(spec).strip()
    if spec == TRICUBIC:
        return tricubic_method()
    path = Path(spec).expanduser()
    if path.is_file():
        return Method(path.name, path)
    bundled = {w.name: w for w in list_bundled()}
    if spec in bundled:
        return Method(spec, bundled[spec].path)
    if spec in list_models():
        try:
            return Method(spec, default_weights(modality, scale, model=spec), spec)
        except WeightsError:
            raise WeightsError(
                f"no bundled weights for {spec} {modality.upper()} ×{'×'.join(map(str, scale))} yet; "
                "name a weights file instead (--models path/to/weights.pt)"
            ) from None
    if path.suffix in (".pt", ".pth") or "/" in spec or "\\" in spec:
        raise WeightsError(f"weights file not found: {spec}")
    raise WeightsError(
        f"{spec!r} is neither a weights file, nor bundled weights "
        f"({', '.join(bundled) or 'none are bundled yet'}), nor a model ({', '.join(list_models())})"
    )


def default_methods(modality: str = "mri", scale: int | Sequence[int] = 2) -> list[str]:
    """The bundled weights for ``modality`` and ``scale`` (what ``--models`` means when left empty), without
    the block-comparison weights (name those to evaluate them)."""
    s = as_scale(scale)
    return [w.name for w in list_bundled() if w.modality == modality and w.scale == s and not w.comparison]


@dataclass
class Loaded:
    """A :class:`Method` with its network built (weights loaded) and the weights' metadata."""

    method: Method
    network: SuperResolutionNet
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.method.label

    @property
    def architecture(self) -> str:
        return str(self.network.config["name"])

    @property
    def params(self) -> int:
        return count_parameters(self.network)


class NetworkCache:
    """Networks built from weights files, kept for the next run of a long-lived caller (the napari widget).

    A file is known by its resolved path, size and modification time, so a file written anew is read anew.
    The networks handed out are shared between runs: only inference may use them (training a fit builds its
    own). Holds the :attr:`capacity` most recently used, a few MiB of parameters each.
    """

    capacity = 8

    def __init__(self) -> None:
        self._networks: dict[tuple[Any, ...], tuple[SuperResolutionNet, dict[str, Any]]] = {}

    def load(self, path: Path, *, model: str | None, modality: str | None) -> tuple[SuperResolutionNet, dict[str, Any]]:
        """:func:`~napari_volumenet.weights.load_weights` of ``path``, built once per file version."""
        try:
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, model, modality)
        except OSError:  # let load_weights say what is wrong with the path
            return load_weights(path, model=model, modality=modality)
        built = self._networks.pop(key, None) or load_weights(path, model=model, modality=modality)
        self._networks[key] = built  # the most recently used last
        while len(self._networks) > self.capacity:
            del self._networks[next(iter(self._networks))]
        return built


def _build(method: Method, scale: Scale | None, modality: str | None, seed: int,
           cache: NetworkCache | None = None) -> Loaded:
    if method.weights is not None:
        load = load_weights if cache is None else cache.load
        network, meta = load(Path(method.weights), model=method.model, modality=modality)
        return Loaded(method, network, meta)
    if method.model is None:
        raise ModelError(f"{method.label}: choose a model or a weights file")
    torch.manual_seed(seed)  # untrained networks: the same random weights on every run
    return Loaded(method, create_model(method.model, **{**dict(method.kwargs), "scale": scale or 2}).eval())


def load_methods(methods: Sequence[Method], *, modality: str | None = None, scale: int | Sequence[int] | None = None,
                 seed: int = 0, cache: NetworkCache | None = None) -> tuple[list[Loaded], Scale, str]:
    """Build every method; check that they share one scale and one modality.

    Networks with weights come first to fix the scale and modality (from their metadata; a given
    ``modality`` must match); interpolation and untrained networks follow (``scale``, default 2;
    ``modality``, default MRI). Returns the loaded methods in the given order, the scale, the modality.
    Weights files come from ``cache`` when one is given (networks for inference only).
    """
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"Unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}.")
    fixed_scale = None if scale is None else as_scale(scale)
    fixed_modality = modality
    loaded: dict[int, Loaded] = {}
    for i in sorted(range(len(methods)), key=lambda k: methods[k].weights is None):
        item = _build(methods[i], fixed_scale, fixed_modality, seed, cache)
        if fixed_scale is not None and tuple(item.network.scale) != fixed_scale:
            raise WeightsError(f"{item.label} upscales by {tuple(item.network.scale)}, but the other methods by "
                               f"{fixed_scale}; compare methods of one scale")
        fixed_scale = tuple(item.network.scale)  # type: ignore[assignment]
        if item.metadata:
            if fixed_modality is not None and item.metadata.get("modality") != fixed_modality:
                raise WeightsError(f"{item.label} was trained on {item.metadata.get('modality')!r} data, "
                                   f"not {fixed_modality!r}")
            fixed_modality = str(item.metadata.get("modality"))
        loaded[i] = item
    return [loaded[i] for i in range(len(methods))], fixed_scale or as_scale(scale or 2), fixed_modality or "mri"


# ----------------------------------------------------------------------------- the protocol


@dataclass
class Upscaled:
    """What :func:`upscale_with` returns: the HR volume (input units) and how it was made."""

    data: np.ndarray
    seconds: float
    plan: Plan
    normalization: Normalization | None
    pad_value: float | None


def upscale_with(
    lr: np.ndarray,
    network: SuperResolutionNet,
    *,
    modality: str,
    options: RunOptions = RunOptions(),
    plan: Plan | None = None,
    axes: Sequence[int] | None = None,
    pad_value: float | str | None = "auto",
    normalization: Normalization | None = None,
) -> Generator[tuple[int, int], None, Upscaled]:
    """Upscale ``lr`` (input units) with ``network`` as every entry point does; yields ``(done, total)`` tiles.

    Interpolation (no parameters) runs on raw intensities in fp32; a network gets ``normalization``
    (default: fitted on ``lr`` for ``modality``) and the CT padding rule (``pad_value``). ``axes``:
    the volume's axes in the network's order (a through-plane network's slice axis last). ``plan``
    (for the shape the network sees) replaces the one ``options`` would make.
    """
    interpolation = count_parameters(network) == 0
    if not interpolation and normalization is None:
        normalization = fit_normalization(lr, modality)
    padding = None if interpolation else resolve_padding(lr, modality, pad_value)
    shape = lr.shape if axes is None else tuple(lr.shape[a] for a in axes)
    plan = plan or options.plan(shape, network, precision="fp32" if interpolation else None)
    seconds = 0.0
    steps = upscale_steps(lr, network, normalization=None if interpolation else normalization, plan=plan,
                          pad_value=None if padding is None else padding.value, axes=axes)
    try:
        while True:
            start = time.perf_counter()
            try:
                done, total = next(steps)
            except StopIteration as finished:
                seconds += time.perf_counter() - start
                return Upscaled(finished.value, seconds, plan, None if interpolation else normalization,
                                None if padding is None else float(padding.value))
            seconds += time.perf_counter() - start
            yield done, total
    finally:
        steps.close()


def score(hr: np.ndarray, sr: np.ndarray, scale: Sequence[int]) -> dict[str, float]:
    """SPEC §3 metrics of ``sr`` against ``hr`` with the border shell one LR voxel (``scale`` HR voxels) deep."""
    from .ops.metrics import compute_metrics  # scikit-image: not loaded by ``volumenet upscale``

    return compute_metrics(hr, sr, border=tuple(scale))


def network_axes(network: SuperResolutionNet, degradation: Degradation) -> tuple[int, int, int] | None:
    """How ``network`` meets a volume degraded by ``degradation``: as is, or with the slice axis moved last."""
    if tuple(network.scale) == degradation.scale:
        return None
    if degradation.thick_axis is not None and tuple(network.scale) == degradation.network_scale:
        return degradation.network_axes
    raise WeightsError(f"a network of scale {tuple(network.scale)} does not undo {degradation.describe()}")


def resolve_methods(specs: Iterable[str], *, degradation: Degradation, modality: str) -> list[Loaded]:
    """Tricubic first, then each distinct spec, all loaded and checked before any work starts.

    Weights files are labelled ``model (file name)``; two files of one name get their full path.
    """
    if modality not in MODALITIES:
        raise WeightsError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    scale = degradation.network_scale
    methods, seen = [], {TRICUBIC}
    for spec in specs:
        spec = str(spec).strip()
        if spec and spec not in seen:
            seen.add(spec)
            methods.append(resolve_method(spec, scale=scale, modality=modality))
    loaded, _, _ = load_methods(methods, modality=modality, scale=scale)
    tricubic = Loaded(tricubic_method(), create_model(TRICUBIC, scale=degradation.scale))
    labels = {TRICUBIC}
    for item in loaded:
        weights = item.method.weights
        if weights is not None and item.label == weights.name:
            item.method = Method(f"{item.metadata['model']} ({weights.name})", weights)
        if item.label in labels:
            item.method = Method(f"{item.architecture} ({weights})", weights)
        labels.add(item.label)
    return [tricubic, *loaded]


def evaluate(
    hr_paths: Sequence[str | Path],
    specs: Sequence[str] = (),
    *,
    degradation: Degradation = Degradation.resize(2),
    modality: str = "mri",
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Evaluate tricubic and every method of ``specs`` on every HR volume under ``hr_paths``.

    Returns one row per (volume, method), volumes in order, tricubic first for each volume::

        {"volume": str, "model": label, "architecture": str, "weights": str | None,
         "scale": [s0, s1, s2], "modality": str, "hr_shape": [...], "lr_shape": [...],
         "rmse": float, "psnr": float, ..., "seconds": float, "params": int, "plan": {...}}

    Raises :class:`~napari_volumenet.errors.VolumeNetError` subclasses for bad volumes or specs;
    every spec is checked before the first volume is read.
    """
    methods = resolve_methods(specs, degradation=degradation, modality=modality)
    rows: list[dict[str, Any]] = []
    for path in find_volumes([Path(p) for p in hr_paths]):
        rows.extend(evaluate_volume(path, methods, degradation=degradation, modality=modality, options=options,
                                    progress=progress))
    return rows


def evaluate_volume(
    path: Path, methods: Sequence[Loaded], *, degradation: Degradation, modality: str, options: RunOptions,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """The rows of :func:`evaluate` for one HR volume file and the :func:`resolve_methods` ``methods``."""
    hr, lr = degradation.apply(read_volume(path).data)
    rows: list[dict[str, Any]] = []
    for item in methods:
        label = f"{path.name} · {item.label}"
        report = None if progress is None else (lambda done, total, _l=label: progress(_l, done, total))
        result = drive(upscale_with(lr, item.network, modality=modality, options=options,
                                  axes=network_axes(item.network, degradation)), report)
        metrics = score(hr, result.data, degradation.scale)
        rows.append({
            "volume": str(path), "model": item.label, "architecture": item.architecture,
            "weights": None if item.method.weights is None else str(item.method.weights),
            "scale": list(degradation.scale), "modality": modality,
            "hr_shape": list(hr.shape), "lr_shape": list(lr.shape),
            **{k: float(metrics[k]) for k in METRICS},
            "seconds": result.seconds, "params": item.params, "plan": result.plan.to_dict(),
        })
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method (in order of first appearance): the mean of each metric and of the time over volumes."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    return [{
        "model": label,
        "architecture": group[0]["architecture"],
        "weights": group[0]["weights"],
        "volumes": len(group),
        **{k: float(np.mean([r[k] for r in group])) for k in (*METRICS, "seconds")},
        "params": int(group[0]["params"]),
    } for label, group in groups.items()]


def _format_params(n: int) -> str:
    return "0" if n == 0 else f"{n / 1e6:.3f} M"


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """Markdown table in the style of the paper's Table III (means over the volumes)."""
    header = ["model", "RMSE", "PSNR (dB)", "interior (dB)", "border (dB)", "PSNR-fg (dB)", "SSIM", "time (s)",
              "#params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in summary:
        cells = [str(row["model"]), f"{row['rmse']:.3f}", f"{row['psnr']:.2f}", f"{row['psnr_interior']:.2f}",
                 f"{row['psnr_border']:.2f}", f"{row['psnr_fg']:.2f}", f"{row['ssim']:.4f}", f"{row['seconds']:.2f}",
                 _format_params(int(row["params"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """JSON-safe report (non-finite numbers, e.g. the PSNR of a perfect result, become ``null``)."""
    return json_safe({**extra, "rows": list(rows), "summary": list(summary)})
