"""Evaluation on HR volumes with the paper's protocol (SPEC §3), as in Table III of the paper.

For every HR volume:

1. read it, crop every axis to a multiple of the scale (:func:`~napari_volumenet.ops.degrade.crop_to_multiple`);
2. simulate the LR acquisition (:func:`~napari_volumenet.ops.degrade.degrade`);
3. upscale the LR volume with ``tricubic`` (always the first row) and with each requested model,
   through the same :func:`napari_volumenet.inference.upscale` that ``volumenet upscale`` uses;
4. compare each result with the cropped HR volume (:func:`~napari_volumenet.ops.metrics.compute_metrics`:
   RMSE, PSNR, PSNR of the interior and of the outer shell one LR voxel (``s`` HR voxels) deep,
   foreground PSNR and SSIM on the 0–255 scale of the HR volume's min/max).

A *model spec* is one of

- a path to a weights file (``.pt``, written by ``volumenet-train`` / ``save_weights``),
- the name of bundled weights (``volumenet models`` lists them),
- a registry model name (``volumenet``, ``parallelnet``, ...): its bundled default weights for the
  modality and scale, or a :class:`~napari_volumenet.errors.WeightsError` if there are none.

Weights must match the requested scale and modality (checked by
:func:`~napari_volumenet.weights.load_weights`). Networks get the modality's normalisation fitted on
the LR volume (what a user would have); tricubic interpolation is linear, so it runs on the raw
intensities in fp32 (no normalisation round trip, no reduced precision). ``seconds`` is the wall
time of the upscaling alone (tiling, transfer and network), not of reading or metrics.

Library use::

    rows = evaluate(["hr_folder/"], ["runs/volumenet.pt"], scale=2, modality="mri")
    print(format_table(summarize(rows)))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_volumenet.errors import WeightsError
from napari_volumenet.inference import make_plan, upscale
from napari_volumenet.io import find_volumes, read_volume
from napari_volumenet.models import SuperResolutionNet, count_parameters, create_model, list_models
from napari_volumenet.ops.degrade import crop_to_multiple, degrade
from napari_volumenet.ops.metrics import compute_metrics
from napari_volumenet.ops.normalize import MODALITIES, fit_normalization
from napari_volumenet.ops.scale import Scale, as_scale
from napari_volumenet.weights import default_weights, list_bundled, load_weights

TRICUBIC = "tricubic"
METRICS = ("rmse", "psnr", "psnr_interior", "psnr_border", "psnr_fg", "ssim")

Progress = Callable[[str, int, int], None]
"""``progress(label, tiles_done, tiles_total)``; ``label`` names the volume and the model."""


@dataclass
class Candidate:
    """One method to evaluate: a network (with its weights) or tricubic interpolation."""

    label: str
    model: SuperResolutionNet
    weights: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.model.config["name"])

    @property
    def params(self) -> int:
        return count_parameters(self.model)


def _weights_candidate(path: Path, label: str, scale: Scale, modality: str) -> Candidate:
    model, meta = load_weights(path, scale=scale, modality=modality)
    return Candidate(label, model, path, meta)


def resolve_model_spec(spec: str, *, scale: int | Sequence[int] = 2, modality: str = "mri") -> Candidate:
    """Turn one model spec (weights path, bundled weights name or registry name) into a :class:`Candidate`."""
    s = as_scale(scale)
    spec = str(spec).strip()
    if spec == TRICUBIC:
        return Candidate(TRICUBIC, create_model(TRICUBIC, scale=s))
    path = Path(spec).expanduser()
    if path.is_file():
        model, meta = load_weights(path, scale=s, modality=modality)
        return Candidate(f"{meta['model']} ({path.name})", model, path, meta)
    bundled = {w.name: w for w in list_bundled()}
    if spec in bundled:
        return _weights_candidate(bundled[spec].path, spec, s, modality)
    if spec in list_models():
        # a registry name stands for its bundled default weights; never random weights
        try:
            path = default_weights(modality, s, model=spec)
        except WeightsError:
            raise WeightsError(
                f"no bundled weights for {spec} {modality.upper()} ×{'×'.join(map(str, s))} yet; "
                "name a weights file instead (--models path/to/weights.pt)"
            ) from None
        return _weights_candidate(path, spec, s, modality)
    if path.suffix in (".pt", ".pth") or "/" in spec or "\\" in spec:
        raise WeightsError(f"weights file not found: {spec}")
    raise WeightsError(
        f"{spec!r} is neither a weights file, nor bundled weights "
        f"({', '.join(bundled) or 'none are bundled yet'}), nor a model ({', '.join(list_models())})"
    )


def default_model_specs(modality: str = "mri", scale: int | Sequence[int] = 2) -> list[str]:
    """The bundled weights for ``modality`` and ``scale`` (what ``--models`` means when left empty), without
    the block-comparison weights (name those in ``--models`` to evaluate them)."""
    s = as_scale(scale)
    return [w.name for w in list_bundled() if w.modality == modality and w.scale == s and not w.comparison]


def resolve_candidates(
    model_specs: Iterable[str], *, scale: int | Sequence[int] = 2, modality: str = "mri"
) -> list[Candidate]:
    """Tricubic first, then each distinct spec of ``model_specs`` (all resolved before any work starts)."""
    if modality not in MODALITIES:
        raise WeightsError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    s = as_scale(scale)
    candidates = [Candidate(TRICUBIC, create_model(TRICUBIC, scale=s))]
    seen = {TRICUBIC}
    for spec in model_specs:
        spec = str(spec).strip()
        if not spec or spec in seen:
            continue
        seen.add(spec)
        candidate = resolve_model_spec(spec, scale=s, modality=modality)
        labels = {c.label for c in candidates}
        if candidate.label in labels:  # two files with the same name in different folders
            candidate.label = f"{candidate.architecture} ({candidate.weights})"
        candidates.append(candidate)
    return candidates


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(
    hr_paths: Sequence[str | Path],
    model_specs: Sequence[str] = (),
    *,
    scale: int | Sequence[int] = 2,
    modality: str = "mri",
    tile: int | Sequence[int] | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: Progress | None = None,
    engine: str = "fast",
) -> list[dict[str, Any]]:
    """Evaluate tricubic and every model of ``model_specs`` on every HR volume under ``hr_paths``.

    Returns one row per (volume, model), volumes in order, tricubic first for each volume::

        {"volume": str, "model": label, "architecture": str, "weights": str | None,
         "scale": [s0, s1, s2], "modality": str, "hr_shape": [...], "lr_shape": [...],
         "rmse": float, "psnr": float, "psnr_fg": float, "ssim": float,
         "seconds": float, "params": int, "plan": {...}}

    Raises :class:`~napari_volumenet.errors.VolumeNetError` subclasses for bad volumes or model specs;
    all model specs are checked before the first volume is read.
    """
    s = as_scale(scale)
    candidates = resolve_candidates(model_specs, scale=s, modality=modality)
    volumes = find_volumes([Path(p) for p in hr_paths])
    rows: list[dict[str, Any]] = []
    for path in volumes:
        volume = read_volume(path)
        hr = np.ascontiguousarray(crop_to_multiple(volume.data, s), dtype=np.float32)
        lr = degrade(hr, s)
        for candidate in candidates:
            is_tricubic = candidate.architecture == TRICUBIC
            normalization = None if is_tricubic else fit_normalization(lr, modality)
            plan = make_plan(lr.shape, candidate.model, tile=tile, device=device,
                             precision="fp32" if is_tricubic else precision, engine=engine)
            label = f"{path.name} · {candidate.label}"
            callback = None if progress is None else (lambda done, total, _l=label: progress(_l, done, total))
            start = time.perf_counter()
            sr = upscale(lr, candidate.model, normalization=normalization, plan=plan, progress=callback)
            seconds = time.perf_counter() - start
            metrics = compute_metrics(hr, sr, border=s)
            rows.append({
                "volume": str(path),
                "model": candidate.label,
                "architecture": candidate.architecture,
                "weights": None if candidate.weights is None else str(candidate.weights),
                "scale": list(s),
                "modality": modality,
                "hr_shape": list(hr.shape),
                "lr_shape": list(lr.shape),
                **{k: float(metrics[k]) for k in METRICS},
                "seconds": seconds,
                "params": candidate.params,
                "plan": plan.to_dict(),
            })
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model (in order of first appearance): the mean of each metric and of the time over volumes."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)
    summary = []
    for label, group in groups.items():
        summary.append({
            "model": label,
            "architecture": group[0]["architecture"],
            "weights": group[0]["weights"],
            "volumes": len(group),
            **{k: float(np.mean([r[k] for r in group])) for k in (*METRICS, "seconds")},
            "params": int(group[0]["params"]),
        })
    return summary


def _format_params(n: int) -> str:
    return "0" if n == 0 else f"{n / 1e6:.3f} M"


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """Markdown table in the style of the paper's Table III (means over the volumes)."""
    header = ["model", "RMSE", "PSNR (dB)", "interior (dB)", "border (dB)", "PSNR-fg (dB)", "SSIM", "time (s)",
              "#params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in summary:
        cells = [
            str(row["model"]),
            f"{row['rmse']:.3f}",
            f"{row['psnr']:.2f}",
            f"{row['psnr_interior']:.2f}",
            f"{row['psnr_border']:.2f}",
            f"{row['psnr_fg']:.2f}",
            f"{row['ssim']:.4f}",
            f"{row['seconds']:.2f}",
            _format_params(int(row["params"])),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """JSON-safe report (non-finite numbers, e.g. the PSNR of a perfect result, become ``null``)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return _finite_or_none(obj)

    return clean({**extra, "rows": list(rows), "summary": list(summary)})


SUMMARY_COLUMNS = ("model", "architecture", "weights", "volumes", *METRICS, "seconds", "params")
