"""The list of networks for the block comparison: VolumeNet with each block, and the baselines.

A block with bundled weights (:func:`napari_volumenet._comparison.comparison_weights`) is checked
with its weights file; the other rows start unchecked. A row checked without a weights file runs
with random weights as a speed-only run: its time and parameter count are real, it adds no image
and shows no quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLineEdit, QPushButton, QSpinBox, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from .._comparison import comparison_weights
from .._pipeline import ModelSpec
from ..models import list_blocks
from ..weights import list_bundled, read_weights_file

DEPTH_CHANNELS_MODELS = ("volumenet", "parallelnet")
NO_WEIGHTS = "no weights: speed only when checked"


@dataclass(frozen=True)
class BlockRow:
    """One row of the Compare tab's checklist (turned into an evaluation Method when checked)."""

    name: str
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    checked: bool = True
    weights: Path | None = None


def _block_of(entry: Any) -> str:
    kwargs = read_weights_file(entry.path)["metadata"].get("model_kwargs", {})
    return str(kwargs.get("block", "conv"))


def default_candidates() -> list[BlockRow]:
    """VolumeNet with each of the paper's seven blocks (checked where bundled weights exist), then the baselines."""
    trained = comparison_weights(list_bundled(), _block_of)
    rows = [BlockRow(f"VolumeNet · {block}", "volumenet", {"block": block}, checked=block in trained,
                      weights=trained[block].path if block in trained else None) for block in list_blocks()]
    rows += [
        BlockRow("3D SRCNN", "srcnn3d", {}, checked=False),
        BlockRow("DCSRN", "dcsrn", {}, checked=False),
        BlockRow("mDCSRN", "mdcsrn", {}, checked=False),
    ]
    return rows


class ModelList(QWidget):
    """Checkable rows of networks, each with an optional weights file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidates = default_candidates()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(len(self.candidates), 3)
        self.table.setHorizontalHeaderLabels(["Network", "Weights file", ""])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        self.weights_edits: list[QLineEdit] = []
        for row, cand in enumerate(self.candidates):
            item = QTableWidgetItem(cand.name)
            item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
            item.setCheckState(Qt.Checked if cand.checked else Qt.Unchecked)
            self.table.setItem(row, 0, item)
            edit = QLineEdit("" if cand.weights is None else str(cand.weights))
            edit.setPlaceholderText(NO_WEIGHTS)
            edit.setToolTip("Weights file of this network; empty: random weights, timed only (no image, no PSNR)")
            self.table.setCellWidget(row, 1, edit)
            browse = QPushButton("…")
            browse.setToolTip("Choose a weights file for this network")
            browse.clicked.connect(lambda _=False, r=row: self._browse(r))
            self.table.setCellWidget(row, 2, browse)
            self.weights_edits.append(edit)
        layout.addWidget(self.table)
        size = QFormLayout()
        self.depth = QSpinBox()
        self.depth.setRange(1, 16)
        self.depth.setValue(9)
        self.channels = QSpinBox()
        self.channels.setRange(2, 128)
        self.channels.setSingleStep(2)
        self.channels.setValue(32)
        row_layout = QHBoxLayout()
        row_layout.addWidget(self.depth)
        row_layout.addWidget(self.channels)
        size.addRow("Untrained VolumeNet depth, channels", row_layout)
        layout.addLayout(size)

    def _browse(self, row: int) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "Weights (*.pt *.pth);;All files (*)")
        if path:
            self.weights_edits[row].setText(path)

    def set_checked(self, names: list[str] | None) -> None:
        """Check exactly the rows named ``names`` (all rows when ``None``)."""
        for row, cand in enumerate(self.candidates):
            on = names is None or cand.name in names
            self.table.item(row, 0).setCheckState(Qt.Checked if on else Qt.Unchecked)

    def set_weights(self, name: str, path: str | Path | None) -> None:
        row = [c.name for c in self.candidates].index(name)
        self.weights_edits[row].setText("" if path is None else str(path))

    def specs(self) -> list[ModelSpec]:
        """The checked rows as :class:`ModelSpec` (weights file, or untrained with the chosen size)."""
        out = []
        for row, cand in enumerate(self.candidates):
            if self.table.item(row, 0).checkState() != Qt.Checked:
                continue
            text = self.weights_edits[row].text().strip()
            if text:
                weights = Path(text).expanduser()
                out.append(ModelSpec(f"{cand.name} ({weights.stem})", weights, cand.model))
                continue
            kwargs = dict(cand.kwargs)
            if cand.model in DEPTH_CHANNELS_MODELS:
                kwargs.update(depth=self.depth.value(), channels=self.channels.value())
            out.append(ModelSpec(f"{cand.name} · untrained", None, cand.model, kwargs))
        return out
