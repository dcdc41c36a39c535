"""Fixtures of the napari plugin tests: tiny random weights (fast; the quality is meaningless)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_volumenet.models import create_model
from napari_volumenet.weights import save_weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VolumeNet D2C4 ×2 MRI weights file with random weights."""
    torch.manual_seed(0)
    return save_weights(tmp_path_factory.mktemp("weights") / "w.pt", create_model("volumenet", depth=2, channels=4),
                        modality="mri")


@pytest.fixture
def phantom(make_napari_viewer):
    """A viewer with the phantom sample (HR, LR) and the super-resolution widget docked: ``(viewer, widget, hr, lr)``."""
    viewer = make_napari_viewer()
    hr, lr = viewer.open_sample("napari-volumenet", "phantom")
    _, widget = viewer.window.add_plugin_dock_widget("napari-volumenet", "VolumeNet super-resolution")
    return viewer, widget, hr, lr


@pytest.fixture
def enter_side_by_side(qtbot):
    """``enter(widget, click=False)``: switch the widget's results to side by side (by the button with ``click``)
    and wait until the grid is drawn and labelled (entering it takes a few turns of the event loop)."""
    return lambda widget, click=False: _enter_side_by_side(qtbot, widget, click)


def _enter_side_by_side(qtbot, widget, click: bool) -> None:
    from qtpy.QtCore import Qt

    from napari_volumenet._qt.grid import viewer_grid

    if click:
        qtbot.mouseClick(widget.results.grid_button, Qt.LeftButton)
    else:
        widget.results.set_grid(True)
    viewer = widget.viewer
    qtbot.waitUntil(lambda: viewer_grid(viewer).enabled and all(
        layer.name_overlay.visible for layer in viewer.layers if layer.visible), timeout=5000)
