"""What every ``volumenet`` command shares: its name, exit codes, one-line messages, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

PROG = "volumenet"
EXIT_ERROR = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str) -> None:
    print(f"{PROG}: {one_line(message)}", file=sys.stderr, flush=True)


def say(quiet: bool, *parts: Any) -> None:
    if not quiet:
        print(*parts, flush=True)


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape)


def scale_suffix(scale: Sequence[int]) -> str:
    """``(2, 2, 2)`` → ``x2``; ``(1, 1, 2)`` → ``x1x1x2``."""
    scale = tuple(int(s) for s in scale)
    return f"x{scale[0]}" if len(set(scale)) == 1 else "".join(f"x{s}" for s in scale)


class TileBars:
    """tqdm progress bars on stderr, one per label, driven by ``(label, done, total)`` callbacks."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar: Any = None
        self.label: str | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if label != self.label:
            self.close()
            self.bar = tqdm(total=total, desc=label, unit="part", file=sys.stderr, leave=False,
                            disable=self.disable, dynamic_ncols=True)
            self.label = label
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        self.label = None

    def __enter__(self) -> TileBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
