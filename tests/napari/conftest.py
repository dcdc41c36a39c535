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
