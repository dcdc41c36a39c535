"""NIfTI input/output and the geometry of super-resolved grids (SPEC §5). No Qt, no napari.

Arrays are in nibabel's order: ``data[i, j, k]`` is voxel ``(i, j, k)`` and ``affine @ (i, j, k, 1)``
is its centre in millimetres.

- :mod:`.paths`: which file names are volumes, their stems and JSON sidecars, finding them in folders;
- :mod:`.files`: special files (FIFOs, devices) refused by type before any read, small files read with a bound;
- :mod:`.volume`: :class:`Volume` and the checks every voxel array passes;
- :mod:`.read`: :func:`read_volume`;
- :mod:`.geometry`: the affine of an SR (or LR) grid and its napari scale/translate;
- :mod:`.header`: the NIfTI-1 header of an output;
- :mod:`.write`: :func:`write_volume`, atomically, with its sidecar;
- :mod:`.provenance`: the header's ``descrip`` line and file checksums.

Every error a user can cause (bad input file, unwritable output) is an :class:`InputError` or
:class:`OutputError` whose message is one sentence naming the file. Outputs are written to a
hidden temporary file in the target folder and renamed into place, so a failed or interrupted
write never leaves a partial file, and an existing file is never replaced unless asked.
"""

from .geometry import lr_affine, napari_scale_translate, sr_affine, sr_volume_geometry
from .header import DESCRIP_BYTES, QFORM_TOLERANCE_MM, qform_sform_distance
from .paths import (
    NIFTI_SUFFIXES, READABLE_SUFFIXES, PathLike, find_volumes, is_nifti, sidecar_path, volume_stem, written_by,
)
from .provenance import provenance_description, sha256_file
from .read import MAX_DEFLATE_RATIO, read_affine, read_volume
from .volume import Volume, affine_zooms, validate_volume
from .write import check_output_path, write_volume

__all__ = [
    "DESCRIP_BYTES", "MAX_DEFLATE_RATIO", "NIFTI_SUFFIXES", "QFORM_TOLERANCE_MM", "READABLE_SUFFIXES", "PathLike",
    "Volume", "affine_zooms", "check_output_path", "find_volumes", "is_nifti", "lr_affine",
    "napari_scale_translate", "provenance_description", "qform_sform_distance", "read_affine", "read_volume",
    "sha256_file", "sidecar_path", "sr_affine", "sr_volume_geometry", "validate_volume", "volume_stem", "write_volume",
    "written_by",
]
