import math

import pytest
import torch
from torch import nn

from napari_volumenet.models import create_model, list_models
from napari_volumenet.roofline import layer_costs, measure_bandwidth, roofline

SHAPE = (5, 6, 7)
VOXELS = math.prod(SHAPE)


def test_a_small_network_costs_what_is_counted_by_hand():
    net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, padding=1, groups=4),
                        nn.Conv3d(4, 1, 1))
    costs = layer_costs(net, SHAPE)
    assert [c.name for c in costs] == ["0", "2", "3"]  # the ReLU is fused away
    assert [c.bytes_read for c in costs] == [4 * (VOXELS + 4 * 27 + 4), 4 * (4 * VOXELS + 4 * 27 + 4),
                                             4 * (4 * VOXELS + 4 + 1)]
    assert [c.bytes_written for c in costs] == [4 * 4 * VOXELS, 4 * 4 * VOXELS, 4 * VOXELS]
    assert [c.flops for c in costs] == [2 * 4 * VOXELS * 27, 2 * 4 * VOXELS * 27, 2 * VOXELS * 4]


def test_half_precision_halves_the_bytes_not_the_arithmetic():
    model = create_model("volumenet", depth=3, channels=8)
    fp32, fp16 = layer_costs(model, SHAPE, 4), layer_costs(model, SHAPE, 2)
    assert [c.bytes for c in fp16] == [c.bytes // 2 for c in fp32]
    assert [c.flops for c in fp16] == [c.flops for c in fp32]


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_costed_without_touching_its_weights(name):
    model = create_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, large = layer_costs(model, (8, 8, 8)), layer_costs(model, (8, 8, 16))
    assert small and all(c.bytes > 0 for c in small)
    convs = sum(isinstance(m, nn.Conv3d) for m in model.modules())
    assert sum(c.kind == "Conv3d" for c in small) >= convs  # a layer used twice is counted twice
    # feature maps grow with the volume, weights do not: twice the voxels, less than twice the bytes
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert sum(c.bytes for c in large) == pytest.approx(2 * sum(c.bytes for c in small) - weights, rel=0.02)
    assert sum(c.flops for c in large) == 2 * sum(c.flops for c in small)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_volumenet_arithmetic_matches_the_readme():
    flops = sum(c.flops for c in layer_costs(create_model("volumenet"), (125, 125, 75)))
    assert flops == pytest.approx(0.53e12, rel=0.01)


def test_roofline_fraction_is_the_bandwidth_bound_time_over_the_measured_time():
    costs = layer_costs(nn.Conv3d(1, 2, 1), SHAPE)
    total = sum(c.bytes for c in costs)
    result = roofline(costs, seconds=2.0, bandwidth=total / 0.5)
    assert result["bytes"] == total and result["roofline_seconds"] == pytest.approx(0.5)
    assert result["fraction"] == pytest.approx(0.25)
    assert result["achieved_bytes_per_s"] == pytest.approx(total / 2.0)


def test_measured_bandwidth_is_a_plausible_number():
    bandwidth = measure_bandwidth("cpu", nbytes=1 << 24, repeats=2)
    assert 1e8 < bandwidth < 1e13
