"""Anatomical orientation on screen: which way is up, and the letters at the view's edges (no Qt, no napari).

A layer's view axes run towards anatomical directions read off its affine (nibabel axis codes:
``R``/``L``, ``A``/``P``, ``S``/``I``; the reader's view is ``("S", "P", "L")``). In a 2D view the
first displayed axis is drawn vertically and the second horizontally; :func:`screen_orientation`
chooses napari's camera orientation so that the picture reads as a radiologist expects:

- superior at the top whenever the vertical axis runs inferior–superior (coronal, sagittal);
- anterior at the top in an axial view;
- the patient's right on the left of the screen (radiological convention), anterior on the left of
  a sagittal view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nibabel.orientations import aff2axcodes, inv_ornt_aff

OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
ON_TOP = ("S", "A")
"""The letter shown at the top, in order of preference (the first one the vertical axis has)."""
ON_LEFT = ("R", "A")
"""The letter shown on the left, in order of preference."""
NAMES = {"R": "right", "L": "left", "A": "anterior", "P": "posterior", "S": "superior", "I": "inferior"}


@dataclass(frozen=True)
class ScreenOrientation:
    """napari's 2D camera orientation and the anatomical letter at each edge of the view."""

    vertical: str
    """``"up"`` or ``"down"``: where the first displayed axis increases."""
    horizontal: str
    """``"left"`` or ``"right"``: where the second displayed axis increases."""
    top: str
    bottom: str
    left: str
    right: str


def view_axcodes(affine: np.ndarray, ornt: np.ndarray, stored_shape: Sequence[int]) -> tuple[str, str, str]:
    """Direction each view axis increases towards (``("S", "P", "L")`` for the reader's view).

    ``affine``: the stored array's voxel → RAS+ affine; ``ornt``: stored → view orientation transform.
    """
    view_affine = np.asarray(affine, dtype=float) @ inv_ornt_aff(np.asarray(ornt, dtype=float),
                                                                 tuple(int(n) for n in stored_shape))
    codes = aff2axcodes(view_affine)
    if any(code is None for code in codes):
        raise ValueError("The affine has a degenerate axis: no anatomical direction.")
    return tuple(str(code) for code in codes)  # type: ignore[return-value]


def axis_labels(codes: Sequence[str]) -> tuple[str, ...]:
    """napari axis labels ``I→S``-style: from the low end of each axis to its high end."""
    return tuple(f"{OPPOSITE[code]}→{code}" for code in codes)


def _edge(code: str, preferred: Sequence[str], towards_start: str, towards_end: str) -> tuple[str, str, str]:
    """(direction the axis increases on screen, letter at the start edge, letter at the end edge).

    ``code``: where the axis increases anatomically; ``preferred``: letters wanted at the start edge
    (top or left); ``towards_start``/``towards_end``: napari's names of the two screen directions.
    """
    wanted = next((letter for letter in preferred if letter in (code, OPPOSITE[code])), OPPOSITE[code])
    direction = towards_start if wanted == code else towards_end
    return direction, wanted, OPPOSITE[wanted]


def screen_orientation(codes: Sequence[str], displayed: Sequence[int]) -> ScreenOrientation:
    """The camera orientation and edge letters for the two ``displayed`` axes (vertical first).

    ``codes``: :func:`view_axcodes` of every axis; ``displayed``: napari's displayed axes (the last
    two of ``viewer.dims.displayed`` in a 3D view).
    """
    vertical_axis, horizontal_axis = (int(a) for a in displayed[-2:])
    vertical, top, bottom = _edge(codes[vertical_axis], ON_TOP, "up", "down")
    horizontal, left, right = _edge(codes[horizontal_axis], ON_LEFT, "left", "right")
    return ScreenOrientation(vertical, horizontal, top, bottom, left, right)
