"""Display windows (napari contrast limits) for MRI and CT volumes, without Qt or napari.

- MRI: the 2nd–98th percentiles of the *foreground*, the voxels above 10 % of the way from the
  volume's minimum to its 99.9th percentile. The background (often half of a head scan) would
  otherwise pull the low end to 0 and leave grey and white matter in the top third of the window
  (0–233 on the bundled sample: grey matter at 0.72, white matter at 0.88 of it). Measured on the
  sample and the two 1 mm T1 heads of ``shared/data``, grey matter lands at 0.46–0.61 of the window
  and white matter at 0.72–0.89; 99.5 % instead of 98 % lets scalp fat push white matter down to 0.55.
- CT: the radiologist's presets, as level/width in HU (:data:`CT_PRESETS`); a volume whose 0.5th
  percentile lies below −500 (air in HU) is taken for CT and opens with the soft-tissue window.
"""

from __future__ import annotations

import numpy as np

Window = tuple[float, float]
"""(low, high) display limits, in the volume's units."""

FOREGROUND = "foreground 2–98 %"
"""Name of the percentile window in the widget's window list."""
PERCENTILES = (2.0, 98.0)
FOREGROUND_FRACTION = 0.1
"""The foreground threshold: this fraction of the way from the minimum to the 99.9th percentile."""
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "soft tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
}
"""CT windows as (level, width) in HU."""
CT_DEFAULT = "soft tissue"
CT_AIR_BELOW = -500.0
"""A volume with its 0.5th percentile below this is taken for CT in HU (MRI has no such values)."""
MAX_SAMPLES = 500_000
"""Voxels looked at, at most: a regular subsample of whole slices for bigger volumes."""


def level_width(level: float, width: float) -> Window:
    """(low, high) of a window centred on ``level`` and ``width`` wide (HU for CT)."""
    return float(level - width / 2.0), float(level + width / 2.0)


def preset_name(name: str) -> str:
    """How a CT preset reads in the window list: ``brain (40/80 HU)``."""
    level, width = CT_PRESETS[name]
    return f"{name} ({level:g}/{width:g} HU)"


def _sample(data: np.ndarray) -> np.ndarray:
    """Every k-th slice along axis 0 of ``data`` so that about :data:`MAX_SAMPLES` voxels remain (float64)."""
    data = np.asarray(data)
    per_slice = max(1, int(np.prod(data.shape[1:])))
    step = max(1, -(-data.shape[0] * per_slice // MAX_SAMPLES)) if data.ndim > 1 else 1
    values = np.asarray(data[::step], dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def _widened(low: float, high: float, values: np.ndarray) -> Window:
    """``(low, high)``, or the whole range of ``values`` (at least 1 wide) when they coincide."""
    if not high > low and values.size:
        low, high = float(values.min()), float(values.max())
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def _foreground(values: np.ndarray, percentiles: tuple[float, float], fraction: float) -> Window:
    """:func:`foreground_window` of the finite voxel values ``values`` (1D float64)."""
    if not values.size:
        return 0.0, 1.0
    low, top = float(values.min()), float(np.percentile(values, 99.9))
    foreground = values[values > low + fraction * (top - low)]
    if foreground.size < 2:
        foreground = values
    return _widened(*(float(v) for v in np.percentile(foreground, percentiles)), values)


def _is_ct(values: np.ndarray) -> bool:
    return bool(values.size) and float(np.percentile(values, 0.5)) < CT_AIR_BELOW


def foreground_window(data: np.ndarray, percentiles: tuple[float, float] = PERCENTILES,
                      fraction: float = FOREGROUND_FRACTION) -> Window:
    """Percentiles of the voxels above the foreground threshold (see the module docstring)."""
    return _foreground(_sample(data), percentiles, fraction)


def looks_like_ct(data: np.ndarray) -> bool:
    """Whether ``data`` holds HU: its 0.5th percentile is air (below :data:`CT_AIR_BELOW`)."""
    return _is_ct(_sample(data))


def default_window(data: np.ndarray, modality: str | None = None) -> Window:
    """The window a volume opens with: CT's soft-tissue preset, else the foreground percentiles.

    ``modality``: ``"mri"``, ``"ct"`` or ``None`` (guessed with :func:`looks_like_ct`).
    """
    values = _sample(data)
    ct = _is_ct(values) if modality is None else modality == "ct"
    return level_width(*CT_PRESETS[CT_DEFAULT]) if ct else _foreground(values, PERCENTILES, FOREGROUND_FRACTION)


def window_names(modality: str) -> list[str]:
    """The choices of the widget's window list: the foreground percentiles, then for CT the presets."""
    return [FOREGROUND, *(preset_name(name) for name in CT_PRESETS)] if modality == "ct" else [FOREGROUND]


def named_window(name: str, data: np.ndarray) -> Window:
    """The window called ``name`` (an entry of :func:`window_names`) for the volume ``data``."""
    for preset, (level, width) in CT_PRESETS.items():
        if name == preset_name(preset):
            return level_width(level, width)
    if name == FOREGROUND:
        return foreground_window(data)
    raise ValueError(f"Unknown window {name!r}; choose one of {', '.join(window_names('ct'))}.")
