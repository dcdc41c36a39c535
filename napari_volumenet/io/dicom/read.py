"""Reading a DICOM series as a :class:`~napari_volumenet.io.Volume`: dcm2niix's grid and values (SPEC §5c).

Values are the stored integers × RescaleSlope + RescaleIntercept of each slice (CT in HU), as float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._memory import available_memory, describe_bytes
from ...errors import InputError
from .._text import reason, shape_text
from ..header import output_header
from ..paths import volume_suffix
from ..volume import Slab, Volume, validate_volume
from .files import Series, dicom_files, group_series, is_dicom_file, pick_series, read_header
from .geometry import SeriesGrid, series_grid


@dataclass
class SeriesInfo:
    """A series found in a folder and its grid, before any pixel is read."""

    series: Series
    grid: SeriesGrid


def list_series(folder: str | Path) -> list[Series]:
    """Every series of the DICOM image files directly in ``folder`` (:class:`InputError` when there is none)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"no such folder: {folder}")
    files = dicom_files(folder)
    if not files:
        raise InputError(f"{folder} is a folder with no DICOM files in it, not a NIfTI file or DICOM series")
    return group_series(folder, files)


def _locate(path: Path, series: str | None) -> tuple[Path, str | None]:
    """A series folder and choice from a folder, or from one DICOM file (its own series in its folder)."""
    if path.is_dir() or series is not None:
        return path, series
    header = read_header(path)
    return path.parent, str(header.get("SeriesInstanceUID", "") or "") or None


def series_info(path: str | Path, series: str | None = None) -> SeriesInfo:
    """The series in ``path`` (a folder, or one of its files) chosen by ``series`` (number, UID or description;
    ``None``: the only one), with its grid. Headers only: fast, for ``info`` and the choice of weights."""
    folder, choice = _locate(Path(path).expanduser(), series)
    chosen = pick_series(folder, list_series(folder), choice)
    return SeriesInfo(chosen, series_grid(chosen))


def is_series_path(path: str | Path) -> bool:
    """Whether ``path`` is read as a DICOM series: a folder, or a DICOM file without a volume suffix."""
    path = Path(path).expanduser()
    return path.is_dir() or (volume_suffix(path) is None and is_dicom_file(path))


def read_slab(path: str | Path) -> Slab | None:
    """The slice thickness and spacing of a DICOM series (headers only); ``None`` for a NIfTI or MGH file."""
    return series_info(path).grid.slab if is_series_path(path) else None


def series_modality(path: str | Path) -> str | None:
    """``"ct"`` or ``"mri"`` as a DICOM series states it (Modality CT / MR); ``None`` for other files and modalities."""
    if not is_series_path(path):
        return None
    return {"CT": "ct", "MR": "mri"}.get(series_info(path).series.modality.upper())


def _slice_values(path: Path) -> np.ndarray:
    """One slice's pixels × RescaleSlope + RescaleIntercept, float64 ``(Rows, Columns)``."""
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except Exception as error:  # noqa: BLE001 - a file damaged since its header was read
        raise InputError(f"{path} is a damaged DICOM file ({reason(error)})") from None
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # noqa: BLE001 - pydicom's many decoders: one line naming the file
        name = getattr(getattr(dataset.file_meta, "TransferSyntaxUID", None), "name", "unknown transfer syntax")
        raise InputError(f"the pixels of {path} ({name}) cannot be read ({reason(error)}); a compressed series "
                         "needs pylibjpeg or GDCM installed, or convert it with dcm2niix") from None
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    return np.asarray(pixels, dtype=np.float64) * slope + intercept


def _check_memory(info: SeriesInfo) -> None:
    voxels = int(np.prod(info.grid.shape))
    needed = voxels * (4 + 8 + 4)
    room = available_memory()
    if needed > room:
        raise InputError(f"{info.series.label()} needs about {describe_bytes(needed)} of memory to read "
                         f"({shape_text(info.grid.shape)} voxels), but only {describe_bytes(room)} is available")


def read_series(path: str | Path, series: str | None = None) -> Volume:
    """The volume of a DICOM series: ``(Columns, Rows, slices)`` float32 on dcm2niix's RAS affine.

    ``path`` is the series' folder (or one file of it); ``series`` chooses among several. Everything that is
    not one regular volume is a one-line :class:`InputError` naming the files (see :func:`series_grid`).
    """
    info = series_info(path, series)
    _check_memory(info)
    grid = info.grid
    data = np.empty(grid.shape, dtype=np.float32)
    rows = grid.shape[1]
    for k, instance in enumerate(grid.instances):
        values = _slice_values(instance.path)
        if values.shape != (rows, grid.shape[0]):
            raise InputError(f"{instance.path} has {shape_text(values.shape)} pixels, not the {rows}×{grid.shape[0]} "
                             "its header declares")
        data[:, :, k] = values[::-1, :].T  # column index → axis 0, rows bottom-up → axis 1
    folder = grid.instances[0].path.parent
    data = validate_volume(data, name=f"{info.series.label()} in {folder}")
    header = output_header(None, grid.affine, grid.shape, info.series.description or None)
    return Volume(data=data, affine=grid.affine, header=header, path=folder, slab=grid.slab, series=info.series)


def series_name(volume: Volume) -> str:
    """A layer or file name for a volume: its series description, else its file or folder name."""
    series: Any = volume.series
    if series is not None and series.description:
        return str(series.description)
    return volume.path.name if volume.path is not None else "volume"
