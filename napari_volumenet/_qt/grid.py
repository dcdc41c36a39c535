"""Side by side: napari's grid mode showing only the last run's layers, and back to the overlay.

The crop region's rectangle cannot be shown as a layer there (napari gives each layer one cell, and a Shapes
copy per cell costs ~0.3 s to build); each cell's layer gets the rectangle as its own box overlay instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import MethodType
from typing import Any

import numpy as np
from napari.components.overlays import SelectionBoxOverlay
from qtpy.QtCore import QObject

from .._comparison import grid_shape
from .._names import caption_size
from .._view import LayerFrame, box_bounds
from .turns import next_turn, run_for

NAME_POSITION = "bottom_center"
"""Where each cell's layer name goes: a caption under its view. The orientation letters stand once at the
edges of the whole grid (top, left, right; :mod:`.orientation` leaves the bottom one out in the grid), so a
name never runs into one, whatever the number of columns."""
TURN_BUDGET_S = 0.1
"""How long one turn of the event loop may go on moving, showing or hiding layers for side by side: napari answers
each change at once (a layer shown is sliced and uploaded: 0.03–0.08 s; a move re-sorts the views)."""
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


def _contents_at(grid: Any, position: tuple[int, int], layers: Any) -> tuple[int, ...]:
    """What napari's ``GridCanvas.contents_at`` answers (the layers drawn in a cell), in one pass over the layers:
    napari's own asks each layer's position, which walks the layer list again (B cells × L² layer lookups per
    drawing of the grid: 0.5 s of each switch with the seven blocks' 18 cells and 21 layers)."""
    position = tuple(position)
    if not grid.enabled or not layers:
        return tuple(range(len(layers))) if position == (0, 0) else ()
    visible = grid._effective_indices(layers)
    if position == (-1, -1):  # hidden layers have no cell
        shown = set(visible)
        return tuple(i for i in range(len(layers)) if i not in shown)
    if not visible:
        return ()
    rows, columns = grid.actual_shape(layers)
    group_of, occupied = grid._viewbox_groups(layers)
    rank: dict[int, int] = {}
    for k, group in enumerate(occupied):
        rank.setdefault(group, k)
    return tuple(i for i in visible if divmod(rank[group_of[i]] % (rows * columns), columns) == position)


def quicken_cell_lookup(grid: Any) -> bool:
    """Give this viewer's grid the one-pass :func:`_contents_at` (napari-private: the grid's ``_effective_indices``
    and ``_viewbox_groups``, napari 0.9); ``False`` where a napari version lacks them (its own lookup stays).
    ``tests/napari/test_display.py`` holds it to napari's own answers."""
    grid = getattr(grid, "__wrapped__", grid)  # the grid itself, not the proxy napari hands plugins
    if not all(hasattr(grid, name) for name in ("_effective_indices", "_viewbox_groups", "contents_at")):
        return False
    object.__setattr__(grid, "contents_at", MethodType(_contents_at, grid))
    return True


def vispy_canvas(viewer: Any) -> Any:
    """napari's vispy canvas of ``viewer`` (private: ``window._qt_viewer.canvas``, napari 0.9) where it has the
    grid parts :class:`PreparedGrid` takes the place of, else ``None``."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # the viewer itself, not the proxy napari hands plugins
    canvas = getattr(getattr(getattr(viewer, "window", None), "_qt_viewer", None), "canvas", None)
    parts = ("grid", "grid_views", "grid_cameras", "central_widget", "_scene_canvas", "_init_or_update_grid")
    return canvas if canvas is not None and all(hasattr(canvas, name) for name in parts) else None


@dataclass
class PreparedGrid:
    """A vispy grid of views and cameras built ahead, off the canvas, for a grid of ``shape`` cells.

    napari builds a new grid of views (each with its 2D and 3D camera) whenever the grid's shape changes, all in the
    call that enables the grid: 0.66 s for 18 cells, the largest part of the first side by side of a seven-block
    comparison. Built here a few cells a turn while the user looks at the result, it takes the place of napari's own
    (as ``VispyCanvas._init_or_update_grid`` swaps grids) just before the grid is enabled, and napari, finding a
    grid of the right shape, keeps it.
    """

    shape: tuple[int, int]
    grid: Any
    views: list[Any]
    cameras: list[Any]
    complete: bool = False

    @classmethod
    def building(cls, canvas: Any, shape: tuple[int, int], into: list[PreparedGrid]) -> Iterator[None]:
        """Append a grid to ``into`` and build one cell's view and camera per step (as napari does)."""
        from napari._vispy.camera import VispyCamera
        from vispy.scene import Grid

        prepared = cls(shape, Grid(border_width=0), [], [])
        into.append(prepared)
        for row, col in np.ndindex(shape):
            view = prepared.grid[row, col]
            view.border_width, view.border_color = 0, None  # no border: a border colour pads the view by 1
            prepared.views.append(view)
            prepared.cameras.append(VispyCamera(view, canvas.viewer.scene.camera, canvas.viewer.dims))
            yield
        prepared.complete = True

    def install(self, canvas: Any) -> None:
        """Put this grid in the place of the canvas's, as napari swaps grids (whose cameras napari leaves
        connected to its events; here they are disconnected)."""
        for camera in canvas.grid_cameras:
            canvas._scene_canvas.events.draw.disconnect(camera.on_draw)
            camera._2D_camera.parent = camera._3D_camera.parent = None
        _disconnect(canvas, canvas.grid_cameras)
        canvas.grid_cameras[:] = self.cameras
        canvas.grid_views[:] = self.views
        canvas.grid.parent = None
        canvas.grid = canvas.central_widget.add_widget(self.grid)

    def release(self, canvas: Any) -> None:
        """Let go of a grid never installed: its cameras no longer follow napari's camera and dims."""
        _disconnect(canvas, self.cameras)


def _disconnect(canvas: Any, cameras: list[Any]) -> None:
    """Disconnect napari's vispy ``cameras`` from the events of the viewer's camera and dims they follow."""
    for emitter in (*canvas.viewer.scene.camera.events.emitters.values(), canvas.viewer.dims.events.ndisplay):
        for camera in cameras:
            emitter.disconnect(camera)


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
        self._prepared: list[PreparedGrid] = []
        """The grid built ahead for the next side by side (:meth:`prepare`), complete or in the making."""
        quicken_cell_lookup(viewer_grid(viewer))

    @property
    def enabled(self) -> bool:
        return bool(viewer_grid(self.viewer).enabled)

    @property
    def settled(self) -> bool:
        """Whether no step of laying out the grid (captions, boxes) still waits for its turn."""
        return self._scheduled == 0

    def set(self, on: bool, names: list[str], hidden_after: list[Any]) -> None:
        """Grid of ``names`` (in this order), or back to the overlay with ``hidden_after`` hidden.

        Entering the grid takes turns of the event loop (the layers moved and shown, :data:`TURN_BUDGET_S` of them
        a turn; the grid drawn; then each cell's name, whose first drawing builds a text visual: 0.1–0.3 s
        each), and so does leaving it (the order and visibility of before, as many a turn), instead of freezing the
        GUI for all of them at once.
        """
        self._layouts += 1
        if not on:  # the grid first: in it, every change of visibility lays the cells out again
            self._enable(False)
            if self._overlay is not None:
                self._in_turns(self._restoring(hidden_after), lambda: None)
            return
        if self._overlay is None:
            self._overlay = [(layer.name, bool(layer.visible)) for layer in self.viewer.layers]
        if not names:
            self._enable(True)
            return
        self._in_turns(self._choosing(names), lambda: self._then(lambda: self._show(names)))

    def prepare(self, names: list[str]) -> None:
        """From the next turn on, build the views of the grid that side by side of ``names`` takes
        (:class:`PreparedGrid`), a few a turn, unless napari's grid has that shape already or the grid is on."""
        canvas = vispy_canvas(self.viewer)
        names = [name for name in names if name in self.viewer.layers]
        if canvas is None or self.enabled or not names:
            return
        shape = self._shape_for(names)
        if tuple(canvas.grid.grid_size) == shape or any(p.shape == shape for p in self._prepared):
            return
        self._release_prepared(canvas)
        building = PreparedGrid.building(canvas, shape, self._prepared)
        self._then(lambda: self._in_turns(building, lambda: None))

    def _release_prepared(self, canvas: Any, install: tuple[int, int] | None = None) -> None:
        """Drop the grids built ahead, but install the complete one of shape ``install`` where napari's grid has
        another shape."""
        for prepared in self._prepared:
            if prepared.complete and prepared.shape == install and tuple(canvas.grid.grid_size) != install:
                prepared.install(canvas)
            else:
                prepared.release(canvas)
        self._prepared.clear()

    def _in_turns(self, changes: Iterator[None], then: Callable[[], Any]) -> None:
        """Make ``changes`` (each a change napari answers at once: a layer moved, shown or hidden) for up to
        :data:`TURN_BUDGET_S`, the rest at later turns (dropped if the grid is switched meanwhile), then ``then``."""
        if run_for(changes, TURN_BUDGET_S):
            then()
        else:
            self._then(lambda: self._in_turns(changes, then))

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
            for _ in self._choosing(names):
                pass
            self._label(names)

    def _enable(self, on: bool) -> None:
        grid = viewer_grid(self.viewer)
        if bool(grid.enabled) != on:
            canvas = vispy_canvas(self.viewer)
            if on and canvas is not None:
                self._release_prepared(canvas, install=tuple(grid.shape))
            grid.enabled = on
            self.viewer.reset_view()

    def _choosing(self, names: list[str]) -> Iterator[None]:
        """``names`` first in the layer list and the only ones visible; the grid's shape fits the canvas. Yields
        after each change."""
        names = [name for name in names if name in self.viewer.layers]  # the user may remove one meanwhile
        if not names:
            return
        yield from self._moving_to_front(names)
        for layer in list(self.viewer.layers):
            if layer.visible != (layer.name in names):  # napari refreshes a layer on every assignment
                layer.visible = layer.name in names
                yield
        grid = viewer_grid(self.viewer)
        grid.stride = 1
        grid.shape = self._shape_for(names)

    def _shape_for(self, names: list[str]) -> tuple[int, int]:
        """The grid's shape for ``names`` (layers of the viewer): cells of the first's displayed extent that fill
        the canvas."""
        first = self.viewer.layers[names[0]]
        displayed = list(self.viewer.dims.displayed)
        extent = np.asarray(first.extent.world, dtype=float)[:, displayed]
        image = (extent[1, 1] - extent[0, 1], extent[1, 0] - extent[0, 0])
        height, width = self.viewer.canvas.size
        return grid_shape(len(names), (float(width), float(height)), image)

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
        """A grid cell's width on screen (pixels), by the shape :meth:`_choosing` gave the grid."""
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

    def _restoring(self, hidden_after: list[Any]) -> Iterator[None]:
        """The layer order and visibility from before the grid; layers made since then (not in
        ``hidden_after``) keep theirs. Yields after each change; the layers to hide go first."""
        state = dict(self._overlay or [])
        visible = {layer.name: state.get(layer.name, layer.visible and layer not in hidden_after)
                   for layer in self.viewer.layers}
        for layer in self.viewer.layers:
            layer.name_overlay.visible = False
            overlays = layer_overlays(layer)
            if overlays is not None and REGION_BOX in overlays:
                overlays[REGION_BOX].visible = False
        yield
        for layer in list(self.viewer.layers):
            if layer.visible and not visible.get(layer.name, True):
                layer.visible = False
                yield
        yield from self._moving_to_front([name for name in state if name in self.viewer.layers])
        for layer in list(self.viewer.layers):
            if visible.get(layer.name, layer.visible) and not layer.visible:
                layer.visible = True
                yield
        self._overlay = None

    def _moving_to_front(self, names: list[str]) -> Iterator[None]:
        """Put ``names`` first in the layer list, in this order (the grid fills its cells in list order); yields
        after each move."""
        layers = self.viewer.layers
        for target, name in enumerate(names):
            if name not in layers:
                continue
            index = layers.index(layers[name])
            if index != target:
                layers.move(index, target)
                yield
