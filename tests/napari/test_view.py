"""The displayed slice and the drawn region in voxel indices, without Qt or a viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_volumenet._view import (
    LayerFrame, hr_region, last_rectangle, onto_slice, region_size, region_slices, slice_index, sliced_axis,
    view_regions,
)


def _frame(scale, translate, shape=()):
    """The frame of a layer placed by ``scale`` and ``translate`` (world = data · scale + translate)."""
    scale, translate = np.asarray(scale, float), np.asarray(translate, float)
    return LayerFrame.of(lambda data: np.asarray(data) * scale + translate, len(scale), shape)


# LR voxels of 2 mm; the ×2 HR grid overlays it (SPEC §5: HR voxel 0 centred at LR coordinate −1/4)
LR = _frame((2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (10, 12, 14))
HR = _frame((1.0, 1.0, 1.0), (-0.5, -0.5, -0.5), (20, 24, 28))


def test_frame_of_scale_and_translate():
    frame = _frame((2.0, 3.0, 4.0), (1.0, -2.0, 0.5), (4, 5, 6))
    expected = np.eye(4)
    expected[:3, :3] = np.diag([2.0, 3.0, 4.0])
    expected[:3, 3] = (1.0, -2.0, 0.5)
    np.testing.assert_allclose(frame.matrix, expected)
    assert frame.ndim == 3 and frame.shape == (4, 5, 6)
    data = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(frame.to_world(data), [[1.0, -2.0, 0.5], [3.0, 4.0, 12.5]])
    np.testing.assert_allclose(frame.to_data(frame.to_world(data)), data)
    np.testing.assert_allclose(frame.to_data([7.0, 3.0, 4.0, 12.5]), [1.0, 2.0, 3.0])  # the last 3 of a 4D point


def test_frame_matches_napari_for_any_transform():
    layers = pytest.importorskip("napari.layers")
    layer = layers.Image(np.zeros((4, 5, 6)), scale=(2, 3, 4), translate=(1, 2, 3), rotate=30,
                         shear=(0.1, 0.2, 0.3), affine=np.diag([1.5, 1.0, 0.5, 1.0]))
    frame = LayerFrame.of(layer.data_to_world, layer.ndim, layer.data.shape)
    for data in ([0, 0, 0], [1.5, -2.0, 3.25], [3, 4, 5]):
        np.testing.assert_allclose(frame.to_world(data), layer.data_to_world(data), atol=1e-12)
        world = np.asarray(layer.data_to_world(data))
        np.testing.assert_allclose(frame.to_data(world), layer.world_to_data(world), atol=1e-12)


def test_sliced_axis_only_in_a_2d_view_of_a_3d_world():
    assert sliced_axis(2, (0,)) == 0
    assert sliced_axis(2, (2,)) == 2
    assert sliced_axis(3, ()) is None
    assert sliced_axis(2, (0, 1)) is None


def test_slice_index_in_the_hr_grid():
    assert slice_index(HR, (9.5, 0.0, 0.0), 0) == 10  # HR voxel 10 is centred at 9.5 mm
    assert slice_index(HR, (9.8, 0.0, 0.0), 0) == 10
    assert slice_index(LR, (9.5, 0.0, 0.0), 0) == 5
    assert slice_index(HR, (0.0, -7.0, 0.0), 1) == 0  # clipped to the volume
    assert slice_index(HR, (0.0, 0.0, 99.0), 2) == 27
    unit = _frame((1, 1, 1), (0, 0, 0), (10, 10, 10))
    assert slice_index(unit, (12.6, 0, 0), 0) == 9
    assert slice_index(unit, (-1, 3.4, 0), 1) == 3


def test_onto_slice_moves_every_shape_and_only_when_needed():
    frame = _frame((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    shapes = [np.array([[3.0, 1.0, 1.0], [3.0, 5.0, 5.0]]), np.array([[2.0, 0.0, 0.0], [4.0, 1.0, 1.0]])]
    moved = onto_slice(shapes, frame, (7.0, 0.0, 0.0), 0)
    assert moved is not None and all(np.all(v[:, 0] == 7.0) for v in moved)
    np.testing.assert_array_equal(moved[0][:, 1:], shapes[0][:, 1:])
    assert shapes[0][0, 0] == 3.0  # the given arrays are left alone
    assert onto_slice(moved, frame, (7.0, 0.0, 0.0), 0) is None
    # the shapes layer's own grid: world 7 mm is its data plane 3 with a 2 mm scale and 1 mm offset
    coarse = _frame((2.0, 1.0, 1.0), (1.0, 0.0, 0.0))
    assert onto_slice(shapes, coarse, (7.0, 0.0, 0.0), 0)[1][0, 0] == 3.0


def test_last_rectangle_else_the_last_shape():
    shapes = [np.full((4, 3), 1.0), np.full((4, 3), 2.0), np.full((2, 3), 3.0)]
    assert last_rectangle(shapes, ["rectangle", "rectangle", "line"])[0, 0] == 2.0
    assert last_rectangle(shapes, ["ellipse", "polygon", "line"])[0, 0] == 3.0


def test_region_slices_hr_region_and_size():
    corners = np.array([[5.0, 1.2, 2.0], [5.0, 4.8, 7.0]])
    assert region_slices(corners, [1, 2], (10, 10, 10)) == (slice(2, 5), slice(2, 8))
    assert region_slices(np.array([[0, 1.2, 2.0], [0, 1.8, 7.0]]), [1, 2], (10, 10, 10)) is None
    assert region_slices(np.array([[0, -3.0, 8.0], [0, 2.0, 30.0]]), [1, 2], (10, 10, 10)) == (
        slice(0, 3), slice(8, 10))
    assert hr_region((slice(2, 5), slice(1, 3)), (2, 3)) == (slice(4, 10), slice(3, 9))
    assert region_size((slice(4, 12), slice(6, 20))) == "8×14"


def test_view_regions_cover_the_same_physical_area():
    # a box from 3 to 11 mm (axis 1) and 4.5 to 9 mm (axis 2) on the slice across axis 0
    corners = np.array([[6.0, 3.0, 4.5], [6.0, 3.0, 9.0], [6.0, 11.0, 9.0], [6.0, 11.0, 4.5]])
    hr, lr = view_regions(corners, 0, HR, LR, (2, 2, 2))
    assert lr == (slice(2, 6), slice(3, 5))  # LR centres 4, 6, 8, 10 mm and 6, 8 mm
    assert hr == (slice(4, 12), slice(6, 10))  # exactly their HR voxels
    for axis, (hr_axis, lr_axis) in enumerate(zip(hr, lr), start=1):
        hr_edges = HR.to_world([[0, hr_axis.start, hr_axis.start], [0, hr_axis.stop, hr_axis.stop]])[:, axis] - 0.5
        lr_edges = LR.to_world([[0, lr_axis.start, lr_axis.start], [0, lr_axis.stop, lr_axis.stop]])[:, axis] - 1.0
        np.testing.assert_allclose(hr_edges, lr_edges)  # same physical edges
    # without the LR layer: the HR voxels whose centres lie inside
    assert view_regions(corners, 0, HR, None, (2, 2, 2)) == ((slice(4, 12), slice(5, 10)), None)
    # no LR voxel centre inside: no region at all
    thin = np.array([[6.0, 4.2, 4.5], [6.0, 5.8, 9.0]])
    assert view_regions(thin, 0, HR, LR, (2, 2, 2)) == (None, None)


def test_view_regions_are_in_the_slice_array_axis_order():
    """The region's slices index the 2D slice array (ascending axes), whatever napari's dims order."""
    corners = np.array([[3.0, 6.0, 2.0], [11.0, 6.0, 9.0]])  # a box on the slice across axis 1
    hr, lr = view_regions(corners, 1, HR, LR, (2, 2, 2))
    assert lr == (slice(2, 6), slice(1, 5))  # axis 0, then axis 2
    assert hr == (slice(4, 12), slice(2, 10))
