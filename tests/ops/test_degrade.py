"""Tests of the LR simulation (SPEC §3) in napari_volumenet.ops.degrade."""

import numpy as np
import pytest
from skimage.transform import resize

from napari_volumenet.errors import InputError
from napari_volumenet.ops.degrade import crop_to_multiple, degrade, lr_shape

WAVES = [(1.0, 40.0, 0.3), (0.7, 50.0, 1.0), (0.5, 45.0, 2.0)]  # amplitude, period (voxels), phase


def _smooth(coords, sigmas):
    """5 + one slow sinusoid per axis, each attenuated as a Gaussian of std ``sigma`` would."""
    out = 5.0
    for (amp, period, phase), c, sigma in zip(WAVES, coords, sigmas):
        w = 2 * np.pi / period
        out = out + amp * np.exp(-(sigma**2) * w**2 / 2) * np.sin(w * c + phase)
    return out


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((16, 16, 16), 2, (8, 8, 8)),
        ((17, 18, 21), 2, (8, 9, 10)),
        ((13, 14, 15), 3, (4, 4, 5)),
        ((9, 10, 11), (1, 1, 2), (9, 10, 5)),
        ((12, 13, 9), (2, 3, 1), (6, 4, 9)),
    ],
)
def test_output_shape_and_dtype(shape, scale, expected):
    hr = np.random.default_rng(0).random(shape)
    lr = degrade(hr, scale)
    assert lr.shape == expected == lr_shape(shape, scale)
    assert lr.dtype == np.float32


def test_crop_to_multiple_is_a_view_of_the_start():
    hr = np.arange(17 * 18 * 21, dtype=np.float32).reshape(17, 18, 21)
    cropped = crop_to_multiple(hr, (2, 4, 1))
    assert cropped.shape == (16, 16, 21)
    assert np.shares_memory(cropped, hr)
    np.testing.assert_array_equal(cropped, hr[:16, :16, :])
    assert crop_to_multiple(hr, 3).shape == (15, 18, 21)


