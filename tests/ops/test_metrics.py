"""Tests of the paper's metric protocol (SPEC §3) in napari_volumenet.ops.metrics."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_volumenet.errors import InputError
from napari_volumenet.ops.metrics import (
    SSIM_SLAB, compute_metrics, psnr, psnr_foreground, rescale_255, rmse, ssim,
)


def _pair(shape=(12, 13, 14), seed=0, noise=5.0):
    rng = np.random.default_rng(seed)
    hr = rng.uniform(-200.0, 1800.0, size=shape)
    sr = hr + rng.normal(0.0, noise, size=shape)
    return hr, sr


def test_rescale_255():
    y = rescale_255(np.array([-1000, 0, 1000], dtype=np.int16), -1000, 1000)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, [0.0, 127.5, 255.0])
    with pytest.raises(InputError, match="constant"):
        rescale_255(np.ones(3), 1.0, 1.0)


def test_constant_hr_is_an_error():
    with pytest.raises(InputError, match="constant"):
        compute_metrics(np.full((8, 8, 8), 3.0), np.zeros((8, 8, 8)))


def test_identical_volumes():
    hr, _ = _pair()
    m = compute_metrics(hr, hr.copy())
    assert set(m) == {"rmse", "psnr", "psnr_fg", "ssim"}
    assert m["rmse"] == 0.0
    assert m["psnr"] == float("inf") and m["psnr_fg"] == float("inf")
    assert m["ssim"] == pytest.approx(1.0)
    assert psnr(hr, hr) == float("inf")


def test_known_rmse_by_hand():
    hr = np.broadcast_to(np.linspace(0.0, 255.0, 16), (16, 16, 16)).copy()  # range exactly 0..255
    sr = hr + 1.0
    sr[..., -1] = 255.0  # clipping at 255 would otherwise shorten the error there
    m = compute_metrics(hr, sr)
    assert m["rmse"] == pytest.approx(math.sqrt(15 / 16))
    hr2 = np.broadcast_to(np.linspace(0.0, 255.0, 16), (16, 16, 16)).copy()
    sr2 = hr2.copy()
    sr2[:, :, :-1] += 1.0
    sr2[:, :, -1] -= 1.0
    m2 = compute_metrics(hr2, sr2)
    assert m2["rmse"] == pytest.approx(1.0)
    assert m2["psnr"] == pytest.approx(20 * math.log10(255.0))


def test_units_do_not_matter():
    """Rescaling uses the HR min/max: the same relative error gives the same numbers in any units."""
    hr, sr = _pair()
    m = compute_metrics(hr, sr)
    m10 = compute_metrics(hr * 10 + 7, sr * 10 + 7)
    for k in m:
        assert m10[k] == pytest.approx(m[k], rel=1e-9)
    # rmse in 0..255 units: noise std 5 over a range of ~2000 is ~0.64
    assert m["rmse"] == pytest.approx(5.0 * 255 / (hr.max() - hr.min()), rel=0.05)


def test_psnr_matches_skimage():
    hr, sr = _pair(seed=1)
    low, high = hr.min(), hr.max()
    hr_r = rescale_255(hr, low, high)
    sr_r = np.clip(rescale_255(sr, low, high), 0, 255)
    expected = peak_signal_noise_ratio(hr_r, sr_r, data_range=255)
    assert psnr(hr_r, sr_r) == pytest.approx(expected, rel=1e-12)
    assert compute_metrics(hr, sr)["psnr"] == pytest.approx(expected, rel=1e-12)
    assert rmse(hr_r, sr_r) == pytest.approx(math.sqrt(np.mean((hr_r - sr_r) ** 2)), rel=1e-12)


def test_sr_is_clipped_to_0_255():
    hr = np.broadcast_to(np.linspace(0.0, 100.0, 10), (10, 10, 10)).copy()
    sr = hr.copy()
    sr[0, 0, -1] = 10_000.0  # far above the HR max: clipped to 255, i.e. to the HR max
    sr[0, 0, 0] = -10_000.0
    m = compute_metrics(hr, sr)
    assert m["psnr"] == float("inf")


def test_ssim_matches_skimage_3d():
    hr, sr = _pair(seed=2, noise=40.0)
    low, high = hr.min(), hr.max()
    hr_r = rescale_255(hr, low, high)
    sr_r = np.clip(rescale_255(sr, low, high), 0, 255)
    expected = structural_similarity(hr_r, sr_r, data_range=255)
    assert compute_metrics(hr, sr)["ssim"] == pytest.approx(expected, rel=1e-12)
    assert ssim(hr_r, sr_r) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < expected < 1.0


@pytest.mark.parametrize("planes", [SSIM_SLAB + 6, SSIM_SLAB + 7, 2 * SSIM_SLAB + 9])
def test_ssim_over_several_slabs_matches_skimage(planes):
    hr, sr = _pair(shape=(planes, 11, 9), seed=4, noise=50.0)
    hr_r, sr_r = rescale_255(hr, hr.min(), hr.max()), rescale_255(sr, hr.min(), hr.max())
    assert ssim(hr_r, sr_r) == pytest.approx(structural_similarity(hr_r, sr_r, data_range=255), rel=1e-12)
    assert ssim(hr_r[:, :, 0], sr_r[:, :, 0]) == pytest.approx(
        structural_similarity(hr_r[:, :, 0], sr_r[:, :, 0], data_range=255), rel=1e-12)


def test_ssim_2d_and_small_windows():
    hr, sr = _pair(shape=(20, 30), seed=3, noise=60.0)
    hr_r, sr_r = rescale_255(hr, hr.min(), hr.max()), rescale_255(sr, hr.min(), hr.max())
    assert ssim(hr_r, sr_r) == pytest.approx(structural_similarity(hr_r, sr_r, data_range=255), rel=1e-12)
    small_hr, small_sr = hr_r[:5, :], sr_r[:5, :]  # 5 < 7: window 5
    assert ssim(small_hr, small_sr) == pytest.approx(
        structural_similarity(small_hr, small_sr, data_range=255, win_size=5), rel=1e-12
    )
    assert ssim(hr_r[:6, :], sr_r[:6, :]) == pytest.approx(
        structural_similarity(hr_r[:6], sr_r[:6], data_range=255, win_size=5), rel=1e-12
    )
    assert math.isnan(ssim(hr_r[:2, :], sr_r[:2, :]))


def test_foreground_psnr_uses_only_foreground_voxels():
    hr = np.zeros((16, 16, 16))
    hr[4:12, 4:12, 4:12] = 200.0  # foreground (rescaled 255)
    hr[0, 0, 0] = 5.0  # background, rescaled 6.375 < 12.75
    sr = hr.copy()
    sr[hr == 0] += 30.0  # large background error
    sr[4:12, 4:12, 4:12] -= 2.0  # small foreground error: 2 units = 2.55 after rescaling
    m = compute_metrics(hr, sr)
    assert m["psnr_fg"] == pytest.approx(20 * math.log10(255 / 2.55))
    assert m["psnr"] < m["psnr_fg"] - 10
    # the threshold follows foreground_fraction
    m_all = compute_metrics(hr, sr, foreground_fraction=-1.0)
    assert m_all["psnr_fg"] == pytest.approx(m_all["psnr"])
    assert math.isnan(compute_metrics(hr, sr, foreground_fraction=1.0)["psnr_fg"])
    fg_hr = rescale_255(hr, 0, 200)
    fg_sr = np.clip(rescale_255(sr, 0, 200), 0, 255)
    assert psnr_foreground(fg_hr, fg_sr, 0.05) == pytest.approx(m["psnr_fg"])


def test_value_range_and_region():
    hr, sr = _pair(shape=(16, 16, 16), seed=4, noise=20.0)
    sr = np.clip(sr, hr.min(), hr.max())  # so that clipping does not depend on the range
    whole = (float(hr.min()), float(hr.max()))
    region = np.s_[2:12, 3:15, 5]
    m_region = compute_metrics(hr, sr, region=region)
    # region is applied after rescaling with the range of the whole hr ...
    m_slice = compute_metrics(hr[region], sr[region], value_range=whole)
    for k in m_region:
        assert m_region[k] == pytest.approx(m_slice[k], rel=1e-12)
    # ... which differs from rescaling with the slice's own range
    m_own = compute_metrics(hr[region], sr[region])
    assert m_own["rmse"] != pytest.approx(m_region["rmse"], rel=1e-3)
    hr_r = rescale_255(hr[region], *whole)
    sr_r = np.clip(rescale_255(sr[region], *whole), 0, 255)
    assert m_region["rmse"] == pytest.approx(rmse(hr_r, sr_r), rel=1e-12)
    assert m_region["ssim"] == pytest.approx(structural_similarity(hr_r, sr_r, data_range=255), rel=1e-12)
    # an explicit value_range replaces hr's own min/max
    m_wide = compute_metrics(hr, sr, value_range=(whole[0], whole[0] + 2 * (whole[1] - whole[0])))
    assert m_wide["rmse"] == pytest.approx(compute_metrics(hr, sr)["rmse"] / 2, rel=1e-3)


def test_shape_mismatch():
    with pytest.raises(InputError, match=r"\(8, 8, 8\).*\(8, 8, 9\)"):
        compute_metrics(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))


def test_border_shell_and_the_interior_and_border_psnr():
    from napari_volumenet.ops.metrics import border_shell

    shell = border_shell((6, 7, 8), (2, 1, 3))
    assert not shell[2:4, 1:6, 3:5].any() and shell.sum() == 6 * 7 * 8 - 2 * 5 * 2
    assert border_shell((3, 9, 9), (2, 2, 2)).all()  # no interior left along the first axis
    hr = np.random.default_rng(0).random((10, 10, 10)) * 200  # + 10 stays below the clip at 255
    sr = hr.copy()
    sr[0] += 10  # an error on one face only
    metrics = compute_metrics(hr, sr, value_range=(0, 255), border=(2, 2, 2))
    assert metrics["psnr_interior"] == float("inf")
    expected = 20 * np.log10(255 / np.sqrt(100 * 100 / border_shell((10, 10, 10), (2, 2, 2)).sum()))
    assert metrics["psnr_border"] == pytest.approx(expected, rel=1e-9)
    assert "psnr_border" not in compute_metrics(hr, sr)
