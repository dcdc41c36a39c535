"""The super-resolution widget in a real napari viewer (run under Xvfb)."""

from __future__ import annotations

import csv
import itertools
import time

import numpy as np
import pytest

pytest.importorskip("napari")

import torch
from qtpy.QtCore import Qt, QTimer

from napari_volumenet._geometry import METADATA_KEY, WORLD_FROM_RAS, LayerGeometry
from napari_volumenet._names import caption_size
from napari_volumenet._qt.grid import REGION_BOX, layer_overlays, viewer_grid, vispy_canvas
from napari_volumenet._qt.tables import format_value, table_text
from napari_volumenet._qt import grid as grid_module
from napari_volumenet._qt import widget as widget_module
from napari_volumenet._qt.widget import COMPARE_TAB, SuperResolutionWidget
from napari_volumenet.io import napari_scale_translate, sr_affine
from napari_volumenet.models import create_model
from napari_volumenet.ops.metrics import compute_metrics
from napari_volumenet.weights import save_weights

PLUGIN = "napari-volumenet"
WIDGET = "VolumeNet super-resolution"
COMPARISON = "VolumeNet block comparison"
TIMEOUT_MS = 240_000  # a bound, not a wait: generous for loaded CI machines


def _errors_since(before: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [str(n.message) for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR]


def _record_count() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def _draw_rectangle(viewer, region, low=(-20.0, -15.0), high=(10.0, 15.0)):
    """A rectangle on the displayed slice, given in world coordinates (what a mouse drag makes)."""
    z = viewer.dims.point[0]
    corners = [(z, low[0], low[1]), (z, low[0], high[1]), (z, high[0], high[1]), (z, high[0], low[1])]
    region.add_rectangles(np.array([region.world_to_data(c) for c in corners]))


def _click_and_wait(qtbot, widget, button):
    qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def test_run_adds_aligned_layers_whose_metrics_match_the_library(phantom, qtbot, tiny_weights, tmp_path,
                                                                 enter_side_by_side):
    viewer, widget, hr, lr = phantom
    assert widget.input_combo.currentText() == lr.name  # the sample's pair is picked up
    assert widget.gt_combo.currentText() == hr.name
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    assert "Done" in widget.status.text()
    assert widget.badge.text().startswith("cpu · fp32 · ")
    sr = viewer.layers["SR w"]
    tri = viewer.layers["tricubic"]
    assert viewer.layers.selection.active is sr and sr.visible  # the controls show a layer one can see

    # SPEC §5 in napari terms, and the written affine is sr_affine of the LR file's affine
    scale, translate = napari_scale_translate(lr.scale, lr.translate, (2, 2, 2))
    for layer in (sr, tri):
        np.testing.assert_allclose(layer.scale, scale)
        np.testing.assert_allclose(layer.translate, translate)
        assert layer.data.shape == tuple(2 * n for n in lr.data.shape)
    lr_affine = lr.metadata[METADATA_KEY]["affine"]
    np.testing.assert_allclose(sr.metadata[METADATA_KEY]["affine"], sr_affine(lr_affine, 2))
    # world coordinates of SR voxel centres: their physical position, and centred on their LR voxel
    geometry = LayerGeometry.from_layer(sr.metadata, sr.scale, sr.translate, 3)
    index = np.arange(sr.data.size).reshape(geometry.stored(sr.data).shape)
    view_index = geometry.view(index)
    for v in [(0, 0, 0), (5, 17, 30)]:
        stored = np.unravel_index(int(view_index[v]), index.shape)
        aff = sr_affine(lr_affine, 2)
        physical = WORLD_FROM_RAS @ (aff[:3, :3] @ np.array(stored) + aff[:3, 3])
        np.testing.assert_allclose(sr.data_to_world(v), physical, atol=1e-6)
    u = np.array((3, 7, 11))
    children = [sr.data_to_world(2 * u + np.array(k)) for k in itertools.product(range(2), repeat=3)]
    np.testing.assert_allclose(np.mean(children, axis=0), lr.data_to_world(u), atol=1e-6)

    # difference maps share one colormap and one contrast range
    diffs = [viewer.layers["|SR w − GT|"], viewer.layers["|tricubic − GT|"]]
    assert diffs[0].colormap.name == diffs[1].colormap.name
    assert tuple(diffs[0].contrast_limits) == tuple(diffs[1].contrast_limits)
    np.testing.assert_allclose(diffs[0].data, np.abs(sr.data - hr.data))

    # the metrics table: whole volume and current slice, equal to compute_metrics
    gt = np.asarray(hr.data)
    rows = {(r["output"], r["scope"]): r for r in widget.results.metric_rows}
    expected = compute_metrics(gt, sr.data)
    assert {k: rows[("SR w", "volume")][k] for k in expected} == expected
    k = int(round(sr.world_to_data(viewer.dims.point)[0]))
    rng = (float(gt.min()), float(gt.max()))
    expected_slice = compute_metrics(gt[k], sr.data[k], value_range=rng)
    assert {m: rows[("SR w", f"slice {k}")][m] for m in expected_slice} == expected_slice
    text = table_text(widget.results.metrics_table)
    gain = expected["psnr"] - rows[("tricubic", "volume")]["psnr"]
    assert ["SR w", "volume", format_value("psnr", expected["psnr"]), format_value("gain", gain),
            format_value("ssim", expected["ssim"])] in text

    # moving the slider refreshes the slice row (debounced)
    viewer.dims.set_current_step(0, 10)
    k2 = int(round(sr.world_to_data(viewer.dims.point)[0]))
    assert k2 != k
    qtbot.waitUntil(lambda: ("SR w", f"slice {k2}") in {(r["output"], r["scope"]) for r in widget.results.metric_rows},
                    timeout=5000)

    # a rectangle gives region metrics and magnified crops of GT, LR, tricubic and SR
    region = widget.results.start_region()
    _draw_rectangle(viewer, region)
    qtbot.waitUntil(lambda: len(widget.results.crops.crops) == 4, timeout=5000)
    assert [c.title for c in widget.results.crops.crops] == ["GT", "LR", "tricubic", "SR w"]
    gt_crop, lr_crop = widget.results.crops.crops[0], widget.results.crops.crops[1]
    assert gt_crop.data.shape == tuple(2 * n for n in lr_crop.data.shape)
    assert lr_crop.magnification == tuple(2 * m for m in gt_crop.magnification)
    assert any(r["scope"].startswith("region") for r in widget.results.metric_rows)
    png = widget.results.export_crops_png(tmp_path / "crops.png")
    assert png.stat().st_size > 0
    path = widget.results.export_metrics_csv(tmp_path / "metrics.csv")
    with path.open() as handle:
        assert len(list(csv.DictReader(handle))) == len(widget.results.metric_rows)

    # one click: side by side; and the canvas is not blank
    enter_side_by_side(widget, click=True)
    assert viewer_grid(viewer).enabled and all(layer.visible for layer in diffs) and not region.visible
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and float(np.std(shot[..., :3])) > 0


def test_a_second_run_refills_its_layers_in_place(phantom, qtbot, tiny_weights):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    made = {layer.name: layer for layer in viewer.layers if layer not in (hr, lr)}
    order = [layer.name for layer in viewer.layers]
    first = np.array(made["tricubic"].data)
    lr.data = lr.data * 2  # tricubic is linear: the second run's layer must hold twice the first's
    _click_and_wait(qtbot, widget, widget.run_button)
    assert [layer.name for layer in viewer.layers] == order  # no layer added, removed or moved
    assert all(viewer.layers[name] is layer for name, layer in made.items())  # the same layer objects
    np.testing.assert_allclose(made["tricubic"].data, 2 * first, rtol=1e-4, atol=1e-3)
    low, high = made["tricubic"].contrast_limits
    assert high > float(np.percentile(first, 50))  # the new window came with the new data


def test_gui_keeps_processing_events_during_run(phantom, qtbot, tiny_weights):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    widget.model_tab.tricubic_check.setChecked(False)
    widget.tile_spin.setValue(12)  # 64 tiles: the run takes a while
    ticks = {"during_run": 0}

    def tick():
        if widget.worker is not None:
            ticks["during_run"] += 1

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    try:
        widget.run()
        assert widget.worker is not None  # returned at once: the work is in another thread
        assert "SR w" not in viewer.layers
        qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    finally:
        timer.stop()
    assert ticks["during_run"] >= 3
    assert widget.progress.value() == widget.progress.maximum()
    assert "SR w" in viewer.layers


def test_cancel_adds_nothing_and_the_widget_stays_usable(phantom, qtbot, tiny_weights):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    widget.tile_spin.setValue(3)  # thousands of tiles
    names = {layer.name for layer in viewer.layers}
    widget.run()
    qtbot.waitUntil(lambda: "%" in widget.status.text(), timeout=TIMEOUT_MS)
    assert widget.cancel_button.isEnabled()
    qtbot.mouseClick(widget.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert {layer.name for layer in viewer.layers} == names
    assert "Cancelled" in widget.status.text()
    assert widget.progress.value() == 0  # the bar is reset, not left where it stopped
    assert not widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.stopping, timeout=TIMEOUT_MS)  # the cancelled worker ends its step
    assert widget.run_button.isEnabled()
    widget.tile_spin.setValue(-1)
    _click_and_wait(qtbot, widget, widget.run_button)
    assert "SR w" in viewer.layers


def test_bad_weights_give_a_notification(phantom, qtbot, tmp_path):
    viewer, widget, hr, lr = phantom
    bad = tmp_path / "broken.pt"
    bad.write_text("not a weights file")
    widget.model_tab.set_weights_file(bad)
    before = _record_count()
    names = {layer.name for layer in viewer.layers}
    _click_and_wait(qtbot, widget, widget.run_button)
    errors = _errors_since(before)
    assert errors and "broken.pt" in errors[-1]
    assert widget.status.text().startswith("Failed:") and "broken.pt" in widget.status.text()  # not only a toast
    assert {layer.name for layer in viewer.layers} == names
    assert widget.run_button.isEnabled()
    # no weights at all: told at once, nothing starts
    widget.model_tab.set_weights_file("")
    before = _record_count()
    widget.run()
    assert widget.worker is None and _errors_since(before)
    assert widget.status.text().startswith("Weights: choose a weights file")


def test_simulate_mode_degrades_the_hr_input(phantom, qtbot, tiny_weights):
    viewer, widget, hr, lr = phantom
    widget.input_combo.setCurrentText(hr.name)
    widget.mode_simulate.setChecked(True)
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    simulated = viewer.layers["LR ×2 (simulated)"]
    np.testing.assert_allclose(simulated.data, lr.data, atol=1e-5)  # the sample's LR is degrade(HR) too
    np.testing.assert_allclose(simulated.scale, lr.scale)
    np.testing.assert_allclose(simulated.translate, lr.translate)
    sr = viewer.layers["SR w"]
    np.testing.assert_allclose(sr.scale, hr.scale)
    np.testing.assert_allclose(sr.translate, hr.translate, atol=1e-9)
    volume = {r["output"]: r for r in widget.results.metric_rows if r["scope"] == "volume"}
    assert volume["SR w"]["psnr"] == compute_metrics(np.asarray(hr.data), sr.data)["psnr"]


def _open_from_menu(command: str) -> None:
    """What a click on a Plugins menu entry does: napari's own command, which docks what it returns."""
    from napari._app_model import get_app_model
    from qtpy.QtWidgets import QApplication

    get_app_model().commands.execute_command(command).result()
    QApplication.processEvents()  # the comparison entry removes its own empty dock on the next turn
    QApplication.processEvents()


@pytest.mark.parametrize("first", ["napari-volumenet.widget", "napari-volumenet.comparison_widget"])
def test_one_widget_whichever_menu_entry_comes_first(make_napari_viewer, first):
    viewer = make_napari_viewer()
    others = {"napari-volumenet.widget": "napari-volumenet.comparison_widget"}
    _open_from_menu(first)
    _open_from_menu(others.get(first, "napari-volumenet.widget"))
    _open_from_menu("napari-volumenet.comparison_widget")
    docked = [w for w in viewer.window.dock_widgets.values() if isinstance(w, SuperResolutionWidget)]
    assert len(docked) == 1 and len(viewer.window.dock_widgets) == 1
    assert docked[0].tabs.currentIndex() == COMPARE_TAB


def _cut(table) -> list[tuple[str, int, int]]:
    """The cells of ``table`` that do not show their whole text: (text, its width, the column's width)."""
    from qtpy.QtWidgets import QStyle

    metrics = table.fontMetrics()
    margin = 2 * (table.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, table) + 1)  # Qt's text margins
    items = [table.item(r, c) for r in range(table.rowCount()) for c in range(table.columnCount())]
    widths = [(item.text(), metrics.horizontalAdvance(item.text()) + margin, table.columnWidth(item.column()))
              for item in items if item is not None]
    return [cell for cell in widths if cell[1] > cell[2]]


