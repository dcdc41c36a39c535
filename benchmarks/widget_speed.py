"""The napari widget against ``volumenet upscale`` on the same input, and the GUI's longest freezes.

Run under a display (``xvfb-run -a python benchmarks/widget_speed.py``). In one napari window: open the
bundled MRI sample, open the widget from the Plugins menu (its command), press Run with the defaults
(tricubic, the default ×2 weights, metrics against the ground truth: what a user waits for), draw a crop
region and switch to side by side. Between widget runs, ``volumenet upscale`` runs on the same LR file as a whole process
(import, read, upscale, write). A 5 ms timer measures the longest gap in the GUI's event loop while the
widget opens, while a run finishes (its layers are added, and the views of the grid that side by side will take
are built ahead), and while side by side is laid out (until every cell has its caption and the region's box).

    xvfb-run -a python benchmarks/widget_speed.py --repeats 3 --json benchmarks/results/widget_speed.json

``--comparison`` does the same with the Compare tab (its menu entry, Run comparison: tricubic and the seven blocks).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class FreezeMeter:
    """The longest gap between ticks of a 5 ms Qt timer while :meth:`measure` runs an action."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer()
        self.timer.timeout.connect(self._tick)
        self.timer.start(5)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def measure(self, action: Callable[[], Any], until: Callable[[], bool] = lambda: True,
                settle: float = 0.3) -> float:
        """The longest freeze (s) from ``action`` until ``until()`` holds and ``settle`` more seconds passed."""
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        self.last, self.longest = time.perf_counter(), 0.0
        action()
        self._tick()  # the action itself blocks the loop: it counts
        end = None
        while end is None or time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.001)
            if end is None and until():
                end = time.perf_counter() + settle
        return self.longest


def draw_region(widget: Any) -> None:
    """A 30 × 40 mm rectangle on the displayed slice as the crop region, as a user draws it before side by side."""
    import numpy as np

    region = widget.results.start_region()
    z = widget.viewer.dims.point[0]
    corners = [(z, -30, -40), (z, -30, 0), (z, 0, 0), (z, 0, -40)]
    region.add_rectangles(np.array([region.world_to_data(c) for c in corners]))
    region.mode = "pan_zoom"


def cli_seconds(lr: Path, out: Path) -> float:
    """``volumenet upscale LR -o OUT --overwrite`` as a whole process, in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_volumenet", "upscale", str(lr), "-o", str(out), "--overwrite",
                    "--quiet"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--comparison", action="store_true",
                        help="open the Compare tab from its menu entry and press Run comparison (no CLI twin)")
    args = parser.parse_args()

    import napari
    from napari._app_model import get_app_model

    from napari_volumenet._qt.widget import SuperResolutionWidget
    from napari_volumenet._sample_data import MRI_LR, sample_path

    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-volumenet", "mni152_t1")
    meter = FreezeMeter()
    command = "napari-volumenet.comparison_widget" if args.comparison else "napari-volumenet.widget"
    opening = meter.measure(lambda: get_app_model().commands.execute_command(command).result())
    widget = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, SuperResolutionWidget))
    press = widget.run_comparison if args.comparison else widget.run
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sr.nii.gz"
        for _ in range(args.repeats):
            cli = None if args.comparison else cli_seconds(sample_path(MRI_LR), out)
            start = time.perf_counter()
            press()
            side_by_side = widget.results.side_by_side  # captions and region boxes come a turn of the event loop each
            # a run ends when its layers are shown and the grid for side by side is built (a few views a turn)
            finishing = meter.measure(lambda: None, until=lambda: widget.worker is None and side_by_side.settled)
            seconds = widget.last_timing["total"]
            if not runs:
                draw_region(widget)
            grid = meter.measure(lambda: widget.results.set_grid(True),
                                 until=lambda: side_by_side.enabled and side_by_side.settled)
            leaving = meter.measure(lambda: widget.results.set_grid(False))
            runs.append({"cli_s": cli, "widget_s": seconds, "ratio": None if cli is None else seconds / cli,
                         "wall_s": time.perf_counter() - start, "freeze_finishing_s": finishing,
                         "freeze_side_by_side_s": grid, "freeze_leaving_s": leaving})
            print(json.dumps(runs[-1]), flush=True)
    ratios = sorted(r["ratio"] for r in runs if r["ratio"] is not None)
    report = {"freeze_opening_s": opening, "runs": runs, "threads": os.cpu_count(), "comparison": args.comparison,
              "median_ratio": ratios[len(ratios) // 2] if ratios else None}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    viewer.close()


if __name__ == "__main__":
    main()
