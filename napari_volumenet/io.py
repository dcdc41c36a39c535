"""NIfTI input/output and the geometry of super-resolved grids (SPEC §5). No Qt, no napari.

Arrays are in nibabel's order: ``data[i, j, k]`` is voxel ``(i, j, k)`` and ``affine @ (i, j, k, 1)``
is its centre in millimetres.

Super-resolution by an integer factor ``s`` per axis splits every LR voxel into ``s`` HR voxels
along that axis, *keeping the physical extent of the volume*: the first HR voxel's corner is the
first LR voxel's corner, and likewise at the far end. In LR voxel coordinates the centre of HR
voxel ``i`` is therefore ``(i + 1/2)/s − 1/2``, i.e. ``i/s + (1/s − 1)/2``, so::

    A_hr = A_lr · [[diag(1/s), (1/s − 1)/2],
                   [0,         1          ]]                       (sr_affine)

and :func:`lr_affine` is its inverse (the grid of a volume degraded by ``s``, whose voxel ``i``
covers HR voxels ``s·i … s·i + s − 1``).

``nibabel.affines.rescale_affine`` is *not* this: it keeps the centre voxel of the field of view
fixed on an integer index, which shifts the grid by 0 or half a voxel depending on the parity of
the shape, so the SR volume would not overlay its LR input.

Every error a user can cause (bad input file, unwritable output) is an :class:`InputError` or
:class:`OutputError` whose message is one sentence naming the file. Outputs are written to a
hidden temporary file in the target folder and renamed into place, so a failed or interrupted
write never leaves a partial file, and an existing file is never replaced unless asked.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ._memory import available_memory, describe_bytes
from .atomic import temp_beside
from .errors import GeometryWarning, InputError, OutputError
from .ops.scale import Scale, as_scale

NIFTI_SUFFIXES = (".nii", ".nii.gz")
"""What :func:`find_volumes` looks for in folders and what :func:`write_volume` writes."""

READABLE_SUFFIXES = NIFTI_SUFFIXES + (".mgz", ".mgh")
"""What :func:`read_volume` accepts: NIfTI-1/2, and FreeSurfer MGH (the napari reader claims it too)."""

DESCRIP_BYTES = 79
"""Room in the NIfTI-1 ``descrip`` field (80 bytes, NUL-terminated)."""

_CHUNK = 1 << 20

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- paths


def _suffix(path: PathLike) -> str | None:
    """The known suffix of ``path`` (lower case), or ``None``."""
    name = Path(path).name.lower()
    for suffix in sorted(READABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def is_nifti(path: PathLike) -> bool:
    """Whether ``path`` ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return _suffix(path) in NIFTI_SUFFIXES


def _stem(path: Path) -> str:
    """File name without its ``.nii`` / ``.nii.gz`` / ``.mgz`` / ``.mgh`` suffix."""
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def sidecar_path(path: PathLike) -> Path:
    """The JSON sidecar of an output: ``scan_x2.nii.gz`` → ``scan_x2.json``."""
    path = Path(path)
    return path.with_name(_stem(path) + ".json")


def written_by(path: PathLike, tool: str) -> bool:
    """Whether ``path`` is an output of ``tool`` (e.g. ``"volumenet upscale"``): its JSON sidecar says so."""
    path = Path(path)
    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("tool") == tool and Path(str(record.get("output"))).name == path.name


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_volumes(paths: Iterable[PathLike] | PathLike, recursive: bool = True) -> list[Path]:
    """The volume files named by ``paths``, in order, each once.

    A file is taken as given (it must exist; :func:`read_volume` judges its content). A folder
    contributes its ``.nii`` / ``.nii.gz`` files, searched recursively unless ``recursive`` is
    false, sorted by path; hidden files and folders (name starting with ``.``, e.g. temporary
    files of an interrupted write or macOS ``._`` files) are skipped. A missing path, or a folder
    with no NIfTI file in it, is an :class:`InputError`.
    """
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
            if not files:
                where = "in" if not recursive else "anywhere under"
                raise InputError(f"no .nii or .nii.gz files {where} the folder {path}")
            for file in files:
                add(file)
        elif path.exists():
            add(path)
        else:
            raise InputError(f"no such file: {path}")
    return found


