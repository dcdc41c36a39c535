"""The slice profile of a thick-slice scan (SPEC §3): which axis, how many in-plane pixels a slice spans, the gap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..io.volume import Slab
from ..slices import slab_ratio, slice_axis
from ..weights import MAX_SCALE as MAX_FACTOR


@dataclass(frozen=True)
class SliceProfile:
    """How a scan's slices were made, in units of its in-plane pixels.

    ``factor`` is what ``upscale`` chooses for the scan (:func:`~napari_volumenet.slices.slab_ratio`): the slab
    thickness a DICOM series states, else the spacing, over the in-plane pixel, rounded; the output grid is exact:
    ``factor`` HR slices per slice; ``gap`` is the empty part of each slab in those HR slices (``thick_slices``' gap).
    """

    axis: int
    factor: int
    gap: float
    thickness_mm: float
    spacing_mm: float
    in_plane_mm: float
    source: str
    """Where the thickness came from: ``header`` (a DICOM series), ``--slice-thickness`` or ``spacing``."""

    def text(self) -> str:
        """E.g. ``4 mm slices every 4 mm along array axis 2 (thickness from spacing): ×4, box 4 px, no gap``."""
        gap = f"gap {self.gap:.2g} px" if self.gap > 0 else "no gap"
        return (f"{self.thickness_mm:.3g} mm slices every {self.spacing_mm:.3g} mm along array axis {self.axis} "
                f"(thickness from {self.source}): ×{self.factor}, box {self.factor - self.gap:.3g} px, {gap}")

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "factor": self.factor, "gap": self.gap, "thickness_mm": self.thickness_mm,
                "spacing_mm": self.spacing_mm, "in_plane_mm": self.in_plane_mm, "source": self.source}


def slice_profile_of(zooms: Sequence[float], *, slab: Slab | None = None, thickness_mm: float | None = None,
                     factor: int | None = None) -> SliceProfile:
    """The profile of a scan of voxel sizes ``zooms`` (mm): thickness from ``thickness_mm`` (the user's), else the
    scan's ``slab`` (a DICOM series), else the spacing (a box as wide as the spacing, no gap); ``factor`` (HR slices
    per slice) by default the one ``upscale`` chooses from the header: the ``slab``'s thickness, else the spacing,
    over the in-plane pixel, rounded (a series of 4 mm slices every 4.8 mm of 1 mm pixels: ×4, not ×5).

    Raises :class:`InputError` for a near-isotropic scan (no sharp plane to learn from) and for a thickness that
    is not positive or larger than the spacing.
    """
    sizes = [abs(float(z)) for z in zooms[:3]]
    axis = slice_axis(sizes)
    if axis is None:
        raise InputError(f"voxels of {'×'.join(f'{z:g}' for z in sizes)} mm are near-isotropic: the scan has no "
                         "sharp plane to learn its slice axis from (a fit needs slices ≥ 1.5× the in-plane spacing)")
    spacing = sizes[axis]
    in_plane = sum(sizes[a] for a in range(3) if a != axis) / 2
    header = min(slab.thickness, spacing) if slab is not None and slab.axis == axis and slab.thickness > 0 else None
    if thickness_mm is not None:
        thickness, source = float(thickness_mm), "--slice-thickness"
    elif header is not None:
        thickness, source = header, "header"
    else:
        thickness, source = spacing, "spacing"
    if not 0 < thickness <= spacing * 1.001:
        raise InputError(f"a slice thickness of {thickness:g} mm does not fit slices every {spacing:g} mm "
                         "(it must be positive and at most the spacing)")
    if factor is not None and not 2 <= factor <= MAX_FACTOR:
        raise InputError(f"the factor must be an integer from 2 to {MAX_FACTOR}, got {factor}")
    factor = factor or max(2, round(slab_ratio(sizes, axis, slab)[0]))  # the grid upscale chooses from the header
    gap = max(0.0, factor * (spacing - min(thickness, spacing)) / spacing)
    return SliceProfile(axis, factor, round(gap, 6), thickness, spacing, in_plane, source)
