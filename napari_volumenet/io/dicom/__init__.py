"""DICOM series in and out (SPEC §5c), with pydicom: read a series as a :class:`~napari_volumenet.io.Volume` on
dcm2niix's grid, write a volume as a new series in its source's study.

- :mod:`.files`: which files are DICOM images, grouped into series;
- :mod:`.geometry`: slice order, the RAS affine, spacing, thickness, gap and the refusals (missing slice, tilt, 4-D);
- :mod:`.read`: :func:`read_series`, :func:`series_info` (headers only);
- :mod:`.write`: :func:`write_series`, a whole series folder at once or not at all.
"""

from .files import Series, is_dicom_file, series_folders
from .geometry import SeriesGrid, series_grid
from .read import (
    SeriesInfo, is_series_path, list_series, read_series, read_slab, series_info, series_modality,
    series_name,
)
from .write import check_series_output, series_description, write_series

__all__ = [
    "Series", "SeriesGrid", "SeriesInfo", "check_series_output", "is_dicom_file", "is_series_path", "list_series",
    "read_series", "read_slab", "series_description", "series_folders", "series_grid", "series_info",
    "series_modality", "series_name",
    "write_series",
]
