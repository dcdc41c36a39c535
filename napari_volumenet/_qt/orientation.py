"""Anatomical orientation in a napari viewer: superior up in coronal and sagittal views, and the letters
(R/L, A/P, S/I) at the edges of the view. In side by side every cell shares the one camera, so the letters
stand once at the edges of the whole grid (letters in each cell, napari's gridded overlays, cost ~2 s of
frozen GUI to build for eight cells), all but the bottom one, where the cells' names go.

Display only: the camera's 2D orientation (``viewer.camera.orientation2d``) flips how the displayed axes
are drawn; the layers' data, world coordinates and written geometry stay as they are (SPEC §5). The
directions come from the layers' affines (:func:`napari_volumenet._orientation.view_axcodes`), so a viewer
without a layer from this plugin's reader is left alone.
"""

from __future__ import annotations

import weakref
from typing import Any

from napari.components.overlays import TextOverlay

from .._geometry import METADATA_KEY
from .._orientation import ScreenOrientation, screen_orientation, view_axcodes
from .grid import viewer_grid

EDGES = {"top": "top_center", "bottom": "bottom_center", "left": "middle_left", "right": "middle_right"}
"""Each edge letter's canvas position."""
OVERLAY_KEY = "volumenet_{}"
"""Key of an edge letter in ``viewer.canvas.overlays``."""
DEFAULT_ORIENTATION2D = ("down", "right")

_followed: weakref.WeakKeyDictionary[Any, AnatomicalView] = weakref.WeakKeyDictionary()


def viewer_camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def layer_axcodes(layer: Any) -> tuple[str, str, str] | None:
    """Anatomical direction of each view axis of a layer the plugin placed (``None`` for any other layer)."""
    entry = layer.metadata.get(METADATA_KEY) if isinstance(getattr(layer, "metadata", None), dict) else None
    if not isinstance(entry, dict) or "affine" not in entry or "ornt" not in entry or layer.ndim != 3:
        return None
    try:
        stored = [layer.data.shape[int(view_axis)] for view_axis, _ in entry["ornt"]]
        return view_axcodes(entry["affine"], entry["ornt"], stored)
    except (ValueError, TypeError, IndexError):
        return None


class AnatomicalView:
    """Keeps a viewer's camera orientation and edge letters in step with its displayed axes."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = weakref.ref(viewer)  # the viewer's registry holds this view: no reference back
        self.letters: dict[str, TextOverlay] = {}
        for edge, position in EDGES.items():
            overlay = TextOverlay(text="", position=position, gridded=False, visible=False, font_size=10,
                                  color="yellow")
            viewer.canvas.overlays[OVERLAY_KEY.format(edge)] = overlay
            self.letters[edge] = overlay
        for event in (viewer.dims.events.order, viewer.dims.events.ndisplay, viewer.layers.events.inserted,
                      viewer.layers.events.removed, viewer_grid(viewer).events.enabled):
            event.connect(self.update)
        self.shown: ScreenOrientation | None = None
        self.update()

    @property
    def viewer(self) -> Any:
        return self._viewer()

    def codes(self) -> tuple[str, str, str] | None:
        """The directions of the first layer the plugin placed (the reader's view is the same for all)."""
        return next((codes for layer in self.viewer.layers if (codes := layer_axcodes(layer))), None)

    def update(self, *_: Any) -> None:
        """Orient the camera and set the letters for the current dims (letters in 2D views only)."""
        viewer = self.viewer
        codes = self.codes() if viewer is not None and viewer.dims.ndim == 3 else None
        if codes is None:
            if self.shown is not None and viewer is not None:
                viewer_camera(viewer).orientation2d = DEFAULT_ORIENTATION2D
            self.shown = None
            self._show_letters(None)
            return
        self.shown = screen_orientation(codes, viewer.dims.displayed)
        viewer_camera(viewer).orientation2d = (self.shown.vertical, self.shown.horizontal)
        self._show_letters(self.shown if viewer.dims.ndisplay == 2 else None)

    def _show_letters(self, shown: ScreenOrientation | None) -> None:
        in_grid = bool(viewer_grid(self.viewer).enabled) if self.viewer is not None else False
        for edge, overlay in self.letters.items():
            if shown is not None:
                overlay.text = getattr(shown, edge)
            overlay.visible = shown is not None and not (in_grid and edge == "bottom")


def follow_anatomy(viewer: Any) -> AnatomicalView:
    """The viewer's :class:`AnatomicalView`, made on first use (one per viewer)."""
    view = _followed.get(viewer)
    if view is None:
        view = _followed[viewer] = AnatomicalView(viewer)
    return view
