"""The widget's status line, its refusals and errors in its own terms, and Cancel at any point of a real run
(real napari under Xvfb, the real bundled weights)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import Qt

from napari_volumenet._geometry import LayerGeometry, view_shape

PLUGIN = "napari-volumenet"
WIDGET = "VolumeNet super-resolution"
TIMEOUT_MS = 240_000  # a bound, not a wait: generous for loaded CI machines
CANCEL_S = 2.0


def test_input_equal_to_ground_truth_is_refused_before_run(phantom):
    viewer, widget, hr, lr = phantom
    assert widget.run_button.isEnabled()
    assert widget.status.text() == f"Run upscales “{lr.name}” and compares with “{hr.name}”."
    widget.input_combo.setCurrentText(hr.name)  # the HR layer as input: it is the ground truth too
    assert widget.gt_combo.currentText() == hr.name
    sentence = widget.status.text()
    assert sentence.startswith(f"“{hr.name}” is both the Input layer and the Ground truth")
    assert sentence.count(". ") == 0 and sentence.endswith(".") and "--" not in sentence  # one sentence
    assert not widget.run_button.isEnabled() and not widget.compare_button.isEnabled()
    widget.mode_simulate.setChecked(True)  # Simulate compares the input with itself: allowed
    assert widget.run_button.isEnabled() and widget.status.text().startswith(f"Run degrades “{hr.name}”")
    widget.mode_upscale.setChecked(True)
    assert not widget.run_button.isEnabled()
    widget.gt_combo.setCurrentText("(none)")
    assert widget.run_button.isEnabled() and widget.status.text().endswith("(no ground truth).")


def test_no_input_layer_disables_run_and_says_so(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert not widget.run_button.isEnabled() and widget.status.text().startswith("Input layer: choose a 3D image")
    viewer.add_image(np.zeros((8, 8, 8), np.float32), name="scan")
    assert widget.run_button.isEnabled() and widget.status.text().startswith("Run upscales “scan”")


def test_a_failed_run_says_why_in_the_status_line_in_the_widgets_terms(phantom, qtbot):
    viewer, widget, hr, lr = phantom
    names = {layer.name for layer in viewer.layers}
    widget.precision_combo.setCurrentText("fp16")  # the library says "use --precision bf16 or fp32"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    status = widget.status.text()
    assert status.startswith("Failed: fp16 is not supported on the CPU") and "Device ▸ Precision" in status
    assert "--" not in status
    assert widget.progress.value() == 0 and widget.run_button.isEnabled()
    assert {layer.name for layer in viewer.layers} == names


def test_automatic_weights_that_do_not_fit_are_refused_in_napari_axes(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    geometry = LayerGeometry.from_affine(np.diag([1.0, 9.0, 1.0, 1.0]))  # 9 mm slices: no bundled weights
    viewer.add_image(np.ones(view_shape((16, 6, 12), geometry.ornt), np.float32), name="thick",
                     **geometry.layer_kwargs((16, 6, 12)))
    widget.run()
    status = widget.status.text()
    view_axis = int(geometry.ornt[1][0])
    assert widget.worker is None and f"thick slices along napari axis {view_axis}" in status
    assert "Model ▸ Weights" in status and "--" not in status and "array axis" not in status


def _cancel_on(stage: str, step) -> bool:
    """Whether ``step`` is the first one of ``stage``: during tricubic, during a network, during the metrics."""
    if stage == "tricubic":
        return step.stage == "plan" and step.label == "tricubic"
    if stage == "network":
        return step.stage == "tiles" and step.label != "tricubic" and step.done >= 1
    return step.stage == "metrics"


@pytest.mark.parametrize("stage", ["tricubic", "network", "metrics"])
def test_cancel_at_any_point_stops_at_once_and_adds_nothing(phantom, qtbot, stage):
    viewer, widget, hr, lr = phantom  # the automatic weights: the bundled VolumeNet D9C32 MRI ×2
    names = {layer.name for layer in viewer.layers}
    latency: list[float] = []

    def on_step(step) -> None:
        if not latency and _cancel_on(stage, step):
            start = time.perf_counter()
            qtbot.mouseClick(widget.cancel_button, Qt.LeftButton)
            latency.append(time.perf_counter() - start)

    widget.run()
    worker = widget.worker
    worker.yielded.connect(on_step)
    qtbot.waitUntil(lambda: bool(latency), timeout=TIMEOUT_MS)
    assert latency[0] < CANCEL_S, f"Cancel took {latency[0]:.2f} s"
    assert widget.worker is None and not widget.cancel_button.isEnabled()
    assert widget.progress.value() == 0 and widget.progress.maximum() == 1  # the bar is reset
    assert "Cancelled" in widget.status.text()
    # one worker at a time: Run is free once the cancelled worker has ended the step it was in
    assert widget.run_button.isEnabled() == (not widget.stopping) == (not worker.is_running)
    qtbot.waitUntil(lambda: not widget.stopping, timeout=TIMEOUT_MS)
    assert not worker.is_running and widget.run_button.isEnabled()
    assert {layer.name for layer in viewer.layers} == names  # nothing it computed is added, even later
    assert "Cancelled" in widget.status.text() and widget.progress.value() == 0


def test_run_again_after_cancel(phantom, qtbot):
    viewer, widget, hr, lr = phantom
    widget.run()
    qtbot.waitUntil(lambda: "%" in widget.status.text(), timeout=TIMEOUT_MS)
    qtbot.mouseClick(widget.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=TIMEOUT_MS)
    qtbot.mouseClick(widget.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.status.text().startswith("Done")
    sr = viewer.layers.selection.active
    assert sr.name == "SR volume…c32-mri-x2" and sr.visible  # the bundled weights' name, middle-elided
    assert "weights volumenet-d9c32-mri-x2.pt" in sr.metadata["volumenet"]["sidecar"]["full_name"]


def test_closing_the_dock_while_a_cancelled_worker_ends_its_step(phantom, qtbot):
    from napari_volumenet._qt.widget import _dock_of

    viewer, widget, hr, lr = phantom
    in_step, step_may_end = threading.Event(), threading.Event()
    prepare = widget._prepare

    def held_in_its_first_step(comparison):  # the step under way when Cancel is pressed ends when the test says
        steps, context = prepare(comparison)

        def run():
            yield next(steps)
            in_step.set()
            step_may_end.wait(timeout=TIMEOUT_MS / 1000)
            return (yield from steps)

        return run(), context

    widget._prepare = held_in_its_first_step
    widget.run()
    qtbot.waitUntil(in_step.is_set, timeout=TIMEOUT_MS)
    worker, alive = widget.worker, widget.alive
    qtbot.mouseClick(widget.cancel_button, Qt.LeftButton)
    viewer.window.remove_dock_widget(_dock_of(widget))
    widget.deleteLater()  # the widget goes while its cancelled worker still ends its step
    qtbot.waitUntil(lambda: not alive[0], timeout=TIMEOUT_MS)
    deleted_first = worker.is_running
    step_may_end.set()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=TIMEOUT_MS)  # pytest-qt fails on any error in a slot
    assert deleted_first  # the case under test: the worker's last signals reach a deleted widget
    assert not any("|" in layer.name or layer.name.startswith("SR") for layer in viewer.layers)
