"""What a radiologist sees (run under Xvfb): crops that fill the dock and follow the contrast, with their PSNR/SSIM;
display windows for MRI and CT set on every layer of a run; superior up and orientation letters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("napari")

import torch
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage
from qtpy.QtWidgets import QScrollArea

from napari_volumenet._comparison import Crop
from napari_volumenet._qt.crops import GAP, Tile, render_panel, tile_layout
from napari_volumenet._qt.grid import quicken_cell_lookup, viewer_grid
from napari_volumenet._qt.orientation import OVERLAY_KEY, follow_anatomy, viewer_camera
from napari_volumenet._reader import volume_layer_data
from napari_volumenet._windows import FOREGROUND, foreground_window, preset_name
from napari_volumenet.io import lr_affine
from napari_volumenet.models import create_model
from napari_volumenet.ops.degrade import degrade
from napari_volumenet.weights import save_weights

PLUGIN = "napari-volumenet"
WIDGET = "VolumeNet super-resolution"
TIMEOUT_MS = 240_000  # a bound, not a wait
EDGES = ("top", "bottom", "left", "right")


def _run(qtbot, widget, weights) -> None:
    widget.model_tab.set_weights_file(weights)
    qtbot.mouseClick(widget.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.results.shown is not None, widget.status.text()


def _draw(viewer, widget, low=(-20.0, -15.0), high=(10.0, 15.0)):
    region = widget.results.start_region()
    z = viewer.dims.point[0]
    corners = [(z, low[0], low[1]), (z, low[0], high[1]), (z, high[0], high[1]), (z, high[0], low[1])]
    region.add_rectangles(np.array([region.world_to_data(c) for c in corners]))
    region.mode = "pan_zoom"
    return region


@pytest.fixture
def phantom_run(make_napari_viewer, qtbot, tiny_weights):
    viewer = make_napari_viewer(show=True)  # shown: the dock has its real size
    viewer.window._qt_window.resize(1366, 768)
    hr, lr = viewer.open_sample(PLUGIN, "phantom")
    lr.contrast_limits = (0.0, 0.5 * lr.contrast_limits[1])  # the input with a window of its own
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    _run(qtbot, widget, tiny_weights)
    return viewer, widget, hr, lr


# ---------------------------------------------------------------------- crops
def test_crops_fill_the_dock_carry_their_metrics_and_follow_the_contrast(phantom_run, qtbot):
    viewer, widget, hr, lr = phantom_run
    _draw(viewer, widget)
    panel = widget.results.crops
    qtbot.waitUntil(lambda: len(panel.tiles) == 4, timeout=5000)
    sr, tri = viewer.layers["SR w"], viewer.layers["tricubic"]

    # each crop in its layer's window; the outputs with the region's PSNR/SSIM (the table's numbers)
    layers = [hr, lr, tri, sr]
    assert [t.window for t in panel.tiles] == [tuple(map(float, lyr.contrast_limits)) for lyr in layers]
    region = {r["output"]: r for r in widget.results.metric_rows if r["scope"].startswith("region")}
    assert [(t.psnr, t.ssim) for t in panel.tiles[:2]] == [(None, None)] * 2
    for tile, label in zip(panel.tiles[2:], ("tricubic", "SR w")):
        assert (tile.psnr, tile.ssim) == (region[label]["psnr"], region[label]["ssim"])
    caption, image = panel.labels[3]
    sr_psnr, sr_ssim = region["SR w"]["psnr"], region["SR w"]["ssim"]
    assert caption.wordWrap() and caption.text() == f"SR w\n{sr_psnr:.2f} dB · {sr_ssim:.3f}"
    assert f"PSNR {sr_psnr:.2f} dB, SSIM {sr_ssim:.4f}" in caption.toolTip()

    # large tiles (the old ones were about 128 px), scrolled into view in the dock as they appear
    assert panel.side > 150 and image.pixmap().width() == panel.side
    scroll = widget.findChild(QScrollArea)
    qtbot.waitUntil(lambda: _in_view(panel, scroll), timeout=5000)

    # a contrast change on one layer redraws its crop (and only the window changes)
    before = image.pixmap().toImage()
    sr.contrast_limits = (0.4 * sr.contrast_limits[1], 0.6 * sr.contrast_limits[1])
    qtbot.waitUntil(lambda: panel.tiles[3].window == tuple(map(float, sr.contrast_limits)), timeout=5000)
    assert panel.labels[3][1].pixmap().toImage() != before
    assert panel.tiles[2].window == tuple(map(float, tri.contrast_limits))
    # crops of another slice keep following each layer's window
    data = panel.crops[3].data
    viewer.dims.set_current_step(0, viewer.dims.current_step[0] + 1)
    qtbot.waitUntil(lambda: not np.array_equal(panel.crops[3].data, data), timeout=5000)
    assert panel.tiles[3].window == tuple(map(float, sr.contrast_limits)) != panel.tiles[2].window


def _in_view(panel, scroll) -> bool:
    """Whether the whole crops panel lies inside the dock's visible area."""
    top = panel.mapTo(scroll.viewport(), panel.rect().topLeft()).y()
    return top >= 0 and top + panel.height() <= scroll.viewport().height()


