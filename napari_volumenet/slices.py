"""Which network a scan needs, from its voxel sizes: thick-slice scans get through-plane super-resolution.

Most clinical MRI is acquired in thick slices (0.4–1 mm in plane, 3–6 mm between slices). When one
array axis is at least :data:`ANISOTROPY` times coarser than both others, it is the slice axis (two axes
that coarse, e.g. 1×4×4 mm, are refused): the bundled through-plane weights (scale
``(1, 1, f)``) for ``f`` = the voxel-size ratio rounded to the nearest integer run with that axis
moved to their axis 2, so the output grid has about the in-plane spacing along it. Other scans keep
the isotropic ×2 default. ``--weights`` / ``--scale`` override the choice (:func:`choose`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, WeightsError
from .io.volume import Slab
from .ops.scale import Scale, along_axis, as_scale
from .weights import default_weights, list_bundled

ANISOTROPY = 1.5
"""An axis is a slice axis when its voxels are at least this many times longer than the others'."""


@dataclass(frozen=True)
class Choice:
    """How one scan is upscaled."""

    weights: Path
    network_scale: Scale
    """The network's own factor per axis (``(1, 1, f)`` for a through-plane network)."""
    slice_axis: int | None
    """The array axis given to a through-plane network as its axis 2 (``None``: axes as they are)."""
    reason: str
    """One line for the CLI, the sidecar and the widget's badge."""

    @property
    def scale(self) -> Scale:
        """Factor per array axis of the scan."""
        if self.slice_axis is None:
            return self.network_scale
        return along_axis(self.slice_axis, self.network_scale[2])


def _mm(zooms: Sequence[float]) -> str:
    return "×".join(f"{abs(float(z)):g}" for z in zooms) + " mm"


def slice_axis(zooms: Sequence[float]) -> int | None:
    """The array axis of thick slices in voxel sizes ``zooms`` (mm), or ``None`` for near-isotropic voxels.

    Raises :class:`InputError` when two axes are coarse (e.g. 1×4×4 mm): no through-plane network fits.
    """
    sizes = [abs(float(z)) for z in zooms[:3]]
    if len(sizes) != 3 or min(sizes) <= 0:
        return None
    order = sorted(range(3), key=lambda a: sizes[a])
    fine, middle, coarse = (sizes[a] for a in order)
    if coarse >= ANISOTROPY * middle:
        return order[2]
    if middle >= ANISOTROPY * fine:
        raise InputError(f"voxels of {_mm(sizes)} are coarse along two axes; the bundled networks are isotropic ×2 "
                         "and through-plane along one slice axis: pass --scale 2 or --weights to choose one")
    return None


def slice_ratio(zooms: Sequence[float], axis: int) -> float:
    """Slice spacing over the mean in-plane spacing."""
    sizes = [abs(float(z)) for z in zooms[:3]]
    plane = [sizes[a] for a in range(3) if a != axis]
    return sizes[axis] / (sum(plane) / 2)


def bundled_name(weights: Path) -> str:
    """The bundled name of a weights file, or its file name without the suffix."""
    for bundled in list_bundled():
        if bundled.path == weights:
            return bundled.name
    return weights.stem


def is_through_plane(scale: Scale) -> bool:
    """Whether a network of ``scale`` upscales its axis 2 alone: ``(1, 1, f)`` with ``f > 1``."""
    return scale[:2] == (1, 1) and scale[2] > 1


def through_plane_factors(modality: str, model: str | None = None) -> list[int]:
    """The factors ``f`` with default bundled through-plane weights (scale ``(1, 1, f)``) for ``modality``
    (and the registry ``model`` when given)."""
    return sorted({w.scale[2] for w in list_bundled() if w.default and w.modality == modality
                   and is_through_plane(w.scale) and (model is None or w.model == model)})


def _factors_text(factors: Sequence[int]) -> str:
    """``×2, ×4``, or ``none``."""
    return ", ".join(f"×{f}" for f in factors) or "none"


def modality_remedy(modality: str, network_scale: Scale) -> str | None:
    """What to do instead of running ``modality`` weights of ``network_scale`` on a scan of the other modality,
    when the other modality has no bundled weights of that scale (``None``: its weights exist, the usual advice).
    """
    other = "ct" if modality == "mri" else "mri"
    net = as_scale(network_scale)
    if not is_through_plane(net):
        return None
    available = through_plane_factors(other)
    if net[2] in available:
        return None
    return (f"there are no {other.upper()} through-plane weights for ×{net[2]} (bundled: "
            f"{_factors_text(available)}): --modality {other} "
            f"--scale 2 runs the isotropic {other.upper()} ×2 weights, or train through-plane ones "
            f"(volumenet-train --modality {other} --thick-slices {net[2]}) and pass them with --weights")


