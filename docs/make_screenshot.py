"""Make docs/screenshot.png: napari with the MRI sample after Run, as a new user would see it.

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_screenshot.py --weights my_weights.pt

The default window is 1366 × 768, the smallest common laptop screen: the picture shows what fits there.

Without ``--weights`` it uses the bundled default MRI weights, or, where none is marked default, a
tiny VolumeNet (D2C4) with random weights whose output is meaningless (say so in the caption). It
prints the time from Run to result (CPU by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="weights file (default: the bundled MRI weights)")
    parser.add_argument("--out", type=Path, default=HERE / "screenshot.png")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="1366x768", help="window size WxH")
    parser.add_argument("--compare", action="store_true",
                        help="press Run comparison on the Compare blocks tab (every block with bundled weights) "
                             "instead of Run")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import napari
    import torch
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_volumenet.errors import WeightsError
    from napari_volumenet.models import create_model
    from napari_volumenet.weights import default_weights, save_weights

    weights = args.weights
    if weights is None:
        try:
            weights = default_weights("mri")
        except WeightsError:
            weights = None
    if weights is None:
        torch.manual_seed(0)
        weights = save_weights(Path(tempfile.mkdtemp()) / "tiny-random.pt",
                               create_model("volumenet", depth=2, channels=4), modality="mri")
    width, height = (int(v) for v in args.size.split("x"))
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(width, height)
    app = QApplication.instance()
    viewer.open_sample("napari-volumenet", "mni152_t1")
    _, widget = viewer.window.add_plugin_dock_widget("napari-volumenet", "VolumeNet super-resolution")
    widget.model_tab.set_weights_file(weights)
    widget.device_combo.setCurrentText(args.device)

    start = time.perf_counter()
    if args.compare:
        widget.show_comparison()
        widget.run_comparison()
    else:
        widget.run()
    loop = QEventLoop()  # the widget sets worker to None once the run has been shown
    check = QTimer()
    check.timeout.connect(lambda: widget.worker is None and loop.quit())
    check.start(20)
    loop.exec_()
    check.stop()
    app.processEvents()
    seconds = time.perf_counter() - start
    print(f"Run → result: {seconds:.2f} s ({widget.status.text()})")
    for row in widget.comparison_rows if args.compare else []:
        print(f"  {row['model']}: PSNR {row['psnr']} SSIM {row['ssim']} {row['seconds']:.1f} s {row['weights']}")

    viewer.dims.set_current_step(0, 60)  # an axial slice through the lateral ventricles
    region = widget.results.start_region()
    z = viewer.dims.point[0]
    corners = [(z, -22.0, -30.0), (z, -22.0, 2.0), (z, 6.0, 2.0), (z, 6.0, -30.0)]  # world (mm)
    region.add_rectangles(np.array([region.world_to_data(c) for c in corners]))
    region.mode = "pan_zoom"
    widget.results.refresh_live()
    shown = widget.results.shown.result.outputs
    widget.results.set_grid(True)  # a comparison's grid: its images (difference maps only where ticked)
    viewer.layers.selection.active = viewer.layers[shown[-1].label]
    check.timeout.disconnect()  # captions and region boxes come a turn of the event loop each
    check.timeout.connect(lambda: widget.results.side_by_side.settled and loop.quit())
    check.start(20)
    loop.exec_()
    check.stop()
    for _ in range(20):
        app.processEvents()
    for note in viewer.window._qt_window.findChildren(NapariQtNotification):
        note.close()
    app.processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    from imageio.v3 import imwrite

    imwrite(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}×{image.shape[0]})")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
