"""How a NIfTI volume is shown as a napari layer, and back (pure functions, no Qt, no napari).

napari shows the last two array axes of a layer as the rows and columns of the canvas and puts
the first axis on the slider. The reader therefore presents every volume in one canonical
*view* orientation, whatever order its voxels are stored in:

- view axis 0 runs inferior → superior (the slider steps through **axial** slices);
- view axis 1 runs anterior → posterior (rows: **anterior at the top**);
- view axis 2 runs right → left (columns: the patient's **right on the left** of the screen,
  the radiological convention).

The view is a permutation and flips of the stored array (``nibabel.orientations``: the stored
axes are matched to the closest of S, P, L by :func:`nibabel.orientations.io_orientation`), so
it is a *view* of the stored array (no copy) and exactly invertible. The transform (``ornt``,
nibabel's ``(n, 2)`` orientation array: view axis and flip of each stored axis), the original
affine and the header travel in the layer's metadata under :data:`METADATA_KEY`, which is what
the writer uses to put the data back in its stored order with its own affine.

World coordinates (napari's) are physical millimetres: world axis 0 = RAS z (superior), world
axis 1 = −RAS y (posterior), world axis 2 = −RAS x (left), i.e. DICOM's LPS patient
coordinates in (z, y, x) order. For the usual, non-oblique affines ``scale`` and ``translate``
reproduce the affine exactly; for oblique ones they keep the voxel sizes and the position of
the first voxel and drop the small rotation (the exact affine is still in the metadata, and it
is what the writer writes).

A super-resolved layer is stored with ``sr_affine(affine_lr, s)`` and shown with the same view
transform (flips do not depend on the array size), which puts it at
``scale_hr = scale_lr / s``, ``translate_hr = translate_lr + scale_lr·(1/s − 1)/2`` (SPEC §5),
exactly over the LR layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from .errors import InputError

METADATA_KEY = "volumenet"
"""Key of this plugin's entry in ``layer.metadata``."""

VIEW_AXCODES = ("S", "P", "L")
"""Direction in which each view axis increases (nibabel axis codes)."""

AXIS_LABELS = ("I→S", "A→P", "R→L")
"""napari axis labels of the view axes."""

WORLD_FROM_RAS = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])
"""napari world coordinates (S, P, L) from RAS+ scanner coordinates (both in mm)."""

IDENTITY_ORNT = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


def view_ornt(affine: np.ndarray) -> np.ndarray:
    """nibabel orientation transform from the stored axes of ``affine`` to the view axes."""
    affine = np.asarray(affine, dtype=float)
    return ornt_transform(io_orientation(affine), axcodes2ornt(VIEW_AXCODES))


