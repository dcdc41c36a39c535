"""Pieces of the one-sentence messages the io modules raise."""

from __future__ import annotations

from collections.abc import Sequence


def shape_text(shape: Sequence[int]) -> str:
    """``(64, 64, 32)`` → ``64×64×32``."""
    return "×".join(str(int(n)) for n in shape)


def reason(error: BaseException) -> str:
    """The cause of ``error`` as a clause: its ``strerror``, else its text, else its type; no final full stop."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split()).rstrip(".")
