"""Tests of ParallelNet / VolumeNet, the baselines and the registry (SPEC §1, §6)."""

import pytest
import torch
from torch import nn

from napari_volumenet.errors import ModelError
from napari_volumenet.models import count_parameters, create_model, list_blocks, list_models, register
from napari_volumenet.models import registry
from napari_volumenet.ops.scale import as_scale
from napari_volumenet.ops.voxel_shuffle import voxel_shuffle


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread is faster


SPEC_MODELS = ["srcnn3d", "dcsrn", "mdcsrn", "parallelnet", "volumenet"]

# small but non-trivial configurations, for speed
SMALL = {
    "parallelnet": {"depth": 3, "channels": 8},
    "volumenet": {"depth": 3, "channels": 8},
    "srcnn3d": {},
    "dcsrn": {"growth": 4, "units": 2},
    "mdcsrn": {"growth": 4, "blocks": 2, "units": 2},
    "tricubic": {},
}
BLOCK_BACKBONES = ["parallelnet", "volumenet", "dcsrn", "mdcsrn"]


def conv_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv3d))


def conv_biases(model: nn.Module) -> int:
    return sum(m.bias.numel() for m in model.modules() if isinstance(m, nn.Conv3d))


# --------------------------------------------------------------------------- parameter counts


def test_parallelnet_d5c32_weights_exact():
    model = create_model("parallelnet", depth=5, channels=32, block="conv")
    assert conv_weights(model) == 594_648
    assert count_parameters(model) == 594_648 + conv_biases(model)
    assert abs(count_parameters(model) - 0.595e6) <= 0.005 * 0.595e6


@pytest.mark.parametrize(
    ("name", "kwargs", "expected", "tolerance"),
    [
        ("parallelnet", {"depth": 5, "channels": 32}, 0.595e6, 0.005),
        ("parallelnet", {"depth": 9, "channels": 32}, 2.061e6, 0.005),
        ("volumenet", {"depth": 5, "channels": 32}, 0.089e6, 0.005),
        ("volumenet", {"depth": 9, "channels": 32}, 0.230e6, 0.005),
        ("srcnn3d", {}, 0.053e6, 0.10),
        ("dcsrn", {}, 0.224e6, 0.10),
        ("mdcsrn", {}, 0.425e6, 0.10),
    ],
)
def test_parameter_counts(name, kwargs, expected, tolerance):
    model = create_model(name, **kwargs)
    n = count_parameters(model)
    assert abs(n - expected) <= tolerance * expected, f"{name} {kwargs}: {n} parameters, expected ≈ {expected:.0f}"


def test_volumenet_defaults_are_d9c32_queue():
    model = create_model("volumenet")
    assert (model.depth, model.channels) == (9, 32)
    assert count_parameters(model) == count_parameters(create_model("volumenet", depth=9, channels=32, block="queue"))
    assert all(b.kind == "queue" for branch in model.branches for b in branch)


def test_tricubic_has_no_parameters():
    assert count_parameters(create_model("tricubic")) == 0


def test_count_parameters_counts_trainable_only():
    model = create_model("parallelnet", depth=2, channels=4)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == total
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == total - model.head.weight.numel()


# --------------------------------------------------------------------------- paper wiring