def test_deterministic():
    hr = np.random.default_rng(1).normal(size=(20, 22, 24)).astype(np.float32)
    a = degrade(hr, 2)
    b = degrade(hr.copy(), 2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale", [2, 3, (1, 1, 2)])
def test_equals_skimage_resize(scale):
    hr = np.random.default_rng(2).random((19, 24, 25)) * 1000 - 200
    s = (scale,) * 3 if isinstance(scale, int) else scale
    cropped = hr[tuple(slice(0, n - n % f) for n, f in zip(hr.shape, s))].astype(np.float32)
    out_shape = tuple(n // f for n, f in zip(hr.shape, s))
    expected = resize(cropped, out_shape, order=3, anti_aliasing=True, mode="reflect", preserve_range=True)
    np.testing.assert_allclose(degrade(hr, scale), expected, rtol=0, atol=1e-4)


def test_integer_input_in_native_units():
    hr = np.random.default_rng(3).integers(-1000, 2000, size=(16, 16, 16)).astype(np.int16)
    lr = degrade(hr, 2)
    np.testing.assert_allclose(lr, degrade(hr.astype(np.float32), 2))
    assert lr.min() >= -1000 and lr.max() <= 2000  # clipped to the HR range


def test_constant_volume_stays_constant():
    lr = degrade(np.full((12, 14, 16), 37.5), 2)
    np.testing.assert_allclose(lr, 37.5, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, (1, 1, 2)])
def test_geometry_lr_centre_is_at_s_i_plus_half_s_minus_one(scale):
    """A slow signal is reproduced at HR coordinate s·i + (s−1)/2 (pixel-area alignment), not shifted."""
    s = (scale,) * 3 if isinstance(scale, int) else scale
    shape = tuple(24 * f for f in s)
    hr = _smooth(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), (0, 0, 0))
    lr = degrade(hr, scale)
    sigmas = [(f - 1) / 2 for f in s]
    inner = (slice(3, -3),) * 3  # away from the mirrored borders

    def expected(shift):
        centres = [f * np.arange(n // f) + (f - 1) / 2 + shift * (f > 1) for n, f in zip(shape, s)]
        return _smooth(np.meshgrid(*centres, indexing="ij"), sigmas)

    assert np.abs(lr - expected(0.0))[inner].max() < 2e-3
    # the corner-aligned (s·i) or other half-voxel-shifted grids are clearly wrong
    assert np.abs(lr - expected(0.5))[inner].max() > 2e-2
    assert np.abs(lr - expected(-0.5))[inner].max() > 2e-2


def test_axes_with_factor_one_are_untouched():
    rng = np.random.default_rng(4)
    plane = rng.random((10, 11, 1))
    hr = np.repeat(plane, 16, axis=2)  # varies only along axes 0 and 1
    lr = degrade(hr, (1, 1, 2))
    np.testing.assert_allclose(lr, hr[:, :, ::2], rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_nyquist_checkerboard_is_suppressed(scale):
    idx = np.indices((12 * scale,) * 3).sum(axis=0)
    hr = np.where(idx % 2 == 0, 1.0, -1.0)
    lr = degrade(hr, scale)
    assert np.abs(lr).max() < 0.02  # would be ±1 at integer sample points without anti-aliasing


def test_nyquist_stripes_along_one_axis_are_suppressed():
    hr = np.broadcast_to(np.where(np.arange(36) % 2 == 0, 1.0, -1.0), (36, 36, 36)).copy()
    lr = degrade(hr, 3)  # LR centres 3i+1 fall on HR samples: ±1 without anti-aliasing
    assert np.abs(lr).max() < 0.05
    plain = resize(hr.astype(np.float32), (12, 12, 12), order=3, anti_aliasing=False, mode="reflect")
    assert np.abs(plain).max() > 0.9


def test_rejects_2d_and_4d():
    with pytest.raises(InputError, match="3D"):
        degrade(np.zeros((32, 32)), 2)
    with pytest.raises(InputError, match="3D"):
        degrade(np.zeros((8, 8, 8, 2)), 2)


def test_rejects_too_small_volume():
    with pytest.raises(InputError, match="too small"):
        degrade(np.zeros((7, 32, 32)), 2)  # LR axis 0 would be 3
    with pytest.raises(InputError, match="too small"):
        degrade(np.zeros((32, 32, 11)), (1, 1, 3))
    assert degrade(np.zeros((8, 8, 8)), 2).shape == (4, 4, 4)


def test_rejects_complex():
    with pytest.raises(InputError):
        degrade(np.zeros((16, 16, 16), dtype=np.complex64), 2)


def test_thick_slices_are_the_mean_of_the_hr_slices_they_cover():
    from napari_volumenet.ops.degrade import thick_slices

    hr = np.random.default_rng(0).random((9, 10, 18)).astype(np.float32)
    lr = thick_slices(hr, axis=2, factor=4)
    assert lr.shape == (9, 10, 4) and lr.dtype == np.float32
    np.testing.assert_allclose(lr[..., 1], hr[..., 4:8].mean(axis=2), rtol=1e-6)
    np.testing.assert_allclose(thick_slices(hr, axis=0, factor=2)[3], hr[6:8].mean(axis=0), rtol=1e-6)
    assert np.allclose(thick_slices(np.full((8, 16, 8), 7.0), 1, 4), 7.0)


def test_a_slice_gap_keeps_the_centred_part_of_each_slab():
    from napari_volumenet.ops.degrade import slice_profile, thick_slices

    np.testing.assert_allclose(slice_profile(4, gap=1), [0.5 / 3, 1 / 3, 1 / 3, 0.5 / 3])
    np.testing.assert_allclose(slice_profile(3, gap=1), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(slice_profile(4, gap=2), [0, 0.5, 0.5, 0])
    hr = np.random.default_rng(1).random((16, 5, 6)).astype(np.float32)
    expected = (0.5 * hr[4] + hr[5] + hr[6] + 0.5 * hr[7]) / 3
    np.testing.assert_allclose(thick_slices(hr, axis=0, factor=4, gap=1)[1], expected, rtol=1e-6)
    with pytest.raises(InputError):
        slice_profile(4, gap=4)
    with pytest.raises(InputError, match="too small"):
        thick_slices(hr, axis=0, factor=5)
