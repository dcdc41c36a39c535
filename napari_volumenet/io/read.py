"""Reading a volume file: every problem with it is one :class:`InputError` naming the file.

The header is checked as stored, before nibabel "fixes" it, and the size it declares is checked against
the file and the free memory before any voxel is read.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from .._memory import available_memory, describe_bytes
from ..errors import GeometryWarning, InputError
from ._text import reason, shape_text
from .dicom.files import is_dicom_file
from .files import check_regular_file
from .header import QFORM_TOLERANCE_MM, qform_sform_distance, quiet_nibabel
from .paths import NIFTI_SUFFIXES, PathLike, volume_suffix
from .volume import Volume, affine_zooms, validate_volume


def _check_affine(affine: Any, name: str) -> np.ndarray:
    """``affine`` as a float64 4×4 matrix, or an :class:`InputError` if it is not finite or degenerate."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(f"{name} has an invalid (non-finite) affine in its header")
    if min(affine_zooms(affine)) <= 0 or abs(np.linalg.det(affine[:3, :3])) <= 0:
        raise InputError(f"{name} has zero voxel sizes or a degenerate affine in its header")
    return affine


def _header_of(image: Any, affine: np.ndarray) -> nib.Nifti1Header:
    """A copy of the image's NIfTI header; for MGH, a fresh one with ``affine`` as sform and qform."""
    header = image.header
    if isinstance(header, nib.Nifti1Header):  # NIfTI-2 headers are Nifti1Header subclasses
        return header.copy()
    # MGH (FreeSurfer): vox2ras is scanner RAS in millimetres
    out = nib.Nifti1Header()
    out.set_xyzt_units("mm", "sec")
    out.set_sform(affine, code="scanner")
    out.set_qform(affine, code="scanner")
    return out


MAX_DEFLATE_RATIO = 1032
"""No deflate stream unpacks to more than ~1032× its size: the most a gzip file of n bytes can hold."""

_GZIP_MAGIC = b"\x1f\x8b"


def _head(path: Path, size: int = 544) -> tuple[bytes, bool]:
    """The first ``size`` bytes of the file as stored (unpacked if gzip) and whether it is gzip."""
    try:
        with open(path, "rb") as handle:
            packed = handle.read(2) == _GZIP_MAGIC
        opener = gzip.open if packed else open
        with opener(path, "rb") as handle:
            return handle.read(size), packed
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        raise InputError(f"{path} is truncated or corrupt and cannot be read ({reason(error)})") from None


def _raw_nifti_header(head: bytes) -> nib.Nifti1Header | None:
    """The NIfTI-1/2 header as stored (before nibabel's fix-ups), ``None`` if ``head`` is not one."""
    for endian in "<>":
        size = struct.unpack(f"{endian}i", head[:4])[0] if len(head) >= 4 else 0
        klass = {348: nib.Nifti1Header, 540: nib.Nifti2Header}.get(size)
        if klass is not None and len(head) >= size:
            try:
                return klass(head[:size], endianness=endian, check=False)
            except Exception:  # noqa: BLE001 - nibabel's own load reports what is wrong
                return None
    return None


def _check_raw_header(path: Path, header: nib.Nifti1Header) -> None:
    """Refuse what nibabel would silently "fix": voxels inside the header, zero voxel sizes."""
    magic = bytes(header["magic"]).rstrip(b"\0")
    minimum = header.sizeof_hdr + 4  # 352 (NIfTI-1) / 544 (NIfTI-2): header and extension flag
    offset = float(header["vox_offset"])
    if magic in (b"n+1", b"n+2") and not offset >= minimum:
        raise InputError(
            f"{path} is damaged: its header puts the voxel data at byte {offset:g}, inside the header "
            f"(vox_offset must be at least {minimum}), so the header would be read as voxels"
        )
    ndim = int(header["dim"][0])
    spatial = [float(z) for z in header["pixdim"][1:1 + min(max(ndim, 1), 3)]]
    if any(not math.isfinite(z) or z == 0 for z in spatial):
        sizes = ", ".join(f"{z:g}" for z in spatial)
        raise InputError(f"{path} has a zero or invalid voxel size in its header (pixdim {sizes}); fix the header first")


def _check_declared_size(path: Path, header: Any, head_packed: bool) -> None:
    """Compare the voxel bytes the header declares with the file and with free memory, before reading."""
    shape = tuple(int(n) for n in header.get_data_shape())
    itemsize = np.dtype(header.get_data_dtype()).itemsize
    voxels = math.prod(shape)
    declared = int(header.get_data_offset()) + voxels * itemsize
    stored = path.stat().st_size
    if 0 in shape:  # nibabel would read a gzip file of it as a 1D array of nothing
        raise InputError(f"{path} is {shape_text(shape)} voxels: its header declares an axis without voxels; "
                         "a 3D volume needs at least 4 along every axis")
    what = f"its header declares {shape_text(shape)} voxels of {itemsize} bytes ({describe_bytes(declared)})"
    if not head_packed and declared > stored:
        raise InputError(f"{path} is truncated: {what}, but the file has only {describe_bytes(stored)}")
    if head_packed:
        if declared > MAX_DEFLATE_RATIO * stored:
            raise InputError(f"{path} is truncated or damaged: {what}, more than a "
                             f"{describe_bytes(stored)} gzip file can hold")
        unpacked = _gzip_size(path)
        if unpacked is not None and declared < 1 << 32 and unpacked < declared:
            raise InputError(f"{path} is truncated: {what}, but it unpacks to only {describe_bytes(unpacked)}")
    needed = voxels * (itemsize + 4 + 1)  # the stored array, its float32 copy, the finiteness mask
    room = available_memory()
    if needed > room:
        raise InputError(f"{path} needs about {describe_bytes(needed)} of memory to read ({shape_text(shape)} "
                         f"voxels), but only {describe_bytes(room)} is available to this process")


