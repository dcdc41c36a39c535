"""Figures of evaluation results (matplotlib's Agg canvas directly: no pyplot, no display, no global
backend switch). matplotlib is optional: each function returns ``None`` when it is not installed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_failure
from .errors import OutputError


def plot_psnr_vs_params(summary: Iterable[Mapping[str, Any]], path: str | Path, *, title: str | None = None) -> Path | None:
    """The paper's Fig. 5: mean PSNR against #parameters, marker area proportional to the time.

    ``summary`` rows as :func:`napari_volumenet.evaluation.summarize` makes them (``model``, ``psnr``,
    ``params``, ``seconds``). Interpolation (0 parameters) sits at the left edge. Writes a PNG
    atomically; ``None`` without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = [r for r in summary if math.isfinite(float(r["psnr"]))]
    if not rows:
        raise OutputError(f"cannot plot {path}: no method has a finite PSNR")
    slowest = max(float(r["seconds"]) for r in rows) or 1.0
    figure = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    for row in rows:
        params_m = int(row["params"]) / 1e6
        area = 40 + 900 * float(row["seconds"]) / slowest
        axis.scatter([params_m], [float(row["psnr"])], s=area, alpha=0.55)
        axis.annotate(f"{row['model']}\n{float(row['seconds']):.1f} s", (params_m, float(row["psnr"])),
                      textcoords="offset points", xytext=(8, 4), fontsize=7)
    axis.set_xlabel("parameters (millions)")
    axis.set_ylabel("mean PSNR (dB)")
    axis.grid(True, alpha=0.3)
    axis.set_title(title or "PSNR against size (marker area ∝ time)", fontsize=10)
    figure.tight_layout()
    return _save_png(figure, Path(path), dpi=110)


def plot_slices(panels: Sequence[tuple[str, np.ndarray]], path: str | Path, *, value_range: tuple[float, float],
                title: str | None = None, aspect: float = 1.0) -> Path | None:
    """A row of grey-scale 2D images ``(title, (rows, columns) array)``, one shared ``value_range``.

    ``aspect``: height of a row over the width of a column (mm), so physical shapes are kept. Writes a PNG
    atomically; ``None`` without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(2.6 * len(panels), 3.2))
    FigureCanvasAgg(figure)
    for i, (name, image) in enumerate(panels):
        axis = figure.add_subplot(1, len(panels), i + 1)
        axis.imshow(image, cmap="gray", vmin=value_range[0], vmax=value_range[1], aspect=aspect,
                    interpolation="nearest", origin="lower")
        axis.set_title(name, fontsize=8)
        axis.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _save_png(figure, Path(path), dpi=120)


def _save_png(figure: Any, path: Path, dpi: int) -> Path:
    """``figure`` as a PNG at ``path``, atomically; a failed write (a full disk) is one :class:`OutputError`."""
    try:
        with atomic_path(path, suffix=".png") as temp:
            figure.savefig(temp, format="png", dpi=dpi)
    except OSError as error:
        raise write_failure(path, error) from None
    return path
