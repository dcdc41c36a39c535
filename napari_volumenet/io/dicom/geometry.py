"""The grid of a DICOM series: slices in order, the RAS affine, slice spacing, thickness and gap (SPEC §5c).

Slices are ordered by their position along the slice normal (the cross product of the row and column
direction cosines), never by file name or InstanceNumber. The affine follows dcm2niix's NIfTI, so that a
series read here and dcm2niix's file of it are the same array on the same affine: array axis 0 runs along
the rows' direction (DICOM columns), axis 1 against the columns' direction (the image's rows bottom-up),
axis 2 along the normal. DICOM patient coordinates are LPS; the affine is RAS (first two rows negated).
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from ...errors import InputError
from ..volume import Slab
from .files import Instance, Series

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient (LPS) ↔ NIfTI scanner (RAS) coordinates; its own inverse."""

SPACING_TOLERANCE = 0.01
"""Slice spacings differing by more than this fraction (and by more than 0.01 mm) are unequal: refused."""

TILT_TOLERANCE_MM = 0.05
"""Slice centres further than this off the line along the normal mean a tilted gantry (or a sheared stack)."""


@dataclass
class SeriesGrid:
    """The instances of a series in slice order and the grid they make."""

    instances: list[Instance]
    """Sorted along the slice normal (array axis 2)."""
    affine: np.ndarray
    """``(4, 4)`` voxel → RAS mm, dcm2niix's convention."""
    shape: tuple[int, int, int]
    """``(Columns, Rows, slices)``."""
    slab: Slab | None
    """Slice thickness and spacing along axis 2 (``None`` when the series has no SliceThickness)."""


def _names(instances: list[Instance]) -> str:
    names = [i.path.name for i in instances]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _vector(instance: Instance, keyword: str, size: int) -> np.ndarray:
    """A numeric multi-valued tag as a float array of ``size``; :class:`InputError` when missing or odd."""
    value = instance.header.get(keyword)
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64) if value is not None else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (size,) or not np.all(np.isfinite(array)):
        raise InputError(f"{instance.path} has no valid {keyword}, so its place in a volume is unknown")
    return array


def _directions(instance: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal (LPS) of an instance."""
    iop = _vector(instance, "ImageOrientationPatient", 6)
    row, col = iop[:3], iop[3:]
    if min(np.linalg.norm(row), np.linalg.norm(col)) < 1e-6:
        raise InputError(f"{instance.path} has a zero ImageOrientationPatient direction")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise InputError(f"{instance.path}: its ImageOrientationPatient directions are not perpendicular")
    return row, col, np.cross(row, col)


def _check_single_frames(series: Series) -> None:
    multi = [i for i in series.instances if int(i.header.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        raise InputError(f"{multi[0].path} is a multi-frame (enhanced) DICOM image; only series of one image per "
                         "file are supported: convert it with dcm2niix first")


def _sorted(series: Series, normal: np.ndarray) -> tuple[list[Instance], np.ndarray, np.ndarray]:
    """Instances sorted along ``normal``, their positions (LPS, ``(n, 3)``) and distances along it (mm)."""
    positions = np.array([_vector(i, "ImagePositionPatient", 3) for i in series.instances])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    instances = [series.instances[k] for k in order]
    positions, distance = positions[order], distance[order]
    if len(instances) < 2:
        raise InputError(f"{series.label()} in {instances[0].path.parent} has a single slice; a volume needs several")
    steps = np.diff(distance)
    repeated = np.flatnonzero(steps < 1e-3)
    if repeated.size:
        per = len(instances) / len(np.unique(np.round(distance, 3)))
        example = _names(instances[repeated[0]:repeated[0] + 2])
        raise InputError(f"{series.label()} in {instances[0].path.parent} has several images at one position (e.g. "
                         f"{example}; {per:.3g} per position): a 4-D series (echoes, time points) is not one volume")
    return instances, positions, distance


def _check_spacing(series: Series, instances: list[Instance], distance: np.ndarray) -> float:
    """The one slice spacing (mm), or :class:`InputError` naming the slices around an odd step (a missing slice)."""
    steps = np.diff(distance)
    spacing = float((distance[-1] - distance[0]) / (len(distance) - 1))
    odd = np.flatnonzero(np.abs(steps - spacing) > max(SPACING_TOLERANCE * spacing, 0.01))
    if odd.size:
        k = int(odd[np.argmax(np.abs(steps[odd] - spacing))])
        raise InputError(
            f"{series.label()} has unequal slice spacing: {steps[k]:.3g} mm between {instances[k].path.name} and "
            f"{instances[k + 1].path.name} in {instances[k].path.parent}, {float(np.median(steps)):.3g} mm elsewhere "
            "(a missing slice?); it is not one regular volume")
    return spacing


def _check_tilt(series: Series, instances: list[Instance], positions: np.ndarray, normal: np.ndarray) -> None:
    offsets = positions - positions[0]
    across = offsets - np.outer(offsets @ normal, normal)
    if float(np.max(np.linalg.norm(across, axis=1))) > TILT_TOLERANCE_MM:
        raise InputError(f"{series.label()} in {instances[0].path.parent} has slices offset across the slice "
                         "normal (a tilted CT gantry or a sheared stack); resample it first (dcm2niix corrects tilt)")


def _thickness(instances: list[Instance]) -> float | None:
    values = {round(float(i.header.get("SliceThickness")), 4) for i in instances
              if i.header.get("SliceThickness") not in (None, "")}
    values = {v for v in values if v > 0}
    return float(np.median(sorted(values))) if values else None


def _pixel_spacing(instance: Instance) -> tuple[float, float]:
    spacing = _vector(instance, "PixelSpacing", 2)
    if np.any(spacing <= 0):
        raise InputError(f"{instance.path} has a zero or negative PixelSpacing")
    return float(spacing[0]), float(spacing[1])


def series_grid(series: Series) -> SeriesGrid:
    """The sorted slices and grid of ``series``; one-line :class:`InputError` for what is not one volume."""
    _check_single_frames(series)
    row, col, normal = _directions(series.instances[0])
    instances, positions, distance = _sorted(series, normal)
    spacing = _check_spacing(series, instances, distance)
    _check_tilt(series, instances, positions, normal)
    row_step, col_step = _pixel_spacing(instances[0])  # between rows, between columns
    rows, columns = int(instances[0].header.Rows), int(instances[0].header.Columns)
    lps = np.eye(4)
    lps[:3, 0] = row * col_step
    lps[:3, 1] = -col * row_step
    lps[:3, 2] = normal * spacing
    lps[:3, 3] = positions[0] + (rows - 1) * row_step * col
    thickness = _thickness(instances)
    slab = None if thickness is None else Slab(axis=2, thickness=thickness, spacing=spacing)
    return SeriesGrid(instances, LPS_TO_RAS @ lps, (columns, rows, len(instances)), slab)
