"""The "VolumeNet super-resolution" dock widget.

Everything it computes comes from :func:`napari_volumenet._pipeline.run_steps` (run in a
``thread_worker``: per-tile progress, cancel at the next tile boundary), from
:mod:`napari_volumenet._comparison` (layer choice, grid layout, metric rows, crops), from
:mod:`napari_volumenet._result_layers` (the layers of a result, with their grids and provenance) and from
:mod:`napari_volumenet._view` (the displayed slice and the region in voxel indices); this module
only reads the viewer into plain values, collects the user's choices, adds the resulting layers
and shows tables and crops.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from napari.layers import Image, Shapes
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDockWidget, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QRadioButton, QScrollArea, QSizePolicy, QSpinBox, QStyle, QTabWidget, QVBoxLayout,
    QWidget,
)

from .._comparison import (
    Crop, LayerInfo, choose_layers, comparison_rows, crops, grid_order, metric_rows, same_layer,
)
from .._geometry import METADATA_KEY, LayerGeometry, inverse_ornt
from ..io import affine_zooms
from ..slices import bundled_name, choose
from ..inference import RunOptions
from .._pipeline import MIN_STEPS, UNTRAINED, ModelSpec, RunRequest, RunResult, Step, describe_plan, run_steps
from .._result_layers import NewLayer, RunContext, result_layers
from .._view import LayerFrame, Region, last_rectangle, onto_slice, slice_index, sliced_axis, view_regions
from ..errors import InputError, VolumeNetError
from ..inference import PRECISIONS, resolve_device
from ..models import list_models
from ..weights import list_bundled
from .compare import ModelList
from .crops import CropsPanel
from .grid import SideBySide
from .tables import (
    COMPARISON_COLUMNS, COMPARISON_HEADERS, METRIC_COLUMNS, METRIC_CSV_COLUMNS, METRIC_HEADERS, fill_table,
    fit_rows, make_table, write_csv,
)

NONE = "(none)"
ANY_MODEL = "any (from the weights file)"
CUSTOM = "Custom weights file…"
AUTO_MODALITY = "auto (from the weights)"
AUTO_WEIGHTS = "auto (from the voxel sizes)"
ISOTROPIC = "×2 isotropic (the paper's)"
THICK = "thick slices ×{}"
THICK_FACTORS = (2, 3, 4)
REGION_LAYER = "SR region"
PLUGIN = "napari-volumenet"
WIDGET_NAME = "VolumeNet super-resolution"
"""The dock widget's display name in napari.yaml."""
COMPARE_TAB = 1
MIN_WIDTH = 430
"""Width of the dock's content (px): room for the metrics table and two columns of crops."""
REFRESH_MS = 80
"""Debounce of the live metrics: they are recomputed once the slider has rested this long."""


@dataclass
class Failure:
    """What the worker returns instead of a result when something went wrong."""

    message: str


def _frame(layer: Any) -> LayerFrame:
    """Where ``layer``'s data coordinates lie in the world, and its voxel count (none for shapes)."""
    shape = layer.data.shape if isinstance(layer, Image) else ()
    return LayerFrame.of(layer.data_to_world, layer.ndim, shape)


def _guarded(steps: Generator[Step, None, RunResult]) -> Generator[Step, None, RunResult | Failure]:
    """Run ``steps`` in the worker; errors come back as a :class:`Failure` (shown as a notification)."""
    try:
        return (yield from steps)
    except VolumeNetError as error:
        return Failure(str(error))
    except torch.OutOfMemoryError:
        return Failure("Out of memory: choose a smaller tile size or another device.")
    except Exception as error:  # noqa: BLE001 - shown to the user, the widget stays usable
        return Failure(f"Unexpected error ({type(error).__name__}): {error}")


@dataclass
class Shown:
    """The layers of the last finished run, for the live metrics and the crops."""

    result: RunResult
    context: RunContext
    outputs: dict[str, Image]
    lr_name: str
    gt_name: str | None


