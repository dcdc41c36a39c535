"""The metrics table, the block-comparison (Table IV) table, and their CSV export."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .._names import elide_middle
from ..atomic import write_text_atomic

METRIC_COLUMNS = ("output", "scope", "psnr", "gain", "ssim")
METRIC_HEADERS = ("Output", "Scope", "PSNR", "Gain", "SSIM")
METRIC_CSV_COLUMNS = ("output", "scope", "rmse", "psnr", "gain", "psnr_fg", "ssim")
"""The table shows PSNR, its gain over tricubic and SSIM; the CSV has every metric."""
COMPARISON_COLUMNS = ("model", "source", "psnr", "ssim", "seconds", "params")
COMPARISON_HEADERS = ("Model", "Weights", "PSNR", "SSIM", "Time", "Params")
COMPARISON_CSV_COLUMNS = ("model", "network", "weights", "psnr", "ssim", "seconds", "params")
"""The CSV names each network and weights file in full (the table shows them in its tooltips)."""
HEADER_TIPS = {
    "PSNR": "PSNR (dB) against the ground truth on the 0–255 scale of its range (the paper's protocol)",
    "Gain": "PSNR gain over tricubic interpolation in the same scope (dB)",
    "SSIM": "SSIM against the ground truth (3D for the volume, 2D for a slice or region)",
    "Time": "Seconds the method took on this input",
    "Params": "Trainable parameters of the network",
    "Weights": "bundled: the weights shipped with napari-volumenet; else the file's name (its path in the tooltip)",
}
DECIMALS = {"rmse": 3, "psnr": 2, "psnr_fg": 2, "ssim": 4, "seconds": 2, "gain": 2}
SIGNED = ("gain",)


def format_value(key: str, value: Any) -> str:
    """Table text of one cell: fixed decimals for numbers, ``—`` for missing, ``∞`` for identical volumes."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞"
        sign = "+" if key in SIGNED else ""
        return f"{value:{sign}.{DECIMALS.get(key, 3)}f}"
    if key == "params" and isinstance(value, int):
        return f"{value / 1e6:.3f} M" if value >= 1000 else str(value)
    return str(value)


def make_table(headers: Sequence[str], name_column: int = 0) -> QTableWidget:
    """A read-only table whose columns fit their contents, the ``name_column`` taking the rest (Qt elides
    it in the middle if it still does not fit)."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    for column, title in enumerate(headers):
        table.horizontalHeaderItem(column).setToolTip(HEADER_TIPS.get(title, ""))
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.ElideMiddle)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    header.setMinimumSectionSize(36)
    for column in range(len(headers)):
        mode = QHeaderView.Stretch if column == name_column else QHeaderView.ResizeToContents
        header.setSectionResizeMode(column, mode)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
    return table


def cell_text(key: str, value: Any) -> tuple[str, str]:
    """(shown text, tooltip) of one cell: text longer than :data:`~.._names.MAX_NAME` is middle-elided, its
    full text in the tooltip."""
    text = format_value(key, value)
    shown = elide_middle(text)
    return shown, (text if shown != text else "")


def fill_table(table: QTableWidget, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Show ``rows`` (dicts keyed by ``columns``) in ``table``; numbers right-aligned.

    A row's optional ``"_tooltip"`` (its full name) is shown over each of its cells, after an elided cell's
    full text.
    """
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, key in enumerate(columns):
            value = row.get(key)
            text, full = cell_text(key, value)
            item = QTableWidgetItem(text)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
            tip = "\n".join(t for t in (full, row.get("_tooltip") or "") if t)
            if tip:
                item.setToolTip(tip)
            table.setItem(r, c, item)


def fit_rows(table: QTableWidget, minimum: int = 3) -> None:
    """Make ``table`` exactly as tall as its rows (at least ``minimum``): every row shows, none scrolls."""
    rows = max(table.rowCount(), minimum)
    height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    height += (rows - table.rowCount()) * table.verticalHeader().defaultSectionSize()
    if table.horizontalScrollBar().isVisible():
        height += table.horizontalScrollBar().sizeHint().height()
    table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setFixedHeight(height)


def table_text(table: QTableWidget) -> list[list[str]]:
    """Every cell's text, row by row (for tests and for what the user sees)."""
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` with full precision (``inf``/``nan`` as text) atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return write_text_atomic(path, buffer.getvalue())
