"""Batch and cluster runs: inputs listed in text files, one share of them (``--part K/N``), finished outputs skipped.

The same command can run as an array job on a cluster scheduler, one share per node: ``--part K/N`` takes every
N-th input from the K-th (of the full, sorted list, so the shares cover every input exactly once whatever has been
done), and ``--skip-existing`` leaves out inputs whose output is already there (outputs appear whole or not at all,
so a rerun after a crash or a time limit finishes the rest).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import InputError
from ..io._text import reason
from ._common import say

LIST_SUFFIX = ".txt"
"""An input ending in this that is a file lists inputs, one a line."""

T = TypeVar("T")


def part_arg(text: str) -> tuple[int, int]:
    """``--part K/N`` → ``(K, N)`` with ``1 ≤ K ≤ N``."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N (e.g. 3/10), got {text!r}")
    return k, n


def add_batch_options(p: argparse.ArgumentParser) -> None:
    """``--part`` and ``--skip-existing``."""
    p.add_argument("--part", type=part_arg, default=None, metavar="K/N",
                   help="process only the K-th of N equal shares of the inputs (every N-th from the K-th), e.g. "
                        "--part $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT on a cluster")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave out inputs whose output already exists (restart a batch where it stopped)")


def expand_lists(raw_inputs: Sequence[str]) -> list[str]:
    """``raw_inputs`` with every ``.txt`` file replaced by the paths it lists: one a line, blank lines and ``#``
    comments skipped, relative paths taken from the list's folder."""
    expanded: list[str] = []
    for raw in raw_inputs:
        path = Path(raw).expanduser()
        if not (path.name.lower().endswith(LIST_SUFFIX) and path.is_file()):
            expanded.append(raw)
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"the input list {path} cannot be read ({reason(error)})") from None
        entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not entries:
            raise InputError(f"the input list {path} names no input")
        expanded += [str(path.parent / Path(entry).expanduser()) for entry in entries]
    return expanded


def take_part(items: Sequence[T], part: tuple[int, int] | None, quiet: bool) -> list[T]:
    """The K-th of N shares of ``items``: ``items[K-1::N]`` (all of them without ``part``)."""
    if part is None:
        return list(items)
    k, n = part
    share = list(items[k - 1::n])
    say(quiet, f"part {k}/{n}: {len(share)} of {len(items)} inputs")
    return share


def unfinished(jobs: list[tuple[Path, Path]], quiet: bool) -> list[tuple[Path, Path]]:
    """The jobs whose output does not exist yet (``--skip-existing``)."""
    todo = [(src, dst) for src, dst in jobs if not (dst.exists() or dst.is_symlink())]
    if len(todo) < len(jobs):
        say(quiet, f"skipping {len(jobs) - len(todo)} input(s) whose output exists")
    return todo
