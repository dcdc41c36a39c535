"""Tests of the seven building blocks (SPEC §2, paper Fig. 2) in napari_volumenet.models.blocks."""

import pytest
import torch
from torch import nn

from napari_volumenet.errors import ModelError
from napari_volumenet.models import Block, list_blocks


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread is faster


PAPER_BLOCKS = ["conv", "xception", "mobilenetv2", "cpd", "lwv1", "lwv2", "queue"]


def expected_weights(kind: str, s: int, t: int, ratio: float) -> int:
    """The 'parameters (no bias)' column of SPEC §2."""
    r = round(ratio * t)
    e = 2 * s
    return {
        "conv": 27 * s * t,
        "xception": s * t + 27 * t,
        "mobilenetv2": s * e + 27 * e + e * t,
        "cpd": s * r + 9 * r + r * t,
        "lwv1": 3 * s * r + 3 * r + 3 * r * t,
        "lwv2": 3 * s * r + 3 * r * r + 3 * r * t,
        "queue": s * r + 9 * r * r + r * t,
    }[kind]


def convs(block: nn.Module) -> list[nn.Conv3d]:
    return [m for m in block.modules() if isinstance(m, nn.Conv3d)]


def test_list_blocks_is_the_paper_set_in_order():
    assert list_blocks() == PAPER_BLOCKS


@pytest.mark.parametrize("kind", list_blocks())
@pytest.mark.parametrize(
    ("s", "t", "ratio"),
    [(8, 8, 0.5), (4, 12, 0.5), (16, 8, 0.5), (12, 8, 0.25), (32, 32, 0.5), (3, 16, 0.25)],
)
def test_weight_count_matches_spec_formula(kind, s, t, ratio):
    block = Block(kind, s, t, ratio=ratio)
    weights = sum(c.weight.numel() for c in convs(block))
    assert weights == expected_weights(kind, s, t, ratio)
    # every convolution has a bias, and biases are the only other parameters
    assert all(c.bias is not None for c in convs(block))
    biases = sum(c.bias.numel() for c in convs(block))
    assert sum(p.numel() for p in block.parameters()) == weights + biases


@pytest.mark.parametrize("kind", list_blocks())
def test_default_ratio_is_one_half(kind):
    assert sum(c.weight.numel() for c in convs(Block(kind, 6, 8))) == expected_weights(kind, 6, 8, 0.5)


@pytest.mark.parametrize("kind", list_blocks())
def test_layers_are_convolutions_then_one_relu(kind):
    block = Block(kind, 4, 6)
    layers = list(block.children())
    assert isinstance(layers[-1], nn.ReLU)
    assert all(isinstance(m, nn.Conv3d) for m in layers[:-1]), "no activation between inner convolutions"
    no_act = list(Block(kind, 4, 6, activation=False).children())
    assert all(isinstance(m, nn.Conv3d) for m in no_act)
    assert len(no_act) == len(layers) - 1


@pytest.mark.parametrize("kind", list_blocks())
@pytest.mark.parametrize(("s", "t"), [(3, 5), (8, 4)])
def test_shape_preserved_and_relu_at_end(kind, s, t):
    torch.manual_seed(0)
    x = torch.randn(2, s, 5, 6, 7)
    with torch.no_grad():
        y = Block(kind, s, t)(x)
        assert y.shape == (2, t, 5, 6, 7)
        assert (y >= 0).all()
        assert (y > 0).any()
        z = Block(kind, s, t, activation=False)(x)
    assert z.shape == (2, t, 5, 6, 7)
    assert (z < 0).any()


@pytest.mark.parametrize("kind", list_blocks())
def test_radius_is_one(kind):
    assert Block(kind, 4, 8).radius == 1
    assert Block(kind, 4, 8, ratio=0.25, activation=False).radius == 1


def _changed_extent(block: nn.Module, channels: int, size: int = 7) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Per-axis max distance of output voxels that change when one input voxel (the centre) changes."""
    torch.manual_seed(1)
    block = block.double().eval()
    x = torch.randn(1, channels, size, size, size, dtype=torch.float64)
    c = size // 2
    x2 = x.clone()
    x2[0, :, c, c, c] += 1.0 + torch.rand(channels, dtype=torch.float64)
    with torch.no_grad():
        changed = (block(x) != block(x2)).any(dim=1)[0]
    idx = changed.nonzero()
    assert idx.numel() > 0
    return changed, tuple(int((idx[:, a] - c).abs().max()) for a in range(3))


@pytest.mark.parametrize("kind", list_blocks())
def test_receptive_field_is_radius(kind):
    block = Block(kind, 4, 6)
    _, extent = _changed_extent(block, 4)
    assert max(extent) <= block.radius
    # without the final ReLU no change can be masked: the footprint is exactly the radius on every axis
    linear = Block(kind, 4, 6, activation=False)
    _, extent = _changed_extent(linear, 4)
    assert extent == (linear.radius,) * 3


@pytest.mark.parametrize("kind", list_blocks())
def test_inner_channels(kind):
    block = Block(kind, 6, 8)
    inner = [m.out_channels for m in convs(block)][:-1]
    assert block.inner_channels == (max(inner) if inner else 0)


def test_unknown_block_and_bad_ratio_raise_model_error():
    with pytest.raises(ModelError):
        Block("nope", 4, 4)
    with pytest.raises(ModelError):
        Block("queue", 4, 4, ratio=0)
    with pytest.raises(ModelError):
        Block("queue", 4, 4, ratio=1.5)
