"""Files a user names are judged by their type before any read, and small text files are read with a bound.

A FIFO (``mkfifo scan.nii``) blocks the first read forever, and a character device (a link to ``/dev/zero``)
never ends: both are refused by the type :func:`os.stat` reports, before anything opens them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError
from ._text import reason

SIDECAR_BYTES = 1 << 20
"""The most a JSON sidecar may hold (ours are a few kB): a larger one is not read."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(mode: int) -> str | None:
    """What a special file of ``st_mode`` is (``"a FIFO (named pipe)"``...), ``None`` for a file or folder."""
    return next((kind for test, kind in _KINDS if test(mode)), None)


def check_regular_file(path: Path, what: str = "NIfTI file") -> None:
    """An :class:`InputError` naming ``path`` unless it is (or links to) a regular file.

    Missing, a folder, a special file (FIFO, device, socket: refused without opening it) or a failed
    ``stat`` (permission denied on a folder above it, a link loop) each get their own sentence.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as error:
        raise InputError(f"{path} cannot be read: {reason(error)}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path} is a folder, not a {what}")
    kind = special_kind(mode)
    if kind is not None:
        raise InputError(f"{path} is {kind}, not a regular file; only a {what} saved on disk can be read")


def read_text_bounded(path: Path, limit: int = SIDECAR_BYTES) -> str | None:
    """The UTF-8 text of the regular file ``path`` if it holds at most ``limit`` bytes, else ``None``.

    ``None`` also for a missing, unreadable or special file: it is opened without blocking (a FIFO)
    and its type checked on the open descriptor before any byte is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            data = handle.read(limit + 1)
        except OSError:
            return None
    if len(data) > limit:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
