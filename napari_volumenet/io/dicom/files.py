"""Finding the DICOM image files of a folder and grouping them into series (SPEC §5c).

A DICOM file is recognised by the ``DICM`` mark after its 128-byte preamble; anything else (reports in
other formats, text, images) is skipped, and so are DICOM files that hold no image: a DICOMDIR, structured
reports, presentation states. A series is the images sharing a SeriesInstanceUID, one orientation and one
size (a localizer series of three planes is three series).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from .._text import reason

DICM_OFFSET = 128
"""Where a DICOM Part 10 file has its ``DICM`` mark."""


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a regular file with the DICOM Part 10 mark (cheap: reads 132 bytes)."""
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            head = handle.read(DICM_OFFSET + 4)
    except OSError:
        return False
    return head[DICM_OFFSET:] == b"DICM"


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder`` (not hidden), sorted by name."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise InputError(f"the folder {folder} cannot be read: {reason(error)}") from None
    return [p for p in entries if not p.name.startswith(".") and is_dicom_file(p)]


def series_folders(root: Path, recursive: bool = True) -> list[Path]:
    """``root`` and (``recursive``) its non-hidden subfolders that directly hold DICOM files, sorted."""
    folders = [root]
    if recursive:
        folders += sorted(p for p in root.rglob("*") if p.is_dir()
                          and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [folder for folder in folders if any(True for _ in _first_dicom(folder))]


def _first_dicom(folder: Path) -> Iterable[Path]:
    """At most one DICOM file directly in ``folder`` (stops at the first)."""
    try:
        entries = folder.iterdir()
        for path in entries:
            if not path.name.startswith(".") and is_dicom_file(path):
                yield path
                return
    except OSError:
        return


@dataclass
class Instance:
    """One image file of a series: its path and its header (pixel data deferred, not read)."""

    path: Path
    header: Any
    """pydicom ``Dataset`` read with the pixel data deferred."""


def read_header(path: Path) -> Any:
    """The header of a DICOM file, its pixel data deferred; :class:`InputError` naming the file when it is corrupt."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, defer_size=4096)
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path} is a damaged DICOM file ({reason(error)})") from None


def is_image(path: Path, header: Any) -> bool:
    """Whether a DICOM header describes pixel data (not a DICOMDIR, report or presentation state).

    An image file (by its SOP class, or its image tags) without pixel data is damaged: :class:`InputError`.
    """
    if "PixelData" in header and "Rows" in header and "Columns" in header:
        return True
    sop_class = getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", None)
    if "Image Storage" in str(getattr(sop_class, "name", "")) or "Rows" in header:
        raise InputError(f"{path} is a damaged DICOM file (an image without its pixel data: truncated?)")
    return False


@dataclass
class Series:
    """The image instances of one series, as found (not yet sorted; see :mod:`.geometry`)."""

    key: str
    """What ``--series`` names it by: its SeriesNumber (or UID), ``.k`` added when a UID splits by orientation."""
    uid: str
    description: str
    instances: list[Instance]

    @property
    def template(self) -> Any:
        """The first instance's header: study, patient and frame-of-reference tags of the series."""
        return self.instances[0].header

    @property
    def modality(self) -> str:
        return str(self.template.get("Modality", "") or "")

    def label(self) -> str:
        """E.g. ``series 3 "t1_fl2d_sag" (35 files)``."""
        return f"series {self.key} \"{self.description}\" ({len(self.instances)} files)"


def _orientation_key(header: Any) -> tuple[Any, ...]:
    """Orientation (rounded) and size: instances differing in these are not one volume."""
    iop = tuple(round(float(v), 4) for v in (header.get("ImageOrientationPatient") or ()))
    return iop, int(header.Rows), int(header.Columns)


def group_series(folder: Path, paths: Sequence[Path]) -> list[Series]:
    """The series of the image files ``paths`` (non-image DICOM skipped), in order of SeriesNumber."""
    groups: dict[tuple[str, tuple[Any, ...]], list[Instance]] = {}
    for path in paths:
        header = read_header(path)
        if not is_image(path, header):
            continue
        uid = str(header.get("SeriesInstanceUID", "") or "")
        groups.setdefault((uid, _orientation_key(header)), []).append(Instance(path, header))
    if not groups:
        raise InputError(f"no DICOM image files in the folder {folder}")
    series: list[Series] = []
    uids = [uid for uid, _ in groups]
    seen: dict[str, int] = {}
    for (uid, _), instances in groups.items():
        header = instances[0].header
        number = header.get("SeriesNumber")
        key = str(number) if number not in (None, "") else uid or "?"
        if uids.count(uid) > 1:
            seen[uid] = seen.get(uid, 0) + 1
            key = f"{key}.{seen[uid]}"
        description = str(header.get("SeriesDescription", "") or header.get("ProtocolName", "") or "")
        series.append(Series(key, uid, description, instances))
    return sorted(series, key=lambda s: _number_order(s.key))


def _number_order(key: str) -> tuple[int, float, str]:
    head = key.split(".")[0]
    return (0, float(head), key) if head.lstrip("-").isdigit() else (1, 0.0, key)


def pick_series(folder: Path, series: list[Series], choice: str | None) -> Series:
    """The series ``choice`` names (its key, SeriesInstanceUID or description), or the only one there is."""
    if choice is None:
        if len(series) == 1:
            return series[0]
        listing = "; ".join(s.label() for s in series)
        raise InputError(f"the folder {folder} holds {len(series)} series ({listing}); choose one with --series "
                         "NUMBER, or give each its own folder")
    for match in (lambda s: s.key == choice, lambda s: s.uid == choice, lambda s: s.description == choice):
        found = [s for s in series if match(s)]
        if len(found) == 1:
            return found[0]
    listing = "; ".join(s.label() for s in series)
    raise InputError(f"no single series {choice!r} in the folder {folder} (it holds {listing})")
