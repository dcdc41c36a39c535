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
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .._comparison import Crop, crops, grid_order, metric_rows
from .._pipeline import RunResult
from .._result_layers import RunContext
from .._view import LayerFrame, Region, last_rectangle, onto_slice, slice_index, sliced_axis, view_regions
from .combos import LayerCombo
from .crops import CropsPanel
from .grid import SideBySide
from .tables import METRIC_COLUMNS, METRIC_CSV_COLUMNS, METRIC_HEADERS, fill_table, fit_rows, make_table, write_csv

NONE = "(none)"
REGION_LAYER = "Crop region"
REFRESH_MS = 80
"""Debounce of the live metrics: they are recomputed once the slider has rested this long."""


@dataclass
class Shown:
    """The layers of the last finished run, for the live metrics and the crops."""

    result: RunResult
    context: RunContext
    outputs: dict[str, Image]
    lr_name: str
    gt_name: str | None


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
        self.side_by_side = SideBySide(viewer)
        self._build()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh_live)
        for event in (viewer.dims.events.current_step, viewer.dims.events.ndisplay, viewer.dims.events.order):
            event.connect(self.schedule_refresh)
        viewer.dims.events.current_step.connect(self.follow_slice)
        for layer in viewer.layers:
            self.watch(layer)

    def _build(self) -> None:
        self.setToolTip("PSNR (and its gain over tricubic) and SSIM against the ground truth, on the 0–255 "
                        "scale of its range (the paper's protocol); region and slice rows follow the rectangle "
                        "and the slider. The CSV adds RMSE and PSNR-fg.")
        layout = QVBoxLayout(self)
        buttons = QHBoxLayout()
        self.grid_button = QPushButton("Side by side")
        self.grid_button.setToolTip("napari grid mode, one labelled view each: GT, tricubic, SR…, LR, then the "
                                    "difference maps")
        self.grid_button.setCheckable(True)
        self.grid_button.toggled.connect(self.set_grid)
        self.csv_button = QPushButton("Table CSV…")
        self.csv_button.clicked.connect(lambda: save_dialog(self, "Export metrics", "CSV (*.csv)",
                                                            self.export_metrics_csv))
        self.png_button = QPushButton("Crops PNG…")
        self.png_button.clicked.connect(lambda: save_dialog(self, "Export crops", "PNG (*.png)",
                                                            self.export_crops_png))
        for button in (self.grid_button, self.csv_button, self.png_button):
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
        self.metrics_table = make_table(METRIC_HEADERS)
        fit_rows(self.metrics_table)
        layout.addWidget(self.metrics_table)
        self.crops = CropsPanel()
        layout.addWidget(self.crops)

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
        """Show the metrics and crops of a finished run (and lay it out side by side when that is on)."""
        self.shown, self.diff_layers = shown, diff_layers
        if self.side_by_side.enabled:
            self.side_by_side.arrange(self.grid_layers())
        self.refresh_live()

    def _sliced_axis(self) -> int | None:
        """The axis the slider moves along (2D view of a 3D world), else ``None``."""
        return sliced_axis(self.viewer.dims.ndisplay, self.viewer.dims.not_displayed)

    def _region_layer(self) -> Shapes | None:
        layer = layer_named(self.viewer, self.region_combo.currentText())
        return layer if isinstance(layer, Shapes) and len(layer.data) else None

    def _regions(self, shown: Shown, reference: Image, axis: int) -> tuple[Region | None, Region | None]:
        """(HR region, LR region) of the region layer's last rectangle (:func:`~.._view.view_regions`)."""
        layer = self._region_layer()
        if layer is None or layer.ndim != self.viewer.dims.ndim:
            return None, None
        corners = _frame(layer).to_world(last_rectangle(layer.data, layer.shape_type))
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

    def export_crops_png(self, path: str | Path) -> Path:
        """Write the magnified crops (with their titles) to ``path``."""
        return self.crops.save_png(path)
