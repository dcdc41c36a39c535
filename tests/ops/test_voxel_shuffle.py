"""Tests of the 3D pixel shuffle (SPEC §1) in napari_volumenet.ops.voxel_shuffle."""

import pytest
import torch
from torch.nn import functional as F

from napari_volumenet.ops.voxel_shuffle import VoxelShuffle, voxel_shuffle, voxel_unshuffle

SCALES = [(2, 2, 2), (1, 1, 2), (3, 2, 1), (2, 3, 4)]


def naive_shuffle(x: torch.Tensor, scale) -> torch.Tensor:
    """Channel c·s³ + (d0·s1 + d1)·s2 + d2 at LR voxel (z, y, x) → channel c at HR voxel
    (s0·z + d0, s1·y + d1, s2·x + d2)."""
    s0, s1, s2 = scale
    n, cs, d, h, w = x.shape
    c_out = cs // (s0 * s1 * s2)
    out = torch.empty(n, c_out, d * s0, h * s1, w * s2, dtype=x.dtype)
    for b in range(n):
        for c in range(c_out):
            for d0 in range(s0):
                for d1 in range(s1):
                    for d2 in range(s2):
                        channel = c * s0 * s1 * s2 + (d0 * s1 + d1) * s2 + d2
                        for z in range(d):
                            for y in range(h):
                                for xx in range(w):
                                    out[b, c, s0 * z + d0, s1 * y + d1, s2 * xx + d2] = x[b, channel, z, y, xx]
    return out


@pytest.mark.parametrize("scale", SCALES)
def test_shuffle_matches_loop(scale):
    torch.manual_seed(0)
    s3 = scale[0] * scale[1] * scale[2]
    x = torch.randn(2, 2 * s3, 2, 3, 2)
    expected = naive_shuffle(x, scale)
    y = voxel_shuffle(x, scale)
    assert y.shape == (2, 2, 2 * scale[0], 3 * scale[1], 2 * scale[2])
    assert torch.equal(y, expected)
    assert torch.equal(VoxelShuffle(scale)(x), expected)


@pytest.mark.parametrize("scale", SCALES)
def test_channel_order_one_output_channel(scale):
    """With one output channel, HR offset (d0, d1, d2) in each LR voxel comes from channel (d0·s1 + d1)·s2 + d2."""
    s0, s1, s2 = scale
    s3 = s0 * s1 * s2
    x = torch.arange(s3, dtype=torch.float32).reshape(1, s3, 1, 1, 1).expand(1, s3, 2, 2, 3).contiguous()
    y = voxel_shuffle(x, scale)[0, 0]
    for d0 in range(s0):
        for d1 in range(s1):
            for d2 in range(s2):
                block = y[d0::s0, d1::s1, d2::s2]
                assert torch.all(block == (d0 * s1 + d1) * s2 + d2)


@pytest.mark.parametrize("scale", SCALES)
def test_unshuffle_inverts_shuffle(scale):
    torch.manual_seed(1)
    s3 = scale[0] * scale[1] * scale[2]
    x = torch.randn(2, 2 * s3, 3, 2, 2)
    assert torch.equal(voxel_unshuffle(voxel_shuffle(x, scale), scale), x)
    hr = torch.randn(2, 2, 3 * scale[0], 2 * scale[1], 2 * scale[2])
    lr = voxel_unshuffle(hr, scale)
    assert lr.shape == (2, 2 * s3, 3, 2, 2)
    assert torch.equal(voxel_shuffle(lr, scale), hr)


def test_scale_one_is_identity():
    x = torch.randn(2, 3, 2, 3, 4)
    assert torch.equal(voxel_shuffle(x, (1, 1, 1)), x)
    assert torch.equal(voxel_unshuffle(x, (1, 1, 1)), x)


def test_agrees_with_2d_pixel_shuffle_per_slice():
    """For scale (1, s, s) the shuffle is torch's PixelShuffle on every slice along the first axis."""
    torch.manual_seed(2)
    x = torch.randn(2, 2 * 9, 3, 4, 5)
    y = voxel_shuffle(x, (1, 3, 3))
    for z in range(3):
        assert torch.equal(y[:, :, z], F.pixel_shuffle(x[:, :, z], 3))


def test_module_accepts_int_scale_and_has_no_parameters():
    module = VoxelShuffle(2)
    assert module.scale == (2, 2, 2)
    assert list(module.parameters()) == []
    assert "scale=(2, 2, 2)" in repr(module)
    x = torch.randn(1, 8, 2, 2, 2)
    assert module(x).shape == (1, 1, 4, 4, 4)
