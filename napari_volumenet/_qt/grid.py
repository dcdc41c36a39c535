"""Side by side: napari's grid mode showing only the last run's layers, and back to the overlay.

The crop region's rectangle cannot be shown as a layer there (napari gives each layer one cell, and a Shapes
copy per cell costs ~0.3 s to build); each cell's layer gets the rectangle as its own box overlay instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.components.overlays import SelectionBoxOverlay
from qtpy.QtCore import QObject

from .._comparison import grid_shape
from .._names import caption_size
from .._view import LayerFrame, box_bounds
from .turns import next_turn

NAME_POSITION = "bottom_center"
"""Where each cell's layer name goes: a caption under its view. The orientation letters stand once at the
edges of the whole grid (top, left, right; :mod:`.orientation` leaves the bottom one out in the grid), so a
name never runs into one, whatever the number of columns."""
REGION_BOX = "volumenet_region"
"""Key of the region's box among a layer's overlays (napari draws a layer's overlays in its cell)."""


def layer_overlays(layer: Any) -> Any:
    """A layer's own overlays (napari's ``Layer._overlays``: private, with no public way to add one; seen through
    the layer itself, not the proxy napari hands plugins, which warns on private names), or ``None`` where a
    napari version lacks them: the cells then show no box."""
    return getattr(getattr(layer, "__wrapped__", layer), "_overlays", None)


def viewer_grid(viewer: Any) -> Any:
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class SideBySide:
    """Switches a viewer between the overlay (layers stacked) and a labelled grid of chosen layers.

    Entering the grid remembers the layer order and visibility; leaving restores them.
    """

    def __init__(self, viewer: Any, owner: QObject, region: Callable[[], np.ndarray | None] = lambda: None) -> None:
        self.viewer = viewer
        self.owner = owner
        """The widget whose deletion drops the steps still waiting for their turn."""
        self.region = region
        """The crop region's corners in world coordinates (one row each), or ``None`` without a region."""
        self._overlay: list[tuple[str, bool]] | None = None
        """(name, visible) of every layer when the grid was entered, in list order."""
        self._layouts = 0
        """How many times the grid was switched or laid out: a step left for later by an earlier one is dropped."""
        self._scheduled = 0
        """Steps waiting for their turn."""

    @property
    def enabled(self) -> bool:
        return bool(viewer_grid(self.viewer).enabled)

    @property
    def settled(self) -> bool:
        """Whether no step of laying out the grid (captions, boxes) still waits for its turn."""
        return self._scheduled == 0

    def set(self, on: bool, names: list[str], hidden_after: list[Any]) -> None:
        """Grid of ``names`` (in this order), or back to the overlay with ``hidden_after`` hidden.

        Entering the grid takes turns of the event loop (the layers chosen; the grid drawn; then each cell's
        name, whose first drawing builds a text visual: 0.1–0.3 s each), instead of freezing the GUI for all
        of them at once.
        """
        self._layouts += 1
        if not on:  # the grid first: in it, every change of visibility lays the cells out again
            self._enable(False)
            if self._overlay is not None:
                self._restore(hidden_after)
            return
        if self._overlay is None:
            self._overlay = [(layer.name, bool(layer.visible)) for layer in self.viewer.layers]
        if not names:
            self._enable(True)
            return
        self._choose(names)
        self._then(lambda: self._show(names))

    def _show(self, names: list[str]) -> None:
        """The grid drawn now, its captions from the next turn on."""
        self._enable(True)
        self._then(lambda: self._label(names))

    def _then(self, action: Callable[[], Any]) -> None:
        """``action`` at a later turn of the event loop, unless the grid was switched or laid out again."""
        layout = self._layouts
        self._scheduled += 1

        def step() -> None:
            self._scheduled -= 1
            if layout == self._layouts:
                action()

        next_turn(step, self.owner)

    def arrange(self, names: list[str]) -> None:
        """Only ``names``, one per cell, in this order, then labelled; the grid's shape fits the canvas."""
        if names:
            self._layouts += 1
            self._choose(names)
            self._label(names)

    def _enable(self, on: bool) -> None:
        grid = viewer_grid(self.viewer)
        if bool(grid.enabled) != on:
            grid.enabled = on
            self.viewer.reset_view()

    def _choose(self, names: list[str]) -> None:
        """``names`` first in the layer list and the only ones visible; the grid's shape fits the canvas."""
        self._move_to_front(names)
        for layer in self.viewer.layers:
            if layer.visible != (layer.name in names):  # napari refreshes a layer on every assignment
                layer.visible = layer.name in names
        first = self.viewer.layers[names[0]]
        displayed = list(self.viewer.dims.displayed)
        extent = np.asarray(first.extent.world, dtype=float)[:, displayed]
        image = (extent[1, 1] - extent[0, 1], extent[1, 0] - extent[0, 0])
        height, width = self.viewer.canvas.size
        grid = viewer_grid(self.viewer)
        grid.stride = 1
        grid.shape = grid_shape(len(names), (float(width), float(height)), image)

    def _label(self, names: list[str], done: int = 0) -> None:
        """The name of cell ``done`` as its caption, then the next cell's at the next turn (if the grid still
        shows them: the user may have left it)."""
        if not viewer_grid(self.viewer).enabled:
            return
        if done == 0:
            for layer in self.viewer.layers:
                layer.name_overlay.position = NAME_POSITION
                if layer.name not in names:
                    layer.name_overlay.visible = False
        if done < len(names) and names[done] in self.viewer.layers:
            caption = self.viewer.layers[names[done]].name_overlay
            caption.font_size = caption_size(names[done], self._cell_px())
            caption.visible = True
        if done + 1 < len(names):
            self._then(lambda: self._label(names, done + 1))
        else:
            self._then(lambda: self._box(names))

    def _cell_px(self) -> float:
        """A grid cell's width on screen (pixels), by the shape :meth:`_choose` gave the grid."""
        columns = viewer_grid(self.viewer).shape[1]
        return float(self.viewer.canvas.size[1]) / max(columns, 1)

    def update_boxes(self, names: list[str]) -> None:
        """The region's boxes moved with the region (or hidden without one); cells still without a box get
        theirs a turn at a time."""
        corners = self.region()
        missing = False
        for layer in (self.viewer.layers[name] for name in names if name in self.viewer.layers):
            overlays = layer_overlays(layer)
            if overlays is None:
                continue
            if REGION_BOX not in overlays:
                missing = True
            elif corners is None:
                overlays[REGION_BOX].visible = False
            else:
                self._put_box(layer, corners)
        if missing and corners is not None and not self._scheduled:  # else the layout in progress adds them
            self._then(lambda: self._box(names))

    def _box(self, names: list[str], done: int = 0) -> None:
        """The region's rectangle in cell ``done``, then in the next one at the next turn (a new box overlay
        builds its visuals when first drawn)."""
        corners = self.region()
        if not viewer_grid(self.viewer).enabled or corners is None or done >= len(names):
            return
        if names[done] in self.viewer.layers:
            self._put_box(self.viewer.layers[names[done]], corners)
        self._then(lambda: self._box(names, done + 1))

    def _put_box(self, layer: Any, corners: np.ndarray) -> None:
        """Draw (or move) the box of the world points ``corners`` in ``layer``'s cell."""
        overlays = layer_overlays(layer)
        if overlays is None:
            return
        bounds = box_bounds(corners, LayerFrame.of(layer.data_to_world, layer.ndim), self.viewer.dims.displayed)
        if REGION_BOX in overlays:
            overlays[REGION_BOX].bounds, overlays[REGION_BOX].visible = bounds, True
        else:
            overlays[REGION_BOX] = SelectionBoxOverlay(bounds=bounds, handles=False, visible=True)

    def _restore(self, hidden_after: list[Any]) -> None:
        """The layer order and visibility from before the grid; layers made since then (not in
        ``hidden_after``) keep theirs."""
        before = self._overlay or []
        state = dict(before)
        self._move_to_front([name for name, _ in before if name in self.viewer.layers])
        for layer in self.viewer.layers:
            layer.name_overlay.visible = False
            overlays = layer_overlays(layer)
            if overlays is not None and REGION_BOX in overlays:
                overlays[REGION_BOX].visible = False
            visible = state.get(layer.name, layer.visible and layer not in hidden_after)
            if layer.visible != visible:
                layer.visible = visible
        self._overlay = None

    def _move_to_front(self, names: list[str]) -> None:
        """Put ``names`` first in the layer list, in this order (the grid fills its cells in list order)."""
        layers = self.viewer.layers
        for target, name in enumerate(names):
            index = layers.index(layers[name])
            if index != target:
                layers.move(index, target)
