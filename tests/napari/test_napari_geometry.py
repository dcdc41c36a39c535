"""The reader's view transform: exact inversion, physical world coordinates, SPEC §5 overlay."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_volumenet._geometry import (
    IDENTITY_ORNT, WORLD_FROM_RAS, LayerGeometry, from_view, plain_affine, scale_translate, stored_factors,
    to_view, view_factors, view_ornt, view_shape,
)
from napari_volumenet.io import napari_scale_translate, sr_affine


def _axis_affines():
    """Every permutation and flip of the axes, with different voxel sizes and an offset."""
    zooms = np.array([0.9, 1.3, 2.0])
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = 0.0
            for stored_axis, (ras_axis, sign) in enumerate(zip(perm, signs)):
                affine[ras_axis, stored_axis] = sign * zooms[stored_axis]
            affine[:3, 3] = (-80.5, 12.25, 33.0)
            yield affine


def _stored_index(view_index, ornt, stored_shape):
    """Stored voxel index shown at ``view_index`` of the view."""
    flat = to_view(np.arange(int(np.prod(stored_shape))).reshape(stored_shape), ornt)
    return np.array(np.unravel_index(int(flat[tuple(view_index)]), stored_shape))


@pytest.mark.parametrize("affine", list(_axis_affines()))
def test_view_is_exactly_invertible_and_physical(affine):
    shape = (5, 6, 7)
    data = np.random.default_rng(0).random(shape)
    ornt = view_ornt(affine)
    view = to_view(data, ornt)
    assert np.shares_memory(view, data)  # a view, not a copy
    assert view.shape == view_shape(shape, ornt)
    back = from_view(view, ornt)
    assert back.shape == shape and np.array_equal(back, data)
    scale, translate = scale_translate(affine, ornt, shape)
    assert np.all(scale > 0)
    for v in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in view.shape)]:
        stored = _stored_index(v, ornt, shape)
        physical = WORLD_FROM_RAS @ (affine[:3, :3] @ stored + affine[:3, 3])
        np.testing.assert_allclose(scale * np.array(v) + translate, physical, atol=1e-9)


def test_view_shows_axial_slices_anterior_up_right_on_left():
    # a RAS+ volume (i → right, j → anterior, k → superior) and one voxel at the patient's
    # far left (i = 0), far front (j = 4), top (k = 5)
    ornt = view_ornt(np.eye(4))
    data = np.zeros((4, 5, 6))
    data[0, 4, 5] = 1
    view = to_view(data, ornt)
    # slider = axial (last slice = top), first row = anterior, last column = patient's left
    assert view.shape == (6, 5, 4)
    assert view[5, 0, 3] == 1


@pytest.mark.parametrize("scale", [2, (1, 1, 2), (2, 3, 1)])
@pytest.mark.parametrize("affine", list(_axis_affines())[::7])
def test_sr_layer_overlays_lr_layer(affine, scale):
    lr_shape = (4, 5, 6)
    s = scale if isinstance(scale, tuple) else (scale,) * 3
    hr_shape = tuple(n * f for n, f in zip(lr_shape, s))
    lr_geometry = LayerGeometry.from_affine(affine)
    hr_geometry = lr_geometry.replace(sr_affine(affine, s))
    lr_kw = lr_geometry.layer_kwargs(lr_shape)
    hr_kw = hr_geometry.layer_kwargs(hr_shape)
    vs = view_factors(s, lr_geometry.ornt)
    assert stored_factors(vs, lr_geometry.ornt) == s
    # SPEC §5 in napari terms, through the library's own helper
    expected_scale, expected_translate = napari_scale_translate(lr_kw["scale"], lr_kw["translate"], vs)
    np.testing.assert_allclose(hr_kw["scale"], expected_scale, atol=1e-9)
    np.testing.assert_allclose(hr_kw["translate"], expected_translate, atol=1e-9)
    # the s HR voxels of every LR voxel are centred on it (world coordinates)
    lr_scale, lr_t = np.array(lr_kw["scale"]), np.array(lr_kw["translate"])
    hr_scale, hr_t = np.array(hr_kw["scale"]), np.array(hr_kw["translate"])
    for u in [(0, 0, 0), (1, 2, 3)]:
        centre = lr_scale * np.array(u) + lr_t
        children = [hr_scale * (np.array(u) * vs + np.array(k)) + hr_t
                    for k in itertools.product(*[range(f) for f in vs])]
        np.testing.assert_allclose(np.mean(children, axis=0), centre, atol=1e-9)
    # and the world position of an HR voxel is its physical position under sr_affine
    v = (1, 2, 3)
    stored = _stored_index(v, hr_geometry.ornt, hr_shape)
    hr_aff = sr_affine(affine, s)
    physical = WORLD_FROM_RAS @ (hr_aff[:3, :3] @ stored + hr_aff[:3, 3])
    np.testing.assert_allclose(hr_scale * np.array(v) + hr_t, physical, atol=1e-9)


def test_plain_layer_geometry_round_trips():
    scale, translate = (0.5, 2.0, 1.5), (10.0, -3.0, 7.0)
    geometry = LayerGeometry.from_layer({}, scale, translate, 3)
    np.testing.assert_array_equal(geometry.ornt, IDENTITY_ORNT)
    np.testing.assert_array_equal(view_ornt(plain_affine(scale, translate)), IDENTITY_ORNT)
    s, t = scale_translate(geometry.affine, geometry.ornt, (3, 4, 5))
    np.testing.assert_allclose(s, scale)
    np.testing.assert_allclose(t, translate)