def _assert_short_distinct_names(qtbot, viewer, widget, blocks):
    """Every layer, table row and crop title of the seven-block run: short, distinct, whole on screen."""
    from napari_volumenet._names import MAX_NAME

    made = [layer.name for layer in viewer.layers if layer.name not in ("hr", "lr")]
    assert len(made) == 2 * (1 + len(blocks)) and len(set(made)) == len(made)
    assert max(map(len, made)) <= MAX_NAME and "|xception − GT|" in made
    assert _cut(widget.comparison_table) == []
    tip = widget.comparison_table.item(2, 0).toolTip()
    assert tip.startswith("xception: ParallelNet D9C32 with xception blocks, weights compare-d9c32-xception")
    region = widget.results.start_region()
    _draw_rectangle(viewer, region, (10.0, 10.0), (26.0, 26.0))
    region.mode = "pan_zoom"
    qtbot.waitUntil(lambda: len(widget.results.crops.crops) == 3 + len(blocks), timeout=5000)
    region_rows = [r for r in widget.results.metric_rows if r["scope"].startswith("region")]
    assert [r["output"] for r in region_rows] == ["tricubic", *blocks]
    assert _cut(widget.results.metrics_table) == []
    assert "with xception blocks" in widget.results.metrics_table.item(2, 0).toolTip()
    assert [crop.title for crop in widget.results.crops.crops] == ["GT", "LR", "tricubic", *blocks]


