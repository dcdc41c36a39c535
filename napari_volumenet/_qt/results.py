"""The widget's "Results" box: live metrics of the last run (region, slice, volume), its crops, side by side
and the exports.

The numbers come from :mod:`napari_volumenet._comparison` (metric rows, crops, grid order) and the
geometry from :mod:`napari_volumenet._view`; this module reads the viewer (slider, region rectangle)
into plain values and shows the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari.layers import Image, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QPoint, QTimer
from qtpy.QtWidgets import (
    QApplication, QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea,
    QVBoxLayout, QWidget,
)

from .._comparison import Crop, crops, grid_order, metric_rows
from .._pipeline import RunResult
from .._result_layers import RunContext
from .._view import LayerFrame, Region, last_rectangle, onto_slice, slice_index, sliced_axis, view_regions
from .._windows import Window, named_window, window_names
from .combos import LayerCombo
from .crops import CropsPanel, Tile
from .grid import SideBySide
from .orientation import follow_anatomy
from .tables import METRIC_COLUMNS, METRIC_CSV_COLUMNS, METRIC_HEADERS, fill_table, fit_rows, make_table, write_csv

NONE = "(none)"
REGION_LAYER = "Crop region"
REFRESH_MS = 80
"""Debounce of the live metrics: they are recomputed once the slider has rested this long."""
WINDOW_MS = 50
"""Debounce of the crops' redraw after a contrast change (napari sends one per step of a slider drag)."""
DIFFERENCES_IN_GRID = {False: True, True: False}
"""Whether side by side shows the difference maps, by whether the run was a comparison (until the user says
otherwise): a run's six cells, but a seven-block comparison's ten images, not eighteen cells of half the size."""


@dataclass
class Shown:
    """The layers of the last finished run, for the live metrics and the crops."""

    result: RunResult
    context: RunContext
    outputs: dict[str, Image]
    lr_name: str
    gt_name: str | None

    def image_layers(self, viewer: Any) -> list[Image]:
        """The run's image layers still in ``viewer``: ground truth, LR, then the outputs."""
        named = [layer_named(viewer, self.gt_name), layer_named(viewer, self.lr_name), *self.outputs.values()]
        return [lyr for lyr in named if isinstance(lyr, Image) and lyr in viewer.layers]


def set_contrast(layer: Image, window: Window) -> None:
    """Show ``layer`` in ``window``, widening its contrast range where the window reaches past it."""
    low, high = layer.contrast_limits_range
    layer.contrast_limits_range = (min(low, window[0]), max(high, window[1]))
    layer.contrast_limits = window


def layer_named(viewer: Any, name: str | None) -> Any:
    """The viewer's layer called ``name``; ``None`` for no name, :data:`NONE` or a removed layer."""
    if not name or name == NONE or name not in viewer.layers:
        return None
    return viewer.layers[name]


def save_dialog(parent: QWidget, title: str, filter_: str, action: Callable[[str], Path]) -> None:
    """Ask for a file name, write it with ``action`` and say where (or why not)."""
    path, _ = QFileDialog.getSaveFileName(parent, title, "", filter_)
    if not path:
        return
    try:
        written = action(path)
    except (OSError, ValueError) as error:
        show_error(str(error))
        return
    show_info(f"Wrote {written}")


