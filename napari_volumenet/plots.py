"""Figures of evaluation results (matplotlib's Agg canvas directly: no pyplot, no display, no global
backend switch). matplotlib is optional: each function returns ``None`` when it is not installed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_path


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
        raise ValueError("nothing to plot: no finite PSNR in the summary")
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
    path = Path(path)
    with atomic_path(path, suffix=".png") as temp:
        figure.savefig(temp, format="png", dpi=110)
    return path
