"""The "VolumeNet super-resolution" dock widget.

Everything it computes comes from :func:`napari_volumenet._pipeline.run_steps` (run in a
``thread_worker``: per-tile progress, cancel at the next tile boundary) and from
:func:`napari_volumenet._pipeline.slice_metrics`; this module only collects the user's choices,
adds the resulting layers with the right geometry and shows tables and crops.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
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
    QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QRadioButton, QScrollArea, QSizePolicy, QSpinBox, QStyle, QTabWidget, QVBoxLayout,
    QWidget,
)

from .. import __version__
from .._geometry import METADATA_KEY, LayerGeometry
from .._pipeline import (
    UNTRAINED, ModelSpec, Output, RunResult, Step, describe_plan, run_steps, slice_metrics,
)
from ..errors import InputError, VolumeNetError
from ..inference import PRECISIONS, resolve_device
from ..models import list_models
from ..weights import list_bundled
from .compare import ModelList
from .crops import Crop, CropsPanel, magnification_for
from .tables import (
    COMPARISON_COLUMNS, COMPARISON_HEADERS, METRIC_COLUMNS, METRIC_HEADERS, fill_table, make_table, write_csv,
)

NONE = "(none)"
ANY_MODEL = "any (from the weights file)"
CUSTOM = "Custom weights file…"
AUTO_MODALITY = "auto (from the weights)"
REGION_LAYER = "SR region"
DIFF_COLORMAP = "magma"
MIN_WIDTH = 460
"""Width of the dock's content (px): room for the metrics table and two columns of crops."""
REFRESH_MS = 80
"""Debounce of the live metrics: they are recomputed once the slider has rested this long."""


@dataclass
class Failure:
    """What the worker returns instead of a result when something went wrong."""

    message: str


