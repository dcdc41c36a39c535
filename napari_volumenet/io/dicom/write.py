"""Writing a volume as a new DICOM series in its source's study (SPEC §5c), a whole folder at once or not at all.

Every slice along array axis 2 becomes one instance: the source's tags (patient, study, frame of reference,
equipment) are copied, private tags and what described the source's pixels dropped, and the grid
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness, SpacingBetweenSlices) comes from
the affine, with the array axes read as dcm2niix writes them (axis 0 along the rows, axis 1 the rows bottom-up).
Values are int16 with one RescaleSlope/RescaleIntercept for the series: integers in the int16 range are kept
as they are, other values to within half a slope.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import write_json_atomic
from ...errors import OutputError
from .._text import reason
from ..paths import sidecar_path
from ..volume import affine_zooms, validate_volume
from .geometry import LPS_TO_RAS

DROPPED = (
    "PixelData", "LargestImagePixelValue", "SmallestImagePixelValue", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTSequence", "ModalityLUTSequence",
    "IconImageSequence", "ReferencedImageSequence", "SourceImageSequence", "SliceLocation", "NumberOfFrames",
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod", "ImageComments",
)
"""Tags of the source instance that described its own pixels or position."""

INT16_MAX = 32767


def check_series_output(folder: str | Path, overwrite: bool) -> Path:
    """Check that a series folder can be written at ``folder`` before any computing; returns it (``~`` expanded)."""
    folder = Path(folder).expanduser()
    if (folder.exists() or folder.is_symlink()) and not overwrite:
        raise OutputError(f"{folder} exists; pass --overwrite to replace it")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write the DICOM series {folder}: it is a file")
    parent = folder.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write the DICOM series {folder}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the DICOM series {folder}: the folder {parent} is not writable")
    return folder


def quantise(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(int16 stored values, slope, intercept)`` with ``stored × slope + intercept`` ≈ ``data``.

    Integer values within int16 are stored as they are (slope 1, intercept 0). Others are spread over ±32767 with
    a power-of-two slope and a whole intercept: exact in float32 as well as in DICOM's decimal strings, so every
    reader (dcm2niix's float32 header included) gets the same values, within half a slope of ``data``.
    """
    low, high = float(np.min(data)), float(np.max(data))
    if np.all(np.equal(np.round(data), data)) and -INT16_MAX <= low and high <= INT16_MAX:
        return data.astype(np.int16), 1.0, 0.0
    intercept = float(round((low + high) / 2))
    half = max(high - intercept, intercept - low, 1e-12)
    slope = float(_decimal(2.0 ** math.ceil(math.log2(half / INT16_MAX))))
    stored = np.clip(np.round((data.astype(np.float64) - intercept) / slope), -INT16_MAX, INT16_MAX)
    return stored.astype(np.int16), slope, intercept