# ----------------------------------------------------------------------------- volumes


@dataclass
class Volume:
    """A volume as read from disk."""

    data: np.ndarray
    """``(X, Y, Z)`` float32, nibabel array order (scl_slope/inter applied)."""
    affine: np.ndarray
    """``(4, 4)`` float64 voxel → millimetre affine (nibabel's best affine: sform, else qform)."""
    header: nib.Nifti1Header | None
    """Copy of the file's header (``None`` if there is none worth keeping)."""
    path: Path | None = None

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size in millimetres along each array axis (norms of the affine's columns)."""
        return affine_zooms(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def affine_zooms(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes of an affine: the norms of its first three columns."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    return tuple(float(z) for z in np.sqrt((columns**2).sum(axis=0)))  # type: ignore[return-value]


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape)


def validate_volume(data: Any, name: str = "volume", min_size: int = 4) -> np.ndarray:
    """``data`` as a finite float32 ``(X, Y, Z)`` array, or an :class:`InputError` naming ``name``.

    A 4D-or-more array whose extra trailing axes all have length 1 is squeezed to 3D. Refused:
    more or fewer than 3 dimensions, complex, boolean and non-numeric dtypes, NaN or Inf voxels,
    values too large for float32, and any axis shorter than ``min_size`` voxels.
    """
    array = np.asarray(data)
    kind = array.dtype.kind
    if kind == "c":
        raise InputError(f"{name} has complex values; only real-valued volumes are supported")
    if kind == "b":
        raise InputError(f"{name} is a boolean mask; convert it to a number type to use it as an image")
    if kind == "V":
        raise InputError(f"{name} has multi-field (e.g. RGB) voxels; a single-channel numeric image is needed")
    if kind not in "iuf":
        raise InputError(f"{name} has non-numeric data of type {array.dtype}; a numeric image is needed")
    shape = array.shape
    if array.ndim > 3:
        if all(n == 1 for n in shape[3:]):
            array = array.reshape(shape[:3])
        else:
            raise InputError(
                f"{name} is {array.ndim}D ({_shape_text(shape)}); only a single 3D volume is "
                "supported, so extract one volume first"
            )
    if array.ndim < 3:
        raise InputError(f"{name} is {array.ndim}D ({_shape_text(shape) or 'a scalar'}); a 3D volume is needed")
    if min(array.shape) < min_size:
        raise InputError(
            f"{name} is {_shape_text(array.shape)} voxels; every axis needs at least {min_size}"
        )
    if kind == "f":
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"{name} contains {bad} NaN/Inf voxels; fix or mask them first")
    with np.errstate(over="ignore"):
        array = array.astype(np.float32, copy=False)
    if kind == "f":  # float64 beyond ±3.4e38 overflows to Inf
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"{name} has {bad} voxels too large for 32-bit floats; rescale it first")
    return array