def test_block_comparison_runs_the_bundled_weights_with_its_defaults(make_napari_viewer, qtbot, tmp_path):
    """Compare blocks ▸ Run comparison with nothing changed: every bundled block network runs and is measured."""
    from napari_volumenet.ops.degrade import degrade
    from napari_volumenet._sample_data import make_phantom

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)  # the smallest common laptop screen
    hr = make_phantom((40, 40, 32))
    viewer.add_image(hr, name="hr")
    viewer.add_image(degrade(hr, 2), name="lr", scale=(2, 2, 2), translate=(0.5, 0.5, 0.5))
    _open_from_menu("napari-volumenet.comparison_widget")
    widget = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, SuperResolutionWidget))
    before = _record_count()
    _click_and_wait(qtbot, widget, widget.compare_button)
    assert _errors_since(before) == []
    rows = {r["model"]: r for r in widget.comparison_rows}
    blocks = ["conv", "xception", "mobilenetv2", "cpd", "lwv1", "lwv2", "queue"]
    assert list(rows) == ["tricubic", *blocks]  # what differs first: the block, not the backbone they share
    assert rows["queue"]["weights"] == "compare-d9c32-queue-mri-x2.pt" and rows["queue"]["source"] == "bundled"
    assert rows["xception"]["network"] == "ParallelNet D9C32 with xception blocks"
    for name, row in rows.items():
        assert row["psnr"] is not None and row["seconds"] > 0, name
        assert name in viewer.layers and viewer.layers[name].data.shape == hr.shape  # trained: an image each
    training = [widget.model_list.table.item(r, 1) for r in range(len(blocks))]
    assert all(item.text().endswith(" dB") and "steps" in item.toolTip() for item in training)
    assert widget.viewer.layers.selection.active.name == "queue" and viewer.layers["queue"].visible
    _assert_short_distinct_names(qtbot, viewer, widget, blocks)
    csv_text = widget.export_comparison_csv(tmp_path / "table.csv").read_text()
    assert "ParallelNet D9C32 with xception blocks" in csv_text and "compare-d9c32-xception-mri-x2.pt" in csv_text


