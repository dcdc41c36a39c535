"""The widget's "Model" tab: the network, its weights (automatic, bundled or a file), modality and tricubic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget

from .._geometry import LayerGeometry
from .._names import elide_middle, in_widget_terms
from .._pipeline import ModelSpec
from ..errors import InputError
from ..io import affine_zooms
from ..models import list_models
from ..slices import Choice, bundled_name, choose
from ..weights import list_bundled

ANY_MODEL = "any (from the weights file)"
CUSTOM = "Custom weights file…"
AUTO_MODALITY = "auto (from the weights)"
AUTO_WEIGHTS = "auto (from the voxel sizes)"


class ModelTab(QWidget):
    """Which network to run: :meth:`specs` turns the choices into a :class:`~.._pipeline.ModelSpec`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.model_combo = QComboBox()
        self.model_combo.addItems([ANY_MODEL, *[m for m in list_models() if m != "tricubic"]])
        self.model_combo.setToolTip("The network the weights must hold (checked when they are loaded)")
        self.model_combo.currentTextChanged.connect(self._fill_weights)
        form.addRow("Model", self.model_combo)
        self.weights_combo = QComboBox()
        self.weights_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.weights_combo.setMinimumContentsLength(16)
        self.weights_combo.currentTextChanged.connect(self._weights_choice_changed)
        form.addRow("Weights", self.weights_combo)
        file_row = QHBoxLayout()
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("path/to/weights.pt (written by volumenet-train)")
        self.weights_browse = QPushButton("…")
        self.weights_browse.clicked.connect(self._browse_weights)
        file_row.addWidget(self.weights_edit)
        file_row.addWidget(self.weights_browse)
        form.addRow("File", file_row)
        self.modality_combo = QComboBox()
        self.modality_combo.addItems([AUTO_MODALITY, "mri", "ct"])
        self.modality_combo.setToolTip("Intensity normalisation; by default the one the weights were trained with")
        form.addRow("Modality", self.modality_combo)
        self.tricubic_check = QCheckBox("Add the tricubic interpolation")
        self.tricubic_check.setChecked(True)
        form.addRow("", self.tricubic_check)
        self._fill_weights()

    def _fill_weights(self, *_: Any) -> None:
        model = self.model_combo.currentText()
        current = self.weights_combo.currentText()
        self.weights_combo.blockSignals(True)
        self.weights_combo.clear()
        self.weights_combo.addItem(AUTO_WEIGHTS, AUTO_WEIGHTS)
        self.weights_combo.setItemData(0, "The bundled default weights for the scan: through-plane weights when "
                                          "one axis is ≥ 1.5× coarser than the others, else isotropic ×2",
                                       Qt.ToolTipRole)
        for w in list_bundled():
            if model in (ANY_MODEL, w.model):
                self.weights_combo.addItem(w.name, w.name)
                self.weights_combo.setItemData(self.weights_combo.count() - 1, w.description, Qt.ToolTipRole)
        self.weights_combo.addItem(CUSTOM, None)
        index = self.weights_combo.findText(current)
        self.weights_combo.setCurrentIndex(max(index, 0))
        self.weights_combo.blockSignals(False)
        self._weights_choice_changed()

    def _weights_choice_changed(self, *_: Any) -> None:
        custom = self.weights_combo.currentData() is None
        self.weights_edit.setEnabled(custom)
        self.weights_browse.setEnabled(custom)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights file", "", "Weights (*.pt *.pth);;All files (*)")
        if path:
            self.weights_edit.setText(path)

    def set_weights_file(self, path: str | Path) -> None:
        """Use a custom weights file (what the File field and its … button do)."""
        self.weights_combo.setCurrentIndex(self.weights_combo.findText(CUSTOM))
        self.weights_edit.setText(str(path))

    def modality(self) -> str | None:
        """The chosen modality, ``None`` for the weights' own."""
        text = self.modality_combo.currentText()
        return None if text == AUTO_MODALITY else text

    def specs(self, geometry: LayerGeometry, thick: tuple[int, int] | None, simulate: bool
              ) -> tuple[list[ModelSpec], int | None, str | None]:
        """The network to run, the stored slice axis for through-plane weights, and why (automatic weights).

        ``thick``: Simulate mode's ``(stored axis, factor)`` of thick slices, else ``None``.
        """
        model = self.model_combo.currentText()
        model = None if model == ANY_MODEL else model
        name = self.weights_combo.currentData()
        if name == AUTO_WEIGHTS:
            scale = (1, 1, thick[1]) if thick is not None else 2 if simulate else None
            choice = choose(affine_zooms(geometry.affine), modality=self.modality() or "mri", scale=scale, model=model,
                            slab=geometry.extra.get("slab"))  # a DICOM series' thickness and gap (the reader's)
            spec = ModelSpec(sr_label(bundled_name(choice.weights)), choice.weights, model)
            return [spec], choice.slice_axis if thick is None else None, _in_napari_terms(choice, geometry, thick,
                                                                                          simulate)
        if name is not None:
            bundled = {w.name: w for w in list_bundled()}[name]
            path, label = bundled.path, sr_label(bundled.name)
        else:
            text = self.weights_edit.text().strip()
            if not text:
                raise InputError("Weights: choose a weights file (File ▸ …) or the automatic choice.")
            path = Path(text).expanduser()
            label = sr_label(path.stem)
        return [ModelSpec(label, path, model)], None, None


def sr_label(weights: str) -> str:
    """The label of the Model tab's output: ``SR`` and the weights' name, middle-elided."""
    return elide_middle(f"SR {weights}")


def _in_napari_terms(choice: Choice, geometry: LayerGeometry, thick: tuple[int, int] | None, simulate: bool) -> str:
    """Why these weights, in the widget's words: napari axes and the Simulate choice, not array axes or CLI flags."""
    name = bundled_name(choice.weights)
    if thick is not None:
        return f"Simulate thick slices ×{thick[1]}: the through-plane weights {name}"
    if simulate:
        return f"Simulate ×2: the isotropic ×2 weights {name}"
    return in_widget_terms(choice.reason, geometry.ornt)
