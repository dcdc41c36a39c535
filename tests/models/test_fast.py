"""The fast inference twin of ParallelNet/VolumeNet computes the same function (models.fast)."""

import pytest
import torch
from torch import nn

from napari_volumenet.models import create_model, list_blocks
from napari_volumenet.models.fast import FastConv, FastParallelNet, accelerate, axis_conv, plane_conv


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: one thread is faster


@pytest.mark.parametrize("block", list_blocks())
@pytest.mark.parametrize("scale", [2, (1, 1, 2)])
def test_fast_twin_equals_reference_forward(block, scale):
    torch.manual_seed(0)
    model = create_model("parallelnet", depth=3, channels=8, block=block, scale=scale).eval()
    fast = accelerate(model)
    assert isinstance(fast, FastParallelNet)
    x = torch.rand(2, 1, 7, 9, 10)
    with torch.inference_mode():
        expected, got = model(x), fast(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("block", list_blocks())
def test_fast_twin_has_the_same_gradients(block):
    """Training runs through the twin: every parameter and the input get the reference gradients."""
    torch.manual_seed(1)
    model = create_model("parallelnet", depth=3, channels=8, block=block, scale=(2, 1, 2))
    x = torch.rand(2, 1, 6, 7, 5)
    target = torch.rand(2, 1, 12, 7, 10)
    gradients = []
    for net in (model, accelerate(model)):
        model.zero_grad()
        x_leaf = x.clone().requires_grad_()
        (net(x_leaf) - target).abs().mean().backward()
        gradients.append([x_leaf.grad] + [p.grad.clone() for p in model.parameters()])
    for expected, got in zip(*gradients):
        torch.testing.assert_close(got, expected, atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("block", list_blocks())
def test_fast_twin_trains_under_bf16_autocast(block):
    """``--amp bf16``: the twin's custom 3×3×3 convolution runs in the autocast precision both ways, the head
    and the final sum stay fp32, and the gradients point where the fp32 ones do."""
    torch.manual_seed(2)
    model = create_model("parallelnet", depth=3, channels=8, block=block, scale=(1, 1, 2))
    fast = accelerate(model)
    x = torch.rand(2, 1, 6, 7, 5)
    target = torch.rand(2, 1, 6, 7, 10)
    gradients = []
    for amp in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = fast(x)
        assert y.dtype == torch.float32
        (y - target).abs().mean().backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.nn.functional.cosine_similarity(*gradients, dim=0) > 0.99


def test_fast_twin_shares_parameters():
    model = create_model("volumenet", depth=2, channels=4).eval()
    fast = accelerate(model)
    x = torch.rand(1, 1, 6, 6, 6)
    with torch.no_grad():
        model.fusion.bias.add_(1.0)
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_axis_conv_is_a_same_padded_conv3d(axis):
    torch.manual_seed(axis)
    kernel = [1, 1, 1]
    kernel[axis] = 3
    conv = nn.Conv3d(5, 6, kernel, padding=tuple(k // 2 for k in kernel))
    x = torch.rand(2, 5, 4, 7, 6)
    got = axis_conv(x.permute(0, 2, 3, 4, 1).contiguous(), conv.weight.flatten(2), conv.bias, axis)
    torch.testing.assert_close(got.permute(0, 4, 1, 2, 3), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_plane_conv_is_a_same_padded_conv3d_on_features_flat_along_its_axis(axis):
    """A kernel 1 long along one axis, on features 1 long along it (the fit's plane patches), runs in 2-D."""
    torch.manual_seed(axis)
    kernel, size = [3, 5, 3], [4, 7, 6]
    kernel[axis], size[axis] = 1, 1
    conv = nn.Conv3d(5, 6, kernel, padding=tuple(k // 2 for k in kernel))
    assert FastConv(conv).flat_axis == axis
    x = torch.rand(2, 5, *size)
    got = plane_conv(x.permute(0, 2, 3, 4, 1).contiguous(), conv.weight, conv.bias, axis)
    torch.testing.assert_close(got.permute(0, 4, 1, 2, 3), conv(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", [(3, 3, 3), (3, 1, 1), (1, 1, 1)])
def test_kernels_flat_along_none_or_two_axes_are_not_plane_convolutions(kernel):
    assert FastConv(nn.Conv3d(2, 2, kernel, padding=tuple(k // 2 for k in kernel))).flat_axis is None


@pytest.mark.parametrize("name", ["srcnn3d", "dcsrn", "tricubic"])
def test_other_networks_are_left_alone(name):
    model = create_model(name)
    assert accelerate(model) is model


@pytest.mark.parametrize("fast", [False, True])
def test_checkpointed_blocks_give_the_same_gradients_and_keep_fewer_tensors(fast):
    """``checkpoint_blocks`` (training on the CPU) recomputes each block in the backward pass: same loss and
    gradients, fewer feature maps held between forward and backward."""
    torch.manual_seed(0)
    net = create_model("volumenet", depth=3, channels=8).train()
    runner = accelerate(net) if fast else net
    x = torch.rand(2, 1, 10, 10, 10)

    def step(checkpointed: bool):
        net.checkpoint_blocks = checkpointed
        net.zero_grad()
        held = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: held.append(t.numel()) or t, lambda t: t):
            loss = runner(x).square().mean()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in net.parameters()], sum(held)

    plain_loss, plain_grads, plain_held = step(False)
    loss, grads, held = step(True)
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain_grads, grads))
    assert held < 0.6 * plain_held


@pytest.mark.parametrize("block", list_blocks())
def test_every_block_trains_checkpointed_in_the_fast_engine(block):
    """Training on the CPU checkpoints each block of the fast twin: every block's backward must survive the
    recomputation (a dense 3×3×3 convolution that unpacked its saved tensors twice once failed for 'conv')."""
    torch.manual_seed(0)
    net = create_model("parallelnet", depth=2, channels=8, block=block).train()
    runner = accelerate(net)
    x = torch.rand(1, 1, 8, 8, 8)
    grads = []
    for checkpointed in (False, True):
        net.checkpoint_blocks = checkpointed
        net.zero_grad()
        runner(x).square().mean().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_one_diagonal_of_block_outputs_is_alive_at_a_time():
    """forward_steps frees each block's input as soon as the branch's next block has read it: at most depth + 1
    block outputs are alive at once (the plain order kept two diagonals, about 2·depth), so the planned memory
    per voxel can be lower than the plain forward's."""
    import weakref

    torch.manual_seed(2)
    depth = 6
    model = create_model("volumenet", depth=depth, channels=8).eval()
    fast = accelerate(model)
    outputs: list[weakref.ref] = []
    most = 0

    def count(_module, _inputs, output):
        nonlocal most
        outputs.append(weakref.ref(output))
        most = max(most, sum(ref() is not None for ref in outputs))

    hooks = [block.register_forward_hook(count) for branch in fast.branches for block in branch]
    x = torch.rand(1, 1, 9, 8, 7)
    with torch.inference_mode():
        got = fast(x)
        expected = model(x)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert len(outputs) == depth * (depth + 1) // 2
    assert most <= depth + 1
    assert fast.floats_per_voxel() < model.floats_per_voxel()
