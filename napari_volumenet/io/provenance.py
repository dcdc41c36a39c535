"""Provenance of an output: the short line in its header's ``descrip`` and the SHA-256 of files."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ._text import reason
from .geometry import scale3
from .header import DESCRIP_BYTES, fit_bytes
from .paths import PathLike

_CHUNK = 1 << 20


def provenance_description(
    model_name: str, scale: int | Sequence[int], weights_sha: str | None, version: str
) -> str:
    """Short provenance for the header's ``descrip`` (≤ 79 bytes), e.g. ``volumenet x2 w=1a2b3c4d v0.1.0``."""
    s = scale3(scale)
    factor = f"x{s[0]}" if len(set(s)) == 1 else "x" + "x".join(str(f) for f in s)
    parts = [str(model_name).strip() or "model", factor]
    if weights_sha:
        parts.append(f"w={weights_sha[:8]}")
    version = str(version).strip()
    if version:
        parts.append(version if version.startswith("v") else f"v{version}")
    text = " ".join(" ".join(parts).split())
    return fit_bytes(text, DESCRIP_BYTES).decode("utf-8")


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks; of a DICOM series folder, its DICOM files' names and contents
    in name order."""
    digest = hashlib.sha256()
    try:
        for file in _series_files(Path(path)) if Path(path).is_dir() else [Path(path)]:
            if file != Path(path):
                digest.update(file.name.encode("utf-8") + b"\0")
            with open(file, "rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK), b""):
                    digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {reason(error)}") from None
    return digest.hexdigest()


def _series_files(folder: Path) -> list[Path]:
    """The DICOM files of a series folder (:class:`InputError` when there is none: a folder is not a file)."""
    from .dicom.files import dicom_files

    files = dicom_files(folder)
    if not files:
        raise InputError(f"{folder} is a folder, not a file")
    return files

