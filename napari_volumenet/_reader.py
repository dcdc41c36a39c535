"""napari reader: NIfTI (and other nibabel formats) and DICOM series → Image layers in physical, radiological view.

A folder opens every DICOM series in it (and its subfolders), one layer each, named by its series description;
a series' slice thickness and gap (``slab``) and its source (``series``, what the DICOM writer needs) are kept in
the layer's metadata.

The layer shows axial slices on the slider, anterior at the top and the patient's right on the
left of the screen; its world coordinates are millimetres (see :mod:`napari_volumenet._geometry`).
The original affine, header and the axis permutation/flips applied are kept in
``layer.metadata["volumenet"]``, so that the writer puts back exactly the array and affine that
were read. In coronal and sagittal views superior is at the top and letters mark the view's edges:
the reader sets napari's current viewer to follow the anatomy (camera orientation only, the data and
world coordinates stay; :mod:`napari_volumenet._qt.orientation`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._geometry import LayerGeometry
from ._windows import default_window
from .errors import VolumeNetError

EXTENSIONS = (".nii", ".nii.gz", ".mgz", ".mgh", ".dcm")
"""The files the reader claims (the same list is in ``napari.yaml``), besides folders of DICOM files."""

LayerData = tuple[Any, dict[str, Any], str]


def _has_extension(path: str) -> bool:
    return str(path).lower().endswith(EXTENSIONS)


def follow_anatomy() -> None:
    """Superior up and orientation letters in napari's current viewer, where the layers read go
    (:mod:`napari_volumenet._qt.orientation`); nothing without a viewer (napari not even imported)."""
    napari = sys.modules.get("napari")
    viewer = napari.current_viewer() if napari is not None else None
    if viewer is not None:
        from ._qt.orientation import follow_anatomy as follow

        follow(viewer)


def volume_layer_data(data: np.ndarray, affine: np.ndarray, header: Any = None, *, name: str,
                      **extra: Any) -> LayerData:
    """LayerData of a stored volume (``data`` in its stored axis order, ``affine`` its affine).

    The viewer it goes to is set to follow the anatomy (:func:`follow_anatomy`).
    """
    follow_anatomy()
    geometry = LayerGeometry.from_affine(affine, header, **extra)
    view = geometry.view(data)
    kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": default_window(view),  # CT: soft tissue; MRI: the foreground's percentiles
        **geometry.layer_kwargs(data.shape),
    }
    return view, kwargs, "image"


def _volume_layer(volume: Any, name: str) -> LayerData:
    """LayerData of a :class:`~napari_volumenet.io.Volume`; a series' slab and source travel in its metadata."""
    return volume_layer_data(volume.data, volume.affine, volume.header, name=name, role="volume",
                             path=str(volume.path), slab=volume.slab, series=volume.series)


def _series_layers(root: Path, errors: list[str]) -> list[LayerData]:
    """A layer per DICOM series under the folder ``root``, named by its description; what fails goes to ``errors``."""
    from .io.dicom import list_series, read_series, series_folders, series_name

    layers: list[LayerData] = []
    for folder in series_folders(root):
        try:
            found = list_series(folder)
        except VolumeNetError as error:
            errors.append(str(error))
            continue
        for series in found:
            try:
                volume = read_series(folder, series.key)
            except VolumeNetError as error:
                errors.append(str(error))
                continue
            layers.append(_volume_layer(volume, series_name(volume)))
    return layers


def read_layers(path: str | Path, errors: list[str] | None = None) -> list[LayerData]:
    """Read one volume file, or every DICOM series of a folder, into LayerData.

    A bad file raises :class:`VolumeNetError`; in a folder, a series that cannot be read is reported in ``errors``
    (raised when it is ``None`` or no series could be read) and the others are read.
    """
    from .io import read_volume, volume_stem
    from .io.dicom import series_name

    path = Path(path).expanduser()
    if not path.is_dir():
        volume = read_volume(path)
        return [_volume_layer(volume, series_name(volume) if volume.series is not None else volume_stem(path))]
    found: list[str] = []
    layers = _series_layers(path, found)
    if found and (errors is None or not layers):
        raise VolumeNetError(found[0] if len(found) == 1 else f"{found[0]} (and {len(found) - 1} more)")
    if errors is not None:
        errors.extend(found)
    return layers


def _reader(paths: str | Sequence[str]) -> list[LayerData] | list[tuple[None]]:
    from napari.utils.notifications import show_error

    layers: list[LayerData] = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        errors: list[str] = []
        try:
            layers.extend(read_layers(path, errors))
        except VolumeNetError as error:
            show_error(str(error))
        for message in errors:
            show_error(message)
    # napari's "read, but nothing to show" sentinel: no second reader, no traceback
    return layers or [(None,)]


def _claimed(path: str) -> bool:
    """A NIfTI/MGH or ``.dcm`` file, or a folder with DICOM files in it (or in its subfolders)."""
    from .io.dicom import series_folders

    if _has_extension(path):
        return True
    folder = Path(path)
    return folder.is_dir() and bool(series_folders(folder))


def get_reader(path: str | Sequence[str]) -> Callable[..., Any] | None:
    """npe2 reader contribution: our reader for NIfTI/MGH files and DICOM series, ``None`` for anything else."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_claimed(str(p)) for p in paths):
        return None
    return _reader
