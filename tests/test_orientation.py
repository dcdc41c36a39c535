"""Anatomical orientation on screen, from the affine (no Qt, no napari)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_volumenet._geometry import AXIS_LABELS, LayerGeometry
from napari_volumenet._orientation import ScreenOrientation, axis_labels, screen_orientation, view_axcodes

READER = ("S", "P", "L")
"""The reader's view: axis 0 inferior → superior, axis 1 anterior → posterior, axis 2 right → left."""


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "ASL", "SLP"])
def test_the_readers_view_runs_s_p_l_whatever_the_stored_order(axcodes):
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff

    # a stored array in the orientation ``axcodes``: its affine from the RAS identity
    ornt = axcodes2ornt(tuple(axcodes))
    shape = (5, 6, 7)
    affine = np.diag([1.2, 0.9, 3.0, 1.0]) @ inv_ornt_aff(ornt, shape)
    geometry = LayerGeometry.from_affine(affine)
    assert view_axcodes(geometry.affine, geometry.ornt, shape) == READER
    assert axis_labels(READER) == AXIS_LABELS


def test_an_oblique_affine_takes_the_closest_directions():
    angle = np.deg2rad(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation
    geometry = LayerGeometry.from_affine(affine)
    assert view_axcodes(geometry.affine, geometry.ornt, (4, 4, 4)) == READER
    with pytest.raises(ValueError, match="degenerate"):
        view_axcodes(np.diag([1.0, 1.0, 0.0, 1.0]), np.array([[0, 1], [1, 1], [2, 1]]), (4, 4, 4))


@pytest.mark.parametrize(("displayed", "expected"), [
    ((1, 2), ScreenOrientation("down", "right", "A", "P", "R", "L")),  # axial: as napari draws it
    ((0, 2), ScreenOrientation("up", "right", "S", "I", "R", "L")),  # coronal: superior up, right on the left
    ((0, 1), ScreenOrientation("up", "right", "S", "I", "A", "P")),  # sagittal: superior up, anterior left
    ((2, 0), ScreenOrientation("down", "right", "R", "L", "I", "S")),  # transposed: napari's default directions
    ((0, 1, 2), ScreenOrientation("down", "right", "A", "P", "R", "L")),  # 3D: the last two displayed axes
])
def test_screen_orientation(displayed, expected):
    assert screen_orientation(READER, displayed) == expected


def test_a_flipped_view_gets_the_same_picture():
    """Directions, not array order, decide: a view whose axis 0 runs S → I is drawn downwards."""
    flipped = screen_orientation(("I", "A", "R"), (0, 2))
    assert (flipped.vertical, flipped.top, flipped.horizontal, flipped.left) == ("down", "S", "left", "R")