def inverse_ornt(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt``."""
    ornt = np.asarray(ornt, dtype=float)
    inverse = np.empty_like(ornt)
    for stored_axis, (view_axis, flip) in enumerate(ornt):
        inverse[int(view_axis)] = (stored_axis, flip)
    return inverse


def to_view(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Stored array → view array (a numpy view: no copy)."""
    return apply_orientation(np.asarray(data), np.asarray(ornt, dtype=float))


def from_view(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """View array → stored array (a numpy view); ``from_view(to_view(a, o), o)`` is ``a``."""
    return apply_orientation(np.asarray(data), inverse_ornt(ornt))


def view_shape(shape: Sequence[int], ornt: np.ndarray) -> tuple[int, ...]:
    """Shape of the view of a stored array of ``shape``."""
    out = [0, 0, 0]
    for n, (view_axis, _) in zip(shape, np.asarray(ornt)):
        out[int(view_axis)] = int(n)
    return tuple(out)


def view_factors(factors: Sequence[int], ornt: np.ndarray) -> tuple[int, int, int]:
    """Per-stored-axis factors (e.g. the upscaling ``s``) in view-axis order."""
    return view_shape(factors, ornt)  # type: ignore[return-value]


def stored_factors(factors: Sequence[int], ornt: np.ndarray) -> tuple[int, int, int]:
    """Per-view-axis factors in stored-axis order (inverse of :func:`view_factors`)."""
    return tuple(int(factors[int(view_axis)]) for view_axis, _ in np.asarray(ornt))  # type: ignore[return-value]


def scale_translate(affine: np.ndarray, ornt: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """napari ``scale`` and ``translate`` (view-axis order, mm) of a stored array of ``shape``."""
    affine = np.asarray(affine, dtype=float)
    view_aff = affine @ inv_ornt_aff(np.asarray(ornt, dtype=float), tuple(int(n) for n in shape))
    scale = np.sqrt((view_aff[:3, :3] ** 2).sum(axis=0))
    translate = WORLD_FROM_RAS @ view_aff[:3, 3]
    return scale, translate


def plain_affine(scale: Sequence[float], translate: Sequence[float]) -> np.ndarray:
    """Affine of a layer that did not come from the reader: its data axes taken as the view axes.

    Inverse of :func:`scale_translate` for such a layer: the written file, read back, gives the
    same array, scale and translate.
    """
    affine = np.eye(4)
    affine[:3, :3] = WORLD_FROM_RAS.T @ np.diag(np.asarray(scale, dtype=float))
    affine[:3, 3] = WORLD_FROM_RAS.T @ np.asarray(translate, dtype=float)
    return affine


@dataclass
class LayerGeometry:
    """Everything needed to go between a layer's view array and the stored volume."""

    affine: np.ndarray
    """4×4 affine of the *stored* array (voxel index → RAS+ mm)."""
    ornt: np.ndarray = field(default_factory=lambda: IDENTITY_ORNT.copy())
    header: Any = None
    """nibabel header of the file it came from (``None`` for layers made in napari)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else kept in the metadata (role, path, model, description...)."""

    def view(self, stored: np.ndarray) -> np.ndarray:
        return to_view(stored, self.ornt)

    def stored(self, view: np.ndarray) -> np.ndarray:
        return from_view(view, self.ornt)

    def layer_kwargs(self, stored_shape: Sequence[int]) -> dict[str, Any]:
        """``scale``, ``translate``, ``axis_labels`` and ``metadata`` for a layer of this geometry."""
        scale, translate = scale_translate(self.affine, self.ornt, stored_shape)
        return {
            "scale": tuple(float(v) for v in scale),
            "translate": tuple(float(v) for v in translate),
            "axis_labels": AXIS_LABELS,
            "metadata": {METADATA_KEY: self.to_metadata()},
        }

    def to_metadata(self) -> dict[str, Any]:
        return {
            **self.extra,
            "affine": np.array(self.affine, dtype=float),
            "ornt": np.array(self.ornt, dtype=float),
            "header": self.header,
        }

    def replace(self, affine: np.ndarray, **extra: Any) -> LayerGeometry:
        """Same view transform and header, another affine (e.g. the SR or LR grid) and new ``extra``."""
        return LayerGeometry(np.asarray(affine, dtype=float), self.ornt.copy(), self.header, dict(extra))

    @classmethod
    def from_affine(cls, affine: np.ndarray, header: Any = None, **extra: Any) -> LayerGeometry:
        affine = np.asarray(affine, dtype=float)
        return cls(affine, view_ornt(affine), header, dict(extra))

    @classmethod
    def from_layer(cls, metadata: Mapping[str, Any] | None, scale: Sequence[float],
                   translate: Sequence[float], ndim: int) -> LayerGeometry:
        """The geometry a layer carries, or the one its scale/translate imply."""
        if ndim != 3:
            raise InputError(f"Only 3D image layers can be used, this one has {ndim} dimensions.")
        entry = (metadata or {}).get(METADATA_KEY)
        if isinstance(entry, Mapping) and "affine" in entry and "ornt" in entry:
            extra = {k: v for k, v in entry.items() if k not in ("affine", "ornt", "header")}
            return cls(np.asarray(entry["affine"], dtype=float), np.asarray(entry["ornt"], dtype=float),
                       entry.get("header"), extra)
        return cls(plain_affine(scale, translate), IDENTITY_ORNT.copy(), None, {})