def test_block_comparison_speed_only_rows(make_napari_viewer, qtbot, tiny_weights, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "phantom")
    _, entry = viewer.window.add_plugin_dock_widget(PLUGIN, COMPARISON)
    widget = entry.target
    assert widget.tabs.currentIndex() == COMPARE_TAB
    queue, lwv1 = "queue · VolumeNet D9C32", "lwv1 · ParallelNet D9C32"
    widget.model_list.set_checked([queue, lwv1, "3D SRCNN"])
    widget.model_list.set_weights(queue, tiny_weights)  # another file: the file decides the network
    widget.model_list.set_weights(lwv1, None)  # no weights: speed only
    widget.model_list.depth.setValue(1)
    widget.model_list.channels.setValue(4)
    _click_and_wait(qtbot, widget, widget.compare_button)
    rows = {r["model"]: r for r in widget.comparison_rows}
    assert list(rows) == ["tricubic", "lwv1", "queue (w)", "3D SRCNN"]  # another file than the bundled one: named
    assert rows["queue (w)"]["weights"] == "w.pt"
    assert rows["queue (w)"]["psnr"] is not None
    assert rows["lwv1"]["weights"] == "untrained (random weights, speed only)"
    assert rows["lwv1"]["network"] == "ParallelNet D1C4 with lwv1 blocks"
    assert rows["lwv1"]["psnr"] is None  # quality of random weights is not shown
    assert rows["3D SRCNN"]["params"] == 52801
    assert all(r["seconds"] > 0 for r in rows.values())
    text = table_text(widget.comparison_table)
    assert text[1][1] == "speed only" and text[1][2] == "—"
    assert "random weights (speed only)" in widget.comparison_table.item(1, 0).toolTip()
    assert text[2][1] == "w.pt" and text[2][2] != "—"
    assert widget.export_comparison_csv(tmp_path / "table.csv").read_text().count("\n") == 5
    assert "lwv1" not in viewer.layers  # speed only: no image
    assert "queue (w)" in viewer.layers


def test_a_comparison_side_by_side_shows_its_images_and_the_differences_on_request(phantom, qtbot, tiny_weights,
                                                                                   enter_side_by_side):
    viewer, widget, hr, lr = phantom
    results, box = widget.results, widget.results.differences_box
    queue = "queue · VolumeNet D9C32"
    widget.show_comparison()
    widget.model_list.set_checked([queue])
    widget.model_list.set_weights(queue, tiny_weights)
    _click_and_wait(qtbot, widget, widget.compare_button)
    diffs = [layer.name for layer in results.diff_layers]
    assert len(diffs) == 2 and not box.isChecked()
    enter_side_by_side(widget)
    images = results.grid_layers()  # GT, tricubic, the block, LR: one cell each, no difference map
    assert len(images) == 4 and not set(diffs) & set(images)
    assert {layer.name for layer in viewer.layers if layer.visible} == set(images)
    box.click()  # ticked: laid out again with the difference maps
    qtbot.waitUntil(lambda: results.side_by_side.settled, timeout=5000)
    assert results.grid_layers() == [*images, *sorted(diffs, key=lambda name: "tricubic" not in name)]
    assert all(viewer.layers[name].visible and viewer.layers[name].name_overlay.visible for name in diffs)
    # a run (not a comparison) has its own default, ticked; unticked there, its maps leave the grid
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    qtbot.waitUntil(lambda: results.side_by_side.settled, timeout=5000)
    run_diffs = {layer.name for layer in results.diff_layers}
    assert box.isChecked() and run_diffs <= set(results.grid_layers())
    box.click()
    qtbot.waitUntil(lambda: results.side_by_side.settled, timeout=5000)
    assert not run_diffs & {layer.name for layer in viewer.layers if layer.visible}
    # each kind keeps the user's choice: the next comparison shows its maps again
    _click_and_wait(qtbot, widget, widget.compare_button)
    qtbot.waitUntil(lambda: results.side_by_side.settled, timeout=5000)
    assert box.isChecked() and set(diffs) <= set(results.grid_layers())


