"""The geometry of super-resolved grids (SPEC §5).

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
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from ..ops.scale import Scale, as_scale
from .header import output_header
from .volume import Volume


def scale3(scale: int | Sequence[int] | np.ndarray) -> Scale:
    """:func:`~napari_volumenet.ops.scale.as_scale` that also takes a numpy array or scalar."""
    if isinstance(scale, np.ndarray):
        scale = tuple(scale.tolist()) if scale.ndim else int(scale)
    return as_scale(scale)


def sr_affine(affine: np.ndarray, scale: int | Sequence[int]) -> np.ndarray:
    """Affine of the HR grid of an LR volume upscaled by ``scale`` (SPEC §5).

    ``A_hr = A_lr · [[diag(1/s), (1/s − 1)/2], [0, 1]]``: voxel sizes divided by ``s``, same
    physical extent (HR voxel 0's centre is at LR voxel coordinate ``−(s − 1)/(2s)``).
    """
    s = np.asarray(scale3(scale), dtype=np.float64)
    step = np.eye(4)
    step[:3, :3] = np.diag(1.0 / s)
    step[:3, 3] = (1.0 / s - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ step


def lr_affine(affine: np.ndarray, scale: int | Sequence[int]) -> np.ndarray:
    """Inverse of :func:`sr_affine`: the grid whose voxel ``i`` covers HR voxels ``s·i … s·i+s−1``.

    ``A_lr = A_hr · [[diag(s), (s − 1)/2], [0, 1]]``, so ``sr_affine(lr_affine(A, s), s) == A``.
    """
    s = np.asarray(scale3(scale), dtype=np.float64)
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
    s = scale3(scale)
    affine = sr_affine(volume.affine, s)
    shape = tuple(int(n) * f for n, f in zip(volume.data.shape, s, strict=True))
    header = output_header(volume.header, affine, shape)
    return affine, header


def napari_scale_translate(
    scale_lr: Sequence[float], translate_lr: Sequence[float], s: int | Sequence[int]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """napari ``scale`` and ``translate`` of the SR layer of an LR layer (SPEC §5).

    ``scale_hr = scale_lr / s`` and ``translate_hr = translate_lr + scale_lr·(1/s − 1)/2``, with
    ``s`` in the layer's axis order: the SR layer then overlays the LR layer exactly.
    """
    factors = np.asarray(scale3(s), dtype=np.float64)
    scale = np.asarray(scale_lr, dtype=np.float64)
    translate = np.asarray(translate_lr, dtype=np.float64)
    if scale.shape != (3,) or translate.shape != (3,):
        raise ValueError(f"expected 3 scale and 3 translate values, got {scale.shape} and {translate.shape}")
    scale_hr = scale / factors
    translate_hr = translate + scale * (1.0 / factors - 1.0) / 2.0
    return tuple(float(v) for v in scale_hr), tuple(float(v) for v in translate_hr)