def test_crops_png_has_wrapped_titles_that_never_overlap(tmp_path):
    rng = np.random.default_rng(0)
    titles = ["GT", "LR", "tricubic", "mobilenetv2 · ParallelNet D9C32 (comparison weights, 400 steps)",
              "xception · ParallelNet D9C32 (comparison weights)"]
    tiles = [Tile(Crop(t, rng.random((12, 20)), (1, 1)), (0.0, 1.0), *((31.42, 0.912) if n > 1 else ()))
             for n, t in enumerate(titles)]
    assert tiles[3].caption() == f"{titles[3]}\n31.42 dB · SSIM 0.912"
    picture = render_panel(tiles, columns=3, side=256)
    assert picture.width() == 3 * (256 + GAP) + GAP
    path = tmp_path / "crops.png"
    assert picture.save(str(path), "PNG")
    pixels = _gray(QImage(str(path)))
    # the gaps between columns stay white from top to bottom: no title runs into its neighbour
    for column in range(1, 3):
        gap = column * (256 + GAP)
        assert (pixels[:, gap:gap + GAP] == 255).all()
    # the long titles wrap: their caption has text on several lines below the tile
    tile_bottom = GAP + 256 * 12 // 20 + (256 - 256 * 12 // 20) // 2
    text_rows = np.flatnonzero((pixels[GAP + 256:, GAP + 256 + GAP: 2 * (256 + GAP)] < 128).any(axis=1))
    assert tile_bottom < GAP + 256 and len(_runs(text_rows)) >= 3  # three lines: two of title, one of PSNR


def _gray(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_Grayscale8)
    data = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), dtype=np.uint8)
    return data.reshape(image.height(), image.bytesPerLine())[:, :image.width()]


def _runs(rows: np.ndarray) -> list[int]:
    """Starts of the runs of consecutive values (the text lines)."""
    return [int(r) for n, r in enumerate(rows) if n == 0 or rows[n - 1] != r - 1]


def test_tile_layout_fills_the_width_and_fits_the_height():
    assert tile_layout(4, 400, 600, lambda w: 40) == (2, 197)  # two columns of the dock's half
    columns, side = tile_layout(10, 400, 600, lambda w: 60)  # ten crops: as many columns as keep them large
    assert columns == 3 and side == (400 - 2 * GAP) // 3
    assert tile_layout(1, 400, 300, lambda w: 40) == (1, 260)  # one crop: the height limits it
    assert tile_layout(10, 400, 300, lambda w: 60) == (3, 129)  # too short for all: fill the width, scroll


# ---------------------------------------------------------------------- windows
def test_every_layer_of_a_run_shares_the_foreground_window(phantom_run):
    viewer, widget, hr, lr = phantom_run
    results = widget.results
    run_layers = [hr, lr, viewer.layers["tricubic"], viewer.layers["SR w"]]
    assert {tuple(lyr.contrast_limits) for lyr in run_layers} == {tuple(hr.contrast_limits)}  # the GT's, on all
    assert [results.window_combo.itemText(i) for i in range(results.window_combo.count())] == [FOREGROUND]
    hr.contrast_limits = (0.0, 1.0)
    window = results.apply_window(FOREGROUND)
    assert window == foreground_window(np.asarray(hr.data))
    assert all(tuple(lyr.contrast_limits) == pytest.approx(window) for lyr in run_layers)
    assert tuple(viewer.layers["|SR w − GT|"].contrast_limits) != pytest.approx(window)  # not the differences


def test_ct_opens_with_soft_tissue_and_its_presets_set_every_layer(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    hu = np.full((24, 24, 24), -1000.0, dtype=np.float32)
    hu[4:20, 4:20, 4:20] = 40.0
    hu[8:16, 8:16, 8:16] = 700.0
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    for data, aff, name in ((hu, affine, "CT HR"), (degrade(hu, 2), lr_affine(affine, 2), "CT LR")):
        array, kwargs, _ = volume_layer_data(data, aff, name=name)
        viewer.add_image(array, **kwargs)
        assert tuple(viewer.layers[name].contrast_limits) == (-160.0, 240.0)  # soft tissue 40/400
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "ct.pt", create_model("volumenet", depth=2, channels=4), modality="ct")
    widget.input_combo.setCurrentText("CT LR")
    widget.gt_combo.setCurrentText("CT HR")
    _run(qtbot, widget, weights)
    results = widget.results
    names = [results.window_combo.itemText(i) for i in range(results.window_combo.count())]
    assert names[1:] == [preset_name(n) for n in ("brain", "soft tissue", "lung", "bone")]
    run_layers = [lyr for lyr in viewer.layers if lyr.name in ("CT HR", "CT LR") or lyr.name in
                  results.shown.outputs]
    assert len(run_layers) == 4
    results.window_combo.activated.emit(names.index(preset_name("lung")))
    assert all(tuple(lyr.contrast_limits) == (-1350.0, 150.0) for lyr in run_layers)
    assert results.window_combo.currentText() == preset_name("lung")


