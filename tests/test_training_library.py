"""The library's training parts (napari_volumenet.training) that volumenet-train and the fit share."""

import numpy as np
import pytest
import torch

from napari_volumenet.training.linear_head import fit_linear_head
from napari_volumenet.training.optimizer import adam
from napari_volumenet.training.schedule import RateSchedule, cosine_rate, warmup_factor
from napari_volumenet.training.step import OptimStep


def test_warmup_rises_linearly_then_holds():
    assert [warmup_factor(s, 3) for s in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert warmup_factor(0, 0) == 1.0


def test_cosine_goes_from_the_rate_to_one_percent():
    assert cosine_rate(1e-3, 0) == pytest.approx(1e-3)
    assert cosine_rate(1e-3, 0.5) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert cosine_rate(1e-3, 2.0) == pytest.approx(1e-5)


def test_a_constant_rate_is_left_alone_after_warmup_and_cosine_always_set():
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=7.0)
    RateSchedule(1e-3).apply(optimizer, 0, 0.0)
    assert optimizer.param_groups[0]["lr"] == 7.0  # no warm-up: untouched
    warm = RateSchedule(1e-3, warmup=1)
    warm.apply(optimizer, 0, 0.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    warm.apply(optimizer, 1, 0.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    RateSchedule(1e-3, "cosine").apply(optimizer, 10, 1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_the_step_minimises_the_chosen_loss_on_the_centre(loss):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(1))
    module = lambda x: x * weight  # noqa: E731
    optimizer = torch.optim.SGD([weight], lr=0.1)
    step = OptimStep(module, optimizer, device=torch.device("cpu"), loss=loss, margin=1, scale=(1, 1, 1))
    lr = torch.ones(1, 1, 4, 4, 4)
    hr = torch.full((1, 1, 2, 2, 2), 2.0)
    value = step(lr, hr)
    assert float(value) == pytest.approx(2.0 if loss == "l1" else 4.0)
    assert weight.item() == pytest.approx(0.1 if loss == "l1" else 0.4)  # -d/dw of |2-w| is 1, of (2-w)² is 4
    with pytest.raises(ValueError, match="loss"):
        OptimStep(module, optimizer, device=torch.device("cpu"), loss="huber")


def test_least_squares_recovers_a_linear_plane_filter():
    """Data made by a known 3×1×3 filter per phase is fitted exactly (kernel footprint of a plane network)."""
    rng = np.random.default_rng(0)
    lr = rng.random((12, 1, 10)).astype(np.float64)
    true = rng.normal(size=(2, 3, 1, 3))
    padded = np.pad(lr, ((1, 1), (0, 0), (1, 1)))
    phases = np.stack([sum(true[c, a, 0, b] * padded[a:a + 12, :, b:b + 10] for a in range(3) for b in range(3)) + c
                       for c in range(2)])
    hr = phases.transpose(1, 2, 3, 0).reshape(12, 1, 20)  # phase next to its LR voxel along axis 2
    weight, bias = fit_linear_head([(lr, hr)], (1, 1, 2), kernel=(3, 1, 3))
    assert weight.shape == (2, 1, 3, 1, 3)
    np.testing.assert_allclose(weight[:, 0].numpy(), true, atol=1e-4)
    np.testing.assert_allclose(bias.numpy(), [0, 1], atol=1e-4)


def test_adam_is_fused_where_it_can_be_and_steps_as_the_loop_does():
    torch.manual_seed(0)
    weights = [torch.randn(8, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    twins = [w.detach().clone().requires_grad_() for w in weights]
    fused, loop = adam(weights, 1e-2), torch.optim.Adam(twins, lr=1e-2)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for _ in range(5):
        for params, optimizer in ((weights, fused), (twins, loop)):
            optimizer.zero_grad()
            (params[0] @ params[1]).square().sum().backward()
            optimizer.step()
    for a, b in zip(weights, twins):
        torch.testing.assert_close(a, b)
    loop.load_state_dict(fused.state_dict())  # a run resumes under either
    assert not adam([torch.zeros(2, device="meta", requires_grad=True)], 1e-3).defaults["fused"]