@pytest.mark.parametrize("scale", [2, (1, 1, 2), (2, 3, 1)])
@pytest.mark.parametrize(("name", "depth", "channels"), [("parallelnet", 4, 6), ("volumenet", 5, 8)])
def test_parallelnet_structure(name, depth, channels, scale):
    model = create_model(name, depth=depth, channels=channels, scale=scale)
    s = as_scale(scale)
    s3 = s[0] * s[1] * s[2]
    assert model.scale == s
    assert isinstance(model.head, nn.Conv3d)
    assert (model.head.in_channels, model.head.out_channels, model.head.kernel_size) == (1, s3, (3, 3, 3))
    assert len(model.branches) == depth
    for i, branch in enumerate(model.branches, start=1):
        assert len(branch) == depth - i + 1
        for j, block in enumerate(branch, start=1):
            first = next(m for m in block.modules() if isinstance(m, nn.Conv3d))
            last = [m for m in block.modules() if isinstance(m, nn.Conv3d)][-1]
            if j == 1:
                assert first.in_channels == (s3 if i == 1 else (i - 1) * channels)
            else:
                assert first.in_channels == channels
            assert last.out_channels == channels
            assert isinstance(list(block.children())[-1], nn.ReLU)
    assert isinstance(model.fusion, nn.Conv3d)
    assert (model.fusion.in_channels, model.fusion.out_channels, model.fusion.kernel_size) == (
        depth * channels, s3, (3, 3, 3))
    assert sum(len(b) for b in model.branches) == depth * (depth + 1) // 2


def test_volumenet_uses_queue_blocks_with_half_channels():
    model = create_model("volumenet", depth=3, channels=8)
    for branch in model.branches:
        for block in branch:
            assert block.kind == "queue"
            c = [m for m in block.modules() if isinstance(m, nn.Conv3d)]
            assert [m.kernel_size for m in c] == [(1, 1, 1), (3, 1, 1), (1, 3, 1), (1, 1, 3), (1, 1, 1)]
            assert [m.out_channels for m in c] == [4, 4, 4, 4, 8]
            assert all(m.groups == 1 for m in c)
    # first conv and fusion stay standard
    assert model.head.kernel_size == (3, 3, 3) and model.fusion.kernel_size == (3, 3, 3)


def reference_parallelnet(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SPEC §1 written out literally, with the model's own modules."""
    depth = model.depth
    f0 = model.head(x)
    features = {}
    for i in range(1, depth + 1):
        for j in range(1, depth - i + 2):
            if j > 1:
                inp = features[(i, j - 1)]
            elif i == 1:
                inp = f0
            else:
                inp = torch.cat([features[(k, i - k)] for k in range(1, i)], dim=1)
            features[(i, j)] = model.branches[i - 1][j - 1](inp)
    fused = model.fusion(torch.cat([features[(i, depth - i + 1)] for i in range(1, depth + 1)], dim=1))
    return voxel_shuffle(f0 + fused, model.scale)


@pytest.mark.parametrize(("depth", "block", "scale"), [(1, "conv", 2), (3, "conv", 2), (4, "queue", (1, 1, 2)),
                                                       (5, "cpd", (2, 1, 3))])
def test_parallelnet_forward_matches_spec_wiring(depth, block, scale):
    torch.manual_seed(0)
    model = create_model("parallelnet", depth=depth, channels=5, block=block, scale=scale).double().eval()
    x = torch.randn(2, 1, 4, 5, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_parallelnet(model, x), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- every backbone × block


def _backbone_block_cases():
    cases = []
    for name in ["parallelnet", "volumenet", "srcnn3d", "dcsrn", "mdcsrn", "tricubic"]:
        blocks = list_blocks() if name in BLOCK_BACKBONES else [None]
        for block in blocks:
            for scale in [2, (1, 1, 2)]:
                cases.append((name, block, scale))
    return cases


@pytest.mark.parametrize(("name", "block", "scale"), _backbone_block_cases())
def test_every_backbone_and_block_runs(name, block, scale):
    kwargs = dict(SMALL[name], scale=scale)
    if block is not None:
        kwargs["block"] = block
    model = create_model(name, **kwargs).eval()
    s = as_scale(scale)
    assert model.scale == s
    assert model.config["name"] == name
    assert tuple(model.config["scale"]) == s
    if block is not None:
        assert model.config["block"] == block
    assert isinstance(model.receptive_field, int) and model.receptive_field >= 1
    assert model.floats_per_voxel() > 0
    x = torch.rand(2, 1, 4, 5, 3)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 1, 4 * s[0], 5 * s[1], 3 * s[2])
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("block", [b for b in list_blocks() if b != "conv"])
def test_srcnn3d_refuses_other_blocks(block):
    with pytest.raises(ModelError):
        create_model("srcnn3d", block=block)


def test_srcnn3d_layers():
    model = create_model("srcnn3d")
    c = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in c] == [(1, 64, 9), (64, 32, 1), (32, 1, 5)]