# ---------------------------------------------------------------------- orientation
def _letters(viewer) -> dict[str, str]:
    overlays = viewer.canvas.overlays
    return {edge: overlays[OVERLAY_KEY.format(edge)].text for edge in EDGES
            if overlays[OVERLAY_KEY.format(edge)].visible}


def _head_up(viewer) -> None:
    """A volume from the reader whose superior half is bright (view axis 0 runs I→S)."""
    data = np.zeros((40, 30, 20), dtype=np.float32)  # stored RAS: x, y, z
    data[:, :, 10:] = 1.0  # superior half
    array, kwargs, _ = volume_layer_data(data, np.diag([1.0, 1.0, 1.0, 1.0]), name="head")
    viewer.add_image(array, **kwargs)


def _top_brighter(viewer) -> bool:
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float).mean(axis=-1)
    half = shot.shape[0] // 2
    return shot[:half].mean() > shot[half:].mean() + 20


@pytest.mark.parametrize(("order", "letters"), [
    ((0, 1, 2), {"top": "A", "bottom": "P", "left": "R", "right": "L"}),  # axial
    ((1, 0, 2), {"top": "S", "bottom": "I", "left": "R", "right": "L"}),  # coronal
    ((2, 0, 1), {"top": "S", "bottom": "I", "left": "A", "right": "P"}),  # sagittal
])
def test_superior_up_and_letters_in_every_view(make_napari_viewer, order, letters):
    viewer = make_napari_viewer(show=True)  # shown: the screenshot is what the canvas draws
    _head_up(viewer)  # the reader made the viewer follow the anatomy: no widget needed
    layer = viewer.layers["head"]
    scale, translate, data = tuple(layer.scale), tuple(layer.translate), layer.data
    viewer.dims.order = order
    viewer.reset_view()
    assert _letters(viewer) == letters
    vertical = "up" if letters["top"] == "S" else "down"
    assert tuple(map(str, viewer_camera(viewer).orientation2d)) == (vertical, "right")
    if letters["top"] == "S":
        assert _top_brighter(viewer)  # superior really is drawn at the top
    # display only: the layer's data and geometry are untouched
    assert layer.data is data and tuple(layer.scale) == scale and tuple(layer.translate) == translate


def test_orientation_in_side_by_side_and_3d(make_napari_viewer, qtbot, tiny_weights, enter_side_by_side):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "phantom")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    _run(qtbot, widget, tiny_weights)
    viewer.dims.order = (1, 0, 2)
    arranged = []
    choose = widget.results.side_by_side._choosing
    widget.results.side_by_side._choosing = lambda names: arranged.append(names) or choose(names)
    enter_side_by_side(widget)
    assert len(arranged) == 1 and widget.results.grid_button.isChecked()  # laid out once, the button in step
    # one set of letters at the edges of the grid (every cell shares the camera); per-cell copies froze the GUI ~2 s
    assert not any(viewer.canvas.overlays[OVERLAY_KEY.format(edge)].gridded for edge in EDGES)
    assert _letters(viewer)["top"] == "S" and str(viewer_camera(viewer).orientation2d[0]) == "up"
    assert "bottom" not in _letters(viewer)  # the cells' names are captions along the bottom edge
    assert {layer.name_overlay.position for layer in viewer.layers if layer.visible} == {"bottom_center"}
    widget.results.set_grid(False)
    qtbot.waitUntil(lambda: widget.results.side_by_side.settled, timeout=5000)
    assert _letters(viewer)["bottom"] == "I"
    enter_side_by_side(widget)
    viewer.dims.ndisplay = 3
    assert _letters(viewer) == {}  # no letters on a rotating 3D view
    viewer.dims.ndisplay = 2
    assert _letters(viewer)["top"] == "S"


def test_a_viewer_without_plugin_layers_is_left_alone(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 6, 7)))
    view = follow_anatomy(viewer)
    assert follow_anatomy(viewer) is view
    viewer.dims.order = (1, 0, 2)
    assert _letters(viewer) == {} and tuple(map(str, viewer_camera(viewer).orientation2d)) == ("down", "right")


def test_the_quick_cell_lookup_answers_as_napari_does(make_napari_viewer):
    viewer = make_napari_viewer()
    for i in range(7):
        viewer.add_image(np.zeros((4, 4)), name=f"layer {i}")
    grid = viewer_grid(viewer)
    napari_answer = type(grid).contents_at  # napari's own, before the viewer's grid gets the quick one
    assert quicken_cell_lookup(grid)
    cells = [(-1, -1)] + [(row, col) for row in range(4) for col in range(4)]
    for enabled, stride, shape in itertools.product((False, True), (1, 2, -2), ((-1, -1), (1, 2))):
        grid.enabled, grid.stride, grid.shape = enabled, stride, shape
        for hidden in ([], [2, 3], [1, 4, 6], list(range(7))):
            for i, layer in enumerate(viewer.layers):
                layer.visible = i not in hidden
            layers = viewer.layers
            assert [grid.contents_at(c, layers) for c in cells] == [napari_answer(grid, c, layers) for c in cells]
