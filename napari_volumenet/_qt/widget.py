"""The "VolumeNet super-resolution" dock widget.

Everything it computes comes from :func:`napari_volumenet._pipeline.run_steps` (run in a
``thread_worker``: progress per block or tile; Cancel drops the run at once), from
:mod:`napari_volumenet._comparison` (layer choice, comparison rows) and from
:mod:`napari_volumenet._result_layers` (the layers of a result, with their grids and provenance); this
module collects the user's choices (inputs here, the network in :mod:`.model_tab`), runs them and adds the
resulting layers, whose live metrics and crops :mod:`.results` shows.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup, QComboBox, QDockWidget, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
    QPushButton, QRadioButton, QScrollArea, QSizePolicy, QSpinBox, QStyle, QTabWidget, QVBoxLayout, QWidget,
)

from .._comparison import LayerInfo, choose_layers, comparison_rows, same_layer
from .._geometry import METADATA_KEY, LayerGeometry, inverse_ornt
from .._names import in_widget_terms
from .._pipeline import MIN_STEPS, UNTRAINED, RunRequest, RunResult, Step, describe_plan, run_steps
from .._result_layers import NewLayer, RunContext, result_layers
from ..errors import InputError, VolumeNetError
from ..evaluation import NetworkCache
from ..inference import PRECISIONS, RunOptions, resolve_device
from ..weights import list_bundled
from .combos import LayerCombo
from .compare import ModelList
from .fit_tab import FitTab
from .model_tab import ModelTab
from .results import NONE, ResultsPanel, Shown, layer_named, save_dialog, set_contrast
from .tables import (
    COMPARISON_COLUMNS, COMPARISON_CSV_COLUMNS, COMPARISON_HEADERS, fill_table, make_table, write_csv,
)
from .turns import next_turn, run_for
from .worker import Failure, no_result, start_worker

ISOTROPIC = "×2 isotropic (the paper's)"
THICK = "thick slices ×{}"
THICK_FACTORS = (2, 3, 4)
PLUGIN = "napari-volumenet"
WIDGET_NAME = "VolumeNet super-resolution"
"""The dock widget's display name in napari.yaml."""
COMPARE_TAB = 1
MIN_WIDTH = 430
"""Width of the dock's content (px): room for the metrics table and two columns of crops."""
PROGRESS_INTERVAL_S = 0.2
"""The shortest time between two repaints of the bar and the status line while a network runs. A repaint of
a window that holds napari's OpenGL canvas composes the whole window: ~110 of them per run (one per block)."""
SHOW_TURN_S = 0.1
"""How long one turn of the event loop may go on showing a result's layers before it lets the GUI draw:
refilled layers come several to a turn, a new layer (the first run's) about one."""


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
        self.stopping: list[Any] = []
        """Cancelled workers still finishing their current step (their results are dropped)."""
        self._run_id = 0
        self._showing: Generator[None, None, None] | None = None
        """The finished run's result being shown, a layer per event-loop turn (:meth:`_show_next`)."""
        self._finished_run: int | None = None
        """The run whose worker ended while its result was still being shown."""
        self.alive = [True]
        """False once the widget is deleted (its dock closed): a worker that ends later finds nothing to update."""
        self.destroyed.connect(lambda *_, alive=self.alive: alive.__setitem__(0, False))
        self._status_owner = "inputs"
        """What the status line shows: ``inputs`` (why Run can or cannot start) or ``run`` (the last run's end)."""
        self.comparison_rows: list[dict[str, Any]] = []
        self.last_timing: dict[str, float] = {}
        self.networks = NetworkCache()
        """The networks of earlier runs' weights files, built once (0.1–0.4 s each in the worker)."""
        self._painted = 0.0
        """When the bar was last repainted during a run (``time.perf_counter``)."""
        self._input_fixed = False
        self._truth_fixed = False
        self._build()
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
        self.model_tab = ModelTab()
        self.tabs.addTab(self.model_tab, "Model")
        self.tabs.addTab(self._build_compare_tab(), "Compare blocks")
        self.fit_tab = FitTab(self)
        self.tabs.addTab(self.fit_tab, "Fit to this scan")
        self.tabs.addTab(self._build_device_tab(), "Device")
        self.tabs.currentChanged.connect(self._fit_tab)
        layout.addWidget(self.tabs)
        layout.addLayout(self._build_run_row())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.results = ResultsPanel(self.viewer, self._region_reference)
        layout.addWidget(self.results)
        layout.addStretch(1)
        self._fit_tab(0)

    def _build_inputs(self) -> QGroupBox:
        inputs = QGroupBox("Input")
        form = QFormLayout(inputs)
        self.input_combo = self._combo("The 3D image layer to upscale (in Simulate mode: the HR volume)")
        self.input_combo.currentIndexChanged.connect(partial(self._user_chose, "input"))
        self.input_combo.currentIndexChanged.connect(self.check_inputs)
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
        self.gt_combo.currentIndexChanged.connect(self.check_inputs)
        form.addRow("Ground truth", self.gt_combo)
        self.mode_simulate.toggled.connect(lambda on: self.gt_combo.setEnabled(not on))
        self.mode_simulate.toggled.connect(self.check_inputs)
        return inputs

    def _build_run_row(self) -> QHBoxLayout:
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Upscale the input with the chosen model (and tricubic)")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop now; nothing is added")
        self.cancel_button.clicked.connect(self.cancel)
        self.badge = QLabel()
        self.badge.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 6px; padding: 2px 6px; }")
        self.badge.setToolTip("Device · precision · number of tiles actually used")
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.badge)
        run_row.addStretch(1)
        return run_row

    def _combo(self, tooltip: str) -> LayerCombo:
        return LayerCombo(self.refresh_layer_choices, tooltip)

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

    def _image_layers(self) -> list[Image]:
        return [lyr for lyr in self.viewer.layers
                if isinstance(lyr, Image) and lyr.ndim == 3 and not lyr.rgb and not lyr.multiscale]

    def _user_chose(self, which: str, *_: Any) -> None:
        """A combo changed outside :meth:`refresh_layer_choices`: keep that choice from now on (and say what Run
        will do with it)."""
        setattr(self, f"_{which}_fixed", True)
        self._status_owner = "inputs"

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
        self.input_combo.set_items(names, input_name or "")
        self.gt_combo.set_items([NONE, *names], truth_name or NONE)
        self.results.refresh_regions()
        self.check_inputs()

    def _layer(self, name: str | None) -> Image | None:
        return layer_named(self.viewer, name)

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
            self.badge.setToolTip(in_widget_terms(str(error)))

    # ------------------------------------------------------------------ viewer events
    def _connect_viewer(self) -> None:
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        for layer in layers:
            layer.events.name.connect(self.refresh_layer_choices)

    def _on_layers_changed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and getattr(event, "type", "") == "inserted":
            layer.events.name.connect(self.refresh_layer_choices)
            self.results.watch(layer)
        self.refresh_layer_choices()
        self.results.schedule_refresh()

    # ------------------------------------------------------------------ inputs and the status line
    def input_problem(self) -> str | None:
        """Why Run cannot start with the chosen layers, in one sentence; ``None`` when it can."""
        source = self._layer(self.input_combo.currentText())
        if source is None:
            return "Input layer: choose a 3D image layer (open a NIfTI file or File ▸ Open Sample)."
        truth = None if self.mode_simulate.isChecked() else self._layer(self.gt_combo.currentText())
        if same_layer(truth, source):
            return (f"“{source.name}” is both the Input layer and the Ground truth: choose the low-resolution "
                    f"scan as the input, or Simulate to degrade “{source.name}” first.")
        return None

    def _ready_text(self) -> str:
        """What Run will do with the chosen layers."""
        name = self.input_combo.currentText()
        if self.mode_simulate.isChecked():
            index = self.degrade_combo.currentIndex()
            axis = self.slice_axis_combo.currentText()
            how = "×2" if index == 0 else f"slices ×{THICK_FACTORS[index - 1]} on {axis}"
            return f"Run degrades “{name}” ({how}), upscales it and compares with “{name}”."
        truth = self.gt_combo.currentText()
        compare = f" and compares with “{truth}”" if truth not in ("", NONE) else " (no ground truth)"
        return f"Run upscales “{name}”{compare}."

    def busy(self) -> bool:
        """Whether a run or a fit is going on, or a cancelled one still ends its step: one worker at a time
        (concurrent workers would also compete for the same cores)."""
        return bool(self.worker or self.stopping or self.fit_tab.worker or self.fit_tab.stopping)

    def check_inputs(self, *_: Any) -> None:
        """Enable Run only for usable inputs and when idle; the status line says why not (or what Run will do)."""
        problem = self.input_problem()
        idle = not self.busy()
        for button in (self.run_button, self.compare_button):
            button.setEnabled(idle and problem is None)
        self.fit_tab.fit_button.setEnabled(idle)
        if idle and (problem is not None or self._status_owner == "inputs"):
            self._status_owner = "inputs"
            self.status.setText(problem or self._ready_text())

    def _fail(self, message: str, ornt: Any = None) -> None:
        """Say why a run did not start or failed, in the widget's terms: status line and notification."""
        message = in_widget_terms(message, ornt)
        self._status_owner = "run"
        self.status.setText(message)
        show_error(message)

    def _input_ornt(self) -> Any:
        source = self._layer(self.input_combo.currentText())
        return None if source is None else LayerGeometry.from_layer(source.metadata, source.scale, source.translate,
                                                                     source.ndim).ornt

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Upscale the input with the model of the Model tab (and tricubic)."""
        self._start(comparison=False)

    def run_comparison(self) -> None:
        """Run every checked network of the Compare tab in turn."""
        self._start(comparison=True)

    def _start(self, comparison: bool) -> None:
        if self.busy():
            return
        try:
            problem = self.input_problem()
            if problem is not None:
                raise InputError(problem)
            steps, context = self._prepare(comparison)
        except VolumeNetError as error:
            self._fail(str(error), self._input_ornt())
            return
        self._run_id += 1
        run = self._run_id
        self._status_owner = "run"
        self.status.setText("Loading the model…")
        self.worker = start_worker(steps, yielded=partial(self._on_step, run),
                                   returned=partial(self._on_returned, run, context),
                                   aborted=lambda: None, finished=partial(self._on_finished, run))
        self._set_running(True)

    def _prepare(self, comparison: bool) -> tuple[Generator[Step, None, RunResult], RunContext]:
        source = self._layer(self.input_combo.currentText())
        geometry = LayerGeometry.from_layer(source.metadata, source.scale, source.translate, source.ndim)
        mode = "simulate" if self.mode_simulate.isChecked() else "upscale"
        gt_layer = None if mode == "simulate" else self._layer(self.gt_combo.currentText())
        thick = self._thick_slices(geometry)
        slice_axis, reason = None, None
        if comparison:
            specs = self.model_list.specs()
            if not specs:
                raise InputError("Compare blocks: check at least one network.")
            if thick is not None:
                raise InputError("Compare blocks: the block networks are ×2 isotropic; choose Simulate ×2 isotropic.")
        else:
            specs, slice_axis, reason = self.model_tab.specs(geometry, thick, mode == "simulate")
        tile = self.tile_spin.value()
        scale = None
        if all(spec.untrained for spec in specs):  # untrained only: ×2 in the input's stored axes
            scale = 2
        request = RunRequest(
            mode, ground_truth=None if gt_layer is None else np.asarray(gt_layer.data), ornt=geometry.ornt,
            modality=self.model_tab.modality(), scale=scale,
            options=RunOptions(device=self.device_combo.currentText(), precision=self.precision_combo.currentText(),
                               tile=None if tile < 0 else tile),
            tricubic=comparison or self.model_tab.tricubic_check.isChecked(), min_steps=MIN_STEPS, thick_slices=thick,
            slice_axis=slice_axis, cache=self.networks,
        )
        steps = run_steps(np.asarray(source.data), specs, request)
        window = tuple(float(v) for v in (gt_layer or source).contrast_limits)
        context = RunContext(source.name, geometry, mode, None if gt_layer is None else gt_layer.name,
                             comparison, window, reason)  # type: ignore[arg-type]
        return steps, context

    def cancel(self) -> None:
        """Stop the run now: its worker ends at its next step and its result is dropped; nothing is added."""
        worker = self.worker
        if worker is None or self._showing is not None:
            return
        worker.quit()
        self.stopping.append(worker)
        self.worker = None
        self._run_id += 1  # whatever the cancelled worker still sends is ignored
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Cancelled; nothing was added.")
        show_info("Super-resolution cancelled; nothing was added.")
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first tile
        self.check_inputs()

    def _current(self, run: int) -> bool:
        """Whether ``run`` is the run in progress and the widget still exists (else its signals are dropped)."""
        return self.alive[0] and run == self._run_id

    def _on_step(self, run: int, step: Step) -> None:
        if not self._current(run):
            return
        now = time.perf_counter()
        if (step.stage == "tiles" and 0 < step.done < step.total and self.progress.maximum() == step.total
                and now - self._painted < PROGRESS_INTERVAL_S):
            return  # the next block comes within milliseconds: repaint a few times a second, not per block
        self._painted = now
        prefix = f"[{step.index + 1}/{step.count}] " if step.count > 1 else ""
        if step.stage in ("plan", "tiles") and step.plan is not None:
            self.badge.setText(describe_plan(step.plan))
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(step.done)
            self.status.setText(f"{prefix}{step.label}: {100 * step.done // max(step.total, 1)} %")
        elif step.stage == "degrade":
            self.status.setText("Simulating the LR volume (degrade)…")
        elif step.stage == "metrics":
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(step.done)
            self.status.setText(f"Metrics of {step.label}…")

    def _on_returned(self, run: int, context: RunContext, value: RunResult | Failure | None) -> None:
        if not self._current(run):
            return
        if isinstance(value, Failure):
            value = Failure(in_widget_terms(value.message, context.geometry.ornt))
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
        if no_result(value, self.status):
            return
        self.cancel_button.setEnabled(False)  # the result is computed: it is shown, not cancelled
        self._showing = self._finish_run(context, value)
        next_turn(self._show_next, self)

    def _show_next(self) -> None:
        """Steps of showing a run's result (a layer added or refilled: 0.03–0.3 s each) for up to
        :data:`SHOW_TURN_S` (:func:`~.turns.run_for`), then back to the event loop, so that the GUI never freezes
        for all of them at once and the canvas is not redrawn after each (a redraw costs about what a refill does);
        the run ends after the last."""
        if self._showing is None or not self.alive[0]:
            return
        if not run_for(self._showing, SHOW_TURN_S):
            next_turn(self._show_next, self)
            return
        self._showing = None
        if self._finished_run is not None:
            self._on_finished(self._finished_run)

    def _finish_run(self, context: RunContext, value: RunResult) -> Generator[None, None, None]:
        """Show the result step by step (:meth:`_show_result`), then the run's time and plan in the status line."""
        try:
            warnings = yield from self._show_result(context, value)
        except VolumeNetError as error:
            self._fail(f"Failed: {error}", context.geometry.ornt)
            return
        total = time.perf_counter() - context.started
        upscale = sum(out.seconds for out in value.outputs if out.kind == "sr")
        self.last_timing = {"total": total, "upscale": upscale}
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        plan = describe_plan(value.outputs[-1].plan)
        why = f" Weights: {context.choice}." if context.choice else ""
        notes = "".join(f" ⚠ {warning}" for warning in warnings)
        self.status.setText(f"Done in {total:.1f} s (networks {upscale:.1f} s) on {plan}.{why}{notes}")
        choice = f"; {context.choice}" if context.choice else ""
        self.badge.setToolTip(f"Device · precision · number of tiles actually used{choice}")
        if context.choice:
            self.badge.setText(f"{plan} · ×{'×'.join(map(str, value.scale))}")

    def _on_finished(self, run: int) -> None:
        self.stopping = [worker for worker in self.stopping if worker.is_running]
        if not self.alive[0]:
            return
        if self._showing is not None and run == self._run_id:  # ends when the last layer is shown
            self._finished_run = run
            return
        self._finished_run = None
        if run != self._run_id:  # a cancelled worker has ended its step: Run is free again
            self.check_inputs()
            return
        self.worker = None
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    # ------------------------------------------------------------------ showing results
    def _put_layer(self, new: NewLayer) -> Image:
        """Add an image layer, or refill the one of the same name that an earlier run made.

        Refilling in place keeps the layer's place in the list and costs a texture upload, where removing and
        adding it again made napari collect garbage and build a new visual each time (0.5–2 s per run, growing
        with the session: ``benchmarks/widget_speed.py``)."""
        old = self.viewer.layers[new.name] if new.name in self.viewer.layers else None
        if not (isinstance(old, Image) and isinstance(old.metadata, dict)
                and old.metadata.get(METADATA_KEY, {}).get("made_by") == "widget"):
            return self.viewer.add_image(new.data, **new.kwargs)
        old.data = new.data
        for key, value in new.kwargs.items():
            if key == "contrast_limits":
                set_contrast(old, value)
            elif key != "name":
                setattr(old, key, value)
        return old

    def _show_result(self, context: RunContext, result: RunResult) -> Generator[None, None, list[str]]:
        """Add the layers of a run (:func:`~.._result_layers.result_layers`), yielding after each: [simulated LR],
        tricubic, SR…, then the difference maps (hidden unless side by side shows them); a new run replaces the
        layers of the same name that an earlier run made. Returns the run's warnings (also shown as notifications)."""
        shown = self.results.side_by_side.enabled and self.results.differences_shown(context.comparison)
        layers = result_layers(context, result, differences_visible=shown)
        if layers.lr is not None:
            self._put_layer(layers.lr)
            yield
        outputs: dict[str, Image] = {}
        for new in layers.outputs:
            outputs[new.name] = self._put_layer(new)
            yield
        differences = []
        for new in layers.differences:
            differences.append(self._put_layer(new))
            yield
        if context.comparison:
            self._fill_comparison(result)
        warnings = [in_widget_terms(text, context.geometry.ornt) for text in (
            "Ground truth: cropped at its end to a multiple of the scale." if result.gt_cropped else "",
            f"Input layer: {result.modality_warning}." if result.modality_warning else "") if text]
        for warning in warnings:
            show_warning(warning)
        gt_name = context.input_name if result.mode == "simulate" else context.gt_name
        self.results.show_run(Shown(result, context, outputs, layers.lr_name, gt_name), differences)
        if outputs:  # the last network's output (else tricubic), never a hidden difference map
            self.viewer.layers.selection.active = list(outputs.values())[-1]
        return warnings

    def _fill_comparison(self, result: RunResult) -> None:
        self.comparison_rows = comparison_rows(result, UNTRAINED, {w.path for w in list_bundled()})
        fill_table(self.comparison_table, self.comparison_rows, COMPARISON_COLUMNS)

    # ------------------------------------------------------------------ region and exports
    def _region_reference(self) -> Image | None:
        """The layer whose grid a new region layer takes: the ground truth, else the input."""
        return self._layer(self.gt_combo.currentText()) or self._layer(self.input_combo.currentText())

    def export_comparison_csv(self, path: str | Path) -> Path:
        """Write the comparison table (full precision) to ``path``."""
        return write_csv(path, self.comparison_rows, COMPARISON_CSV_COLUMNS)

    def _export_comparison_dialog(self) -> None:
        save_dialog(self, "Export comparison", "CSV (*.csv)", self.export_comparison_csv)


