"""CT padding outside the reconstruction circle (SPEC §4): detected, hidden as air, written back."""

import numpy as np
import pytest

from napari_volumenet.inference import upscale
from napari_volumenet.ops.degrade import degrade
from napari_volumenet.ops.metrics import rmse
from napari_volumenet.ops.normalize import fit_normalization
from napari_volumenet.ops.padding import AIR_HU, Padding, detect_padding, resolve_padding
from napari_volumenet.weights import default_weights, load_weights

PAD = -3024.0


def phantom(shape=(16, 48, 48), radius=0.45, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A CT slab (HU): textured body in air inside a reconstruction circle, ``PAD`` outside it; and the
    circle's mask."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-0.5, 0.5, n) for n in shape), indexing="ij")
    body = (y / 0.36) ** 2 + (x / 0.3) ** 2 < 1
    lung = ((y / 0.14) ** 2 + ((np.abs(x) - 0.14) / 0.1) ** 2 < 1) & body
    bone = (y ** 2 + x ** 2 < 0.06 ** 2) & body
    hu = np.full(shape, -1000.0) + rng.normal(0, 8, shape)
    hu[body] = 40 + 30 * np.sin(9 * x[body] + 4 * z[body]) + rng.normal(0, 8, body.sum())
    hu[lung], hu[bone] = -820 + rng.normal(0, 15, lung.sum()), 700.0
    circle = y ** 2 + x ** 2 < radius ** 2
    hu[~circle] = PAD
    return hu.astype(np.float32), circle


def test_padding_is_detected_only_where_a_constant_below_air_fills_the_corners():
    hu, _ = phantom()
    assert detect_padding(hu) == PAD
    assert detect_padding(np.maximum(hu, -1024)) is None  # air at −1024 is not padding
    noisy = hu.copy()
    noisy[noisy == PAD] = PAD + np.random.default_rng(1).random(int((hu == PAD).sum()))
    assert detect_padding(noisy) is None  # values below air that are not one constant
    assert resolve_padding(hu, "mri") is None and resolve_padding(hu, "ct", None) is None
    assert resolve_padding(hu, "ct", "-2000") == Padding(-2000.0)


def test_restore_writes_the_padding_back_per_lr_voxel_and_floors_the_rest_at_air():
    lr = np.array([[[PAD, 0.0]]], np.float32)
    hr = np.full((2, 2, 4), -1500.0, np.float32)
    Padding(PAD).restore(hr, lr, (2, 2, 2))
    assert (hr[..., :2] == PAD).all() and (hr[..., 2:] == AIR_HU).all()


@pytest.fixture(scope="module")
def ct_model():
    return load_weights(default_weights("ct"))[0]


def test_a_padded_ct_keeps_its_padding_and_stays_clean_inside_the_field_of_view(ct_model):
    hr, circle = phantom()
    lr = degrade(hr, 2)
    norm = fit_normalization(lr, "ct")
    handled = upscale(lr, ct_model, normalization=norm, tile=0)
    naive = upscale(lr, ct_model, normalization=norm, tile=0, pad_value=None)
    lr_padding = np.repeat(np.repeat(np.repeat(lr == PAD, 2, 0), 2, 1), 2, 2)
    assert lr_padding.any() and (handled[lr_padding] == PAD).all()
    assert handled.min() >= lr.min() and handled[~lr_padding].min() >= AIR_HU
    assert naive.min() < lr.min()  # without the rule the network undershoots below the input's minimum
    fov = circle & ~lr_padding
    assert rmse(hr[fov], handled[fov]) < 0.8 * rmse(hr[fov], naive[fov])
    tiled = upscale(lr, ct_model, normalization=norm, tile=(4, 12, 16))
    assert np.abs(tiled - handled).max() < 1e-2  # HU; tiles see the same rule
