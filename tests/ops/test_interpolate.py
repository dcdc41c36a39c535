"""Tests of the tricubic (cubic B-spline) upsampling in napari_volumenet.ops.interpolate."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_volumenet.ops.interpolate import (
    HALO,
    TricubicUpsample,
    phase_filters,
    tricubic_upsample,
    tricubic_upsample_numpy,
)


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread is faster


def scipy_reference(v: np.ndarray, scale) -> np.ndarray:
    """scipy's ``reflect`` spline on a volume extended half-sample symmetrically far beyond the filter
    (scipy approximates the boundary of very short axes, ~1e-4 at 2 voxels), cropped back."""
    pad = 24
    scale = (scale,) * 3 if np.isscalar(scale) else tuple(scale)
    wide = np.pad(v.astype(np.float64), pad, mode="symmetric")
    out = ndimage.zoom(wide, scale, order=3, mode="reflect", grid_mode=True)
    return out[tuple(slice(pad * s, (pad + n) * s) for n, s in zip(v.shape, scale))]


@pytest.mark.parametrize(
    ("shape", "scale"),
    [
        ((8, 8, 8), 2),
        ((7, 9, 5), 2),
        ((6, 5, 7), 3),
        ((5, 6, 7), (1, 1, 2)),
        ((6, 4, 5), (2, 3, 1)),
        ((4, 5, 6), (3, 1, 4)),
        ((1, 6, 5), 2),
        ((2, 3, 1), (2, 3, 2)),
        ((3, 2, 7), (1, 1, 2)),
        ((1, 2, 3), 3),
        ((1, 1, 1), 2),
        ((40, 3, 2), (2, 1, 1)),
    ],
)
def test_matches_scipy_zoom(shape, scale):
    rng = np.random.default_rng(sum(shape))
    v = rng.random(shape).astype(np.float32)
    out = tricubic_upsample_numpy(v, scale)
    ref = scipy_reference(v, scale)
    assert out.shape == ref.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_float64_torch_matches_scipy_closely():
    rng = np.random.default_rng(7)
    v = rng.random((9, 8, 7))
    out = tricubic_upsample(torch.from_numpy(v)[None, None], (2, 3, 2))[0, 0].numpy()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, scipy_reference(v, (2, 3, 2)), rtol=0, atol=2e-6)


@pytest.mark.parametrize("shape", [(4, 5, 6), (1, 2, 3)])
def test_scale_one_is_identity(shape):
    v = np.random.default_rng(0).random(shape).astype(np.float32)
    np.testing.assert_array_equal(tricubic_upsample_numpy(v, 1), v)
    x = torch.from_numpy(v)[None, None]
    assert torch.equal(tricubic_upsample(x, (1, 1, 1)), x)
    # the factor-1 filter is (within truncation) the identity too
    f = phase_filters(1)
    delta = np.zeros_like(f)
    delta[0, HALO] = 1
    np.testing.assert_allclose(f, delta, atol=1e-6)


def test_scale_one_axis_is_left_alone():
    """With scale (1, 1, 2) every row along the last axis is upsampled on its own, the others untouched."""
    v = np.random.default_rng(1).random((5, 4, 3)).astype(np.float32)
    out = tricubic_upsample_numpy(v, (1, 1, 2))
    assert out.shape == (5, 4, 6)
    for z in range(5):
        for y in range(4):
            row = tricubic_upsample_numpy(v[z : z + 1, y : y + 1], (1, 1, 2))[0, 0]
            np.testing.assert_array_equal(out[z, y], row)


@pytest.mark.parametrize("scale", [2, 3, (2, 3, 4)])
def test_linear_ramp_reproduced_at_spec_coordinates(scale):
    """HR voxel m lies at LR coordinate (m + 0.5)/s − 0.5 (SPEC §5); cubic B-splines reproduce linear functions."""
    s = (scale,) * 3 if isinstance(scale, int) else scale
    n = 2 * HALO + 6
    a = np.array([0.7, -0.3, 0.45])
    grids = np.meshgrid(*(np.arange(n, dtype=np.float64),) * 3, indexing="ij")
    v = 1.0 + sum(ai * g for ai, g in zip(a, grids))
    out = tricubic_upsample(torch.from_numpy(v)[None, None], scale)[0, 0].numpy()
    hr_coords = [(np.arange(n * si) + 0.5) / si - 0.5 for si in s]
    hr_grids = np.meshgrid(*hr_coords, indexing="ij")
    expected = 1.0 + sum(ai * g for ai, g in zip(a, hr_grids))
    # interior: HR voxels whose LR support [i − HALO, i + HALO] stays inside the volume
    interior = tuple(slice(HALO * si, (n - HALO) * si) for si in s)
    np.testing.assert_allclose(out[interior], expected[interior], rtol=0, atol=1e-5)
    # and a constant stays constant everywhere (mirror borders included)
    const = tricubic_upsample(torch.full((1, 1, 5, 4, 3), 2.5, dtype=torch.float64), scale)
    torch.testing.assert_close(const, torch.full_like(const, 2.5), rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, (3, 2, 4)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_locality_halo(scale, axis):
    """Perturbing one LR voxel changes HR voxels only within HALO LR voxels (and really up to HALO)."""
    s = (scale,) * 3 if isinstance(scale, int) else scale
    shape = [3, 3, 3]
    shape[axis] = 2 * HALO + 5
    c = [1, 1, 1]
    c[axis] = HALO + 2
    rng = np.random.default_rng(axis)
    x = torch.from_numpy(rng.random(shape))[None, None]
    x2 = x.clone()
    x2[0, 0, c[0], c[1], c[2]] += 1.0
    changed = (tricubic_upsample(x, scale) != tricubic_upsample(x2, scale))[0, 0]
    idx = changed.nonzero()
    lr = torch.div(idx, torch.tensor(s), rounding_mode="floor")
    dist = (lr[:, axis] - c[axis]).abs()
    assert int(dist.max()) == HALO
    # the HR voxels of the perturbed LR voxel itself change
    sl = tuple(slice(ci * si, (ci + 1) * si) for ci, si in zip(c, s))
    assert changed[sl].all()


def test_batch_and_channels_are_independent():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 5, 3)
    y = tricubic_upsample(x, (2, 1, 3))
    assert y.shape == (2, 3, 8, 5, 9)
    for b in range(2):
        for c in range(3):
            single = tricubic_upsample_numpy(x[b, c].numpy(), (2, 1, 3))
            np.testing.assert_allclose(y[b, c].numpy(), single, rtol=0, atol=1e-6)
    assert torch.equal(TricubicUpsample((2, 1, 3))(x), y)
    assert TricubicUpsample(2).scale == (2, 2, 2)
    assert TricubicUpsample.halo == HALO


def test_the_border_is_half_sample_symmetric_not_whole_sample():
    """The edge voxel is repeated (scipy ``reflect``); whole-sample ``mirror`` is measurably different."""
    rng = np.random.default_rng(3)
    v = rng.random((6, 7, 8)).astype(np.float32)
    ours = tricubic_upsample_numpy(v, 2).astype(np.float64)
    whole_sample = ndimage.zoom(v.astype(np.float64), 2, order=3, mode="mirror", grid_mode=True)
    assert np.abs(ours - scipy_reference(v, 2)).max() < 1e-5
    assert np.abs(ours - whole_sample).max() > 1e-2


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_phase_filters_sum_to_one(factor):
    f = phase_filters(factor)
    assert f.shape == (factor, 2 * HALO + 1)
    np.testing.assert_allclose(f.sum(axis=1), 1.0, atol=1e-6)
    # phase p and phase factor-1-p are mirror images
    np.testing.assert_allclose(f, f[::-1, ::-1], atol=1e-15)
