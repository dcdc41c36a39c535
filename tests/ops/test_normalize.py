"""Tests of intensity normalisation (SPEC §3) in napari_volumenet.ops.normalize."""

import json

import numpy as np
import pytest
import torch

from napari_volumenet.errors import InputError, WeightsError
from napari_volumenet.ops import normalize as norm_mod
from napari_volumenet.ops.normalize import MODALITIES, Normalization, fit_normalization


def _mri(shape=(20, 21, 22), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.gamma(2.0, 150.0, size=shape)).astype(np.float32)


def test_modalities():
    assert MODALITIES == ("mri", "ct")


def test_mri_high_is_the_999_percentile():
    vol = _mri()
    n = fit_normalization(vol, "mri")
    assert n.modality == "mri"
    assert n.low == 0.0
    assert n.high == pytest.approx(float(np.percentile(vol, 99.9)), rel=1e-12)
    assert n.high < vol.max()


def test_mri_percentile_of_large_volume_uses_a_strided_subsample(monkeypatch):
    monkeypatch.setattr(norm_mod, "MAX_PERCENTILE_SAMPLES", 1000)
    vol = _mri((30, 30, 30))
    n = fit_normalization(vol, "mri")
    # smallest stride k with ceil(30/k)^3 <= 1000 is 3
    assert n.high == pytest.approx(float(np.percentile(vol[::3, ::3, ::3], 99.9)), rel=1e-12)
    assert fit_normalization(vol, "mri") == n  # deterministic


def test_mri_falls_back_to_max_when_percentile_is_zero():
    vol = np.zeros((10, 10, 20), dtype=np.float32)
    vol[1, 2, 3] = 42.0  # one bright voxel out of 2000: the 99.9th percentile is 0
    n = fit_normalization(vol, "mri")
    assert n.high == 42.0


def test_mri_empty_volume_is_an_error():
    with pytest.raises(InputError, match="empty"):
        fit_normalization(np.zeros((8, 8, 8)), "mri")
    with pytest.raises(InputError, match="empty"):
        fit_normalization(-np.ones((8, 8, 8)), "mri")


def test_mri_nan_is_an_error():
    vol = _mri()
    vol[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_normalization(vol, "mri")


def test_bad_modality():
    with pytest.raises(InputError, match="modality"):
        fit_normalization(_mri(), "pet")
    with pytest.raises(InputError, match="modality"):
        Normalization("MRI", 0.0, 1.0)


def test_invalid_window():
    with pytest.raises(InputError):
        Normalization("mri", 5.0, 5.0)
    with pytest.raises(InputError):
        Normalization("mri", 0.0, float("nan"))


def test_ct_window_maps_minus_1000_to_0_and_1000_to_1():
    n = fit_normalization(np.zeros((4, 4, 4), dtype=np.int16), "ct")
    assert (n.modality, n.low, n.high) == ("ct", -1000.0, 1000.0)
    y = n.apply(np.array([-1000, 0, 1000, 3000, -2000], dtype=np.int16))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0, 2.0, -0.5])


def test_clip_only_when_asked():
    n = Normalization("ct", -1000.0, 1000.0)
    x = np.array([-3000.0, -1000.0, 500.0, 2500.0])
    np.testing.assert_allclose(n.apply(x, clip=True), [0.0, 0.0, 0.75, 1.0])
    np.testing.assert_allclose(n.apply(x), [-1.0, 0.0, 0.75, 1.75])


@pytest.mark.parametrize("modality", MODALITIES)
def test_round_trip(modality):
    vol = _mri() if modality == "mri" else np.random.default_rng(5).uniform(-1024, 3071, (16, 16, 16))
    n = fit_normalization(vol, modality)
    y = n.apply(vol)
    assert y.dtype == np.float32
    back = n.invert(y)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, vol, rtol=1e-6, atol=1e-6 * (n.high - n.low))


def test_apply_formula():
    n = Normalization("mri", 0.0, 400.0)
    np.testing.assert_allclose(n.apply(np.array([0.0, 100.0, 400.0, 800.0])), [0.0, 0.25, 1.0, 2.0])
    np.testing.assert_allclose(n.invert(np.array([0.0, 0.25, 1.0, 2.0])), [0.0, 100.0, 400.0, 800.0])


def test_dict_round_trip_is_json_safe():
    n = fit_normalization(_mri(), "mri")
    d = n.to_dict()
    assert set(d) == {"modality", "low", "high"}
    assert all(type(d[k]) is float for k in ("low", "high"))
    restored = Normalization.from_dict(json.loads(json.dumps(d)))
    assert restored == n


def test_from_dict_errors():
    with pytest.raises(WeightsError):
        Normalization.from_dict({"modality": "mri", "low": 0.0})
    with pytest.raises(WeightsError):
        Normalization.from_dict({"modality": "xray", "low": 0.0, "high": 1.0})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_tensors_keep_dtype(dtype):
    n = Normalization("ct", -1000.0, 1000.0)
    x = torch.tensor([-1000.0, 0.0, 1000.0, 2000.0], dtype=dtype)
    y = n.apply(x)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype
    tol = {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.bfloat16 else {"rtol": 1e-6, "atol": 1e-6}
    torch.testing.assert_close(y.float(), torch.tensor([0.0, 0.5, 1.0, 1.5]), **tol)
    yc = n.apply(x, clip=True)
    assert yc.dtype == dtype
    torch.testing.assert_close(yc.float(), torch.tensor([0.0, 0.5, 1.0, 1.0]), **tol)
    assert y.float().max() > 1.4  # clipping a new result did not touch the unclipped one
    back = n.invert(y)
    assert isinstance(back, torch.Tensor) and back.dtype == dtype
    scale = 1000.0 if dtype == torch.bfloat16 else 1.0
    torch.testing.assert_close(back.float(), x.float(), rtol=tol["rtol"], atol=tol["atol"] * scale)


def test_numpy_and_torch_agree():
    vol = _mri((6, 7, 8))
    n = fit_normalization(vol, "mri")
    np.testing.assert_allclose(n.apply(torch.from_numpy(vol)).numpy(), n.apply(vol), rtol=1e-6)