def main_dock_name() -> str:
    """The dock name napari's Plugins menu gives the super-resolution widget (it toggles that dock)."""
    from napari.plugins import menu_item_template
    from npe2 import PluginManager

    return menu_item_template.format(PluginManager.instance().get_manifest(PLUGIN).display_name, WIDGET_NAME)


def open_main_widget(viewer: Any) -> tuple[QDockWidget, SuperResolutionWidget]:
    """The viewer's one super-resolution widget and its dock: the existing one, however it was opened,
    else a new one docked under the Plugins menu's name for it."""
    for widget in viewer.window.dock_widgets.values():
        if isinstance(widget, SuperResolutionWidget):
            return _dock_of(widget), widget
    widget = SuperResolutionWidget(viewer)
    return viewer.window.add_dock_widget(widget, name=main_dock_name(), area="right"), widget


def _dock_of(widget: QWidget) -> QDockWidget | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


class ComparisonEntry(QWidget):
    """The "VolumeNet block comparison" menu entry: shows the one widget's "Compare blocks" tab.

    napari docks whatever a widget contribution returns, so this entry opens (or finds) the
    super-resolution dock, switches it to its comparison tab, and removes its own empty dock as
    soon as napari has added it: there is only ever one copy of the widget, whichever entry comes first.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        dock, widget = open_main_widget(napari_viewer)
        widget.show_comparison()
        if dock is not None:
            dock.show()
            dock.raise_()
        self.target = widget
        QTimer.singleShot(0, self._remove_own_dock)

    def _remove_own_dock(self) -> None:
        dock = _dock_of(self)
        if dock is not None:
            self.viewer.window.remove_dock_widget(dock)