def _gzip_size(path: Path) -> int | None:
    """The gzip trailer's size field (unpacked size mod 2³²) of a single-member file, ``None`` if unknown.

    Block-gzip files (an extra header field, many members) carry only the last block's size: ``None``.
    """
    try:
        with open(path, "rb") as handle:
            flags = handle.read(4)[3:4]
            handle.seek(-4, os.SEEK_END)
            trailer = handle.read(4)
    except OSError:
        return None
    if not flags or flags[0] & 0x04 or len(trailer) != 4:  # FEXTRA: BGZF and other multi-member forms
        return None
    return struct.unpack("<I", trailer)[0]


def read_volume(path: PathLike) -> Volume:
    """Read a 3D NIfTI (or MGH) volume, or a DICOM series (a folder, or one of its files: :func:`~.dicom.read_series`):
    float32 data, best affine, a copy of the header.

    Every problem with the file is an :class:`InputError` with a one-sentence message: missing,
    a FIFO, device or socket (refused by type, never opened), unreadable, not a NIfTI file, voxels
    declared inside the header, a zero voxel size or an axis without voxels, more voxels declared than
    the file holds or than memory allows (checked before reading), truncated or corrupt, and whatever :func:`validate_volume` refuses. A qform that disagrees with
    the sform gives a :class:`~napari_volumenet.errors.GeometryWarning` (the sform is used).
    """
    path = Path(path).expanduser()
    if _is_dicom(path):  # a folder, or one file of a series: the series (a folder without DICOM files is refused)
        from .dicom import read_series

        return read_series(path)
    image, packed = _open_header(path)
    _check_declared_size(path, image.header, packed)
    data, affine = _read_data(path, image)
    data = validate_volume(data, name=str(path))
    affine = _check_affine(affine, str(path))
    _warn_if_qform_disagrees(path, image.header)
    return Volume(data=data, affine=affine, header=_header_of(image, affine), path=path)


def read_affine(path: PathLike) -> np.ndarray:
    """The ``(4, 4)`` affine :func:`read_volume` gives ``path`` (a NIfTI/MGH file's sform, else its qform), from
    the header alone where it can: the same checks of the file and its header, no voxel read, nibabel quiet."""
    path = Path(path).expanduser()
    if _is_dicom(path):  # a series' geometry comes from the headers of all its files
        from .dicom import series_info

        return series_info(path).grid.affine
    image, _ = _open_header(path)
    with _reading(path):
        affine = np.array(image.affine, dtype=np.float64)
    return _check_affine(affine, str(path))


def _is_dicom(path: Path) -> bool:
    """Whether ``path`` is read as a DICOM series: a folder, or a file without a volume suffix that is DICOM.
    Any other path must be a regular file: missing, a FIFO or a device is refused here, before any read."""
    if path.is_dir():
        return True
    check_regular_file(path, "NIfTI file")
    return volume_suffix(path) is None and is_dicom_file(path)


def _open_header(path: Path) -> tuple[Any, bool]:
    """nibabel's lazy image of the regular file ``path`` and whether it is gzip, once its name and its header
    as stored are checked (a volume suffix, voxels after the header, non-zero voxel sizes)."""
    if volume_suffix(path) is None:
        raise InputError(f"{path} is not a NIfTI file (the name must end in .nii or .nii.gz)")
    head, packed = _head(path)
    raw = _raw_nifti_header(head) if volume_suffix(path) in NIFTI_SUFFIXES else None
    if raw is not None:
        _check_raw_header(path, raw)
    return _load_image(path), packed


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever nibabel raises on a bad file into one :class:`InputError` naming ``path`` and the cause."""
    try:
        with quiet_nibabel():
            yield
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except MemoryError:
        raise InputError(f"{path} is too large to fit in memory") from None
    except (ImageFileError, HeaderDataError, struct.error):
        raise InputError(f"{path} is not a valid NIfTI file (its header cannot be read)") from None
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as error:
        raise InputError(f"{path} is truncated or corrupt and cannot be read ({reason(error)})") from None
    except Exception as error:  # anything else nibabel raises on a malformed file
        raise InputError(f"{path} could not be read as a NIfTI file ({reason(error)})") from None


def _load_image(path: Path) -> Any:
    """nibabel's lazy image (header only, no voxels read yet)."""
    with _reading(path):
        return nib.load(str(path))


def _read_data(path: Path, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """The voxels (read now, so that truncation shows up here) and the best affine of ``image``."""
    with _reading(path):
        return np.asarray(image.dataobj), np.array(image.affine, dtype=np.float64)


def _warn_if_qform_disagrees(path: Path, header: Any) -> None:
    """A :class:`GeometryWarning` (blaming the caller of :func:`read_volume`) if qform and sform disagree."""
    distance = qform_sform_distance(header)
    if distance is not None and distance > QFORM_TOLERANCE_MM:
        warnings.warn(
            f"{path}: its qform and sform disagree by up to {distance:.1f} mm; the sform is used, and the output "
            "keeps both, each with its own meaning (software that reads the qform places it where this file's "
            "qform does)", GeometryWarning, stacklevel=3,
        )