def _check_affine(affine: Any, name: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(f"{name} has an invalid (non-finite) affine in its header")
    if min(affine_zooms(affine)) <= 0 or abs(np.linalg.det(affine[:3, :3])) <= 0:
        raise InputError(f"{name} has zero voxel sizes or a degenerate affine in its header")
    return affine


def _header_of(image: Any, affine: np.ndarray) -> nib.Nifti1Header:
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
        raise InputError(f"{path} is truncated or corrupt and cannot be read ({_reason(error)})") from None


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
    what = f"its header declares {_shape_text(shape)} voxels of {itemsize} bytes ({describe_bytes(declared)})"
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
        raise InputError(f"{path} needs about {describe_bytes(needed)} of memory to read ({_shape_text(shape)} "
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


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Keep nibabel's header fix-up messages (its logger) and warnings off stderr; our checks say what matters."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def read_volume(path: PathLike) -> Volume:
    """Read a 3D NIfTI (or MGH) volume: float32 data, best affine, a copy of the header.

    Every problem with the file is an :class:`InputError` with a one-sentence message: missing,
    a folder, unreadable, not a NIfTI file, voxels declared inside the header, a zero voxel size,
    more voxels declared than the file holds or than memory allows (checked before reading),
    truncated or corrupt, and whatever :func:`validate_volume` refuses. A qform that disagrees with
    the sform gives a :class:`~napari_volumenet.errors.GeometryWarning` (the sform is used).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not a NIfTI file")
    if _suffix(path) is None:
        raise InputError(f"{path} is not a NIfTI file (the name must end in .nii or .nii.gz)")
    head, packed = _head(path)
    raw = _raw_nifti_header(head) if _suffix(path) in NIFTI_SUFFIXES else None
    if raw is not None:
        _check_raw_header(path, raw)
    image = _load_image(path)
    _check_declared_size(path, image.header, packed)
    data, affine = _read_data(path, image)
    data = validate_volume(data, name=str(path))
    affine = _check_affine(affine, str(path))
    _warn_if_qform_disagrees(path, image.header)
    return Volume(data=data, affine=affine, header=_header_of(image, affine), path=path)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever nibabel raises on a bad file into one :class:`InputError` naming ``path`` and the cause."""
    try:
        with _quiet_nibabel():
            yield
    except PermissionError:
        raise InputError(f"{path} cannot be read: permission denied") from None
    except MemoryError:
        raise InputError(f"{path} is too large to fit in memory") from None
    except (ImageFileError, HeaderDataError, struct.error):
        raise InputError(f"{path} is not a valid NIfTI file (its header cannot be read)") from None
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as error:
        raise InputError(f"{path} is truncated or corrupt and cannot be read ({_reason(error)})") from None
    except Exception as error:  # anything else nibabel raises on a malformed file
        raise InputError(f"{path} could not be read as a NIfTI file ({_reason(error)})") from None


def _load_image(path: Path) -> Any:
    """nibabel's lazy image (header only, no voxels read yet)."""
    with _reading(path):
        return nib.load(str(path))


def _read_data(path: Path, image: Any) -> tuple[np.ndarray, np.ndarray]:
    """The voxels (read now, so that truncation shows up here) and the best affine of ``image``."""
    with _reading(path):
        return np.asarray(image.dataobj), np.array(image.affine, dtype=np.float64)


QFORM_TOLERANCE_MM = 0.1
"""qform and sform further apart than this (at any corner of the volume) are said to disagree."""


def qform_sform_distance(header: Any) -> float | None:
    """Largest distance (mm) between where qform and sform put the volume's corners; ``None`` unless both are set."""
    if not isinstance(header, nib.Nifti1Header):  # NIfTI-2 headers are subclasses; MGH has one matrix
        return None
    try:
        if int(header["sform_code"]) <= 0 or int(header["qform_code"]) <= 0:
            return None
        with _quiet_nibabel():
            sform, qform = header.get_sform(), header.get_qform()
    except (KeyError, TypeError, ValueError, HeaderDataError):
        return None
    shape = [max(int(n) - 1, 0) for n in (*header.get_data_shape()[:3], 1, 1, 1)[:3]]
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])]).T
    return float(np.max(np.linalg.norm((sform @ corners - qform @ corners)[:3], axis=0)))


def _warn_if_qform_disagrees(path: Path, header: Any) -> None:
    distance = qform_sform_distance(header)
    if distance is not None and distance > QFORM_TOLERANCE_MM:
        warnings.warn(
            f"{path}: its qform and sform disagree by up to {distance:.1f} mm; the sform is used, and the output "
            "keeps both, each with its own meaning (software that reads the qform places it where this file's "
            "qform does)", GeometryWarning, stacklevel=3,
        )


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split()).rstrip(".")


# ----------------------------------------------------------------------------- SR geometry


def _scale3(scale: int | Sequence[int] | np.ndarray) -> Scale:
    if isinstance(scale, np.ndarray):
        scale = tuple(scale.tolist()) if scale.ndim else int(scale)
    return as_scale(scale)