@pytest.mark.parametrize("name", ["dcsrn", "mdcsrn"])
def test_baseline_first_and_last_conv_never_replaced(name):
    model = create_model(name, block="queue")
    c = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert c[0].in_channels == 1 and c[0].kernel_size == (3, 3, 3)
    assert c[-1].out_channels == 1 and c[-1].kernel_size == (1, 1, 1)
    # no dense-unit 3×3×3 convolution survives: only 1³ and 1-D kernels besides the head
    assert all(m.kernel_size != (3, 3, 3) for m in c[1:])
    assert count_parameters(model) < count_parameters(create_model(name))


# --------------------------------------------------------------------------- receptive field


def _changed_lr_extent(model: nn.Module, lr_shape: tuple[int, int, int], center: tuple[int, int, int]):
    """Per-axis max LR distance (floor(j / s) − centre) of HR voxels that change when one LR voxel changes."""
    torch.manual_seed(3)
    model = model.double().eval()
    x = torch.rand(1, 1, *lr_shape, dtype=torch.float64)
    x2 = x.clone()
    x2[0, 0, center[0], center[1], center[2]] += 0.75
    with torch.no_grad():
        changed = (model(x) != model(x2))[0, 0]
    idx = changed.nonzero()
    assert idx.numel() > 0
    s = torch.tensor(model.scale)
    lr = torch.div(idx, s, rounding_mode="floor")
    return tuple(int((lr[:, a] - center[a]).abs().max()) for a in range(3))


