"""Volume file names: which suffixes count, stems, JSON sidecars, and finding volumes in folders."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from .files import read_text_bounded

NIFTI_SUFFIXES = (".nii", ".nii.gz")
"""What :func:`find_volumes` looks for in folders and what :func:`~napari_volumenet.io.write_volume` writes."""

READABLE_SUFFIXES = NIFTI_SUFFIXES + (".mgz", ".mgh")
"""What :func:`~napari_volumenet.io.read_volume` accepts: NIfTI-1/2, and FreeSurfer MGH (the napari reader
claims it too)."""

PathLike = str | os.PathLike


def volume_suffix(path: PathLike) -> str | None:
    """The known suffix of ``path`` (lower case), or ``None``."""
    name = Path(path).name.lower()
    for suffix in sorted(READABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def is_nifti(path: PathLike) -> bool:
    """Whether ``path`` ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return volume_suffix(path) in NIFTI_SUFFIXES


def volume_stem(path: PathLike) -> str:
    """File name without its ``.nii`` / ``.nii.gz`` / ``.mgz`` / ``.mgh`` suffix (any case): ``scan.nii.gz`` →
    ``scan``; another name loses its last suffix (``Path.stem``)."""
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None and path.is_dir():  # a DICOM series folder: its whole name
        return path.name
    return path.name[: -len(suffix)] if suffix else path.stem


def sidecar_path(path: PathLike) -> Path:
    """The JSON sidecar of an output: ``scan_x2.nii.gz`` → ``scan_x2.json``."""
    path = Path(path)
    return path.with_name(volume_stem(path) + ".json")


def written_by(path: PathLike, tool: str) -> bool:
    """Whether ``path`` is an output of ``tool`` (e.g. ``"volumenet upscale"``): its JSON sidecar says so.

    A sidecar that is not a regular file of at most 1 MiB (a FIFO, a link to ``/dev/zero``) says no, unread.
    """
    path = Path(path)
    text = read_text_bounded(sidecar_path(path))
    try:
        record = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return False
    return isinstance(record, dict) and record.get("tool") == tool and Path(str(record.get("output"))).name == path.name


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_volumes(paths: Iterable[PathLike] | PathLike, recursive: bool = True) -> list[Path]:
    """The volume files named by ``paths``, in order, each once.

    A file is taken as given (it must exist; :func:`~napari_volumenet.io.read_volume` judges its content). A
    folder contributes its ``.nii`` / ``.nii.gz`` files and the folders holding DICOM files (itself included: each
    is a series input), searched recursively unless ``recursive`` is false, sorted by path; hidden files and folders (name starting with ``.``, e.g. temporary
    files of an interrupted write or macOS ``._`` files) are skipped. A missing path, or a folder
    with no NIfTI file in it, is an :class:`InputError`.
    """
    from .dicom.files import series_folders

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            candidates = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in candidates if is_nifti(p) and not _hidden(p, path) and p.is_file())
            files = sorted(files + series_folders(path, recursive))
            if not files:
                where = "in" if not recursive else "anywhere under"
                raise InputError(f"no .nii or .nii.gz files or DICOM series {where} the folder {path}")
            for file in files:
                add(file)
        elif path.exists():
            add(path)
        else:
            raise InputError(f"no such file: {path}")
    return found
