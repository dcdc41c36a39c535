"""Command-line values made of integers: ``2``, ``1,1,2``, ``64x64x32``, ``64×64×32``."""

from __future__ import annotations

import argparse


def int_list(text: str, what: str, *, lengths: tuple[int, ...] = (1, 3), minimum: int = 1) -> tuple[int, ...]:
    """``"2"`` → ``(2,)``, ``"1,1,2"`` → ``(1, 1, 2)``; an ``argparse.ArgumentTypeError`` naming ``what``
    (the option, e.g. ``--scale``) when it is not ``lengths`` integers, each at least ``minimum``."""
    parts = [p.strip() for p in str(text).replace("x", ",").replace("×", ",").split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} must be {' or '.join(_shape_words(n) for n in lengths)}, got {text!r}"
        ) from None
    if len(values) not in lengths or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(
            f"{what} must be {' or '.join(_shape_words(n) for n in lengths)} (each ≥ {minimum}), got {text!r}"
        )
    return values


def _shape_words(n: int) -> str:
    return "one integer" if n == 1 else f"{n} comma-separated integers"
