"""Where the user looks, in voxel indices: the displayed slice and the drawn region, without Qt or napari.

The widget (:mod:`napari_volumenet._qt.widget`) reads the viewer into plain values: each layer's
placement (:class:`LayerFrame`), napari's dims (the world point of the slider, the 2D or 3D view)
and a rectangle's vertices. World coordinates are napari's (mm for this plugin's layers, in the
view's axis order); data coordinates are voxel indices, voxel centres at integers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Region = tuple[slice, slice]
"""Voxels on the two axes of a 2D slice (ascending axis order), as slices of the slice's array."""


# ---------------------------------------------------------------------- world ↔ data
@dataclass(frozen=True, eq=False)
class LayerFrame:
    """How a layer's data coordinates lie in the world: one affine map, and its voxel count per axis."""

    matrix: np.ndarray
    """(n+1)×(n+1) homogeneous data → world matrix (napari's scale, translate, rotate, shear and affine)."""
    shape: tuple[int, ...] = ()
    """Voxels per axis; empty for a layer without voxels (shapes)."""

    @classmethod
    def of(cls, data_to_world: Callable[[list[float]], Sequence[float]], ndim: int,
           shape: Sequence[int] = ()) -> LayerFrame:
        """The frame of an affine ``data_to_world`` map (a napari layer's), read off its images of 0 and eᵢ."""
        origin = np.asarray(data_to_world([0.0] * ndim), dtype=float)
        matrix = np.eye(ndim + 1)
        matrix[:ndim, ndim] = origin
        for axis in range(ndim):
            unit = [0.0] * ndim
            unit[axis] = 1.0
            matrix[:ndim, axis] = np.asarray(data_to_world(unit), dtype=float) - origin
        return cls(matrix, tuple(int(n) for n in shape))

    @property
    def ndim(self) -> int:
        return self.matrix.shape[0] - 1

    def to_world(self, data: np.ndarray | Sequence[float]) -> np.ndarray:
        """World coordinates of data coordinates ``data`` (shape (n,) or (k, n))."""
        data = np.asarray(data, dtype=float)
        return data @ self.matrix[:-1, :-1].T + self.matrix[:-1, -1]

    def to_data(self, world: np.ndarray | Sequence[float]) -> np.ndarray:
        """Data coordinates of world points ``world`` (shape (m,) or (k, m)).

        Points with more than n coordinates use their last n, as napari does for a layer of fewer
        dimensions than the viewer.
        """
        world = np.asarray(world, dtype=float)[..., -self.ndim:]
        inverse = np.linalg.inv(self.matrix)
        return world @ inverse[:-1, :-1].T + inverse[:-1, -1]


# ---------------------------------------------------------------------- the displayed slice
def sliced_axis(ndisplay: int, not_displayed: Sequence[int]) -> int | None:
    """The axis the slider moves along in a 2D view of a 3D world; ``None`` otherwise (3D view, 4D world)."""
    return int(not_displayed[0]) if ndisplay == 2 and len(not_displayed) == 1 else None


def slice_index(frame: LayerFrame, point: Sequence[float], axis: int) -> int:
    """The voxel index along ``axis`` nearest to the world ``point`` (clipped to ``frame.shape``)."""
    return int(np.clip(np.round(float(frame.to_data(point)[axis])), 0, frame.shape[axis] - 1))


def onto_slice(shapes: Sequence[np.ndarray], frame: LayerFrame, point: Sequence[float], axis: int
               ) -> list[np.ndarray] | None:
    """The vertices of ``shapes`` (data coordinates of their layer, one (k, n) array each) moved onto the
    slice through the world ``point`` along ``axis``; ``None`` when they all lie on it already."""
    here = float(frame.to_data(point)[axis])
    moved = [np.array(vertices, dtype=float) for vertices in shapes]
    if all(np.allclose(vertices[:, axis], here) for vertices in moved):
        return None
    for vertices in moved:
        vertices[:, axis] = here
    return moved


# ---------------------------------------------------------------------- the region
def last_rectangle(shapes: Sequence[np.ndarray], kinds: Sequence[str]) -> np.ndarray:
    """Vertices of the last ``rectangle`` among ``shapes`` (``kinds``: their shape types), else of the last shape."""
    index = max((i for i, kind in enumerate(kinds) if kind == "rectangle"), default=len(shapes) - 1)
    return np.asarray(shapes[index], dtype=float)


def region_slices(corners: np.ndarray, displayed: Sequence[int], shape: Sequence[int]) -> Region | None:
    """Voxels (on the two ``displayed`` axes) whose centres lie in the box spanned by ``corners``.

    ``corners``: data coordinates of the box's corners, one row per corner (all axes). ``None``
    when no voxel centre lies inside.
    """
    corners = np.asarray(corners, dtype=float)[:, list(displayed)]
    low, high = corners.min(axis=0), corners.max(axis=0)
    slices = []
    for axis, lo, hi in zip(displayed, low, high):
        start = max(int(np.ceil(lo - 1e-6)), 0)
        stop = min(int(np.floor(hi + 1e-6)) + 1, int(shape[axis]))
        if stop <= start:
            return None
        slices.append(slice(start, stop))
    return slices[0], slices[1]


def box_bounds(corners: np.ndarray, frame: LayerFrame, displayed: Sequence[int]
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The box spanned by the world points ``corners`` (one row each) in ``frame``'s data coordinates on the two
    ``displayed`` axes: ((top, left), (bottom, right)), as napari's selection box takes it."""
    data = frame.to_data(corners)[:, list(displayed)]
    low, high = data.min(axis=0), data.max(axis=0)
    return (float(low[0]), float(low[1])), (float(high[0]), float(high[1]))


def hr_region(lr_region: Region, factors: Sequence[int]) -> Region:
    """The HR voxels of exactly the LR voxels ``lr_region`` (``factors``: the scale on the two axes)."""
    first, second = (slice(r.start * f, r.stop * f) for r, f in zip(lr_region, factors))
    return first, second


def region_size(region: Region) -> str:
    """``rows×columns`` of ``region`` in voxels, e.g. ``8×14``."""
    return "×".join(str(s.stop - s.start) for s in region)


def view_regions(corners: np.ndarray, axis: int, reference: LayerFrame, lr: LayerFrame | None,
                 view_scale: Sequence[int]) -> tuple[Region | None, Region | None]:
    """(HR region, LR region) of the world box ``corners`` on the slice across ``axis``.

    ``reference``: an HR layer of the run; ``lr``: its LR layer (``None`` once removed);
    ``view_scale``: the scale per view axis. The LR region is the LR voxels whose centres lie
    inside the box and the HR region exactly their HR voxels, so that every crop covers the same
    physical area; without the LR layer, the HR voxels whose centres lie inside.
    """
    displayed = [a for a in range(3) if a != axis]
    if lr is None:
        return region_slices(reference.to_data(corners), displayed, reference.shape), None
    lr_region = region_slices(lr.to_data(corners), displayed, lr.shape)
    if lr_region is None:
        return None, None
    return hr_region(lr_region, [view_scale[a] for a in displayed]), lr_region
