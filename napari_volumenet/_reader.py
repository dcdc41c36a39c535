"""napari reader: NIfTI (and other nibabel formats) → an Image layer in physical, radiological view.

The layer shows axial slices on the slider, anterior at the top and the patient's right on the
left of the screen; its world coordinates are millimetres (see :mod:`napari_volumenet._geometry`).
The original affine, header and the axis permutation/flips applied are kept in
``layer.metadata["volumenet"]``, so that the writer puts back exactly the array and affine that
were read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._geometry import LayerGeometry
from .errors import VolumeNetError

EXTENSIONS = (".nii", ".nii.gz", ".mgz", ".mgh")
"""What the reader claims (the same list is in ``napari.yaml``)."""

LayerData = tuple[Any, dict[str, Any], str]


def _has_extension(path: str) -> bool:
    return str(path).lower().endswith(EXTENSIONS)


def display_limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits for display: the 0.5th and 99.5th percentiles (min/max if they coincide)."""
    sample = data[:: max(1, data.shape[0] // 64)]
    low, high = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
    if not high > low:
        low, high = float(np.min(data)), float(np.max(data))
    if not high > low:
        high = low + 1.0
    return low, high


def volume_layer_data(data: np.ndarray, affine: np.ndarray, header: Any = None, *, name: str,
                      **extra: Any) -> LayerData:
    """LayerData of a stored volume (``data`` in its stored axis order, ``affine`` its affine)."""
    geometry = LayerGeometry.from_affine(affine, header, **extra)
    view = geometry.view(data)
    kwargs = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": display_limits(view),
        **geometry.layer_kwargs(data.shape),
    }
    return view, kwargs, "image"


def read_layers(path: str | Path) -> list[LayerData]:
    """Read one volume file into LayerData; raises :class:`VolumeNetError` for a bad file."""
    from .io import read_volume, volume_stem

    volume = read_volume(path)
    return [volume_layer_data(volume.data, volume.affine, volume.header, name=volume_stem(path),
                              role="volume", path=str(volume.path))]


def _reader(paths: str | Sequence[str]) -> list[LayerData] | list[tuple[None]]:
    from napari.utils.notifications import show_error

    layers: list[LayerData] = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        try:
            layers.extend(read_layers(path))
        except VolumeNetError as error:
            show_error(str(error))
    # napari's "read, but nothing to show" sentinel: no second reader, no traceback
    return layers or [(None,)]


def get_reader(path: str | Sequence[str]) -> Callable[..., Any] | None:
    """npe2 reader contribution: our reader for NIfTI/MGH paths, ``None`` for anything else."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_has_extension(str(p)) for p in paths):
        return None
    return _reader
