"""Write files all at once or not at all: a temporary file beside the target, then a rename.

A temporary file is removed when its block fails, including on Ctrl-C (``KeyboardInterrupt``); inside
:func:`termination_unwinds` SIGTERM and SIGHUP unwind the same way, so ``kill`` or a closed terminal
leaves no hidden ``.NAME.tmp-*`` file behind either.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError


NAME_MAX = 255
"""The longest file name (bytes) most file systems take: a temporary name is cut to fit it."""


def _temp_name(name: str, suffix: str) -> str:
    """``.NAME.tmp-XXXXXXXX<suffix>``, with ``NAME`` cut (whole UTF-8 characters) so that it fits :data:`NAME_MAX`."""
    tail = f".tmp-{secrets.token_hex(4)}{suffix}"
    room = NAME_MAX - 1 - len(tail.encode("utf-8"))
    return "." + name.encode("utf-8")[:room].decode("utf-8", errors="ignore") + tail


def temp_beside(target: Path, suffix: str = ".tmp") -> tuple[Path, int]:
    """A new hidden file next to ``target``, created with the permissions ``open()`` gives
    (0666 & ~umask), and its open descriptor. The caller closes the descriptor. A target whose name is
    legal but leaves no room for the temporary name's additions gets a shortened one."""
    for _ in range(100):
        candidate = target.with_name(_temp_name(target.name, suffix))
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return candidate, fd
    raise FileExistsError(f"no free temporary name next to {target}")


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block succeeds it replaces ``target``,
    when it fails it is removed and ``target`` is left as it was.

    ``suffix`` lets writers that pick a format from the extension (matplotlib, nibabel) see it.
    """
    target = Path(target)
    temp, fd = temp_beside(target, suffix)
    os.close(fd)
    try:
        yield temp
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush ``path`` to the disk; where fsync is unsupported (some network file systems) the rename is still atomic."""
    try:
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError:
        pass


def publish(temp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``temp`` to ``target``; without ``overwrite`` never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)  # atomic "create if absent"
    except FileExistsError:
        raise OutputError(f"{target} exists; pass --overwrite to replace it") from None
    except OSError:  # hard links unsupported here: check, then rename
        if target.exists() or target.is_symlink():
            raise OutputError(f"{target} exists; pass --overwrite to replace it") from None
        os.replace(temp, target)
    else:
        os.unlink(temp)


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it can be (best-effort cleanup after a failed write)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; raised like Ctrl-C's ``KeyboardInterrupt`` so that cleanup runs."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def termination_unwinds() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM and SIGHUP raise :class:`Terminated`.

    A signal that is ignored (``nohup`` ignores SIGHUP) stays ignored; the previous handlers come back
    after the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, _raise_terminated)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines untouched) to ``target`` atomically; returns the path. A failed write
    (a full disk) is one :func:`write_failure` error, and nothing is left behind."""
    target = Path(target)
    try:
        with atomic_path(target) as temp:
            with open(temp, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
    except OSError as error:
        raise write_failure(target, error) from None
    return target


def save_torch_atomic(payload: Any, target: str | Path) -> Path:
    """``torch.save(payload)`` to ``target`` atomically; a failed write is one :func:`write_failure` error."""
    import torch

    target = Path(target)
    try:
        with atomic_path(target) as temp:
            torch.save(payload, temp)
    except (OSError, RuntimeError) as error:  # torch reports a failed write (a full disk) as a RuntimeError
        raise write_failure(target, error) from None
    return target


def write_failure(path: str | Path, error: BaseException) -> OutputError:
    """One clear :class:`OutputError` for a failed write to ``path`` (a full disk, a read-only folder...).

    torch reports a failed write as a ``RuntimeError`` without the cause; a full disk is then named
    from the free space left.
    """
    path = Path(path)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full (no space left on device); free some space"
    elif isinstance(error, OSError):
        reason = " ".join(str(error.strerror or error).split())
    else:
        reason = "the write failed"
        with contextlib.suppress(OSError):
            if shutil.disk_usage(next(p for p in [path, *path.parents] if p.exists())).free < 1 << 20:
                reason = "the disk is full (no space left on device); free some space"
    return OutputError(f"could not write {path}: {reason}")


def json_safe(value: Any, *, strict: bool = False) -> Any:
    """``value`` in plain JSON types: mappings with string keys, sequences and sets as lists, numpy arrays and
    scalars as lists and numbers, paths as strings and non-finite floats as ``None`` (valid JSON); anything
    else that JSON cannot hold becomes its ``str``, or with ``strict`` is a ``TypeError``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, strict=strict) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist(), strict=strict)
    if isinstance(value, np.generic):
        return json_safe(value.item(), strict=strict)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if strict:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return str(value)


def write_json_atomic(target: str | Path, value: Any) -> Path:
    """Write ``json_safe(value)`` as indented UTF-8 JSON to ``target`` atomically; returns the path."""
    return write_text_atomic(target, json.dumps(json_safe(value), indent=2, ensure_ascii=False) + "\n")
