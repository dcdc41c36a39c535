"""The list of networks for the block comparison: each block in its backbone, and the baselines.

A block with bundled weights (:func:`napari_volumenet._comparison.block_candidates`) is checked with
its weights file, which decides the network; its training (steps, validation against tricubic) is
shown beside it. The other rows start unchecked. A row checked without a weights file runs with
random weights as a speed-only run: its time and parameter count are real, it adds no image and
shows no quality.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog, QFormLayout, QHBoxLayout, QHeaderView, QLineEdit, QPushButton, QSpinBox, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from .._comparison import BlockRow, block_backbone, block_candidates
from .._names import SEPARATOR, short_labels
from .._pipeline import TRICUBIC_LABEL, ModelSpec
from ..models import display_name, list_blocks
from ..weights import list_bundled

NO_WEIGHTS = "no weights: speed only when checked"
BELOW_TRICUBIC = "⚠ "
"""Marks weights that do not beat tricubic on their own validation."""


def default_candidates() -> list[BlockRow]:
    """Each of the paper's seven blocks (checked where bundled comparison weights exist), then the baselines."""
    return block_candidates(list_bundled(), list_blocks())


class ModelList(QWidget):
    """Checkable rows of networks, each with an optional weights file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidates = default_candidates()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(len(self.candidates), 4)
        self.table.setHorizontalHeaderLabels(["Network", "Training", "Weights file", ""])
        self.table.horizontalHeaderItem(1).setToolTip("The bundled weights' validation PSNR gain over tricubic (dB); "
                                                      "their steps in the tooltip")
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        for column, mode in enumerate((QHeaderView.ResizeToContents, QHeaderView.ResizeToContents,
                                       QHeaderView.Stretch, QHeaderView.ResizeToContents)):
            header.setSectionResizeMode(column, mode)
        self.weights_edits: list[QLineEdit] = []
        shown = short_labels([cand.name.split(SEPARATOR) for cand in self.candidates])
        for row, (cand, name) in enumerate(zip(self.candidates, shown)):
            self._fill_row(row, cand, name)
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
        size.addRow("Untrained depth, channels", row_layout)
        layout.addLayout(size)

    def _fill_row(self, row: int, cand: BlockRow, name: str) -> None:
        """One network: its short name (checkable; the full one in the tooltip), its training, its weights file."""
        item = QTableWidgetItem(name)
        item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
        item.setCheckState(Qt.Checked if cand.checked else Qt.Unchecked)
        item.setToolTip(cand.name)
        self.table.setItem(row, 0, item)
        gain = "—" if cand.gain is None else f"{cand.gain:+.2f} dB"
        mark = BELOW_TRICUBIC if cand.below_tricubic else ""
        training = QTableWidgetItem(mark + (gain if cand.note else "untrained"))
        training.setFlags(Qt.ItemIsEnabled)
        why = " These weights do not beat tricubic interpolation on their own validation volumes."
        training.setToolTip(f"{cand.note or 'No bundled weights'}.{why if cand.below_tricubic else ''}")
        self.table.setItem(row, 1, training)
        edit = QLineEdit("" if cand.weights is None else str(cand.weights))
        edit.setPlaceholderText(NO_WEIGHTS)
        edit.setToolTip("Weights file of this network (it decides the network); empty: random weights, timed "
                        "only (no image, no PSNR)")
        self.table.setCellWidget(row, 2, edit)
        browse = QPushButton("…")
        browse.setToolTip("Choose a weights file for this network")
        browse.clicked.connect(lambda _=False, r=row: self._browse(r))
        self.table.setCellWidget(row, 3, browse)
        self.weights_edits.append(edit)

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
        """The checked rows as :class:`ModelSpec`: a weights file (which decides the network), or an
        untrained network of the chosen depth and channels; each labelled by what tells it apart
        (:func:`~.._names.short_labels`: the block first)."""
        chosen = []
        for row, cand in enumerate(self.candidates):
            if self.table.item(row, 0).checkState() == Qt.Checked:
                chosen.append(self._spec_parts(cand, self.weights_edits[row].text().strip()))
        labels = short_labels([parts for parts, _ in chosen], taken=(TRICUBIC_LABEL,))
        return [replace(spec, label=label) for label, (_, spec) in zip(labels, chosen)]

    def _spec_parts(self, cand: BlockRow, text: str) -> tuple[list[str], ModelSpec]:
        """A row's name in parts (block, network, how it runs) and its spec (labelled later)."""
        parts = cand.name.split(SEPARATOR)
        if text:
            weights = Path(text).expanduser()
            if weights != cand.weights:  # another file than the bundled one: its name tells it apart
                parts[0] = f"{parts[0]} ({weights.stem})"
            return parts, ModelSpec(cand.name, weights)
        kwargs = dict(cand.kwargs)
        if cand.model == block_backbone(str(kwargs.get("block"))):
            kwargs.update(depth=self.depth.value(), channels=self.channels.value())
            parts = [str(kwargs["block"]), display_name(cand.model, kwargs)]
        return [*parts, "untrained"], ModelSpec(cand.name, None, cand.model, kwargs)
