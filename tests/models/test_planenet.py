"""PlaneNet: the plane network of the fit to one scan (2D kernels in planes holding array axis 2, two orientations)."""

import numpy as np
import pytest
import torch
from torch import nn

from napari_volumenet.inference import upscale
from napari_volumenet.models import count_parameters, create_model
from napari_volumenet.models.fast import accelerate
from napari_volumenet.models.planenet import PlaneNet
from napari_volumenet.weights import BUNDLED_DIR, load_weights

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = {"depth": 3, "channels": 8, "scale": (1, 1, 3)}


def small() -> PlaneNet:
    torch.manual_seed(0)
    return create_model("planenet", **SMALL).eval()


def test_kernels_never_span_axis_1_and_the_output_grows_along_axis_2_only():
    net = small()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv3d)]
    assert convs and all(c.kernel_size[1] == 1 and c.padding[1] == 0 for c in convs)
    with torch.no_grad():
        assert net(torch.rand(1, 1, 5, 4, 6)).shape == (1, 1, 5, 4, 18)
    volumenet = create_model("volumenet", **SMALL)
    assert count_parameters(net) < count_parameters(volumenet)


def test_the_output_is_the_mean_of_both_plane_orientations():
    net = small()
    x = torch.rand(1, 1, 6, 5, 4)
    with torch.no_grad():
        one = net.core(x)
        other = net.core(x.transpose(2, 3)).transpose(2, 3)
        torch.testing.assert_close(net(x), (one + other) / 2)
        # swapping the in-plane axes of the input swaps them in the output
        torch.testing.assert_close(net(x.transpose(2, 3)), net(x).transpose(2, 3))


def test_each_plane_is_upscaled_on_its_own():
    net = small()
    x = torch.rand(1, 1, 6, 5, 4)
    y = x.clone()
    y[:, :, :, 2] += 1.0  # changes one (0, 2) plane
    with torch.no_grad():
        diff = (net.core(x) - net.core(y)).abs().amax(dim=(0, 1, 2, 4))
    assert diff[2] > 0 and torch.all(diff[[0, 1, 3, 4]] == 0)


def test_from_volumetric_is_the_bundled_network_on_a_volume_constant_along_axis_1():
    bundled, _ = load_weights(BUNDLED_DIR / "volumenet-d6c16-mri-slices-x2.pt")
    plane = PlaneNet.from_volumetric(bundled).eval()
    assert plane.config == {**bundled.config, "name": "planenet"}
    x = torch.rand(1, 1, 9, 1, 6)
    rf = bundled.receptive_field
    with torch.no_grad():
        extruded = bundled(x.expand(1, 1, 9, 2 * rf + 1, 6).contiguous())[:, :, :, rf:rf + 1]
        torch.testing.assert_close(plane.core(x), extruded, atol=1e-5, rtol=1e-5)


def _same_output_and_gradients(fast, reference, x):
    """``fast`` gives ``reference``'s output on ``x`` and the same gradients to their shared parameters."""
    torch.testing.assert_close(fast(x), reference(x), atol=1e-5, rtol=1e-5)
    fast(x).square().mean().backward()
    grads = [p.grad.clone() for p in reference.parameters()]
    reference.zero_grad()
    reference(x).square().mean().backward()
    for a, p in zip(grads, reference.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-5, rtol=1e-4)


def test_the_fast_twin_gives_the_same_output_and_gradients():
    net = small().train()
    fast = accelerate(net)
    assert fast is not net
    _same_output_and_gradients(fast, net, torch.rand(2, 1, 6, 5, 4))


def test_the_fast_core_on_plane_patches_gives_the_same_output_and_gradients():
    """What a fit trains: the core on patches ``(N, 1, a, 1, b)``, whose 3×1×3 convolutions run in 2-D there."""
    net = small().train()
    fast = accelerate(net.core)
    assert fast.fusion.flat_axis == 1
    _same_output_and_gradients(fast, net.core, torch.rand(3, 1, 7, 1, 5))


def test_tiled_inference_equals_whole_volume():
    net = small()
    volume = np.random.default_rng(0).random((9, 8, 7)).astype(np.float32)
    whole = upscale(volume, net, tile=0)
    assert whole.shape == (9, 8, 21)
    assert np.abs(upscale(volume, net, tile=(4, 3, 3)) - whole).max() < 1e-4


def test_a_scale_off_axis_2_is_refused():
    from napari_volumenet.errors import ModelError

    with pytest.raises(ModelError, match="axis 2"):
        create_model("planenet", scale=(2, 1, 2))
    assert create_model("planenet", depth=2, channels=4, scale=2).scale == (1, 1, 2)