def test_bundled_weights_are_listed(make_napari_viewer, monkeypatch, tiny_weights):
    from napari_volumenet._qt import model_tab as model_tab_module
    from napari_volumenet.weights import BundledWeights

    class Bundled(BundledWeights):
        @property
        def path(self):
            return tiny_weights

    bundled = Bundled("volumenet-mri-x2", "w.pt", "volumenet", "mri", (2, 2, 2), "tiny test weights", True)
    monkeypatch.setattr(model_tab_module, "list_bundled", lambda: [bundled])
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert widget.model_tab.weights_combo.currentText() == model_tab_module.AUTO_WEIGHTS
    assert widget.model_tab.weights_combo.itemText(1).startswith("volumenet-mri-x2")
    assert not widget.model_tab.weights_edit.isEnabled()  # the custom file is only for "Custom weights file…"
    widget.model_tab.weights_combo.setCurrentIndex(1)
    geometry = LayerGeometry.from_affine(np.eye(4))
    [spec], slice_axis, reason = widget.model_tab.specs(geometry, None, False)
    assert spec.weights == tiny_weights and spec.label == "SR volumenet-mri-x2"
    assert slice_axis is None and reason is None
    widget.model_tab.model_combo.setCurrentText("srcnn3d")  # filtered by model: only the automatic and custom entries
    assert widget.model_tab.weights_combo.count() == 2
    widget.model_tab.weights_combo.setCurrentIndex(1)
    assert widget.model_tab.weights_edit.isEnabled()


@pytest.fixture
def through_plane(monkeypatch, tiny_weights, tmp_path):
    """Bundled ×2 isotropic (tiny) and ×4 through-plane (tiny, random) MRI weights."""
    from napari_volumenet import slices as slices_module
    from napari_volumenet import weights as weights_module
    from napari_volumenet._qt import model_tab as model_tab_module
    from napari_volumenet.weights import BundledWeights

    torch.manual_seed(0)
    thick = save_weights(tmp_path / "t4.pt", create_model("volumenet", depth=2, channels=4, scale=(1, 1, 4)),
                         modality="mri")

    class Bundled(BundledWeights):
        @property
        def path(self):
            return thick if self.scale == (1, 1, 4) else tiny_weights

    bundled = [Bundled("iso-x2", "w.pt", "volumenet", "mri", (2, 2, 2), "tiny", True),
               Bundled("slices-x4", "t4.pt", "volumenet", "mri", (1, 1, 4), "tiny through-plane", True)]
    for module in (model_tab_module, slices_module, weights_module):
        monkeypatch.setattr(module, "list_bundled", lambda: bundled)
    return thick


def test_auto_weights_follow_the_voxel_sizes(make_napari_viewer, qtbot, through_plane):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    from napari_volumenet._geometry import view_factors, view_shape

    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 4.0, 1.0, 1.0])  # thick along stored axis 1
    geometry = LayerGeometry.from_affine(affine)
    [spec], slice_axis, reason = widget.model_tab.specs(geometry, None, False)
    assert spec.weights == through_plane and slice_axis == 1 and "through-plane ×4" in reason
    view_axis = int(geometry.ornt[1][0])  # the widget speaks of napari's axes, never of array axes or CLI flags
    assert f"napari axis {view_axis}" in reason and "array" not in reason and "--" not in reason
    assert "napari axis" not in widget.model_tab.specs(geometry, (1, 4), True)[2]  # Simulate says what it simulates
    image = viewer.add_image(rng.random(view_shape((16, 6, 12), geometry.ornt)).astype(np.float32) * 100 + 10,
                             name="thick", **geometry.layer_kwargs((16, 6, 12)))
    widget.input_combo.setCurrentText(image.name)
    _click_and_wait(qtbot, widget, widget.run_button)
    assert "through-plane ×4" in widget.status.text()
    sr = viewer.layers["SR slices-x4"]
    assert geometry.stored(np.asarray(sr.data)).shape == (16, 24, 12)
    expected_scale, expected_translate = napari_scale_translate(image.scale, image.translate,
                                                                view_factors((1, 4, 1), geometry.ornt))
    np.testing.assert_allclose(sr.scale, expected_scale)
    np.testing.assert_allclose(sr.translate, expected_translate, atol=1e-9)


def test_simulate_thick_slices(phantom, qtbot, through_plane):
    from napari_volumenet.ops.degrade import thick_slices

    viewer, widget, hr, lr = phantom
    widget.input_combo.setCurrentText(hr.name)
    widget.mode_simulate.setChecked(True)
    widget.degrade_combo.setCurrentIndex(3)  # thick slices ×4
    widget.slice_axis_combo.setCurrentIndex(0)
    assert widget.slice_axis_combo.isEnabled()
    _click_and_wait(qtbot, widget, widget.run_button)
    simulated = viewer.layers["LR ×4 axis 0 (sim.)"]  # thick slices along napari axis 0
    geometry = LayerGeometry.from_layer(hr.metadata, hr.scale, hr.translate, hr.ndim)
    stored_axis = int(np.flatnonzero(np.asarray(geometry.ornt)[:, 0] == 0)[0])
    hr_stored = geometry.stored(np.asarray(hr.data))
    expected = thick_slices(hr_stored[tuple(slice(0, n - n % 4) if a == stored_axis else slice(None)
                                            for a, n in enumerate(hr_stored.shape))], stored_axis, 4)
    np.testing.assert_allclose(geometry.stored(np.asarray(simulated.data)), expected, rtol=1e-5, atol=1e-4)
    assert "SR slices-x4" in [layer.name for layer in viewer.layers]
    volume = {r["output"]: r for r in widget.results.metric_rows if r["scope"] == "volume"}
    assert set(volume) >= {"tricubic", "SR slices-x4"}


