"""The seven building blocks of the paper's Fig. 2, for ``S → T`` channels.

Every block keeps the spatial size (``same`` zero padding), has biases, no activation
between its inner convolutions and one ReLU at the end (``activation=False`` drops it,
for baselines whose 3×3×3 convolution is followed by something else). ``R = ratio·T``.

=============  =====================================================  ======================
block          layers                                                  weights (no bias)
=============  =====================================================  ======================
conv           3×3×3 S→T                                               27·S·T
xception       1³ S→T, dw 3×3×3                                        S·T + 27·T
mobilenetv2    1³ S→2S, dw 3×3×3, 1³ 2S→T                              S·E + 27·E + E·T
cpd            1³ S→R, dw 3×1×1, dw 1×3×1, dw 1×1×3, 1³ R→T            S·R + 9·R + R·T
lwv1           3×1×1 S→R, dw 1×3×1, 1×1×3 R→T                          3·S·R + 3·R + 3·R·T
lwv2           3×1×1 S→R, 1×3×1 R→R, 1×1×3 R→T                         3·S·R + 3·R² + 3·R·T
queue          1³ S→R, 3×1×1, 1×3×1, 1×1×3 R→R, 1³ R→T                 S·R + 9·R² + R·T
=============  =====================================================  ======================
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .._registry import Registry
from ..errors import ModelError

BlockBuilder = Callable[[int, int, int], list[nn.Module]]
_BLOCKS: Registry[BlockBuilder] = Registry("block")

_AXIS_KERNELS = ((3, 1, 1), (1, 3, 1), (1, 1, 3))


def _conv(
    in_channels: int, out_channels: int, kernel: int | tuple[int, int, int], groups: int = 1
) -> nn.Conv3d:
    """Convolution with 'same' zero padding and a bias."""
    kernel = (kernel,) * 3 if isinstance(kernel, int) else kernel
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(in_channels, out_channels, kernel, padding=padding, groups=groups)


@_BLOCKS.register("conv")
def _standard(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, t, 3)]


@_BLOCKS.register("xception")
def _xception(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, t, 1), _conv(t, t, 3, groups=t)]


@_BLOCKS.register("mobilenetv2")
def _mobilenetv2(s: int, t: int, r: int) -> list[nn.Module]:
    e = 2 * s
    return [_conv(s, e, 1), _conv(e, e, 3, groups=e), _conv(e, t, 1)]


@_BLOCKS.register("cpd")
def _cpd(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, r, 1), *(_conv(r, r, k, groups=r) for k in _AXIS_KERNELS), _conv(r, t, 1)]


@_BLOCKS.register("lwv1")
def _lwv1(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, r, _AXIS_KERNELS[0]), _conv(r, r, _AXIS_KERNELS[1], groups=r), _conv(r, t, _AXIS_KERNELS[2])]


@_BLOCKS.register("lwv2")
def _lwv2(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, r, _AXIS_KERNELS[0]), _conv(r, r, _AXIS_KERNELS[1]), _conv(r, t, _AXIS_KERNELS[2])]


@_BLOCKS.register("queue")
def _queue(s: int, t: int, r: int) -> list[nn.Module]:
    return [_conv(s, r, 1), *(_conv(r, r, k) for k in _AXIS_KERNELS), _conv(r, t, 1)]


def init_conv(conv: nn.Conv3d, relu: bool) -> None:
    """He initialisation: normal weights of variance ``gain² / fan_in`` (gain √2 before a ReLU,
    1 for a linear layer) and zero bias, so that every layer passes its input's scale on.

    PyTorch's default (uniform, variance ``1 / (3·fan_in)``) shrinks the signal about 3× per
    linear convolution; through the five convolutions of a Queue block and nine blocks deep,
    the deepest branches of VolumeNet would start out independent of their input.
    """
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu" if relu else "linear")
    nn.init.zeros_(conv.bias)


def list_blocks() -> list[str]:
    """Names of the registered blocks, in the paper's order."""
    return _BLOCKS.names()


def conv_radius(layers: nn.Module) -> int:
    """Receptive-field radius (voxels, worst axis) of convolutions applied one after another."""
    per_axis = [0, 0, 0]
    for conv in (m for m in layers.modules() if isinstance(m, nn.Conv3d)):
        for axis in range(3):
            per_axis[axis] += (conv.kernel_size[axis] - 1) // 2 * conv.dilation[axis]
    return max(per_axis)


class Block(nn.Sequential):
    """One building block ``(N, S, D, H, W)`` → ``(N, T, D, H, W)``.

    ``inner_channels`` is the widest intermediate feature map (for memory estimates)
    and ``radius`` the receptive-field radius in voxels.
    """

    def __init__(
        self, kind: str, in_channels: int, out_channels: int, ratio: float = 0.5, activation: bool = True
    ) -> None:
        build = _BLOCKS.get(kind)
        if not 0 < ratio <= 1:
            raise ModelError(f"ratio must be in (0, 1], got {ratio}")
        reduced = max(1, round(ratio * out_channels))
        layers = build(in_channels, out_channels, reduced)
        for position, conv in enumerate(layers, start=1):
            init_conv(conv, relu=activation and position == len(layers))
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if activation else []))
        self.kind = kind
        self.radius = conv_radius(self)
        self.inner_channels = max(m.out_channels for m in layers[:-1]) if len(layers) > 1 else 0
