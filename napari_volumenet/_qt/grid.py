"""Side by side: napari's grid mode showing only the last run's layers, and back to the overlay."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._comparison import grid_shape

NAME_POSITION = "bottom_center"
"""Where each cell's layer name goes: a caption under its view. The orientation letters stand once at the
edges of the whole grid (top, left, right; :mod:`.orientation` leaves the bottom one out in the grid), so a
name never runs into one, whatever the number of columns."""


def viewer_grid(viewer: Any) -> Any:
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class SideBySide:
    """Switches a viewer between the overlay (layers stacked) and a labelled grid of chosen layers.

    Entering the grid remembers the layer order and visibility; leaving restores them.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self._overlay: list[tuple[str, bool]] | None = None
        """(name, visible) of every layer when the grid was entered, in list order."""

    @property
    def enabled(self) -> bool:
        return bool(viewer_grid(self.viewer).enabled)

    def set(self, on: bool, names: list[str], hidden_after: list[Any]) -> None:
        """Grid of ``names`` (in this order), or back to the overlay with ``hidden_after`` hidden."""
        if on and self._overlay is None:
            self._overlay = [(layer.name, bool(layer.visible)) for layer in self.viewer.layers]
        if on:
            self.arrange(names)
        elif self._overlay is not None:
            self._restore(hidden_after)
        viewer_grid(self.viewer).enabled = bool(on)
        self.viewer.reset_view()

    def arrange(self, names: list[str]) -> None:
        """Only ``names``, labelled, one per cell, in this order; the grid's shape fits the canvas."""
        if not names:
            return
        self._move_to_front(names)
        for layer in self.viewer.layers:
            layer.visible = layer.name in names
            layer.name_overlay.visible = layer.name in names
            layer.name_overlay.position = NAME_POSITION
        first = self.viewer.layers[names[0]]
        displayed = list(self.viewer.dims.displayed)
        extent = np.asarray(first.extent.world, dtype=float)[:, displayed]
        image = (extent[1, 1] - extent[0, 1], extent[1, 0] - extent[0, 0])
        height, width = self.viewer.canvas.size
        grid = viewer_grid(self.viewer)
        grid.stride = 1
        grid.shape = grid_shape(len(names), (float(width), float(height)), image)

    def _restore(self, hidden_after: list[Any]) -> None:
        """The layer order and visibility from before the grid; layers made since then (not in
        ``hidden_after``) keep theirs."""
        before = self._overlay or []
        state = dict(before)
        self._move_to_front([name for name, _ in before if name in self.viewer.layers])
        for layer in self.viewer.layers:
            layer.name_overlay.visible = False
            if layer.name in state:
                layer.visible = state[layer.name]
            elif layer in hidden_after:
                layer.visible = False
        self._overlay = None

    def _move_to_front(self, names: list[str]) -> None:
        """Put ``names`` first in the layer list, in this order (the grid fills its cells in list order)."""
        layers = self.viewer.layers
        for target, name in enumerate(names):
            index = layers.index(layers[name])
            if index != target:
                layers.move(index, target)
