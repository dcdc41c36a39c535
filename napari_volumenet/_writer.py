"""napari writer: an Image layer → NIfTI, or (a layer from a DICOM series) a new DICOM series.

A layer that came from the reader (or from the widget) is put back in its stored axis order and
written with its own affine and header: reading a file and writing the layer gives the same array
and the same affine. A super-resolved layer carries ``sr_affine(affine_lr, s)`` (SPEC §5) and its
provenance, and is written with them. Any other 3D layer is written with the affine its
``scale``/``translate`` imply (its axes taken as the view axes: see :mod:`napari_volumenet._geometry`),
so that reading the file back reproduces the layer.

napari's Save dialog asks before replacing an existing file, so the writer replaces it; the file
is written to a temporary name and renamed (never half-written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._geometry import LayerGeometry, view_shape
from .errors import OutputError, VolumeNetError


def layer_to_volume(data: Any, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any, dict[str, Any]]:
    """``(stored array, affine, header, extra metadata)`` of a layer's data and attributes."""
    data = np.asarray(data)
    if data.ndim != 3 or meta.get("rgb"):
        raise OutputError(
            f"Only single-channel 3D image layers can be saved as NIfTI; this one has shape {data.shape}."
        )
    geometry = LayerGeometry.from_layer(meta.get("metadata"), meta.get("scale", (1.0,) * 3),
                                        meta.get("translate", (0.0,) * 3), data.ndim)
    stored = geometry.stored(data)
    expected_view = view_shape(stored.shape, geometry.ornt)
    if tuple(data.shape) != expected_view:  # pragma: no cover - guarded by construction
        raise OutputError("The layer's data does not match its stored geometry.")
    return stored, geometry.affine, geometry.header, geometry.extra


def write_single_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer for ``.nii`` / ``.nii.gz``.

    Every failure is an :class:`OutputError` whose one-sentence message names the file and the
    cause (napari shows it as a notification); nothing is left behind.
    """
    from .io import write_volume

    target = Path(path).expanduser()
    if not str(target).lower().endswith((".nii", ".nii.gz")):
        target = target.with_name(target.name + ".nii.gz")
    try:
        stored, affine, header, extra = layer_to_volume(data, meta)
        write_volume(target, stored, affine, header, overwrite=True, description=extra.get("description"),
                     sidecar=extra.get("sidecar"))
    except VolumeNetError as error:  # a 2D or RGB layer, NaN voxels, an unwritable folder...
        if isinstance(error, OutputError) and target.name in str(error):
            raise
        raise OutputError(f"Cannot save the layer as {target}: {error}") from None
    except (ValueError, TypeError, KeyError, np.linalg.LinAlgError) as error:  # odd layer metadata or geometry
        raise OutputError(f"Cannot save the layer as {target}: its geometry cannot be written as NIfTI ({error})") from None
    except MemoryError:
        raise OutputError(f"Cannot save the layer as {target}: out of memory") from None
    return [str(target)]


def _source_series(extra: dict[str, Any]) -> Any:
    """The DICOM series a layer came from: its own (read from DICOM), or its input's (an SR layer of the widget)."""
    from .io.dicom import is_series_path, series_info

    if extra.get("series") is not None:
        return extra["series"]
    source = (extra.get("sidecar") or {}).get("input")
    if source and is_series_path(source):
        return series_info(source).series
    return None


def write_dicom_series(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer for ``NAME.dcm``: the folder ``NAME`` holding a new DICOM series.

    Only a layer read from a DICOM series, or made by the widget from one, can be written: the new series joins
    the source's study (:func:`~napari_volumenet.io.dicom.write_series`). Failures are one :class:`OutputError`.
    """
    from .io.dicom import series_description, write_series

    given = Path(path).expanduser()
    target = given.with_name(given.name[: -len(".dcm")]) if given.name.lower().endswith(".dcm") else given
    try:
        stored, affine, _, extra = layer_to_volume(data, meta)
        series = _source_series(extra)
        if series is None:
            raise OutputError(f"Cannot save the layer as the DICOM series {target}: only a layer read from a DICOM "
                              "series (or upscaled from one) has a study to join; save it as NIfTI")
        sidecar = extra.get("sidecar") or {}
        description = (series_description(series.description, str(sidecar["model"]), sidecar["scale"])
                       if sidecar.get("model") and sidecar.get("scale") else series.description)
        write_series(target, stored, affine, series, description=description, overwrite=True)
    except VolumeNetError as error:
        if isinstance(error, OutputError) and target.name in str(error):
            raise
        raise OutputError(f"Cannot save the layer as the DICOM series {target}: {error}") from None
    except (ValueError, TypeError, KeyError, np.linalg.LinAlgError) as error:  # odd layer metadata or geometry
        raise OutputError(f"Cannot save the layer as the DICOM series {target}: {error}") from None
    return [str(target)]