@pytest.mark.parametrize("block", list_blocks())
@pytest.mark.parametrize("scale", [2, (1, 1, 2)])
def test_parallelnet_receptive_field_is_exact(block, scale):
    model = create_model("parallelnet", depth=3, channels=6, block=block, scale=scale)
    rf = model.receptive_field
    assert rf == 1 + 3 * 1 + 1
    n = 2 * rf + 3
    extent = _changed_lr_extent(model, (n, n, n), (n // 2,) * 3)
    assert max(extent) <= rf
    # tight on every axis (random weights, no change is masked everywhere by the ReLUs)
    assert extent == (rf, rf, rf)


def test_volumenet_receptive_field():
    model = create_model("volumenet", depth=2, channels=8)
    assert model.receptive_field == 4
    extent = _changed_lr_extent(model, (11, 11, 11), (5, 5, 5))
    assert extent == (4, 4, 4)


@pytest.mark.parametrize("name", ["tricubic", "srcnn3d", "dcsrn", "mdcsrn"])
@pytest.mark.parametrize("scale", [2, (1, 1, 2), (3, 1, 2), 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_pre_upsampling_receptive_field_is_a_bound(name, scale, axis):
    """Values beyond the support are exactly unchanged, so the check compares with ``!=``.

    The volume is long (> 2·rf + 2) along ``axis`` only, so that the mirrored border cannot
    bring the perturbation back and the bound is really tested along that axis.
    """
    model = create_model(name, **dict(SMALL[name], scale=scale))
    rf = model.receptive_field
    shape = [3, 3, 3]
    shape[axis] = 2 * rf + 3
    center = [1, 1, 1]
    center[axis] = rf + 1
    extent = _changed_lr_extent(model, tuple(shape), tuple(center))
    assert extent[axis] <= rf
    if name == "tricubic" and as_scale(scale)[axis] > 1:
        assert extent[axis] == rf  # the FIR's outer taps are tiny but not zero


# --------------------------------------------------------------------------- registry


def test_list_models_contains_spec_names():
    names = list_models()
    for name in SPEC_MODELS:
        assert name in names
    assert len(set(names)) == len(names)


def test_unknown_model_raises_model_error():
    with pytest.raises(ModelError, match="nope"):
        create_model("nope")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("parallelnet", {"foo": 1}),
        ("volumenet", {"depth": 0}),
        ("parallelnet", {"channels": 0}),
        ("parallelnet", {"block": "nope"}),
        ("volumenet", {"scale": 0}),
        ("volumenet", {"scale": (1, 2)}),
        ("volumenet", {"scale": 1.5}),
        ("dcsrn", {"depth": 3}),
        ("tricubic", {"block": "conv"}),
        ("srcnn3d", {"block": "queue"}),
        ("mdcsrn", {"block": "nope"}),
    ],
)
def test_bad_kwargs_raise_model_error(name, kwargs):
    with pytest.raises(ModelError):
        create_model(name, **kwargs)


def test_register_refuses_duplicates():
    with pytest.raises(ValueError):
        register("parallelnet")(lambda **kw: None)
    assert "parallelnet" in list_models()


def test_register_new_name():
    name = "test-only-tricubic-alias"
    try:
        register(name)(registry.tricubic)
        assert name in list_models()
        assert create_model(name, scale=3).scale == (3, 3, 3)
    finally:
        registry._MODELS.unregister(name)
    assert name not in list_models()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("parallelnet", {"depth": 3, "channels": 6, "block": "lwv1", "scale": (1, 1, 2), "ratio": 0.25}),
        ("volumenet", {"depth": 2, "channels": 8, "scale": 3}),
        ("srcnn3d", {"scale": (1, 2, 2)}),
        ("dcsrn", {"growth": 4, "units": 3, "block": "xception"}),
        ("mdcsrn", {"growth": 4, "blocks": 2, "units": 2, "block": "cpd", "scale": (2, 2, 1)}),
        ("tricubic", {"scale": (1, 1, 3)}),
    ],
)
def test_config_round_trip(name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    cfg = dict(model.config)
    assert cfg["name"] == name
    for key, value in kwargs.items():
        assert cfg[key] == (list(as_scale(value)) if key == "scale" else value)
    clone = create_model(cfg.pop("name"), **cfg).eval()
    assert count_parameters(clone) == count_parameters(model)
    assert clone.config == model.config
    assert clone.receptive_field == model.receptive_field
    clone.load_state_dict(model.state_dict())
    x = torch.rand(1, 1, 3, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


@pytest.mark.parametrize("scale", [(2, 2, 2), (1, 1, 2), (3, 2, 1)])
def test_interpolation_init_is_trilinear_upsampling(scale):
    """With the fusion silenced, an interpolation-initialised ParallelNet is trilinear upsampling on the
    SPEC §5 grid (scipy's grid_mode zoom), away from the zero-padded border."""
    import numpy as np
    from scipy import ndimage

    model = create_model("volumenet", depth=2, channels=4, scale=scale).eval()
    model.init_as_interpolation("linear", fusion_gain=0.0)
    lr = np.random.default_rng(0).random((9, 10, 11)).astype(np.float32)
    with torch.no_grad():
        sr = model(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    expected = ndimage.zoom(lr.astype(np.float64), scale, order=1, grid_mode=True, mode="grid-constant")
    inner = tuple(slice(2 * s, -2 * s) for s in scale)
    assert sr.shape == expected.shape
    np.testing.assert_allclose(sr[inner], expected[inner], atol=1e-5)


def test_interpolation_init_keeps_a_small_trainable_correction():
    model = create_model("volumenet", depth=2, channels=4)
    before = model.fusion.weight.detach().abs().mean()
    model.init_as_interpolation("cubic", fusion_gain=0.1)
    assert torch.isclose(model.fusion.weight.detach().abs().mean(), 0.1 * before)
    assert model.fusion.bias.abs().max() == 0 and model.head.bias.abs().max() == 0


def test_interpolation_init_opens_the_branches_after_one_step():
    """Default fusion gain 0: the output is the interpolation, yet one optimiser step reaches the branches."""
    torch.manual_seed(0)
    model = create_model("volumenet", depth=3, channels=16)
    model.init_as_interpolation("cubic")
    assert model.fusion.weight.abs().max() == 0
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr = torch.rand(2, 1, 8, 8, 8)
    for _ in range(2):
        optimiser.zero_grad()
        model(lr).square().mean().backward()
        optimiser.step()
    assert (model.fusion.weight != 0).float().mean() > 0.5
    for branch in model.branches:
        assert max(p.grad.abs().max() for p in branch.parameters()) > 0


def _branch_outputs(model, x):
    """Every block output of a ParallelNet for input ``x``, in the order its forward makes them."""
    outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: outputs.append(out.clone()))
             for branch in model.branches for block in branch]
    model(x)
    for hook in hooks:
        hook.remove()
    return outputs


@pytest.mark.parametrize("block", list_blocks())
def test_initialisation_keeps_the_deepest_blocks_alive(block):
    """He initialisation: two different inputs still give clearly different features nine blocks
    deep (PyTorch's default initialisation shrinks the difference ~20× per Queue block, to 1e-8)."""
    torch.manual_seed(0)
    model = create_model("parallelnet", depth=9, channels=32, block=block)
    x1, x2 = torch.rand(2, 1, 1, 8, 8, 8)
    with torch.no_grad():
        for a, b in zip(_branch_outputs(model, x1), _branch_outputs(model, x2)):
            assert (a - b).std() > 0.02 * (x1 - x2).std()


def test_cubic_init_is_closer_to_tricubic_than_linear_init():
    import numpy as np

    from napari_volumenet.ops.interpolate import tricubic_upsample

    lr = torch.from_numpy(np.random.default_rng(1).random((1, 1, 12, 12, 12)).astype(np.float32))
    reference = tricubic_upsample(lr, 2)[..., 4:-4, 4:-4, 4:-4]
    errors = {}
    for kind in ("linear", "cubic"):
        model = create_model("volumenet", depth=2, channels=4).eval()
        model.init_as_interpolation(kind, fusion_gain=0.0)
        with torch.no_grad():
            errors[kind] = (model(lr)[..., 4:-4, 4:-4, 4:-4] - reference).abs().mean().item()
    assert errors["cubic"] < 0.5 * errors["linear"]
    with pytest.raises(ModelError):
        create_model("volumenet", depth=2, channels=4).init_as_interpolation("nearest")


@pytest.mark.parametrize("name", ["srcnn3d", "dcsrn", "mdcsrn"])
def test_pre_upsampling_nets_can_start_as_their_upsampler(name):
    torch.manual_seed(0)
    model = create_model(name, growth=4) if name != "srcnn3d" else create_model(name)
    x = torch.rand(1, 1, 7, 8, 6)
    with torch.no_grad():
        upsampled = model.upsample(x)
        if name == "srcnn3d":  # its ReLUs clip the interpolation's undershoot
            upsampled = upsampled.clamp(min=0)
        assert (model(x) - upsampled).abs().max() > 1e-2
        model.init_as_upsampler()
        torch.testing.assert_close(model(x), upsampled, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["srcnn3d", "dcsrn", "mdcsrn"])
def test_upsampler_start_opens_the_other_channels_after_one_step(name):
    torch.manual_seed(0)
    model = create_model(name, growth=4) if name != "srcnn3d" else create_model(name)
    model.init_as_upsampler()
    _, _, last = model.pass_through_path()
    before = last.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = (model(torch.rand(2, 1, 6, 6, 6)) - torch.rand(2, 1, 12, 12, 12)).abs().mean()
    loss.backward()
    optimizer.step()
    moved = (last.weight.detach() - before).flatten(1).abs().amax(dim=(0,)) > 0
    assert moved[1:].all(), "every channel feeding the last convolution must get a gradient at once"


def test_tricubic_cannot_start_as_the_identity():
    with pytest.raises(ModelError):
        create_model("tricubic").init_as_upsampler()