def sr_affine(affine: np.ndarray, scale: int | Sequence[int]) -> np.ndarray:
    """Affine of the HR grid of an LR volume upscaled by ``scale`` (SPEC §5).

    ``A_hr = A_lr · [[diag(1/s), (1/s − 1)/2], [0, 1]]``: voxel sizes divided by ``s``, same
    physical extent (HR voxel 0's centre is at LR voxel coordinate ``−(s − 1)/(2s)``).
    """
    s = np.asarray(_scale3(scale), dtype=np.float64)
    step = np.eye(4)
    step[:3, :3] = np.diag(1.0 / s)
    step[:3, 3] = (1.0 / s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ step


def lr_affine(affine: np.ndarray, scale: int | Sequence[int]) -> np.ndarray:
    """Inverse of :func:`sr_affine`: the grid whose voxel ``i`` covers HR voxels ``s·i … s·i+s−1``.

    ``A_lr = A_hr · [[diag(s), (s − 1)/2], [0, 1]]``, so ``sr_affine(lr_affine(A, s), s) == A``.
    """
    s = np.asarray(_scale3(scale), dtype=np.float64)
    step = np.eye(4)
    step[:3, :3] = np.diag(s)
    step[:3, 3] = (s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ step


def sr_volume_geometry(volume: Volume, scale: int | Sequence[int]) -> tuple[np.ndarray, nib.Nifti1Header]:
    """``(affine, header)`` of ``volume`` upscaled by ``scale``.

    The header is a copy of the volume's (a fresh NIfTI-1 header if it has none) with the HR
    shape, float32 data type, zooms divided by ``s`` and sform/qform set to the HR affine with
    the codes :func:`write_volume` would use.
    """
    s = _scale3(scale)
    affine = sr_affine(volume.affine, s)
    shape = tuple(int(n) * f for n, f in zip(volume.data.shape, s, strict=True))
    header = _output_header(volume.header, affine, shape)
    return affine, header


def napari_scale_translate(
    scale_lr: Sequence[float], translate_lr: Sequence[float], s: int | Sequence[int]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """napari ``scale`` and ``translate`` of the SR layer of an LR layer (SPEC §5).

    ``scale_hr = scale_lr / s`` and ``translate_hr = translate_lr + scale_lr·(1/s − 1)/2``, with
    ``s`` in the layer's axis order: the SR layer then overlays the LR layer exactly.
    """
    factors = np.asarray(_scale3(s), dtype=np.float64)
    scale = np.asarray(scale_lr, dtype=np.float64)
    translate = np.asarray(translate_lr, dtype=np.float64)
    if scale.shape != (3,) or translate.shape != (3,):
        raise ValueError(f"expected 3 scale and 3 translate values, got {scale.shape} and {translate.shape}")
    scale_hr = scale / factors
    translate_hr = translate + scale * (1.0 / factors - 1.0) / 2.0
    return tuple(float(v) for v in scale_hr), tuple(float(v) for v in translate_hr)


# ----------------------------------------------------------------------------- writing


def check_output_path(path: PathLike, overwrite: bool, *, check_sidecar: bool = True) -> Path:
    """Check that a NIfTI can be written at ``path``; call it before any computing.

    :class:`OutputError` when the name does not end in ``.nii`` / ``.nii.gz``, it is a folder,
    it (or, with ``check_sidecar``, its JSON sidecar) exists and ``overwrite`` is false, or its
    folder does not exist or is not writable. Returns the path (``~`` expanded).
    """
    path = Path(path).expanduser()
    if not is_nifti(path):
        raise OutputError(f"cannot write {path}: the output name must end in .nii or .nii.gz")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name ending in .nii.gz")
    if not overwrite:
        for target in [path, sidecar_path(path)] if check_sidecar else [path]:
            if target.exists() or target.is_symlink():
                raise OutputError(f"{target} exists; pass --overwrite to replace it")
    folder = path.parent
    if not folder.exists():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the folder {folder} is not writable")
    return path


def _codes(header: Any) -> tuple[int, int]:
    """(sform code, qform code) for the output: the input's where set, else the other's, else 1."""
    try:
        sform, qform = int(header["sform_code"]), int(header["qform_code"])
    except (TypeError, KeyError, ValueError):
        sform = qform = 0
    sform, qform = max(sform, 0), max(qform, 0)
    return (sform or qform or 1), (qform or sform or 1)


def _fit_bytes(text: str, size: int) -> bytes:
    return text.encode("utf-8")[:size].decode("utf-8", errors="ignore").encode("utf-8")


_NOT_COPIED = {"sizeof_hdr", "magic", "vox_offset", "dim", "pixdim", "datatype", "bitpix"}


def _as_nifti1(header: Any) -> nib.Nifti1Header:
    """A NIfTI-1 copy of ``header`` (NIfTI-1, NIfTI-2 or any other nibabel header)."""
    if type(header) is nib.Nifti1Header:
        return header.copy()
    if isinstance(header, nib.Nifti1Header):  # NIfTI-2: same fields, wider types
        out = nib.Nifti1Header()
        for name in out.structarr.dtype.names:
            if name in _NOT_COPIED or name not in header.structarr.dtype.names:
                continue
            value = header[name]
            converted = np.asarray(value).astype(out.structarr[name].dtype)
            if np.array_equal(converted, value) or converted.dtype.kind in "fS":
                out[name] = converted
        for extension in header.extensions:
            out.extensions.append(extension)
        return out
    return nib.Nifti1Header.from_header(header)


def _output_header(
    header: Any, affine: np.ndarray, shape: Sequence[int], description: str | None = None
) -> nib.Nifti1Header:
    """NIfTI-1 header for float32 data of ``shape`` on ``affine``, keeping what it can of ``header``."""
    out: nib.Nifti1Header | None = None
    if header is not None:
        try:
            out = _as_nifti1(header)
        except Exception:  # a header that cannot be expressed in NIfTI-1: start afresh
            out = None
    fresh = out is None
    if out is None:
        out = nib.Nifti1Header()
        out.set_xyzt_units("mm", "sec")
    old_shape = tuple(int(n) for n in out.get_data_shape()[:3])
    sform_code, qform_code = _codes(None if fresh else out)
    qform = None if fresh else _carried_qform(out, affine)
    out.set_data_dtype(np.float32)
    out.set_data_shape(tuple(int(n) for n in shape))
    out.set_sform(affine, code=sform_code)
    out.set_qform(affine if qform is None else qform, code=qform_code)
    out.set_zooms(affine_zooms(affine))
    out.set_slope_inter(np.nan, np.nan)  # float data as stored: no rescaling on read
    out["cal_min"] = 0.0
    out["cal_max"] = 0.0
    out["glmin"] = 0
    out["glmax"] = 0
    if old_shape != tuple(int(n) for n in shape):  # slice timing described the old grid
        out["slice_start"] = 0
        out["slice_end"] = 0
        out["slice_code"] = 0
        out["slice_duration"] = 0.0
    if description is not None:
        out["descrip"] = _fit_bytes(description, DESCRIP_BYTES)
    return out


def _carried_qform(header: nib.Nifti1Header, affine: np.ndarray) -> np.ndarray | None:
    """The input's own qform moved to the new grid, where it disagrees with the input's sform; else ``None``.

    The new grid is ``affine = sform · step`` (``step``: per-axis scaling and shift, as for an SR or LR
    grid); the qform keeps its meaning as ``qform · step``. When ``step`` is not such a map (the layer
    was moved or turned), there is no telling what the old qform means on it: ``None``.
    """
    distance = qform_sform_distance(header)
    if distance is None or distance <= QFORM_TOLERANCE_MM:
        return None
    with _quiet_nibabel():
        sform, qform = header.get_sform(), header.get_qform()
    step = np.linalg.solve(sform, np.asarray(affine, dtype=np.float64))
    linear = step[:3, :3]
    off_diagonal = linear - np.diag(np.diag(linear))
    if np.max(np.abs(off_diagonal)) > 1e-6 * np.max(np.abs(linear)) or np.any(np.diag(linear) == 0):
        return None
    return qform @ step


def _fsync(path: Path) -> None:
    try:
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError:  # fsync unsupported (some network file systems): the rename is still atomic
        pass


def _publish(temp: Path, target: Path, overwrite: bool) -> None:
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


def _json_ready(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays and paths converted, NaN/Inf as null."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_volume(
    path: PathLike,
    data: Any,
    affine: np.ndarray,
    header: Any = None,
    *,
    overwrite: bool = False,
    description: str | None = None,
    sidecar: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``data`` as a float32 NIfTI-1 file, atomically; returns the path written.

    sform and qform are both set to ``affine`` (codes: the input header's where set, else 1 =
    scanner), except that a qform of ``header`` that disagrees with its sform keeps its own meaning
    on the new grid (see :func:`_carried_qform`), zooms follow the affine, units/intent/dim_info/extensions of ``header`` are kept,
    ``descrip`` becomes ``description`` (cut to 79 bytes), scl_slope/inter and cal_min/max are
    reset. ``sidecar`` (JSON-able mapping) is written to ``<stem>.json`` next to it. The data go
    to a hidden temporary file in the same folder that is then renamed; on any failure nothing is
    left behind. An existing output (or sidecar) is replaced only when ``overwrite`` is true.
    """
    target = check_output_path(path, overwrite, check_sidecar=sidecar is not None)
    array = validate_volume(data, name=f"the data to write to {target}", min_size=1)
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise OutputError(f"cannot write {target}: its affine is not a finite 4×4 matrix")
    out_header = _output_header(header, matrix, array.shape, description)
    image = nib.Nifti1Image(array, matrix, header=out_header, dtype=np.float32)
    sform_code, qform_code = int(out_header["sform_code"]), int(out_header["qform_code"])
    image.set_sform(matrix, code=sform_code)
    image.set_qform(out_header.get_qform(), code=qform_code)
    image.header.set_slope_inter(np.nan, np.nan)
    json_text = None
    if sidecar is not None:
        try:
            json_text = json.dumps(_json_ready(sidecar), indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as error:
            raise OutputError(f"cannot write the sidecar of {target}: {error}") from None
    json_target = sidecar_path(target)

    temps: list[Path] = []
    published: list[Path] = []
    try:
        temp, fd = temp_beside(target, ".nii.gz" if target.name.lower().endswith(".gz") else ".nii")
        temps.append(temp)
        os.close(fd)
        nib.save(image, str(temp))
        _fsync(temp)
        if json_text is not None:
            json_temp, fd = temp_beside(json_target, ".json")
            temps.append(json_temp)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json_text)
                handle.flush()
                os.fsync(handle.fileno())
        _publish(temp, target, overwrite)
        published.append(target)
        if json_text is not None:
            _publish(temps[1], json_target, overwrite)
            published.append(json_target)
    except BaseException as error:
        for leftover in temps:
            _remove(leftover)
        if len(published) == 1 and json_text is not None:  # the image without its sidecar: take it back
            _remove(target)
        if isinstance(error, OutputError):
            raise
        if isinstance(error, OSError):
            raise OutputError(f"could not write {target}: {_reason(error)}") from None
        if isinstance(error, (HeaderDataError, ValueError)):
            raise OutputError(f"could not write {target}: {_reason(error)}") from None
        raise
    return target


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - best effort cleanup
        pass


# ----------------------------------------------------------------------------- provenance


def provenance_description(
    model_name: str, scale: int | Sequence[int], weights_sha: str | None, version: str
) -> str:
    """Short provenance for the header's ``descrip`` (≤ 79 bytes), e.g. ``volumenet x2 w=1a2b3c4d v0.1.0``."""
    s = _scale3(scale)
    factor = f"x{s[0]}" if len(set(s)) == 1 else "x" + "x".join(str(f) for f in s)
    parts = [str(model_name).strip() or "model", factor]
    if weights_sha:
        parts.append(f"w={weights_sha[:8]}")
    version = str(version).strip()
    if version:
        parts.append(version if version.startswith("v") else f"v{version}")
    text = " ".join(" ".join(parts).split())
    return _fit_bytes(text, DESCRIP_BYTES).decode("utf-8")


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {_reason(error)}") from None
    return digest.hexdigest()
