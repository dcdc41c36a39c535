"""Training curves (the paper's Fig. 3): training L1 loss and validation PSNR against epochs.

Uses matplotlib's Agg canvas directly (no pyplot, no display, no global backend switch). matplotlib is only
needed for the PNG; :func:`plot_training_curves` returns ``None`` when it is not installed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from napari_volumenet.atomic import atomic_path


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` with every value as a float (empty cells → nan)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                try:
                    parsed[key] = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    parsed[key] = math.nan
            rows.append(parsed)
    return rows


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_training_curves(
    rows: Iterable[Mapping[str, Any]],
    path: str | Path,
    *,
    steps_per_epoch: int,
    tricubic_psnr: float | None = None,
    title: str | None = None,
) -> Path | None:
    """Write the two-panel training figure to ``path`` (PNG, atomically); ``None`` without matplotlib.

    ``rows`` are metrics rows (``step``, ``train_loss``, ``val_psnr``); the x axis is
    ``step / steps_per_epoch``, so partial epochs (a run stopped by ``--max-steps``) sit where
    they belong. ``tricubic_psnr`` is drawn as a dashed horizontal line on the PSNR panel.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = list(rows)
    epochs = [float(r["step"]) / steps_per_epoch for r in rows]
    loss = [float(r.get("train_loss", math.nan)) for r in rows]
    psnr = [float(r.get("val_psnr", math.nan)) for r in rows]

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    left.plot(epochs, loss, marker="o", markersize=3, color="tab:blue", label="training L1")
    left.set_xlabel("epoch")
    left.set_ylabel("L1 loss (normalised intensities)")
    left.set_title("training loss")
    if any(v > 0 for v in loss if math.isfinite(v)):
        left.set_yscale("log")
    left.grid(True, alpha=0.3)

    valid = [(e, p) for e, p in zip(epochs, psnr) if math.isfinite(p)]
    if valid:
        right.plot(*zip(*valid), marker="o", markersize=3, color="tab:red", label="network (validation)")
        best_epoch, best = max(valid, key=lambda ep: ep[1])
        right.plot([best_epoch], [best], marker="*", markersize=12, color="tab:red", linestyle="none",
                   label=f"best {best:.2f} dB")
    if tricubic_psnr is not None and math.isfinite(tricubic_psnr):
        right.axhline(tricubic_psnr, color="gray", linestyle="--", label=f"tricubic {tricubic_psnr:.2f} dB")
    right.set_xlabel("epoch")
    right.set_ylabel("PSNR (dB)")
    right.set_title("validation PSNR")
    right.grid(True, alpha=0.3)
    right.legend(loc="best", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()

    path = Path(path)
    with atomic_path(path, suffix=".png") as temp:
        figure.savefig(temp, format="png")
    return path
