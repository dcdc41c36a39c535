"""The header of an output: a NIfTI-1 copy of the input's, on the output's grid and data type.

What the input's header says about its grid (sform, qform, shape, zooms, scaling, slice timing) is
rewritten for the new grid; everything else (units, intent, dim_info, extensions) is kept.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError

from .volume import affine_zooms

DESCRIP_BYTES = 79
"""Room in the NIfTI-1 ``descrip`` field (80 bytes, NUL-terminated)."""


@contextlib.contextmanager
def quiet_nibabel() -> Iterator[None]:
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


QFORM_TOLERANCE_MM = 0.1
"""qform and sform further apart than this (at any corner of the volume) are said to disagree."""


def qform_sform_distance(header: Any) -> float | None:
    """Largest distance (mm) between where qform and sform put the volume's corners; ``None`` unless both are set."""
    if not isinstance(header, nib.Nifti1Header):  # NIfTI-2 headers are subclasses; MGH has one matrix
        return None
    try:
        if int(header["sform_code"]) <= 0 or int(header["qform_code"]) <= 0:
            return None
        with quiet_nibabel():
            sform, qform = header.get_sform(), header.get_qform()
    except (KeyError, TypeError, ValueError, HeaderDataError):
        return None
    shape = [max(int(n) - 1, 0) for n in (*header.get_data_shape()[:3], 1, 1, 1)[:3]]
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])]).T
    return float(np.max(np.linalg.norm((sform @ corners - qform @ corners)[:3], axis=0)))


def _codes(header: Any) -> tuple[int, int]:
    """(sform code, qform code) for the output: the input's where set, else the other's, else 1."""
    try:
        sform, qform = int(header["sform_code"]), int(header["qform_code"])
    except (TypeError, KeyError, ValueError):
        sform = qform = 0
    sform, qform = max(sform, 0), max(qform, 0)
    return (sform or qform or 1), (qform or sform or 1)


def fit_bytes(text: str, size: int) -> bytes:
    """``text`` in UTF-8, cut to at most ``size`` bytes without splitting a character."""
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


def output_header(
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
    out.set_zooms(affine_zooms(affine))
    out.set_sform(affine, code=sform_code)
    out.set_qform(affine if qform is None else qform, code=qform_code)  # pixdim: the qform's own voxel sizes
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
        out["descrip"] = fit_bytes(description, DESCRIP_BYTES)
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
    with quiet_nibabel():
        sform, qform = header.get_sform(), header.get_qform()
    step = np.linalg.solve(sform, np.asarray(affine, dtype=np.float64))
    linear = step[:3, :3]
    off_diagonal = linear - np.diag(np.diag(linear))
    if np.max(np.abs(off_diagonal)) > 1e-6 * np.max(np.abs(linear)) or np.any(np.diag(linear) == 0):
        return None
    return qform @ step
