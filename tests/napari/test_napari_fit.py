"""The widget's "Fit to this scan" tab in a real napari viewer (run under Xvfb), with the real bundled weights."""

from __future__ import annotations

import time

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import Qt

from napari_volumenet._names import elide_middle
from napari_volumenet.weights import load_weights

PLUGIN = "napari-volumenet"
WIDGET = "VolumeNet super-resolution"
TIMEOUT_MS = 240_000  # a bound, not a wait


@pytest.fixture
def thick_scan(make_napari_viewer, tmp_path):
    """A viewer with a 4 mm-slice scan opened by the plugin's reader (thick along stored axis 2) and the widget."""
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in (32, 28, 8)), indexing="ij")
    data = (sum(g**2 for g in grid) < 0.8) * (100 + 30 * np.sin(7 * grid[0]) * np.cos(5 * grid[1] - 2 * grid[2]))
    path = tmp_path / "t2_4mm.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 4.0, 1.0])), str(path))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    (layer,) = widget.open_volumes([str(path)])
    widget.input_combo.setCurrentText(layer.name)
    return viewer, widget, layer


def test_fit_adds_the_fitted_layer_and_saves_its_weights(thick_scan, qtbot, tmp_path):
    viewer, widget, layer = thick_scan
    tab = widget.fit_tab
    tab.max_steps = 2
    qtbot.mouseClick(tab.fit_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: tab.worker is None, timeout=TIMEOUT_MS)
    fitted = viewer.layers[elide_middle(f"SR fitted {layer.name}")]
    assert sorted(fitted.data.shape) == sorted((32, 28, 32))  # ×4 along the slice axis, in the view's order
    assert "self-validation: cubic" in tab.status.text() and tab.save_button.isEnabled()
    _, meta = load_weights(tab.save_weights(tmp_path / "fitted.pt"))
    assert meta["fit"]["source"] == layer.name and meta["fit"]["steps"] == 2


def test_cancel_stops_the_fit_within_two_seconds_and_adds_nothing(thick_scan, qtbot):
    viewer, widget, layer = thick_scan
    tab = widget.fit_tab
    tab.minutes_spin.setValue(30)
    names = [lay.name for lay in viewer.layers]
    qtbot.mouseClick(tab.fit_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "Fitting: step" in tab.status.text(), timeout=TIMEOUT_MS)
    start = time.perf_counter()
    qtbot.mouseClick(tab.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: tab.worker is None, timeout=TIMEOUT_MS)
    assert time.perf_counter() - start < 2.0
    assert [lay.name for lay in viewer.layers] == names and "cancelled" in tab.status.text()
    assert not tab.save_button.isEnabled()