def test_widget_first_then_sample_picks_lr_as_input(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    hr, lr = viewer.open_sample(PLUGIN, "phantom")  # HR is added first: it must not stay the input
    assert widget.input_combo.currentText() == lr.name
    assert widget.gt_combo.currentText() == hr.name
    # the same layer twice is refused before Run, in one sentence in the status line (napari hands out proxies)
    widget.gt_combo.setCurrentText(lr.name)
    refusal = f"“{lr.name}” is both the Input layer and the Ground truth"
    assert widget.status.text().startswith(refusal) and not widget.run_button.isEnabled()
    widget.run()
    assert widget.worker is None and widget.status.text().startswith(refusal)
    # plain volumes without the sample's roles: the coarser one is the input, whatever the order
    viewer.layers.clear()
    viewer.add_image(np.zeros((40, 40, 32), np.float32), name="fine")
    viewer.add_image(np.zeros((20, 20, 16), np.float32), name="coarse")
    assert (widget.input_combo.currentText(), widget.gt_combo.currentText()) == ("coarse", "fine")


def _cells(viewer):
    grid, layers = viewer_grid(viewer), viewer.layers
    return {layer.name: grid.position(layers.index(layer), layers) for layer in layers}


def test_side_by_side_is_labelled_in_a_fixed_order_and_follows_runs(phantom, qtbot, tiny_weights, tmp_path,
                                                                   enter_side_by_side):
    viewer, widget, hr, lr = phantom
    region = widget.results.start_region()  # a helper layer: it stays out of the grid
    region.mode = "pan_zoom"
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    enter_side_by_side(widget)
    expected = [hr.name, "tricubic", "SR w", lr.name, "|tricubic − GT|", "|SR w − GT|"]
    rows, columns = viewer_grid(viewer).shape
    assert rows * columns >= len(expected) > (rows - 1) * columns  # no empty row
    cells = _cells(viewer)
    assert [cells[name][0] * columns + cells[name][1] for name in expected] == list(range(len(expected)))
    assert cells[region.name] == (-1, -1)
    assert all(viewer.layers[name].name_overlay.visible for name in expected)
    cell = viewer.canvas.size[1] / columns  # each caption sized to fit its cell
    assert all(viewer.layers[name].name_overlay.font_size == caption_size(name, cell) for name in expected)
    # a later run is laid out again: its own layers only, in the same order
    other = tmp_path / "v.pt"
    other.write_bytes(tiny_weights.read_bytes())
    widget.model_tab.set_weights_file(other)
    _click_and_wait(qtbot, widget, widget.run_button)
    cells = _cells(viewer)
    expected = [hr.name, "tricubic", "SR v", lr.name, "|tricubic − GT|", "|SR v − GT|"]
    assert [cells[name][0] * columns + cells[name][1] for name in expected] == list(range(len(expected)))
    assert cells["SR w"] == (-1, -1) and cells["|SR w − GT|"] == (-1, -1)
    # back to the overlay: the helper layers return, the difference maps and labels go
    widget.results.set_grid(False)
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)
    assert region.visible and viewer.layers["SR w"].visible
    assert not any(layer.visible for layer in viewer.layers if "GT|" in layer.name)
    assert not any(layer.name_overlay.visible for layer in viewer.layers)


def _turns_seen(viewer, event):
    """For each emission of ``event`` (a layer-list event), how many turns of the event loop had passed: each
    emission posts a zero-time timer, which runs at the next turn."""
    turns, seen = [0], []

    def emitted(*_):
        seen.append(turns[0])
        QTimer.singleShot(0, lambda: turns.__setitem__(0, turns[0] + 1))

    event.connect(emitted)
    return seen


@pytest.mark.parametrize(("budget", "turns"), [(0.0, 4), (60.0, 1)])
def test_a_finished_run_shows_its_layers_in_turns_as_long_as_the_budget(phantom, qtbot, tiny_weights, monkeypatch,
                                                                         budget, turns):
    viewer, widget, hr, lr = phantom
    monkeypatch.setattr(widget_module, "SHOW_TURN_S", budget)
    widget.model_tab.set_weights_file(tiny_weights)
    inserted = _turns_seen(viewer, viewer.layers.events.inserted)
    _click_and_wait(qtbot, widget, widget.run_button)
    # tricubic, SR and their two difference maps: each in a turn of its own when a layer uses up the turn's
    # time (the GUI answers between them), all in one when they fit in it (one redraw instead of four)
    assert len(inserted) == 4 and len(set(inserted)) == turns and inserted == sorted(inserted)
    assert not widget.cancel_button.isEnabled() and widget.run_button.isEnabled()


def test_side_by_side_is_entered_in_turns_and_a_quick_switch_back_wins(phantom, qtbot, tiny_weights,
                                                                       enter_side_by_side):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    widget.results.set_grid(True)
    assert not viewer_grid(viewer).enabled  # the layers are chosen; the grid is drawn at the next turn
    assert not widget.results.side_by_side.settled
    widget.results.set_grid(False)  # and left before that turn came
    later = []
    QTimer.singleShot(0, lambda: later.append(True))  # zero-time timers run in order: the grid's turn came first
    qtbot.waitUntil(lambda: bool(later), timeout=5000)
    assert not viewer_grid(viewer).enabled and not any(layer.name_overlay.visible for layer in viewer.layers)
    assert not any(layer.visible for layer in viewer.layers if "GT|" in layer.name)
    enter_side_by_side(widget)
    assert all(layer.visible for layer in viewer.layers if "GT|" in layer.name)
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)


