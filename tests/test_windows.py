"""Display windows: foreground percentiles for MRI, level/width presets for CT (no Qt, no napari)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_volumenet._windows import (
    CT_PRESETS, FOREGROUND, default_window, foreground_window, level_width, looks_like_ct, named_window,
    preset_name, window_names,
)


def _head(seed: int = 0) -> tuple[np.ndarray, float, float]:
    """A T1-like head: half background at 0, CSF 60, grey matter 160, white matter 210, a few bright fat voxels;
    returns the volume, grey and white matter."""
    rng = np.random.default_rng(seed)
    volume = np.zeros((40, 40, 40), dtype=np.float32)
    tissue = rng.choice([60.0, 160.0, 210.0], size=(20, 40, 40), p=[0.15, 0.45, 0.40])
    volume[20:] = tissue + rng.normal(0, 4, tissue.shape)
    volume[20:, 0, :8] = 400.0  # scalp fat: 0.5 % of the head
    return volume, 160.0, 210.0


def _position(value: float, window: tuple[float, float]) -> float:
    return (value - window[0]) / (window[1] - window[0])


def test_foreground_window_keeps_grey_and_white_matter_out_of_the_top_third():
    volume, grey, white = _head()
    whole = tuple(np.percentile(volume, (0.5, 99.5)))  # the old window: the background drags it to 0
    assert whole[0] == 0.0 and _position(grey, whole) > 2 / 3  # grey and white matter in the top third
    window = foreground_window(volume)
    assert 0.3 < _position(grey, window) < 2 / 3 < _position(white, window) < 1.0  # bright, not clipped
    assert window[0] > 0.0  # the background is not what sets the low end


def test_foreground_window_of_degenerate_volumes():
    assert foreground_window(np.full((4, 4, 4), 7.0)) == (7.0, 8.0)
    assert foreground_window(np.zeros((0, 3, 3))) == (0.0, 1.0)
    two = np.zeros((8, 8, 8))
    two[4:] = 100.0
    low, high = foreground_window(two)
    assert high > low


def test_large_volumes_are_subsampled_by_whole_slices():
    volume = np.tile(np.linspace(0, 1000, 300, dtype=np.float32), (300, 300, 1))  # 27 M voxels
    low, high = foreground_window(volume)
    assert 100 < low < 200 and 950 < high < 1000


def test_ct_presets_are_level_and_width_in_hu():
    assert level_width(40, 80) == (0.0, 80.0)
    assert {name: level_width(*lw) for name, lw in CT_PRESETS.items()} == {
        "brain": (0.0, 80.0), "soft tissue": (-160.0, 240.0), "lung": (-1350.0, 150.0), "bone": (-500.0, 1300.0)}
    assert preset_name("lung") == "lung (-600/1500 HU)"


def test_default_window_tells_ct_from_mri():
    rng = np.random.default_rng(1)
    ct = rng.choice([-1000.0, 40.0, 700.0], size=(20, 20, 20), p=[0.4, 0.5, 0.1])
    mri, *_ = _head()
    assert looks_like_ct(ct) and not looks_like_ct(mri)
    assert default_window(ct) == (-160.0, 240.0)
    assert default_window(mri) == foreground_window(mri)
    assert default_window(mri, "ct") == (-160.0, 240.0)
    assert default_window(ct, "mri") == foreground_window(ct)


def test_named_windows():
    assert window_names("mri") == [FOREGROUND]
    assert window_names("ct") == [FOREGROUND, *(preset_name(n) for n in CT_PRESETS)]
    volume, *_ = _head()
    assert named_window(FOREGROUND, volume) == foreground_window(volume)
    assert named_window(preset_name("bone"), volume) == (-500.0, 1300.0)
    with pytest.raises(ValueError, match="Unknown window"):
        named_window("liver", volume)


def test_the_bundled_sample_opens_with_grey_matter_below_the_top_third():
    from napari_volumenet._sample_data import MRI_HR, sample_path
    from napari_volumenet.io import read_volume

    volume = read_volume(sample_path(MRI_HR)).data
    window = default_window(volume)
    centre = volume[tuple(slice(n * 35 // 100, n * 65 // 100) for n in volume.shape)]
    grey = centre[(centre > 150) & (centre < 185)]  # the sample's grey matter peak (white matter: ~206)
    assert _position(float(np.median(grey)), window) < 0.62
    assert _position(206.0, window) < 0.9