def quality(row: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(PSNR, SSIM) of a metrics row (a crop's, against the ground-truth crop); ``None`` without."""
    return (None, None) if row is None else (row.get("psnr"), row.get("ssim"))


def _frame(layer: Any) -> LayerFrame:
    """Where ``layer``'s data coordinates lie in the world, and its voxel count (none for shapes)."""
    shape = layer.data.shape if isinstance(layer, Image) else ()
    return LayerFrame.of(layer.data_to_world, layer.ndim, shape)


class ResultsPanel(QGroupBox):
    """Metrics table and crops that follow the slider and the region rectangle; side by side; exports.

    ``reference`` gives the layer whose grid a new region layer takes (the ground truth, else the input).
    """

    def __init__(self, viewer: Any, reference: Callable[[], Image | None], parent: QWidget | None = None) -> None:
        super().__init__("Results", parent)
        self.viewer = viewer
        self._reference = reference
        self.shown: Shown | None = None
        self.diff_layers: list[Image] = []
        self.metric_rows: list[dict[str, Any]] = []
        self.differences_in_grid = dict(DIFFERENCES_IN_GRID)
        """Whether side by side shows the difference maps, by kind of run (comparison or not); the box sets it."""
        self.side_by_side = SideBySide(viewer, self, self._region_corners)
        self.anatomy = follow_anatomy(viewer)
        self._crop_layers: list[Image | None] = []
        """The layer of each crop shown (its window), ``None`` where it is gone."""
        self._build()
        self._refresh_timer = self._timer(REFRESH_MS, self.refresh_live)
        self._window_timer = self._timer(WINDOW_MS, self.redraw_crops)
        for event in (viewer.dims.events.current_step, viewer.dims.events.ndisplay, viewer.dims.events.order):
            event.connect(self.schedule_refresh)
        viewer.dims.events.current_step.connect(self.follow_slice)
        for layer in viewer.layers:
            self.watch(layer)

    def _timer(self, interval: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval)
        timer.timeout.connect(slot)
        return timer

    def _build(self) -> None:
        self.setToolTip("PSNR (and its gain over tricubic) and SSIM against the ground truth, on the 0–255 "
                        "scale of its range (the paper's protocol); region and slice rows follow the rectangle "
                        "and the slider. The CSV adds RMSE and PSNR-fg.")
        layout = QVBoxLayout(self)
        buttons = QHBoxLayout()
        self.grid_button = QPushButton("Side by side")
        self.grid_button.setToolTip("napari grid mode, one labelled view each: GT, tricubic, SR…, LR, then the "
                                    "difference maps where Differences is ticked")
        self.grid_button.setCheckable(True)
        self.grid_button.toggled.connect(self.set_grid)
        self.differences_box = QCheckBox("Differences")
        self.differences_box.setToolTip("Side by side shows the |output − GT| maps too, one view each (ticked "
                                        "for a run, not for a comparison, until you change it)")
        self.differences_box.setChecked(self.differences_in_grid[False])
        self.differences_box.toggled.connect(self.set_differences)
        self.csv_button = QPushButton("Table CSV…")
        self.csv_button.clicked.connect(lambda: save_dialog(self, "Export metrics", "CSV (*.csv)",
                                                            self.export_metrics_csv))
        self.png_button = QPushButton("Crops PNG…")
        self.png_button.clicked.connect(lambda: save_dialog(self, "Export crops", "PNG (*.png)",
                                                            self.export_crops_png))
        for button in (self.grid_button, self.differences_box, self.csv_button, self.png_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        region_row = QHBoxLayout()
        self.region_combo = LayerCombo(self.refresh_regions,
                                       "Shapes layer whose last rectangle is the region (it follows the slider)")
        self.draw_button = QPushButton("Draw")
        self.draw_button.setToolTip("Add a Shapes layer and start drawing a rectangle")
        self.draw_button.clicked.connect(self.start_region)
        region_row.addWidget(QLabel("Region"))
        region_row.addWidget(self.region_combo, 1)
        region_row.addWidget(self.draw_button)
        layout.addLayout(region_row)
        layout.addLayout(self._build_window_row())
        self.crops = CropsPanel()
        layout.addWidget(self.crops)
        self.metrics_table = make_table(METRIC_HEADERS)
        fit_rows(self.metrics_table)
        layout.addWidget(self.metrics_table)

    def _build_window_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.window_combo = QComboBox()
        self.window_combo.setPlaceholderText("as set")
        self.window_combo.setToolTip("Display window of every image layer of the run at once (ground truth, LR, "
                                     "tricubic, SR): MRI the foreground's percentiles, CT the presets as "
                                     "level/width in HU")
        self.window_combo.activated.connect(lambda index: self.apply_window(self.window_combo.itemText(index)))
        self.window_combo.setEnabled(False)
        row.addWidget(QLabel("Window"))
        row.addWidget(self.window_combo, 1)
        return row

    # ------------------------------------------------------------------ viewer events
    def watch(self, layer: Any) -> None:
        """Follow a (new) layer: a Shapes layer's rectangles move the region rows and crops."""
        if isinstance(layer, Shapes):
            layer.events.data.connect(self.schedule_refresh)
            layer.events.set_data.connect(self.schedule_refresh)

    def refresh_regions(self) -> None:
        """List the Shapes layers as regions, keeping the current one (else the newest)."""
        shapes = [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Shapes)]
        current = self.region_combo.currentText()
        if current not in shapes:
            current = shapes[-1] if shapes else NONE
        self.region_combo.set_items([NONE, *shapes], current)

    def schedule_refresh(self, *_: Any) -> None:
        if self.shown is not None:
            self._refresh_timer.start()

    # ------------------------------------------------------------------ a finished run
    def show_run(self, shown: Shown, diff_layers: list[Image]) -> None:
        """Show the metrics and crops of a finished run (and lay it out side by side when that is on).

        Every image layer of the run takes the window of the first (the ground truth, else the input),
        and the window list offers the windows of the run's modality.
        """
        for layer in self.shown.image_layers(self.viewer) if self.shown else []:
            layer.events.contrast_limits.disconnect(self.schedule_redraw)
        self.shown, self.diff_layers = shown, diff_layers
        self.differences_box.blockSignals(True)  # the run's kind sets the box; only the user's ticks lay out again
        self.differences_box.setChecked(self.differences_in_grid[shown.context.comparison])
        self.differences_box.blockSignals(False)
        layers = shown.image_layers(self.viewer)
        if layers:
            self._set_window(layers, tuple(float(v) for v in layers[0].contrast_limits))
        for layer in layers:
            layer.events.contrast_limits.connect(self.schedule_redraw)
        self.window_combo.clear()
        self.window_combo.addItems(window_names(shown.result.modality))
        self.window_combo.setCurrentIndex(-1)
        self.window_combo.setEnabled(True)
        if self.side_by_side.enabled:
            self.side_by_side.arrange(self.grid_layers())
        else:
            self.side_by_side.prepare(self.grid_layers())
        self.refresh_live()

    # ------------------------------------------------------------------ display windows
    def _window_data(self, shown: Shown) -> Any:
        """The volume a named window is computed on: the ground truth, else the LR volume."""
        return shown.result.ground_truth if shown.result.ground_truth is not None else shown.result.lr

    def apply_window(self, name: str) -> Window | None:
        """Set the window called ``name`` (:func:`~.._windows.window_names`) on every image layer of the run."""
        shown = self.shown
        if shown is None:
            return None
        window = named_window(name, self._window_data(shown))
        self._set_window(shown.image_layers(self.viewer), window)
        self.window_combo.setCurrentText(name)
        return window

    @staticmethod
    def _set_window(layers: list[Image], window: Window) -> None:
        for layer in layers:
            set_contrast(layer, window)

    def schedule_redraw(self, *_: Any) -> None:
        """A layer's contrast changed: redraw the crops in the new windows (debounced)."""
        self._window_timer.start()

    def redraw_crops(self) -> None:
        """Redraw the crops shown, each in its layer's current window (the data stay)."""
        if self.crops.tiles:
            self.crops.set_windows([self._layer_window(layer, tile.window)
                                    for layer, tile in zip(self._crop_layers, self.crops.tiles)])

    def _sliced_axis(self) -> int | None:
        """The axis the slider moves along (2D view of a 3D world), else ``None``."""
        return sliced_axis(self.viewer.dims.ndisplay, self.viewer.dims.not_displayed)

    def _region_layer(self) -> Shapes | None:
        layer = layer_named(self.viewer, self.region_combo.currentText())
        return layer if isinstance(layer, Shapes) and len(layer.data) else None

    def _region_corners(self) -> np.ndarray | None:
        """World coordinates of the region layer's last rectangle (its corners, one row each), if any."""
        layer = self._region_layer()
        if layer is None or layer.ndim != self.viewer.dims.ndim:
            return None
        return _frame(layer).to_world(last_rectangle(layer.data, layer.shape_type))

    def _regions(self, shown: Shown, reference: Image, axis: int) -> tuple[Region | None, Region | None]:
        """(HR region, LR region) of the region layer's last rectangle (:func:`~.._view.view_regions`)."""
        corners = self._region_corners()
        if corners is None:
            return None, None
        lr_layer = layer_named(self.viewer, shown.lr_name)
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
        tiles: list[Tile] = []
        if shown is not None:
            labels = [label for label, lyr in shown.outputs.items() if lyr in self.viewer.layers]
            where, region, lr_region = self._looked_at(shown, labels)
            rows = metric_rows(shown.result, labels, where, region)
            if where is not None and region is not None:
                crop_list = crops(shown.result, labels, where, region, lr_region)
                tiles = self._tiles(shown, crop_list, labels, rows, with_lr=lr_region is not None)
        self.metric_rows = rows
        if self.side_by_side.enabled:
            self.side_by_side.update_boxes(self.grid_layers())
        fill_table(self.metrics_table, rows, METRIC_COLUMNS)
        fit_rows(self.metrics_table)
        appeared = bool(tiles) and not self.crops.tiles
        self.crops.set_tiles(tiles)
        if appeared:  # once the grid is laid out
            QTimer.singleShot(0, self._reveal_crops)

    def _tiles(self, shown: Shown, crop_list: list[Crop], labels: list[str], rows: list[dict[str, Any]], *,
               with_lr: bool) -> list[Tile]:
        """Each crop with its layer's window and, for an output, its region PSNR/SSIM from the table's rows.

        The crops come as :func:`~.._comparison.crops` makes them: GT (with a ground truth), LR (with
        an LR region: ``with_lr``), then ``labels``.
        """
        with_gt = shown.result.ground_truth is not None
        inputs = [shown.gt_name] * with_gt + [shown.lr_name] * with_lr
        self._crop_layers = [*(layer_named(self.viewer, name) for name in inputs),
                             *(shown.outputs[label] for label in labels)]
        region = {r["output"]: r for r in rows if str(r["scope"]).startswith("region")}
        outputs: list[str | None] = [None] * len(inputs) + list(labels)
        return [Tile(crop, self._layer_window(layer, shown.context.window), *quality(region.get(label)))
                for crop, layer, label in zip(crop_list, self._crop_layers, outputs, strict=True)]

    def _layer_window(self, layer: Image | None, fallback: Window) -> Window:
        """A crop's window: its layer's contrast limits, else ``fallback`` (the layer is gone)."""
        if layer is None or layer not in self.viewer.layers:
            return fallback
        low, high = (float(v) for v in layer.contrast_limits)
        return low, high

    def _reveal_crops(self) -> None:
        """Scroll the dock so that the crops that just appeared are in view."""
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if parent is None:
            return
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # the dock's body grows first
        top = self.crops.mapTo(parent.widget(), QPoint(0, 0)).y()
        bar = parent.verticalScrollBar()  # the least scroll that shows them whole, else their top
        bar.setValue(min(max(bar.value(), top + self.crops.height() - parent.viewport().height()), top))

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

        The layer takes the grid of the reference layer, so that every slice the slider shows lies on
        one of its integer planes: napari draws a shape only within half a plane of it.
        """
        layer = layer_named(self.viewer, REGION_LAYER)
        if not isinstance(layer, Shapes):
            reference = self._reference()
            grid = {} if reference is None else {"scale": reference.scale, "translate": reference.translate}
            layer = self.viewer.add_shapes(ndim=3, name=REGION_LAYER, edge_color="yellow", face_color="transparent",
                                           edge_width=1.0, **grid)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        self.refresh_regions()
        self.region_combo.setCurrentText(layer.name)
        return layer

    def differences_shown(self, comparison: bool) -> bool:
        """Whether side by side shows the difference maps of a run (``comparison``: of the block comparison)."""
        return self.differences_in_grid[comparison]

    def set_differences(self, on: bool) -> None:
        """Difference maps in side by side (or not) for runs of the last run's kind: the grid laid out again where
        side by side is on, else the grid it will take built ahead."""
        if self.shown is not None:
            self.differences_in_grid[self.shown.context.comparison] = bool(on)
        if self.side_by_side.enabled:
            self.side_by_side.set(True, self.grid_layers(), hidden_after=self.diff_layers)
        else:
            self.side_by_side.prepare(self.grid_layers())

    def grid_layers(self) -> list[str]:
        """The layers of the last run in grid order: GT, tricubic, SR…, LR, then the difference maps where they
        are shown (:meth:`differences_shown`)."""
        shown = self.shown
        if shown is None:
            return []
        diffs = [lyr.name for lyr in self.diff_layers] if self.differences_shown(shown.context.comparison) else []
        order = grid_order(shown.gt_name, list(shown.outputs), shown.lr_name, diffs)
        return [name for name in order if name in self.viewer.layers]

    def set_grid(self, on: bool) -> None:
        """Side by side (napari grid mode: the last run's layers in :meth:`grid_layers` order) or the overlay."""
        if self.grid_button.isChecked() != bool(on):
            self.grid_button.setChecked(bool(on))  # its toggled signal calls this again: lay out once, not twice
            return
        self.side_by_side.set(on, self.grid_layers(), hidden_after=self.diff_layers)

    def export_metrics_csv(self, path: str | Path) -> Path:
        """Write the metrics table (full precision) to ``path``."""
        return write_csv(path, self.metric_rows, METRIC_CSV_COLUMNS)

    def export_crops_png(self, path: str | Path) -> Path:
        """Write the magnified crops (with their titles) to ``path``."""
        return self.crops.save_png(path)