class LayerCombo(QComboBox):
    """A combo box of layer names that refreshes itself when opened."""

    def __init__(self, refresh: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 - Qt API
        self._refresh()
        super().showPopup()


class FittingTabs(QTabWidget):
    """A tab widget as tall as its current page (QTabWidget sizes itself to its tallest page)."""

    def _fit(self, hint: QSize, page_hint: QSize) -> QSize:
        extra = self.tabBar().sizeHint().height() + 2 * self.style().pixelMetric(QStyle.PM_DefaultFrameWidth) + 4
        return QSize(max(page_hint.width(), self.tabBar().sizeHint().width()), page_hint.height() + extra)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        page = self.currentWidget()
        return super().sizeHint() if page is None else self._fit(super().sizeHint(), page.sizeHint())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        page = self.currentWidget()
        return super().minimumSizeHint() if page is None else self._fit(super().minimumSizeHint(),
                                                                         page.minimumSizeHint())


class SuperResolutionWidget(QWidget):
    """Upscale a volume, compare with tricubic and the ground truth, browse live metrics and crops."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.shown: Shown | None = None
        self.metric_rows: list[dict[str, Any]] = []
        self.comparison_rows: list[dict[str, Any]] = []
        self.last_timing: dict[str, float] = {}
        self.diff_layers: list[Image] = []
        self._input_fixed = False
        self._truth_fixed = False
        self.side_by_side = SideBySide(self.viewer)
        self._build()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh_live)
        self._connect_viewer()
        self.refresh_layer_choices()
        self._update_badge_preview()

    # ------------------------------------------------------------------ building the UI
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        outer.addWidget(scroll)
        body = QWidget()
        body.setMinimumWidth(MIN_WIDTH)
        scroll.setWidget(body)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(MIN_WIDTH + scroll.verticalScrollBar().sizeHint().width() + 4)
        layout = QVBoxLayout(body)
        layout.setSpacing(4)
        layout.addWidget(self._build_inputs())
        self.tabs = FittingTabs()
        self.tabs.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
        self.tabs.addTab(self._build_model_tab(), "Model")
        self.tabs.addTab(self._build_compare_tab(), "Compare blocks")
        self.tabs.addTab(self._build_device_tab(), "Device")
        self.tabs.currentChanged.connect(self._fit_tab)
        layout.addWidget(self.tabs)
        layout.addLayout(self._build_run_row())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("Choose an input layer and a weights file, then Run.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addWidget(self._build_results())
        layout.addStretch(1)
        self._fit_tab(0)

    def _build_inputs(self) -> QGroupBox:
        inputs = QGroupBox("Input")
        form = QFormLayout(inputs)
        self.input_combo = self._combo("The 3D image layer to upscale (in Simulate mode: the HR volume)")
        self.input_combo.currentIndexChanged.connect(partial(self._user_chose, "input"))
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open NIfTI / MGH volumes with this plugin's reader (physical geometry)")
        self.open_button.clicked.connect(self._open_dialog)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input_combo, 1)
        input_row.addWidget(self.open_button)
        form.addRow("Input layer", input_row)
        self.mode_upscale = QRadioButton("Upscale")
        self.mode_upscale.setToolTip("The input is a low-resolution volume: upscale it")
        self.mode_simulate = QRadioButton("Simulate")
        self.mode_simulate.setToolTip("The input is a high-resolution volume: degrade it (the paper's LR "
                                      "simulation), upscale the result and compare with the input")
        self.mode_upscale.setChecked(True)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_upscale)
        self.mode_group.addButton(self.mode_simulate)
        modes = QHBoxLayout()
        modes.addWidget(self.mode_upscale)
        modes.addWidget(self.mode_simulate)
        modes.addStretch(1)
        form.addRow("Mode", modes)
        self.degrade_combo = QComboBox()
        self.degrade_combo.addItems([ISOTROPIC, *(THICK.format(f) for f in THICK_FACTORS)])
        self.degrade_combo.setToolTip("Simulate: the paper's ×2 degradation, or thick slices (each the mean of f "
                                      "HR slices) along one axis, undone by the through-plane networks")
        self.slice_axis_combo = QComboBox()
        self.slice_axis_combo.addItems([f"axis {a}" for a in range(3)])
        self.slice_axis_combo.setToolTip("The napari axis made of thick slices (axis 0 is the slider of the "
                                         "default 2D view)")
        simulate_row = QHBoxLayout()
        simulate_row.addWidget(self.degrade_combo, 1)
        simulate_row.addWidget(self.slice_axis_combo)
        form.addRow("Simulate", simulate_row)
        self.degrade_combo.currentTextChanged.connect(self._simulate_choice_changed)
        self.mode_simulate.toggled.connect(self._simulate_choice_changed)
        self._simulate_choice_changed()
        self.gt_combo = self._combo("Optional HR volume to compare with (s × the input's shape)")
        self.gt_combo.currentIndexChanged.connect(partial(self._user_chose, "truth"))
        form.addRow("Ground truth", self.gt_combo)
        self.mode_simulate.toggled.connect(lambda on: self.gt_combo.setEnabled(not on))
        return inputs

    def _build_run_row(self) -> QHBoxLayout:
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Upscale the input with the chosen model (and tricubic)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop at the next tile; nothing is added")
        self.cancel_button.clicked.connect(self.cancel)
        self.badge = QLabel()
        self.badge.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 6px; padding: 2px 6px; }")
        self.badge.setToolTip("Device · precision · number of tiles actually used")
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.badge)
        run_row.addStretch(1)
        return run_row

    def _build_results(self) -> QGroupBox:
        results = QGroupBox("Results")
        results.setToolTip("PSNR (and its gain over tricubic) and SSIM against the ground truth, on the 0–255 "
                           "scale of its range (the paper's protocol); region and slice rows follow the rectangle "
                           "and the slider. The CSV adds RMSE and PSNR-fg.")
        rlayout = QVBoxLayout(results)
        buttons = QHBoxLayout()
        self.grid_button = QPushButton("Side by side")
        self.grid_button.setToolTip("napari grid mode, one labelled view each: GT, tricubic, SR…, LR, then the "
                                    "difference maps")
        self.grid_button.setCheckable(True)
        self.grid_button.toggled.connect(self.set_grid)
        self.csv_button = QPushButton("Table CSV…")
        self.csv_button.clicked.connect(self._export_metrics_dialog)
        self.png_button = QPushButton("Crops PNG…")
        self.png_button.clicked.connect(self._export_png_dialog)
        for button in (self.grid_button, self.csv_button, self.png_button):
            buttons.addWidget(button)
        rlayout.addLayout(buttons)
        region_row = QHBoxLayout()
        self.region_combo = self._combo("Shapes layer whose last rectangle is the region (it follows the slider)")
        self.draw_button = QPushButton("Draw")
        self.draw_button.setToolTip("Add a Shapes layer and start drawing a rectangle")
        self.draw_button.clicked.connect(self.start_region)
        region_row.addWidget(QLabel("Region"))
        region_row.addWidget(self.region_combo, 1)
        region_row.addWidget(self.draw_button)
        rlayout.addLayout(region_row)
        self.metrics_table = make_table(METRIC_HEADERS)
        fit_rows(self.metrics_table)
        rlayout.addWidget(self.metrics_table)
        self.crops = CropsPanel()
        rlayout.addWidget(self.crops)
        return results

    def _combo(self, tooltip: str) -> LayerCombo:
        combo = LayerCombo(self.refresh_layer_choices)
        combo.setToolTip(tooltip)
        combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(14)
        return combo

    def _build_device_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.device_combo = QComboBox()
        self.device_combo.addItems(self._devices())
        self.device_combo.currentTextChanged.connect(self._update_badge_preview)
        form.addRow("Device", self.device_combo)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(["auto", *PRECISIONS])
        self.precision_combo.currentTextChanged.connect(self._update_badge_preview)
        form.addRow("Precision", self.precision_combo)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(-1, 1024)
        self.tile_spin.setValue(-1)
        self.tile_spin.setSpecialValueText("auto (from free memory)")
        self.tile_spin.setToolTip("Tile edge in LR voxels; auto chooses from free memory, 0 runs the whole volume "
                                  "at once. Every tile size gives the same result (exact tiling).")
        form.addRow("Tile (LR voxels)", self.tile_spin)
        return tab

    def show_comparison(self) -> None:
        """Switch to the "Compare blocks" tab (what the block-comparison menu entry does)."""
        self.tabs.setCurrentIndex(COMPARE_TAB)

    def _fit_tab(self, index: int) -> None:
        """Size the tab widget to the current tab only (the Compare tab is much taller)."""
        self.tabs.updateGeometry()

    def _build_model_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
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
        return tab

    def _build_compare_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        note = QLabel("Runs each checked network in turn on the same input (tricubic first). Networks with "
                      "bundled weights are checked; a row checked without weights is a speed-only run (random "
                      "weights): its time and size are real, it adds no image and shows no PSNR.")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.model_list = ModelList()
        layout.addWidget(self.model_list)
        row = QHBoxLayout()
        self.compare_button = QPushButton("Run comparison")
        self.compare_button.clicked.connect(self.run_comparison)
        self.compare_csv_button = QPushButton("Export CSV…")
        self.compare_csv_button.clicked.connect(self._export_comparison_dialog)
        row.addWidget(self.compare_button)
        row.addWidget(self.compare_csv_button)
        layout.addLayout(row)
        self.comparison_table = make_table(COMPARISON_HEADERS)
        self.comparison_table.setMinimumHeight(160)
        layout.addWidget(self.comparison_table)
        return tab

    @staticmethod
    def _devices() -> list[str]:
        devices = ["auto", "cpu"]
        if torch.cuda.is_available():
            devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        if torch.backends.mps.is_available():
            devices.append("mps")
        return devices

    # ------------------------------------------------------------------ choices
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

    def _simulate_choice_changed(self, *_: Any) -> None:
        simulate = self.mode_simulate.isChecked()
        self.degrade_combo.setEnabled(simulate)
        self.slice_axis_combo.setEnabled(simulate and self.degrade_combo.currentIndex() > 0)

    def _thick_slices(self, geometry: LayerGeometry) -> tuple[int, int] | None:
        """Simulate mode's ``(stored axis, factor)`` of thick slices, or ``None`` for the isotropic ×2."""
        if not self.mode_simulate.isChecked() or self.degrade_combo.currentIndex() == 0:
            return None
        view_axis = self.slice_axis_combo.currentIndex()
        stored_axis = int(inverse_ornt(geometry.ornt)[view_axis][0])
        return stored_axis, THICK_FACTORS[self.degrade_combo.currentIndex() - 1]

    def _single_specs(self, geometry: LayerGeometry, thick: tuple[int, int] | None
                      ) -> tuple[list[ModelSpec], int | None, str | None]:
        """The Model tab's network, the stored slice axis for through-plane weights, and why (auto weights)."""
        model = self.model_combo.currentText()
        model = None if model == ANY_MODEL else model
        name = self.weights_combo.currentData()
        modality = self.modality_combo.currentText()
        modality = "mri" if modality == AUTO_MODALITY else modality
        if name == AUTO_WEIGHTS:
            scale = None if thick is None else (1, 1, thick[1])
            if self.mode_simulate.isChecked() and thick is None:
                scale = 2
            choice = choose(affine_zooms(geometry.affine), modality=modality, scale=scale, model=model)
            label = f"SR {bundled_name(choice.weights)}"
            return [ModelSpec(label, choice.weights, model)], choice.slice_axis if thick is None else None, choice.reason
        if name is not None:
            bundled = {w.name: w for w in list_bundled()}[name]
            path, label = bundled.path, f"SR {bundled.name}"
        else:
            text = self.weights_edit.text().strip()
            if not text:
                raise InputError("Weights: choose a weights file (File ▸ …) or the automatic choice.")
            path = Path(text).expanduser()
            label = f"SR {path.stem}"
        return [ModelSpec(label, path, model)], None, None

    def _image_layers(self) -> list[Image]:
        return [lyr for lyr in self.viewer.layers
                if isinstance(lyr, Image) and lyr.ndim == 3 and not lyr.rgb and not lyr.multiscale]

    def _user_chose(self, which: str, *_: Any) -> None:
        """A combo changed outside :meth:`refresh_layer_choices`: keep that choice from now on."""
        setattr(self, f"_{which}_fixed", True)

    def _layer_infos(self) -> list[LayerInfo]:
        infos = []
        for lyr in self._image_layers():
            entry = lyr.metadata.get(METADATA_KEY) if isinstance(lyr.metadata, dict) else None
            entry = entry if isinstance(entry, dict) else {}
            infos.append(LayerInfo(lyr.name, tuple(lyr.data.shape), entry.get("role"), entry.get("pair")))
        return infos

    def refresh_layer_choices(self, *_: Any) -> None:
        """Fill the layer combos: the user's choices, else the sample's LR/HR pair or the coarser of a pair."""
        infos = self._layer_infos()
        names = [info.name for info in infos]
        active = self.viewer.layers.selection.active
        truth = self.gt_combo.currentText()
        input_name, truth_name = choose_layers(
            infos, self.input_combo.currentText() or None, None if truth in ("", NONE) else truth,
            input_fixed=self._input_fixed, truth_fixed=self._truth_fixed and truth != "",
            active=None if active is None else active.name)
        self._input_fixed &= input_name == self.input_combo.currentText()
        self._truth_fixed &= (truth_name or NONE) == (truth or NONE)
        self._set_items(self.input_combo, names, input_name or "")
        self._set_items(self.gt_combo, [NONE, *names], truth_name or NONE)
        shapes = [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Shapes)]
        current_region = self.region_combo.currentText()
        if current_region not in shapes:
            current_region = shapes[-1] if shapes else NONE
        self._set_items(self.region_combo, [NONE, *shapes], current_region)

    @staticmethod
    def _set_items(combo: QComboBox, items: list[str], current: str) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(items)
        if current in items:
            combo.setCurrentIndex(items.index(current))
        combo.blockSignals(False)

    def _layer(self, name: str | None) -> Image | None:
        if not name or name == NONE or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def open_volumes(self, paths: list[str]) -> list[Image]:
        """Open files with this plugin's reader (napari's own reader also claims .nii.gz)."""
        layers: list[Image] = []
        for path in paths:
            layers.extend(self.viewer.open(path, plugin="napari-volumenet"))
        return layers

    def _open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open volumes", "",
                                                "Volumes (*.nii *.nii.gz *.mgz *.mgh);;All files (*)")
        if paths:
            self.open_volumes(paths)

    def _update_badge_preview(self, *_: Any) -> None:
        device = self.device_combo.currentText()
        try:
            resolved = resolve_device(device)
            self.badge.setText(f"{device} → {resolved}" if device == "auto" else str(resolved))
        except VolumeNetError as error:
            self.badge.setText(f"{device}: unavailable")
            self.badge.setToolTip(str(error))

    # ------------------------------------------------------------------ viewer events
    def _connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        self.viewer.dims.events.current_step.connect(self.follow_slice)
        self.viewer.dims.events.current_step.connect(self._schedule_refresh)
        self.viewer.dims.events.ndisplay.connect(self._schedule_refresh)
        self.viewer.dims.events.order.connect(self._schedule_refresh)
        for layer in layers:
            self._watch_layer(layer)

    def _on_layers_changed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and getattr(event, "type", "") == "inserted":
            self._watch_layer(layer)
        self.refresh_layer_choices()
        self._schedule_refresh()

    def _watch_layer(self, layer: Any) -> None:
        layer.events.name.connect(self.refresh_layer_choices)
        if isinstance(layer, Shapes):
            layer.events.data.connect(self._schedule_refresh)
            layer.events.set_data.connect(self._schedule_refresh)

    def _schedule_refresh(self, *_: Any) -> None:
        if self.shown is not None:
            self._refresh_timer.start()

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Upscale the input with the model of the Model tab (and tricubic)."""
        self._start(comparison=False)

    def run_comparison(self) -> None:
        """Run every checked network of the Compare tab in turn."""
        self._start(comparison=True)

    def _start(self, comparison: bool) -> None:
        if self.worker is not None:
            return
        try:
            steps, context = self._prepare(comparison)
        except VolumeNetError as error:
            show_error(str(error))
            return
        worker = thread_worker(_guarded, start_thread=False)(steps)
        worker.yielded.connect(self._on_step)
        worker.returned.connect(partial(self._on_returned, context))
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        self.status.setText("Loading the model…")
        worker.start()

    def _prepare(self, comparison: bool) -> tuple[Generator[Step, None, RunResult], RunContext]:
        source = self._layer(self.input_combo.currentText())
        if source is None:
            raise InputError("Input layer: choose a 3D image layer (open a NIfTI file or File ▸ Open Sample).")
        geometry = LayerGeometry.from_layer(source.metadata, source.scale, source.translate, source.ndim)
        mode = "simulate" if self.mode_simulate.isChecked() else "upscale"
        gt_layer = None if mode == "simulate" else self._layer(self.gt_combo.currentText())
        if same_layer(gt_layer, source):
            raise InputError("Ground truth: choose another layer than the input (or use Simulate mode).")
        thick = self._thick_slices(geometry)
        slice_axis, reason = None, None
        if comparison:
            specs = self.model_list.specs()
            if not specs:
                raise InputError("Compare blocks: check at least one network.")
            if thick is not None:
                raise InputError("Compare blocks: the block networks are ×2 isotropic; choose Simulate ×2 isotropic.")
        else:
            specs, slice_axis, reason = self._single_specs(geometry, thick)
        modality = self.modality_combo.currentText()
        tile = self.tile_spin.value()
        scale = None
        if all(spec.untrained for spec in specs):  # untrained only: ×2 in the input's stored axes
            scale = 2
        request = RunRequest(
            mode, ground_truth=None if gt_layer is None else np.asarray(gt_layer.data), ornt=geometry.ornt,
            modality=None if modality == AUTO_MODALITY else modality, scale=scale,
            options=RunOptions(device=self.device_combo.currentText(), precision=self.precision_combo.currentText(),
                               tile=None if tile < 0 else tile),
            tricubic=comparison or self.tricubic_check.isChecked(), min_steps=MIN_STEPS, thick_slices=thick,
            slice_axis=slice_axis,
        )
        steps = run_steps(np.asarray(source.data), specs, request)
        window = tuple(float(v) for v in (gt_layer or source).contrast_limits)
        context = RunContext(source.name, geometry, mode, None if gt_layer is None else gt_layer.name,
                             comparison, window, reason)  # type: ignore[arg-type]
        return steps, context

    def cancel(self) -> None:
        """Stop the run at the next tile boundary; nothing is added."""
        if self.worker is not None:
            self.status.setText("Cancelling at the next tile…")
            self.cancel_button.setEnabled(False)
            self.worker.quit()

    def _set_running(self, running: bool) -> None:
        for button in (self.run_button, self.compare_button):
            button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first tile

    def _on_step(self, step: Step) -> None:
        prefix = f"[{step.index + 1}/{step.count}] " if step.count > 1 else ""
        if step.stage in ("plan", "tiles") and step.plan is not None:
            self.badge.setText(describe_plan(step.plan))
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(step.done)
            self.status.setText(f"{prefix}{step.label}: {step.done}/{step.total} tiles")
        elif step.stage == "degrade":
            self.status.setText("Simulating the LR volume (degrade)…")
        elif step.stage == "metrics":
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(step.done)
            self.status.setText(f"Metrics of {step.label}…")

    def _on_returned(self, context: RunContext, value: RunResult | Failure | None) -> None:
        if isinstance(value, Failure):
            show_error(value.message)
            self.status.setText(f"Failed: {value.message}")
            return
        if value is None:
            return
        try:
            self._show_result(context, value)
        except VolumeNetError as error:
            show_error(str(error))
            self.status.setText(f"Failed: {error}")
            return
        total = time.perf_counter() - context.started
        upscale = sum(out.seconds for out in value.outputs if out.kind == "sr")
        self.last_timing = {"total": total, "upscale": upscale}
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        plan = describe_plan(value.outputs[-1].plan)
        why = f" Weights: {context.choice}." if context.choice else ""
        self.status.setText(f"Done in {total:.1f} s (networks {upscale:.1f} s) on {plan}.{why}")
        self.badge.setToolTip(f"Device · precision · number of tiles actually used{'; ' + context.choice if context.choice else ''}")
        if context.choice:
            self.badge.setText(f"{plan} · ×{'×'.join(map(str, value.scale))}")

    def _on_aborted(self) -> None:
        self.status.setText("Cancelled; nothing was added.")
        show_info("Super-resolution cancelled; nothing was added.")

    def _on_errored(self, error: Exception) -> None:  # pragma: no cover - _guarded catches everything
        show_error(f"Unexpected error: {error}")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    # ------------------------------------------------------------------ showing results
    def _put_layer(self, new: NewLayer) -> Image:
        """Add an image layer, replacing one of the same name made by an earlier run."""
        if new.name in self.viewer.layers:
            old = self.viewer.layers[new.name]
            if isinstance(old.metadata, dict) and old.metadata.get(METADATA_KEY, {}).get("made_by") == "widget":
                self.viewer.layers.remove(old)
        return self.viewer.add_image(new.data, **new.kwargs)

    def _show_result(self, context: RunContext, result: RunResult) -> None:
        """Add the layers of a run (:func:`~.._result_layers.result_layers`): [simulated LR], tricubic, SR…,
        then the difference maps (hidden unless side by side); a new run replaces the layers of the same
        name that an earlier run made."""
        layers = result_layers(context, result, differences_visible=self.side_by_side.enabled)
        if layers.lr is not None:
            self._put_layer(layers.lr)
        outputs = {new.name: self._put_layer(new) for new in layers.outputs}
        self.diff_layers = [self._put_layer(new) for new in layers.differences]
        self.shown = Shown(result, context, outputs, layers.lr_name,
                           context.input_name if result.mode == "simulate" else context.gt_name)
        if context.comparison:
            self._fill_comparison(result)
        if self.side_by_side.enabled:
            self.side_by_side.arrange(self.grid_layers())
        if result.gt_cropped:
            show_warning("The ground truth was cropped at the end of its stored axes to a multiple of the scale.")
        if result.modality_warning:
            show_warning(f"Input layer: {result.modality_warning}.")
        self.refresh_live()

    def _fill_comparison(self, result: RunResult) -> None:
        self.comparison_rows = comparison_rows(result, UNTRAINED)
        fill_table(self.comparison_table, self.comparison_rows, COMPARISON_COLUMNS)

    # ------------------------------------------------------------------ live metrics and crops
    def _sliced_axis(self) -> int | None:
        """The axis the slider moves along (2D view of a 3D world), else ``None``."""
        return sliced_axis(self.viewer.dims.ndisplay, self.viewer.dims.not_displayed)

    def _region_layer(self) -> Shapes | None:
        layer = self._layer(self.region_combo.currentText())
        return layer if isinstance(layer, Shapes) and len(layer.data) else None

    def _regions(self, shown: Shown, reference: Image, axis: int) -> tuple[Region | None, Region | None]:
        """(HR region, LR region) of the region layer's last rectangle (:func:`~.._view.view_regions`)."""
        layer = self._region_layer()
        if layer is None or layer.ndim != self.viewer.dims.ndim:
            return None, None
        corners = _frame(layer).to_world(last_rectangle(layer.data, layer.shape_type))
        lr_layer = self._layer(shown.lr_name)
        lr = None if lr_layer is None else _frame(lr_layer)
        return view_regions(corners, axis, _frame(reference), lr, shown.result.view_scale)

    def _looked_at(self, shown: Shown, labels: list[str]
                   ) -> tuple[tuple[int, int] | None, Region | None, Region | None]:
        """(axis, index) of the displayed slice in the HR grid, then the (HR, LR) regions on it; ``None``: not shown."""
        axis = self._sliced_axis()
        if not labels or axis is None:
            return None, None, None
        reference = shown.outputs[labels[0]]
        where = axis, slice_index(_frame(reference), self.viewer.dims.point, axis)
        return (where, *self._regions(shown, reference, axis))

    def refresh_live(self) -> None:
        """Recompute the metrics table (region, current slice, volume) and the crops."""
        shown = self.shown
        rows: list[dict[str, Any]] = []
        crop_list: list[Crop] = []
        if shown is not None:
            labels = [label for label, lyr in shown.outputs.items() if lyr in self.viewer.layers]
            where, region, lr_region = self._looked_at(shown, labels)
            rows = metric_rows(shown.result, labels, where, region)
            if where is not None and region is not None:
                crop_list = crops(shown.result, labels, where, region, lr_region)
        self.metric_rows = rows
        fill_table(self.metrics_table, rows, METRIC_COLUMNS)
        fit_rows(self.metrics_table)
        if crop_list:
            self.crops.set_crops(crop_list, shown.context.window if shown else (0.0, 1.0))
        else:
            self.crops.clear()

    def follow_slice(self, *_: Any) -> None:
        """Move the region's rectangle to the displayed slice, so that it stays in view while the slider moves."""
        layer = self._region_layer()
        axis = self._sliced_axis()
        if layer is None or axis is None or layer.ndim != self.viewer.dims.ndim:
            return
        moved = onto_slice(layer.data, _frame(layer), self.viewer.dims.point, axis)
        if moved is not None:
            layer.data = moved

    # ------------------------------------------------------------------ region, grid, exports
    def start_region(self) -> Shapes:
        """Add (or reuse) the region Shapes layer and switch it to rectangle drawing.

        The layer takes the grid of the ground truth (else the input), so that every slice the slider
        shows lies on one of its integer planes: napari draws a shape only within half a plane of it.
        """
        layer = self._layer(REGION_LAYER)
        if not isinstance(layer, Shapes):
            reference = self._layer(self.gt_combo.currentText()) or self._layer(self.input_combo.currentText())
            grid = {} if reference is None else {"scale": reference.scale, "translate": reference.translate}
            layer = self.viewer.add_shapes(ndim=3, name=REGION_LAYER, edge_color="yellow", face_color="transparent",
                                           edge_width=1.0, **grid)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        self.refresh_layer_choices()
        self.region_combo.setCurrentText(layer.name)
        return layer

    def grid_layers(self) -> list[str]:
        """The layers of the last run in grid order: GT, tricubic, SR…, LR, then the difference maps."""
        shown = self.shown
        if shown is None:
            return []
        diffs = [lyr.name for lyr in self.diff_layers]
        order = grid_order(shown.gt_name, list(shown.outputs), shown.lr_name, diffs)
        return [name for name in order if name in self.viewer.layers]

    def set_grid(self, on: bool) -> None:
        """Side by side (napari grid mode: the last run's layers in :meth:`grid_layers` order) or the overlay."""
        self.side_by_side.set(on, self.grid_layers(), hidden_after=self.diff_layers)
        if self.grid_button.isChecked() != bool(on):
            self.grid_button.setChecked(bool(on))

    def export_metrics_csv(self, path: str | Path) -> Path:
        """Write the metrics table (full precision) to ``path``."""
        return write_csv(path, self.metric_rows, METRIC_CSV_COLUMNS)

    def export_comparison_csv(self, path: str | Path) -> Path:
        """Write the comparison table (full precision) to ``path``."""
        return write_csv(path, self.comparison_rows, COMPARISON_COLUMNS)

    def export_crops_png(self, path: str | Path) -> Path:
        """Write the magnified crops (with their titles) to ``path``."""
        return self.crops.save_png(path)

    def _save_dialog(self, title: str, filter_: str, action: Any) -> None:
        path, _ = QFileDialog.getSaveFileName(self, title, "", filter_)
        if not path:
            return
        try:
            written = action(path)
        except (OSError, ValueError) as error:
            show_error(str(error))
            return
        show_info(f"Wrote {written}")

    def _export_metrics_dialog(self) -> None:
        self._save_dialog("Export metrics", "CSV (*.csv)", self.export_metrics_csv)

    def _export_comparison_dialog(self) -> None:
        self._save_dialog("Export comparison", "CSV (*.csv)", self.export_comparison_csv)

    def _export_png_dialog(self) -> None:
        self._save_dialog("Export crops", "PNG (*.png)", self.export_crops_png)


class ComparisonEntry(QWidget):
    """The "VolumeNet block comparison" menu entry: shows the one widget's "Compare blocks" tab.

    napari docks whatever a widget contribution returns, so this entry opens (or finds) the
    super-resolution dock, switches it to its comparison tab, and removes its own empty dock as
    soon as napari has added it: there is only ever one copy of the widget.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        dock, widget = napari_viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET_NAME)
        widget.show_comparison()
        dock.show()
        dock.raise_()
        self.target = widget
        QTimer.singleShot(0, self._remove_own_dock)

    def _remove_own_dock(self) -> None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        if parent is not None:
            self.viewer.window.remove_dock_widget(parent)