def test_the_region_is_boxed_in_every_cell_of_side_by_side(phantom, qtbot, tiny_weights, enter_side_by_side):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    region = widget.results.start_region()
    _draw_rectangle(viewer, region)
    region.mode = "pan_zoom"
    enter_side_by_side(widget)
    names = widget.results.grid_layers()
    boxes = lambda: [layer_overlays(viewer.layers[name]).get(REGION_BOX) for name in names]  # noqa: E731
    qtbot.waitUntil(lambda: all(box is not None and box.visible for box in boxes()), timeout=5000)

    def in_world(name, box):  # the box's corners on the displayed axes, world units
        layer, z = viewer.layers[name], viewer.dims.point[0]
        return np.sort([layer.data_to_world([layer.world_to_data([z, 0, 0])[0], *c])[1:] for c in box.bounds], 0)

    for name, box in zip(names, boxes()):  # HR and LR cells alike: where the rectangle lies in the world
        np.testing.assert_allclose(in_world(name, box), [(-20, -15), (10, 15)], atol=1e-6)
    # the region changes: the boxes follow; back to the overlay: they go
    region.data = []
    _draw_rectangle(viewer, region, low=(-5, 0), high=(5, 12))
    widget.results.refresh_live()
    for name, box in zip(names, boxes()):
        np.testing.assert_allclose(in_world(name, box), [(-5, 0), (5, 12)], atol=1e-6)
    widget.results.set_grid(False)
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)
    assert not any(box.visible for box in boxes())


def test_side_by_side_is_left_in_turns_and_entering_again_wins(phantom, qtbot, tiny_weights, enter_side_by_side,
                                                               monkeypatch):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    before = [(layer.name, layer.visible) for layer in viewer.layers]
    enter_side_by_side(widget)
    monkeypatch.setattr(grid_module, "TURN_BUDGET_S", 0.0)  # one change of a layer per turn
    widget.results.set_grid(False)
    assert not viewer_grid(viewer).enabled and not widget.results.side_by_side.settled  # the rest comes in turns
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)
    assert [(layer.name, layer.visible) for layer in viewer.layers] == before
    widget.results.set_grid(True)  # entered again at once: leaving's turns left are dropped, not mixed in
    widget.results.set_grid(False)
    widget.results.set_grid(True)
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)
    names = widget.results.grid_layers()
    assert viewer_grid(viewer).enabled and [layer.name for layer in viewer.layers][:len(names)] == names
    assert {layer.name for layer in viewer.layers if layer.visible} == set(names)


def _followers(viewer) -> int:
    """Callbacks on the viewer camera's centre: napari's vispy cameras follow it (the main one and one per cell)."""
    return len(viewer.scene.camera.events.center.callbacks)


def test_a_finished_run_builds_the_grid_ahead_and_napari_keeps_it(phantom, qtbot, tiny_weights, enter_side_by_side):
    viewer, widget, hr, lr = phantom
    side_by_side, canvas = widget.results.side_by_side, vispy_canvas(viewer)
    widget.model_tab.set_weights_file(tiny_weights)
    before = _followers(viewer)
    _click_and_wait(qtbot, widget, widget.run_button)
    qtbot.waitUntil(lambda: side_by_side.settled, timeout=5000)
    prepared, = side_by_side._prepared
    names = widget.results.grid_layers()
    assert prepared.complete and prepared.shape == side_by_side._shape_for(names)
    assert canvas.grid is not prepared.grid and len(prepared.views) == np.prod(prepared.shape)
    enter_side_by_side(widget)
    assert canvas.grid is prepared.grid and canvas.grid_views == prepared.views and not side_by_side._prepared
    for name, view in zip(names, prepared.views):  # napari placed each cell's layer in the view built ahead
        assert canvas.layer_to_visual[viewer.layers[name]].node.parent is view.scene
    assert _followers(viewer) == before + len(prepared.cameras)
    # a grid of that shape is there now: the next run builds nothing ahead
    widget.results.set_grid(False)
    qtbot.waitUntil(lambda: side_by_side.settled, timeout=5000)
    _click_and_wait(qtbot, widget, widget.run_button)
    qtbot.waitUntil(lambda: side_by_side.settled, timeout=5000)
    assert not side_by_side._prepared


def test_side_by_side_entered_before_the_grid_is_built_drops_it(phantom, qtbot, tiny_weights, enter_side_by_side,
                                                                monkeypatch):
    viewer, widget, hr, lr = phantom
    side_by_side, canvas = widget.results.side_by_side, vispy_canvas(viewer)
    monkeypatch.setattr(grid_module, "TURN_BUDGET_S", 0.0)  # a view a turn
    widget.model_tab.set_weights_file(tiny_weights)
    before = _followers(viewer)
    _click_and_wait(qtbot, widget, widget.run_button)
    qtbot.waitUntil(lambda: bool(side_by_side._prepared and side_by_side._prepared[0].cameras), timeout=5000)
    partial, = side_by_side._prepared
    assert not partial.complete
    enter_side_by_side(widget)
    qtbot.waitUntil(lambda: side_by_side.settled, timeout=5000)
    assert canvas.grid is not partial.grid and not side_by_side._prepared  # napari built its own
    assert len(canvas.grid_views) == np.prod(viewer_grid(viewer).shape)
    assert _followers(viewer) == before + len(canvas.grid_cameras)  # the half-built cameras follow nothing