def _named(scale: Scale) -> tuple[int | None, Scale]:
    """``--scale``: ``(slice axis, network scale)``: one factor > 1 is through-plane, all equal is isotropic."""
    if len(set(scale)) == 1:
        return None, scale
    thick = [a for a in range(3) if scale[a] > 1]
    if len(thick) != 1:
        raise InputError(f"--scale {','.join(map(str, scale))}: give one factor (isotropic) or one axis's factor "
                         "with 1 on the others (through-plane, e.g. 1,1,4)")
    return thick[0], (1, 1, scale[thick[0]])


def slab_ratio(zooms: Sequence[float], axis: int, slab: Slab | None) -> tuple[float, str]:
    """What a thick slice integrates over the mean in-plane spacing, and how that was found.

    The slab model (SPEC §3): a slice integrates its thickness, not its spacing. With a gap (a series' slices
    thinner than their spacing) the through-plane factor follows the thickness, so that the network undoes the
    blur it was trained on; without a slab, or with overlapping slices, the spacing (:func:`slice_ratio`).
    """
    ratio = slice_ratio(zooms, axis)
    if slab is None or slab.axis != axis or not 0 < slab.thickness < slab.spacing:
        return ratio, f"thick slices along array axis {axis} ({ratio:.1f}×)"
    thick = ratio * slab.thickness / slab.spacing
    return thick, f"{slab.text()} along array axis {axis}: the slab is {thick:.1f}× the in-plane spacing"


def gap_slices(slab: Slab, factor: int) -> float:
    """The gap between slabs in HR slices of a ×``factor`` grid (``thick_slices``' ``gap``; 0 when none)."""
    return max(0.0, factor * (slab.spacing - slab.thickness) / slab.spacing)


def slab_record(slab: Slab | None, factor: int | None = None) -> dict[str, float | int] | None:
    """A sidecar's record of a scan's slab: axis, thickness, spacing and gap (mm), and with ``factor`` the gap in HR
    slices of a ×``factor`` grid (what ``thick_slices`` and ``fit`` degrade with); ``None`` without a slab."""
    if slab is None:
        return None
    record = {"axis": slab.axis, "thickness_mm": slab.thickness, "spacing_mm": slab.spacing, "gap_mm": slab.gap}
    return record if factor is None else {**record, "gap_hr_slices": gap_slices(slab, factor)}


def choose(zooms: Sequence[float], *, modality: str = "mri", scale: int | Sequence[int] | None = None,
           weights: Path | None = None, network_scale: Scale | None = None, model: str | None = None,
           slab: Slab | None = None) -> Choice:
    """The network for a scan of voxel sizes ``zooms`` (mm, array axes).

    ``weights`` (with their ``network_scale``) or ``scale`` given: that choice (a through-plane network
    then runs along the scan's slice axis, or its own axis 2 on near-isotropic voxels). Neither: the
    bundled through-plane weights for the scan's slice axis and ratio (of the ``slab``'s thickness where its
    slices have a gap: :func:`slab_ratio`), or the isotropic ×2 default (of the registry ``model`` when given).
    """
    if weights is not None:
        net = as_scale(network_scale or 2)
        if not is_through_plane(net):
            return Choice(weights, net, None, f"weights {weights.name} (×{'×'.join(map(str, net))})")
        try:
            axis = slice_axis(zooms)
        except InputError:  # coarse along two axes: the network's own slice axis
            axis = None
        axis = 2 if axis is None else axis
        return Choice(weights, net, axis, f"weights {weights.name}: through-plane ×{net[2]} along array axis {axis}")
    if scale is not None:
        axis, net = _named(as_scale(scale))
        where = "" if axis is None else f" along array axis {axis}"
        return Choice(default_weights(modality, net, model=model), net, axis, f"--scale: ×{max(net)}{where}")
    axis = slice_axis(zooms)
    if axis is None:
        return Choice(default_weights(modality, 2, model=model), (2, 2, 2), None,
                      f"voxels {_mm(zooms)}: near-isotropic, isotropic ×2")
    ratio, why = slab_ratio(zooms, axis, slab)
    factor = max(2, round(ratio)) if math.isfinite(ratio) else math.inf  # no weights fit an infinite ratio
    available = through_plane_factors(modality, model)
    if factor not in available:
        raise WeightsError(f"voxels {_mm(zooms)}: {why}, but there are no {modality.upper()} through-plane "
                           f"weights for ×{factor} "
                           f"(bundled: {_factors_text(available)}); pass --scale or --weights")
    return Choice(default_weights(modality, (1, 1, factor), model=model), (1, 1, factor), axis,
                  f"voxels {_mm(zooms)}: {why}, through-plane ×{factor}")


def choose_for(path: Path, *, modality: str | None = None, **options: Any) -> Choice:
    """:func:`choose` for a volume file or DICOM series from its header(s) alone: the voxel sizes of its affine,
    its slab, and (``modality`` not given) the modality a DICOM series states (CT: ``ct``), else ``mri``."""
    from .io import affine_zooms, read_affine
    from .io.dicom import read_slab, series_modality

    modality = modality or series_modality(path) or "mri"
    return choose(affine_zooms(read_affine(path)), slab=read_slab(path), modality=modality, **options)
