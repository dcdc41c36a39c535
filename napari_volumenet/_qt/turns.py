"""GUI work in steps, one per turn of Qt's event loop, so that the GUI answers between them.

A zero-time timer is not enough: Qt runs it with the posted events, before the window system's input and
other timers get their turn, so a chain of them freezes the GUI like one long call. A short real delay lets
input, painting and timers through between two steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from qtpy.QtCore import QObject, QTimer

TURN_MS = 10
"""Delay (ms) before the next step: long enough for the event loop to wait on input once, too short to see."""


def next_turn(action: Callable[[], Any], owner: QObject) -> None:
    """Run ``action`` at a later turn of the event loop, unless ``owner`` (a widget) is deleted before."""
    timer = QTimer(owner)  # a child: it goes with its owner, and its call with it
    timer.setSingleShot(True)
    timer.timeout.connect(action)
    timer.timeout.connect(timer.deleteLater)
    timer.start(TURN_MS)


def run_for(steps: Iterator[Any], budget_s: float) -> bool:
    """Run ``steps`` (at least one) while the next, if it takes as long as the last did, still ends within
    ``budget_s`` of the start; whether they are all done. Quick steps come several to a turn, slow ones one."""
    started = last = time.perf_counter()
    for _ in steps:
        now = time.perf_counter()
        if now - started + (now - last) > budget_s:
            return False
        last = now
    return True