def test_region_is_visible_on_another_slice_and_its_rows_come_first(phantom, qtbot, tiny_weights):
    viewer, widget, hr, lr = phantom
    widget.model_tab.set_weights_file(tiny_weights)
    _click_and_wait(qtbot, widget, widget.run_button)
    region = widget.results.start_region()
    z = viewer.dims.point[0]
    _draw_rectangle(viewer, region)
    region.mode = "pan_zoom"
    assert list(viewer.layers[region.name]._view_indices) == [0]  # drawn on the slice shown
    viewer.dims.set_current_step(0, viewer.dims.current_step[0] + 7)
    moved = viewer.dims.point[0]
    assert moved != z
    np.testing.assert_allclose(np.asarray(region.data[0])[:, 0], region.world_to_data(viewer.dims.point)[0])
    assert list(viewer.layers[region.name]._view_indices) == [0]  # drawn on the slice now shown
    sr = viewer.layers["SR w"]
    k = int(round(sr.world_to_data(viewer.dims.point)[0]))
    qtbot.waitUntil(lambda: any(r["scope"] == f"slice {k}" for r in widget.results.metric_rows), timeout=5000)
    rows = widget.results.metric_rows
    assert [r["scope"].split()[0] for r in rows[:2]] == ["region", "region"]
    sr_row = next(r for r in rows if r["output"] == "SR w")
    assert sr_row["gain"] == sr_row["psnr"] - rows[0]["psnr"]  # rows[0]: tricubic over the region
    table = widget.results.metrics_table  # every row shows: the table is as tall as its rows
    needed = table.horizontalHeader().sizeHint().height() + sum(table.rowHeight(r) for r in range(len(rows)))
    assert table.rowCount() == len(rows) and table.height() >= needed
    assert table.verticalScrollBarPolicy() == Qt.ScrollBarAlwaysOff
    # a transposed view shows the same region of the same slice: the same rows and crops
    crops = [c.data for c in widget.results.crops.crops]
    assert len(crops) == 4
    viewer.dims.order = (0, 2, 1)
    widget.results.refresh_live()
    assert widget.results.metric_rows == rows
    assert all(np.array_equal(a.data, b) for a, b in zip(widget.results.crops.crops, crops, strict=True))


def test_progress_steps_and_cancel_latency_on_a_125x125x75_volume(make_napari_viewer, qtbot, tmp_path):
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "d3c16.pt", create_model("volumenet", depth=3, channels=16), modality="mri")
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    viewer.add_image(np.random.default_rng(0).random((125, 125, 75), dtype=np.float32) * 1000, name="LR")
    widget.model_tab.set_weights_file(weights)
    widget.model_tab.tricubic_check.setChecked(False)
    names = {layer.name for layer in viewer.layers}
    steps = []
    widget.run()
    widget.worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: any(s.stage == "tiles" for s in steps), timeout=TIMEOUT_MS)
    total = next(s for s in steps if s.stage == "tiles").total
    assert total >= 10 and widget.progress.maximum() == total
    start = time.perf_counter()
    qtbot.mouseClick(widget.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    latency = time.perf_counter() - start
    assert latency < 2.0, f"Cancel took {latency:.1f} s"
    qtbot.waitUntil(lambda: not widget.stopping, timeout=TIMEOUT_MS)  # the cancelled worker ends its step
    assert "Cancelled" in widget.status.text() and {layer.name for layer in viewer.layers} == names
    assert max(s.done for s in steps if s.stage == "tiles") < total  # it stopped before the end


def test_the_bar_repaints_a_few_times_a_second_not_once_per_block(phantom, tiny_weights):
    """Blocks that follow each other within milliseconds move the bar once; a new range, the last block and a
    block after the interval always show (each repaint composes the whole window with napari's canvas)."""
    from napari_volumenet._pipeline import MIN_STEPS, ModelSpec, RunRequest, run_steps
    from napari_volumenet._qt.widget import PROGRESS_INTERVAL_S

    viewer, widget, hr, lr = phantom
    steps, collect = [], run_steps(np.asarray(lr.data), [ModelSpec("SR", tiny_weights)], RunRequest(min_steps=MIN_STEPS))
    try:
        while True:
            steps.append(next(collect))
    except StopIteration:
        pass
    tiles = [s for s in steps if s.stage == "tiles" and s.label == "SR"]
    assert len(tiles) >= 4
    shown = []
    widget.progress.valueChanged.connect(shown.append)
    for step in tiles:  # all at once, as a fast network sends them
        widget._on_step(widget._run_id, step)
    assert shown[0] == tiles[0].done and shown[-1] == tiles[-1].done == tiles[-1].total
    assert len(shown) < len(tiles) / 2
    widget._painted -= PROGRESS_INTERVAL_S  # the interval has passed: the next block shows
    widget._on_step(widget._run_id, tiles[1])
    assert shown[-1] == tiles[1].done