def _directions(affine: np.ndarray, target: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Unit row and column directions (LPS) and voxel sizes; sheared grids are refused."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    zooms = affine_zooms(lps)
    row, col = lps[:3, 0] / zooms[0], -lps[:3, 1] / zooms[1]
    normal = np.cross(row, col)
    if abs(float(row @ col)) > 1e-4 or abs(abs(float(normal @ lps[:3, 2])) / zooms[2] - 1) > 1e-4:
        raise OutputError(f"cannot write {target} as DICOM: its voxel axes are not perpendicular (a sheared grid)")
    return row, col, zooms


def _decimal(value: float) -> str:
    return f"{value:.10g}"


def _base(template: Any, series_uid: str, description: str, number: int) -> Any:
    """The tags shared by every instance: the template's, less private tags and its pixels' description."""
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    base = copy.deepcopy(template)
    base.remove_private_tags()
    for keyword in DROPPED:
        if keyword in base:
            delattr(base, keyword)
    base.decode()
    base.SpecificCharacterSet = "ISO_IR 192"
    base.SeriesInstanceUID, base.SeriesDescription, base.SeriesNumber = series_uid, description[:64], number
    base.ImageType = ["DERIVED", "SECONDARY"]
    base.DerivationDescription = description[:1024]
    base.SamplesPerPixel, base.PhotometricInterpretation = 1, "MONOCHROME2"
    base.BitsAllocated, base.BitsStored, base.HighBit, base.PixelRepresentation = 16, 16, 15, 1
    base.file_meta = copy.deepcopy(template.file_meta)
    base.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    base.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    for keyword in ("ImplementationVersionName", "SourceApplicationEntityTitle", "PrivateInformationCreatorUID",
                    "PrivateInformation"):
        if keyword in base.file_meta:
            delattr(base.file_meta, keyword)
    return base


def _instances(data: np.ndarray, affine: np.ndarray, template: Any, description: str,
               target: Path) -> Iterator[tuple[int, Any]]:
    """``(slice index, dataset)`` of every instance of the series."""
    from pydicom.uid import generate_uid

    row, col, zooms = _directions(affine, target)
    stored, slope, intercept = quantise(data)
    number = int(template.get("SeriesNumber", 0) or 0) + 1000
    base = _base(template, generate_uid(), description, number)
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    rows = data.shape[1]
    base.Rows, base.Columns = rows, data.shape[0]
    base.ImageOrientationPatient = [_decimal(v) for v in (*row, *col)]
    base.PixelSpacing = [_decimal(zooms[1]), _decimal(zooms[0])]
    base.SliceThickness = base.SpacingBetweenSlices = _decimal(zooms[2])
    base.RescaleSlope, base.RescaleIntercept = _decimal(slope), _decimal(intercept)
    normal = np.cross(row, col)
    for k in range(data.shape[2]):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        position = (lps @ np.array([0.0, rows - 1, k, 1.0]))[:3]
        ds.ImagePositionPatient = [_decimal(v) for v in position]
        ds.SliceLocation = _decimal(float(position @ normal))
        ds.PixelData = np.ascontiguousarray(stored[:, ::-1, k].T).astype("<i2").tobytes()
        yield k, ds


def series_description(source: str, model: str, scale: Sequence[int]) -> str:
    """What made a series, e.g. ``t1_fl2d_sag VolumeNet ×4`` (DICOM's 64 characters at most)."""
    names = {"volumenet": "VolumeNet", "parallelnet": "ParallelNet", "srcnn3d": "3D SRCNN", "dcsrn": "DCSRN",
             "mdcsrn": "mDCSRN"}
    factors = sorted({int(f) for f in scale})
    factor = "×" + "×".join(str(int(f)) for f in scale) if len(factors) > 2 else f"×{factors[-1]}"
    tail = f" {names.get(model, model)} {factor}"
    return (source.strip()[: 64 - len(tail)] + tail).strip()


def write_series(folder: str | Path, data: Any, affine: np.ndarray, template: Any, *, description: str,
                 overwrite: bool = False, sidecar: Mapping[str, Any] | None = None) -> Path:
    """Write ``data`` (``(X, Y, slices)`` on ``affine``, RAS) as a new series in ``template``'s study.

    ``template`` is a source header (pydicom ``Dataset``) or :class:`~.files.Series`. The folder is written under a
    hidden temporary name beside ``folder`` and renamed into place: it appears whole or not at all; ``sidecar``
    then goes to ``<folder>.json`` beside it. Every failure is an :class:`OutputError` naming it and leaves
    neither. Returns the folder.
    """
    target = check_series_output(folder, overwrite)
    header = getattr(template, "template", template)
    array = validate_volume(data, name=f"the data to write to {target}", min_size=1)
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise OutputError(f"cannot write {target}: its affine is not a finite 4×4 matrix")
    with _folder_beside(target, overwrite) as temp:
        for k, dataset in _instances(array, matrix, header, description, target):
            dataset.save_as(temp / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
    if sidecar is not None:
        try:
            write_json_atomic(sidecar_path(target), sidecar)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return target


@contextmanager
def _folder_beside(target: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden temporary folder beside ``target``, renamed to it when the block succeeds, removed when it fails."""
    try:
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as error:
        raise OutputError(f"could not write {target}: {reason(error)}") from None
    try:
        yield temp
        _publish_folder(temp, target, overwrite)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise OutputError(f"could not write {target}: {reason(error)}") from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _publish_folder(temp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``temp`` to ``target``; an existing ``target`` is replaced only with ``overwrite``."""
    if not (target.exists() or target.is_symlink()):
        os.rename(temp, target)  # an empty folder that appeared meanwhile is replaced; a full one is an error
        return
    if not overwrite:
        raise FileExistsError(f"{target} appeared while it was written")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, old / "previous")
    os.rename(temp, target)
    shutil.rmtree(old, ignore_errors=True)
