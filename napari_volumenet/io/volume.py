"""A volume in memory: :class:`Volume`, its voxel sizes, and the checks every voxel array passes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..errors import InputError
from ._text import shape_text


@dataclass(frozen=True)
class Slab:
    """How thick the slices along one array axis are, where the scan says so (a DICOM series does, NIfTI not)."""

    axis: int
    """The array axis across the slices."""
    thickness: float
    """Slice thickness in mm (the slab each slice integrates, SPEC §3)."""
    spacing: float
    """Distance between slice centres in mm."""

    @property
    def gap(self) -> float:
        """Empty space between slabs in mm (``spacing − thickness``; negative when slices overlap)."""
        return self.spacing - self.thickness

    def text(self) -> str:
        """E.g. ``4 mm slices every 4.8 mm (gap 0.8 mm)``."""
        gap = self.gap
        kind = f"gap {gap:.3g} mm" if gap > 0 else f"overlap {-gap:.3g} mm" if gap < 0 else "no gap"
        return f"{self.thickness:.3g} mm slices every {self.spacing:.3g} mm ({kind})"


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
    slab: Slab | None = None
    """Slice thickness and spacing, when the file says them (a DICOM series)."""
    series: Any = None
    """The DICOM series it was read from (:class:`~napari_volumenet.io.dicom.Series`), else ``None``."""

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
                f"{name} is {array.ndim}D ({shape_text(shape)}); only a single 3D volume is "
                "supported, so extract one volume first"
            )
    if array.ndim < 3:
        raise InputError(f"{name} is {array.ndim}D ({shape_text(shape) or 'a scalar'}); a 3D volume is needed")
    if min(array.shape) < min_size:
        raise InputError(
            f"{name} is {shape_text(array.shape)} voxels; every axis needs at least {min_size}"
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