def _grid(viewer):
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


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
class RunContext:
    """What a run was started with (the layers are looked up again when it returns)."""

    input_name: str
    geometry: LayerGeometry
    mode: str
    gt_name: str | None
    comparison: bool
    window: tuple[float, float]
    started: float = field(default_factory=time.perf_counter)


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

    start_tab = 0

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.shown: Shown | None = None
        self.metric_rows: list[dict[str, Any]] = []
        self.comparison_rows: list[dict[str, Any]] = []
        self.last_timing: dict[str, float] = {}
        self.diff_layers: list[Image] = []
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

        inputs = QGroupBox("Input")
        form = QFormLayout(inputs)
        self.input_combo = self._combo("The 3D image layer to upscale (in Simulate mode: the HR volume)")
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
        self.gt_combo = self._combo("Optional HR volume to compare with (s × the input's shape)")
        form.addRow("Ground truth", self.gt_combo)
        self.mode_simulate.toggled.connect(lambda on: self.gt_combo.setEnabled(not on))
        layout.addWidget(inputs)

        self.tabs = FittingTabs()
        self.tabs.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
        self.tabs.addTab(self._build_model_tab(), "Model")
        self.tabs.addTab(self._build_compare_tab(), "Compare blocks")
        self.tabs.addTab(self._build_device_tab(), "Device")
        self.tabs.currentChanged.connect(self._fit_tab)
        layout.addWidget(self.tabs)

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
        layout.addLayout(run_row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("Choose an input layer and a weights file, then Run.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        results = QGroupBox("Results")
        results.setToolTip("RMSE, PSNR, PSNR-fg, SSIM against the ground truth, on the 0–255 scale of its range "
                           "(the paper's protocol); slice and region rows follow the slider and the rectangle")
        rlayout = QVBoxLayout(results)
        buttons = QHBoxLayout()
        self.grid_button = QPushButton("Side by side")
        self.grid_button.setToolTip("napari grid mode: every layer in its own view (difference maps included)")
        self.grid_button.setCheckable(True)
        self.grid_button.toggled.connect(self.set_grid)
        self.csv_button = QPushButton("Table CSV…")
        self.csv_button.clicked.connect(self._export_metrics_dialog)
        self.png_button = QPushButton("Crops PNG…")
        self.png_button.clicked.connect(self._export_png_dialog)
        for button in (self.grid_button, self.csv_button, self.png_button):
            buttons.addWidget(button)
        rlayout.addLayout(buttons)
        self.metrics_table = make_table(METRIC_HEADERS)
        self.metrics_table.setMinimumHeight(150)
        rlayout.addWidget(self.metrics_table)
        region_row = QHBoxLayout()
        self.region_combo = self._combo("Shapes layer whose last rectangle is the region")
        self.draw_button = QPushButton("Draw")
        self.draw_button.setToolTip("Add a Shapes layer and start drawing a rectangle")
        self.draw_button.clicked.connect(self.start_region)
        region_row.addWidget(QLabel("Region"))
        region_row.addWidget(self.region_combo, 1)
        region_row.addWidget(self.draw_button)
        rlayout.addLayout(region_row)
        self.crops = CropsPanel()
        rlayout.addWidget(self.crops)
        layout.addWidget(results)
        layout.addStretch(1)
        self.tabs.setCurrentIndex(self.start_tab)
        self._fit_tab(self.start_tab)

    def _combo(self, tooltip: str) -> LayerCombo:
        combo = LayerCombo(self.refresh_layer_choices)
        combo.setToolTip(tooltip)
        combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(14)
        return combo

    def _build_device_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.modality_combo = QComboBox()
        self.modality_combo.addItems([AUTO_MODALITY, "mri", "ct"])
        self.modality_combo.setToolTip("Intensity normalisation; by default the one the weights were trained with")
        form.addRow("Modality", self.modality_combo)
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

    def _fit_tab(self, index: int) -> None:
        """Size the tab widget to the current tab only (the Compare tab is much taller)."""
        self.tabs.updateGeometry()

    def _build_model_tab(self) -> QWidget:
        tab = QWidget()
        form = QFormLayout(tab)
        self.model_combo = QComboBox()
        self.model_combo.addItems([ANY_MODEL, *[m for m in list_models() if m != "tricubic"]])
        self.model_combo.setToolTip("The network the weights must hold (checked when they are loaded)")
        self.model_combo.currentTextChanged.connect(self._fill_weights)
        form.addRow("Model", self.model_combo)
        self.weights_combo = QComboBox()
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
        self.tricubic_check = QCheckBox("Add the tricubic interpolation")
        self.tricubic_check.setChecked(True)
        form.addRow("", self.tricubic_check)
        self._fill_weights()
        return tab

    def _build_compare_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        note = QLabel("Runs each checked network in turn on the same input (tricubic first). Rows without a "
                      f"weights file are {UNTRAINED}: their time and size are real, their quality is not shown.")
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
        for w in list_bundled():
            if model in (ANY_MODEL, w.model):
                self.weights_combo.addItem(f"{w.name} — {w.description}", w.name)
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

    def _single_specs(self) -> list[ModelSpec]:
        model = self.model_combo.currentText()
        model = None if model == ANY_MODEL else model
        name = self.weights_combo.currentData()
        if name is not None:
            bundled = {w.name: w for w in list_bundled()}[name]
            return [ModelSpec(f"SR {bundled.name}", bundled.path, model)]
        text = self.weights_edit.text().strip()
        if not text:
            raise InputError("Choose a weights file (File ▸ …): there are no bundled weights for this model yet.")
        path = Path(text).expanduser()
        return [ModelSpec(f"SR {path.stem}", path, model)]

    def _image_layers(self) -> list[Image]:
        return [lyr for lyr in self.viewer.layers
                if isinstance(lyr, Image) and lyr.ndim == 3 and not lyr.rgb and not lyr.multiscale]

    def refresh_layer_choices(self, *_: Any) -> None:
        """Fill the layer combos; pick the sample's LR/HR pair (or the selected layer) when nothing is chosen."""
        images = self._image_layers()
        names = [lyr.name for lyr in images]

        def role(lyr: Image) -> dict[str, Any]:
            entry = lyr.metadata.get(METADATA_KEY) if isinstance(lyr.metadata, dict) else None
            return entry if isinstance(entry, dict) else {}

        current_input = self.input_combo.currentText()
        if current_input not in names:
            lr = [lyr for lyr in images if role(lyr).get("role") == "lr"]
            active = self.viewer.layers.selection.active
            if lr:
                current_input = lr[-1].name
            elif active in images:
                current_input = active.name
            else:
                current_input = names[-1] if names else ""
        self._set_items(self.input_combo, names, current_input)

        current_gt = self.gt_combo.currentText()
        if current_gt not in names:
            current_gt = NONE
            source = next((lyr for lyr in images if lyr.name == current_input), None)
            pair = role(source).get("pair") if source is not None else None
            hr = [lyr for lyr in images if role(lyr).get("role") == "hr" and role(lyr).get("pair") == pair and pair]
            if hr:
                current_gt = hr[-1].name
        self._set_items(self.gt_combo, [NONE, *names], current_gt)

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
            raise InputError("Choose an input layer (a 3D image): open a NIfTI file or File ▸ Open Sample.")
        geometry = LayerGeometry.from_layer(source.metadata, source.scale, source.translate, source.ndim)
        mode = "simulate" if self.mode_simulate.isChecked() else "upscale"
        gt_layer = None if mode == "simulate" else self._layer(self.gt_combo.currentText())
        if gt_layer is not None and gt_layer is source:
            raise InputError("The ground truth must be another layer than the input (or use Simulate mode).")
        specs = self.model_list.specs() if comparison else self._single_specs()
        if comparison and not specs:
            raise InputError("Check at least one network to compare.")
        modality = self.modality_combo.currentText()
        tile = self.tile_spin.value()
        scale = None
        if all(spec.untrained for spec in specs):  # untrained only: ×2 in the input's stored axes
            scale = 2
        steps = run_steps(
            np.asarray(source.data), specs, mode=mode,
            ground_truth=None if gt_layer is None else np.asarray(gt_layer.data),
            ornt=geometry.ornt, modality=None if modality == AUTO_MODALITY else modality, scale=scale,
            device=self.device_combo.currentText(), precision=self.precision_combo.currentText(),
            tile=None if tile < 0 else tile, tricubic=comparison or self.tricubic_check.isChecked(),
        )
        window = tuple(float(v) for v in (gt_layer or source).contrast_limits)
        context = RunContext(source.name, geometry, mode, None if gt_layer is None else gt_layer.name,
                             comparison, window)  # type: ignore[arg-type]
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
        self.status.setText(f"Done in {total:.1f} s (networks {upscale:.1f} s) on {plan}.")

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
    def _put_layer(self, data: np.ndarray, kwargs: dict[str, Any]) -> Image:
        """Add an image layer, replacing one of the same name made by an earlier run."""
        name = kwargs["name"]
        if name in self.viewer.layers:
            old = self.viewer.layers[name]
            if isinstance(old.metadata, dict) and old.metadata.get(METADATA_KEY, {}).get("made_by") == "widget":
                self.viewer.layers.remove(old)
        return self.viewer.add_image(data, **kwargs)

    def _show_result(self, context: RunContext, result: RunResult) -> None:
        """Add the layers of a run: [simulated LR], tricubic, SR…, then the difference maps (hidden).

        Layer names are short (``tricubic``, ``SR <weights>``, ``|SR <weights> − GT|``); a new run
        replaces the layers of the same name that an earlier run made.
        """
        from ..io import lr_affine, sr_affine

        geometry = context.geometry
        scale = result.scale
        suffix = f"×{scale[0]}" if len(set(scale)) == 1 else "×(" + ",".join(map(str, scale)) + ")"
        lr_name = context.input_name
        if result.mode == "simulate":
            lr_geometry = geometry.replace(lr_affine(geometry.affine, scale), role="lr", made_by="widget",
                                           scale=scale)
            lr_name = f"LR {suffix} (simulated from {context.input_name})"
            lr_stored_shape = lr_geometry.stored(result.lr).shape
            self._put_layer(result.lr, {"name": lr_name, "colormap": "gray", "contrast_limits": context.window,
                                        **lr_geometry.layer_kwargs(lr_stored_shape)})
            base_affine = lr_geometry.affine
        else:
            base_affine = geometry.affine
        hr_affine = sr_affine(base_affine, scale)
        hr_shape = tuple(n * s for n, s in zip(geometry.stored(result.lr).shape, scale))
        ordered = sorted(result.outputs, key=lambda o: o.kind != "tricubic")
        outputs: dict[str, Image] = {}
        for out in ordered:
            extra = self._provenance(out, context, result)
            kwargs = geometry.replace(hr_affine, role=out.kind, made_by="widget", **extra).layer_kwargs(hr_shape)
            outputs[out.label] = self._put_layer(out.data, {
                "name": out.label, "colormap": "gray", "contrast_limits": context.window, **kwargs})
        self.diff_layers = []
        for out in ordered:
            if out.difference is None:
                continue
            kwargs = geometry.replace(hr_affine, role="difference", made_by="widget", of=out.label,
                                      description=f"|{out.label} - GT|"[:80]).layer_kwargs(hr_shape)
            self.diff_layers.append(self._put_layer(out.difference, {
                "name": f"|{out.label} − GT|", "colormap": DIFF_COLORMAP, "contrast_limits": result.diff_limits,
                "visible": _grid(self.viewer).enabled, **kwargs}))
        self.shown = Shown(result, context, outputs, lr_name,
                           context.input_name if result.mode == "simulate" else context.gt_name)
        if context.comparison:
            self._fill_comparison(result)
        if result.gt_cropped:
            show_warning("The ground truth was cropped at the end of its stored axes to a multiple of the scale.")
        self.refresh_live()

    @staticmethod
    def _provenance(out: Output, context: RunContext, result: RunResult) -> dict[str, Any]:
        from ..io import provenance_description, sha256_file

        scale = list(result.scale)
        sha = sha256_file(out.weights) if out.weights is not None else None
        if out.kind == "tricubic":
            description = f"napari-volumenet {__version__} tricubic x{'x'.join(map(str, scale))}"
        elif sha is not None:
            description = provenance_description(str(out.model_config.get("name")), tuple(scale), sha, __version__)
        else:
            description = f"napari-volumenet {__version__} {out.model_config.get('name')} untrained (random weights)"
        sidecar = {
            "tool": "napari-volumenet widget",
            "version": __version__,
            "input_layer": context.input_name,
            "input": context.geometry.extra.get("path"),
            "mode": result.mode,
            "output": out.label,
            "model": out.model_config.get("name"),
            "model_config": out.model_config,
            "params": out.params,
            "weights": None if out.weights is None else str(out.weights),
            "weights_sha256": sha,
            "untrained": out.untrained,
            "scale": scale,
            "modality": result.modality,
            "normalization": out.normalization,
            "plan": out.plan.to_dict(),
            "seconds": out.seconds,
        }
        return {"description": description[:80], "sidecar": sidecar, "output": out.label}

    def _fill_comparison(self, result: RunResult) -> None:
        rows = []
        for out in result.outputs:
            untrained = out.untrained
            quality = out.metrics if (out.metrics is not None and not untrained) else {}
            rows.append({
                "model": out.label,
                "weights": UNTRAINED if untrained else ("—" if out.weights is None else out.weights.name),
                "psnr": quality.get("psnr"),
                "ssim": quality.get("ssim"),
                "seconds": out.seconds,
                "params": out.params,
                "_tooltip": "Random weights: the time and size are real, the image quality is meaningless."
                if untrained else "",
            })
        self.comparison_rows = rows
        fill_table(self.comparison_table, rows, COMPARISON_COLUMNS)

    # ------------------------------------------------------------------ live metrics and crops
    def _slice(self, reference: Image) -> tuple[int, int] | None:
        """(axis, index) of the displayed slice in ``reference``'s grid; ``None`` in 3D view."""
        dims = self.viewer.dims
        if dims.ndisplay != 2 or len(dims.not_displayed) != 1:
            return None
        axis = int(dims.not_displayed[0])
        point = np.asarray(reference.world_to_data(dims.point), dtype=float)
        index = int(np.clip(np.round(point[axis]), 0, reference.data.shape[axis] - 1))
        return axis, index

    def _region_world(self) -> np.ndarray | None:
        """World (min, max) on the two displayed axes of the region layer's last rectangle."""
        layer = self._layer(self.region_combo.currentText()) if self.region_combo.currentText() != NONE else None
        if not isinstance(layer, Shapes) or not len(layer.data):
            return None
        kinds = list(layer.shape_type)
        index = max((i for i, k in enumerate(kinds) if k == "rectangle"), default=len(kinds) - 1)
        vertices = np.asarray(layer.data[index], dtype=float)
        world = np.array([layer.data_to_world(v) for v in vertices])
        displayed = list(self.viewer.dims.displayed)
        if world.shape[1] != self.viewer.dims.ndim:
            return None
        return np.stack([world[:, displayed].min(axis=0), world[:, displayed].max(axis=0)])

    def _region_indices(self, layer: Image, box: np.ndarray) -> tuple[slice, slice] | None:
        """Voxels of ``layer`` (on the displayed axes) whose centres lie inside the world ``box``."""
        displayed = list(self.viewer.dims.displayed)
        corners = []
        for corner in box:
            point = np.asarray(self.viewer.dims.point, dtype=float).copy()
            point[displayed] = corner
            corners.append(np.asarray(layer.world_to_data(point), dtype=float)[displayed])
        low, high = np.min(corners, axis=0), np.max(corners, axis=0)
        slices = []
        for axis, lo, hi in zip(displayed, low, high):
            start = max(int(np.ceil(lo - 1e-6)), 0)
            stop = min(int(np.floor(hi + 1e-6)) + 1, layer.data.shape[axis])
            if stop <= start:
                return None
            slices.append(slice(start, stop))
        return slices[0], slices[1]

    def _region(self, shown: Shown, reference: Image, axis: int) -> tuple[tuple[slice, slice] | None,
                                                                          tuple[slice, slice] | None]:
        """(HR region, LR region) on the displayed axes for the region layer's rectangle.

        The LR region is the LR voxels whose centres lie inside the rectangle; the HR region is exactly
        their HR voxels, so that every crop covers the same physical area.
        """
        box = self._region_world()
        if box is None:
            return None, None
        lr_layer = self._layer(shown.lr_name)
        if lr_layer is None:
            return self._region_indices(reference, box), None
        lr_region = self._region_indices(lr_layer, box)
        if lr_region is None:
            return None, None
        displayed = [a for a in range(3) if a != axis]
        factors = [shown.result.view_scale[a] for a in displayed]
        hr_region = tuple(slice(r.start * f, r.stop * f) for r, f in zip(lr_region, factors))
        return hr_region, lr_region  # type: ignore[return-value]

    def refresh_live(self) -> None:
        """Recompute the metrics table (volume, current slice, region) and the crops."""
        shown = self.shown
        rows: list[dict[str, Any]] = []
        crops: list[Crop] = []
        if shown is not None:
            outputs = {label: lyr for label, lyr in shown.outputs.items() if lyr in self.viewer.layers}
            result = shown.result
            reference = next(iter(outputs.values()), None)
            where = self._slice(reference) if reference is not None else None
            region = lr_region = None
            if where is not None and reference is not None:
                region, lr_region = self._region(shown, reference, where[0])
            gt = result.ground_truth
            if gt is not None and result.value_range is not None:
                for label in outputs:
                    rows.append({"output": label, "scope": "volume", **(result.output(label).metrics or {})})
                if where is not None:
                    axis, index = where
                    for label in outputs:
                        rows.append({"output": label, "scope": f"slice {index}",
                                     **slice_metrics(gt, result.output(label).data, axis, index, result.value_range)})
                    if region is not None:
                        size = "×".join(str(s.stop - s.start) for s in region)
                        for label in outputs:
                            rows.append({"output": label, "scope": f"region {size}",
                                         **slice_metrics(gt, result.output(label).data, axis, index,
                                                         result.value_range, region)})
            if where is not None and region is not None:
                crops = self._crops(shown, outputs, where, region, lr_region)
        self.metric_rows = rows
        fill_table(self.metrics_table, rows, METRIC_COLUMNS)
        if crops:
            self.crops.set_crops(crops, shown.context.window if shown else (0.0, 1.0))
        else:
            self.crops.clear()

    def _crops(self, shown: Shown, outputs: dict[str, Image], where: tuple[int, int],
               region: tuple[slice, slice], lr_region: tuple[slice, slice] | None) -> list[Crop]:
        """GT, LR, then each output at the current slice, over the same physical region."""
        axis, index = where
        take = [slice(None)] * 3
        take[axis] = index
        rows_, cols_ = region
        magnification = magnification_for((rows_.stop - rows_.start, cols_.stop - cols_.start))
        square = (magnification, magnification)
        result = shown.result
        crops: list[Crop] = []
        if result.ground_truth is not None:
            crops.append(Crop("GT", np.asarray(result.ground_truth[tuple(take)])[rows_, cols_], square))
        if lr_region is not None:
            lr_take = [slice(None)] * 3
            lr_take[axis] = index // result.view_scale[axis]  # the LR slice this HR slice lies in
            displayed = [a for a in range(3) if a != axis]
            factors = tuple(magnification * result.view_scale[a] for a in displayed)
            lr2 = np.asarray(result.lr[tuple(lr_take)])
            crops.append(Crop("LR", lr2[lr_region[0], lr_region[1]], factors))  # type: ignore[arg-type]
        for label in outputs:
            data = np.asarray(result.output(label).data[tuple(take)])
            crops.append(Crop(label, data[rows_, cols_], square))
        return crops

    # ------------------------------------------------------------------ region, grid, exports
    def start_region(self) -> Shapes:
        """Add (or reuse) the region Shapes layer and switch it to rectangle drawing."""
        layer = self._layer(REGION_LAYER)
        if not isinstance(layer, Shapes):
            layer = self.viewer.add_shapes(ndim=3, name=REGION_LAYER, edge_color="yellow", face_color="transparent",
                                           edge_width=1.0)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        self.refresh_layer_choices()
        self.region_combo.setCurrentText(layer.name)
        return layer

    def set_grid(self, on: bool) -> None:
        """Show every layer side by side (napari grid mode, difference maps shown) or overlaid (hidden)."""
        for layer in self.diff_layers:
            if layer in self.viewer.layers:
                layer.visible = bool(on)
        if on:  # about twice as wide as tall: GT, LR, tricubic, SR… on the first row, the differences below
            count = len(self.viewer.layers)
            rows = max(1, math.ceil(math.sqrt(count / 2)))
            _grid(self.viewer).shape = (rows, max(1, math.ceil(count / rows)))
        _grid(self.viewer).enabled = bool(on)
        self.viewer.reset_view()
        if self.grid_button.isChecked() != bool(on):
            self.grid_button.setChecked(bool(on))

    def export_metrics_csv(self, path: str | Path) -> Path:
        """Write the metrics table (full precision) to ``path``."""
        return write_csv(path, self.metric_rows, METRIC_COLUMNS)

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


class ComparisonWidget(SuperResolutionWidget):
    """The same widget, opened on its "Compare blocks" tab."""

    start_tab = 1
