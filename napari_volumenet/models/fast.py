"""A faster forward pass for ParallelNet / VolumeNet: the same weights, the same function.

PyTorch's CPU ``conv3d`` sends 1×1×1 and 3×1×1 kernels to a slow generic kernel
(``slow_conv3d``), and ParallelNet concatenates feature maps before every branch. Here the
features live in channels-last layout ``(N, D, H, W, C)`` and

- a 1×1×1 convolution is one matrix product ``x @ Wᵀ + b``; for inference on the CPU it runs as
  oneDNN's linear with the bias, a following ReLU and a following sum fused in (about 2× ``F.linear``,
  whose bias broadcast alone costs a pass over memory);
- a convolution along one axis (3×1×1, 1×3×1, 1×1×3) is a 2-D convolution on a channels-last
  view that puts that axis in a plane (oneDNN's fast kernels; no copy);
- a convolution 1 long along an axis, on features 1 long along it (the fit's plane patches), is a 2-D
  convolution on a channels-last view;
- the first layer of a branch reads the concatenation ``[F(1,i−1), …, F(i−1,1)]`` through a
  1×1×1 convolution, which is the sum of one matrix product per part: nothing is concatenated;
- the ReLU closing a block is applied by the block's last convolution (fused where it can be);
- other convolutions (3×3×3, depthwise) run as ``conv3d`` on channels-last memory (oneDNN); in
  training, a dense 3×3×3 convolution (the fusion) computes its weight gradient as one matrix
  product, several times faster than oneDNN's for 288 → 8 channels;
- with autograd on, nothing is done in place on a view (that would cost an ``as_strided`` backward).

The result equals :meth:`ParallelNet.forward` up to float rounding (summation order), so tiled
inference stays exact in the sense of SPEC §4. :func:`accelerate` wraps a network (for inference
or training); networks it does not know are returned unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops.scale import volume
from .parallelnet import ParallelNet
from .planenet import PlaneNet, both_orientations


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, D, H, W)`` → contiguous ``(N, D, H, W, C)``."""
    return x.permute(0, 2, 3, 4, 1).contiguous()


def _as_ncdhw(x: torch.Tensor) -> torch.Tensor:
    """A channels-last ``(N, D, H, W, C)`` tensor seen as ``(N, C, D, H, W)`` without copying."""
    return x.permute(0, 4, 1, 2, 3)


def _plain(conv: nn.Conv3d) -> bool:
    """Whether ``conv`` is dense, undilated, unstrided and zero-padded."""
    unit = (1, 1, 1)
    return conv.groups == 1 and conv.dilation == unit and conv.stride == unit and conv.padding_mode == "zeros"


def _axis_of(conv: nn.Conv3d) -> int | None:
    """The spatial axis (0, 1, 2) of a dense convolution with a kernel along one axis only, else None."""
    long_axes = [a for a, k in enumerate(conv.kernel_size) if k > 1]
    return long_axes[0] if _plain(conv) and len(long_axes) == 1 else None


def _flat_axis_of(conv: nn.Conv3d) -> int | None:
    """The spatial axis (0, 1, 2) a dense convolution is 1 long and unpadded along, its two other axes longer
    ('same'-padded), else None: on features 1 long along that axis it is a 2-D convolution."""
    flat = [a for a, k in enumerate(conv.kernel_size) if k == 1 and conv.padding[a] == 0]
    same = all(conv.padding[a] == k // 2 and k % 2 for a, k in enumerate(conv.kernel_size) if a not in flat)
    return flat[0] if _plain(conv) and len(flat) == 1 and same else None


_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _fused_linear(x: torch.Tensor) -> bool:
    """Whether oneDNN's fused linear can run on ``x``: CPU inference (it has no autograd formula)."""
    return _ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()


def relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU, in place only without autograd (an in-place op on a view costs an ``as_strided`` backward)."""
    return torch.relu(x) if torch.is_grad_enabled() else torch.relu_(x)


def _pointwise(conv: nn.Conv3d) -> bool:
    plain = conv.groups == 1 and conv.stride == (1, 1, 1) and conv.padding in ((0, 0, 0), "valid", "same")
    return conv.kernel_size == (1, 1, 1) and plain


def _dense_3x3x3(conv: nn.Conv3d) -> bool:
    return _plain(conv) and conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1)


def axis_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, axis: int) -> torch.Tensor:
    """A ``same``-padded convolution along one spatial ``axis`` of channels-last ``x`` ``(N, D, H, W, S)``
    with ``weight`` ``(T, S, k)``, as a 2-D convolution on a channels-last view → ``(N, D, H, W, T)``."""
    n, d, h, w, s = x.shape
    k = weight.shape[-1]
    if axis == 0:  # D neighbours: planes (D, H·W)
        view, kernel, padding = x.reshape(n, d, h * w, s), weight.unsqueeze(-1), (k // 2, 0)
    else:  # H or W neighbours: planes (H, W), one per (N, D)
        view = x.reshape(n * d, h, w, s)
        kernel, padding = (weight.unsqueeze(-1), (k // 2, 0)) if axis == 1 else (weight.unsqueeze(-2), (0, k // 2))
    y = F.conv2d(view.permute(0, 3, 1, 2), kernel, bias, padding=padding)
    return y.permute(0, 2, 3, 1).reshape(n, d, h, w, -1)


def plane_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, axis: int) -> torch.Tensor:
    """A ``same``-padded convolution of channels-last ``x`` ``(N, D, H, W, S)``, 1 long along spatial ``axis``,
    whose ``weight`` ``(T, S, kd, kh, kw)`` is 1 long along that axis: a 2-D convolution on a channels-last view
    → ``(N, D, H, W, T)``. The fit's plane patches ``(N, a, 1, b)`` take it: oneDNN's 2-D convolution and its
    gradients run the fusion (96 → 3 channels, 3×1×3) of a fit step in 13 ms instead of 33 ms in 3-D."""
    plane = x.squeeze(1 + axis)
    kernel = weight.squeeze(2 + axis)
    y = F.conv2d(plane.permute(0, 3, 1, 2), kernel, bias, padding=tuple(k // 2 for k in kernel.shape[2:]))
    return y.permute(0, 2, 3, 1).unsqueeze(1 + axis)


class FastConv(nn.Module):
    """One ``nn.Conv3d`` applied to channels-last features ``(N, D, H, W, C)``, by the fastest exact route."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv
        self.axis = _axis_of(conv)
        self.flat_axis = _flat_axis_of(conv)
        self.pointwise = _pointwise(conv)
        self.dense = _dense_3x3x3(conv) and conv.bias is not None

    def forward(self, x: torch.Tensor, then_relu: bool = False) -> torch.Tensor:
        conv = self.conv
        if self.pointwise and _fused_linear(x):
            return torch.ops.mkldnn._linear_pointwise(x, conv.weight.flatten(1), conv.bias,
                                                       "relu" if then_relu else "none", [], "")
        if self.pointwise:
            y = F.linear(x, conv.weight.flatten(1), conv.bias)
        elif self.axis is not None:
            y = axis_conv(x.contiguous(), conv.weight.flatten(2), conv.bias, self.axis)
        elif self.flat_axis is not None and x.shape[1 + self.flat_axis] == 1:
            y = plane_conv(x, conv.weight, conv.bias, self.flat_axis)
        elif self.dense and torch.is_grad_enabled():
            y = _DenseConv.apply(x.contiguous(), conv.weight, conv.bias)
        else:
            y = conv(_as_ncdhw(x).contiguous(memory_format=torch.channels_last_3d))
            y = y.permute(0, 2, 3, 4, 1).contiguous()
        return relu(y) if then_relu else y

    def split_input(self, x_parts: list[torch.Tensor], then_relu: bool = False) -> torch.Tensor:
        """This convolution of the channel concatenation of ``x_parts``: 1×1×1 and, for inference,
        dense 3×3×3 ones sum one product / convolution per part instead of concatenating."""
        starts = itertools.accumulate((part.shape[-1] for part in x_parts), initial=0)
        slices = [slice(a, b) for a, b in itertools.pairwise(starts)]
        if self.dense and not torch.is_grad_enabled():
            # one oneDNN convolution per part is faster than concatenating into 288 channels first
            out = None
            for part, channels in zip(x_parts, slices):
                bias = self.conv.bias if out is None else None
                y = F.conv3d(_as_ncdhw(part), self.conv.weight[:, channels], bias, padding=1)
                out = y if out is None else out.add_(y)
            out = out.permute(0, 2, 3, 4, 1).contiguous()
            return torch.relu_(out) if then_relu else out
        if not self.pointwise:
            return self(torch.cat(x_parts, dim=-1), then_relu)
        matrices = [self.conv.weight.flatten(1)[:, channels] for channels in slices]
        if _fused_linear(x_parts[0]):
            linear = torch.ops.mkldnn._linear_pointwise
            out = linear(x_parts[0], matrices[0].contiguous(), self.conv.bias, "none", [], "")
            for part, matrix in zip(x_parts[1:], matrices[1:]):
                out = linear.binary(part, out, matrix.contiguous(), None, "add")
            return torch.relu_(out) if then_relu else out
        out = None
        for part, matrix in zip(x_parts, matrices):
            product = F.linear(part, matrix)
            out = product if out is None else out.add_(product)
        out = out if self.conv.bias is None else out.add_(self.conv.bias)
        return relu(out) if then_relu else out


class _DenseConv(torch.autograd.Function):
    """A 'same' 3×3×3 convolution of channels-last ``x`` ``(N, D, H, W, S)`` → ``(N, D, H, W, T)``.

    Forward and input gradient run in oneDNN; the weight gradient, which oneDNN computes several
    times slower than the forward for ParallelNet's fusion (288 → 8 channels), is one matrix
    product of the input with the output gradient gathered tap by tap ``(voxels, 27·T)``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.dtypes = (x.dtype, weight.dtype, bias.dtype)
        x, weight, bias = (t.to(compute_dtype(x)) for t in (x, weight, bias))
        ctx.save_for_backward(x, weight)
        with torch.autocast(x.device.type, enabled=False):
            y = F.conv3d(_as_ncdhw(x), weight, bias, padding=1)
        return y.permute(0, 2, 3, 4, 1).contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors  # once: under non-reentrant checkpointing a second unpack is an error
        grads = _DenseConv._gradients(ctx, x, weight, grad.to(x.dtype).contiguous())
        return tuple(None if g is None else g.to(dtype) for g, dtype in zip(grads, ctx.dtypes))

    @staticmethod
    def _gradients(ctx, x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Gradients of ``x``, ``weight`` and ``bias`` in the forward's compute precision."""
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                _as_ncdhw(grad), _as_ncdhw(x), weight, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], False, [0, 0, 0], 1,
                [True, False, False])[0]
            grad_x = grad_x.permute(0, 2, 3, 4, 1).contiguous()
        if ctx.needs_input_grad[1]:
            t, s = weight.shape[:2]
            per_tap = grad.new_zeros(*grad.shape[:4], 3, 3, 3, t)
            for tap, output, source in _tap_windows(grad.shape[1:4]):
                per_tap[source + tap] = grad[output]
            grad_weight = per_tap.reshape(-1, 27 * t).T @ x.reshape(-1, s)  # (27·T, S)
            grad_weight = grad_weight.reshape(3, 3, 3, t, s).permute(3, 4, 0, 1, 2)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 1, 2, 3))
        return grad_x, grad_weight, grad_bias


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The precision autocast runs a convolution of ``x`` in (bf16 or fp16 under ``--amp``), else ``x``'s."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def _tap_windows(size: tuple[int, int, int]):
    """For every tap ``(a, b, c)`` of a 3×3×3 'same' convolution: the tap index, and the windows of
    output and input voxels ``(:, D, H, W)`` it connects (output ``v`` reads input ``v + tap − 1``)."""
    everything = (slice(None),)
    for tap in itertools.product(range(3), repeat=3):
        target = everything + tuple(_shifted(n, k) for n, k in zip(size, tap))
        source = everything + tuple(_shifted(n, 2 - k) for n, k in zip(size, tap))
        yield tap, target, source


def _shifted(size: int, tap: int) -> slice:
    """Voxels of an axis of ``size`` that a 3-tap kernel's ``tap`` (0, 1, 2) writes to."""
    return slice(max(0, 1 - tap), size - max(0, tap - 1))


class FastBlock(nn.Module):
    """A :class:`~napari_volumenet.models.blocks.Block` on channels-last features."""

    def __init__(self, block: nn.Sequential) -> None:
        super().__init__()
        layers = list(block)
        self.relu_at_end = isinstance(layers[-1], nn.ReLU)
        convs = layers[:-1] if self.relu_at_end else layers
        if not all(isinstance(m, nn.Conv3d) for m in convs):
            raise TypeError("FastBlock handles blocks made of Conv3d layers and a final ReLU")
        self.convs = nn.ModuleList(FastConv(m) for m in convs)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        first, *rest = self.convs
        last_relu = [False] * (len(self.convs) - 1) + [self.relu_at_end]
        x = first.split_input(x, last_relu[0]) if isinstance(x, list) else first(x, last_relu[0])
        for conv, then_relu in zip(rest, last_relu[1:]):
            x = conv(x, then_relu)
        return x


class FastParallelNet(nn.Module):
    """Twin of a :class:`ParallelNet` sharing its parameters; same input, output and gradients."""

    def __init__(self, net: ParallelNet) -> None:
        super().__init__()
        self.net = net
        self.head = FastConv(net.head)
        self.fusion = FastConv(net.fusion)
        self.branches = nn.ModuleList(nn.ModuleList(FastBlock(b) for b in branch) for branch in net.branches)
        self.scale = net.scale
        self.receptive_field = net.receptive_field
        self.config = net.config
        self.train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In training under autocast (``--amp``), the head and the sum that ends the network stay in fp32:
        they carry the interpolated signal, whose bf16 rounding (0.4 %) would be as large as the detail
        the branches add."""
        steps = self.forward_steps(x)
        while True:
            try:
                next(steps)
            except StopIteration as finished:
                return finished.value

    @property
    def progress_units(self) -> int:
        """The parts :meth:`forward_steps` runs in: one per block (``depth · (depth + 1) / 2``)."""
        return self.net.depth * (self.net.depth + 1) // 2

    def forward_steps(self, x: torch.Tensor) -> Generator[None, None, torch.Tensor]:
        """:meth:`forward` in :attr:`progress_units` parts: yields after each block but the last, returns the
        output ``(N, 1, s0·D, s1·H, s2·W)``; a caller reports progress or stops between blocks."""
        with torch.autocast(x.device.type, enabled=False) if torch.is_grad_enabled() else nullcontext():
            f0 = self.head(_to_channels_last(x))
        # diagonal[i]: the newest output of branch i. Branch k's first block reads the whole diagonal, so it runs
        # first; then each older branch's next block replaces the map it read, which is freed at once: one
        # diagonal is alive at a time, not two (peak RSS 3.8 -> 2.8 GiB on a 120x120x80 window), and every block
        # sees the same input as before, so the output is bit for bit the same
        diagonal: list[torch.Tensor] = []
        for k in range(self.net.depth):
            newest = self._block(k, 0, f0 if k == 0 else list(diagonal))
            for i in range(k):
                yield
                diagonal[i] = self._block(i, k - i, diagonal[i])
            diagonal.append(newest)
            if k + 1 < self.net.depth:
                yield
        fused = self.fusion.split_input(diagonal)
        fused = fused + f0 if torch.is_grad_enabled() else fused.add_(f0)
        return self.net.shuffle(_as_ncdhw(fused))

    def _block(self, branch: int, layer: int, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Block ``(branch, layer)``; recomputed in the backward pass when the net's ``checkpoint_blocks``
        is set (as :meth:`ParallelNet._block`)."""
        block = self.branches[branch][layer]
        if not (self.net.checkpoint_blocks and self.training and torch.is_grad_enabled()):
            return block(x)
        if isinstance(x, list):
            return checkpoint(lambda *parts: block(list(parts)), *x, use_reentrant=False)
        return checkpoint(block, x, use_reentrant=False)

    def floats_per_voxel(self) -> int:
        """Working memory per window voxel at inference (float32 values): one diagonal of ``depth`` maps of
        ``channels`` alive at a time (:meth:`forward_steps`; the plain network's estimate allows three), the
        blocks' temporaries, the head, the fusion and the output, with twice ``depth · channels`` allowed for the
        heap's fragmentation. Measured for D9C32 on a 120×120×80 window: 2.1–2.4 KB a voxel; this says 2.8 KB
        (3.9 KB before, when two diagonals were alive)."""
        net = self.net
        widest_inner = max(b.inner_channels for branch in net.branches for b in branch)
        return 2 * net.depth * net.channels + 2 * widest_inner + 4 * volume(net.scale) + 2 * net.channels

    @property
    def uniform_feature_maps(self) -> bool:
        """Whether the forward allocates feature maps of the same few widths in every branch, so that a heap
        can hand freed blocks out again (:func:`~napari_volumenet._allocator.reuse_freed_memory`).

        The first layer of each branch must read its parts without concatenating them (1×1×1 or dense
        3×3×3) and give one width in every branch. Not so for MobileNetV2, whose 2·S expansion widens with
        the branch, or LWv1/LWv2, whose 3×1×1 layer reads the concatenation: with reuse on, their heap
        grows by the sum of those ever wider maps (~4× the planned memory for MobileNetV2 D9C32).
        """
        firsts = [branch[0].convs[0] for branch in self.branches]
        reads_parts = all(conv.pointwise or conv.dense for conv in firsts[1:])
        return reads_parts and len({conv.conv.out_channels for conv in firsts}) == 1


class FastPlaneNet(nn.Module):
    """Twin of a :class:`PlaneNet` on the fast twin of its core; same input, output and gradients."""

    def __init__(self, net: PlaneNet) -> None:
        super().__init__()
        self.net = net
        self.core = FastParallelNet(net.core)
        self.scale = net.scale
        self.receptive_field = net.receptive_field
        self.config = net.config
        self.train(net.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return both_orientations(self.core, x)

    def floats_per_voxel(self) -> int:
        """As :meth:`PlaneNet.floats_per_voxel`, on the fast core's working memory."""
        return self.core.floats_per_voxel() + 2 * self.scale[2]

    @property
    def uniform_feature_maps(self) -> bool:
        """As :attr:`FastParallelNet.uniform_feature_maps` (the core's)."""
        return self.core.uniform_feature_maps


def accelerate(model: nn.Module) -> nn.Module:
    """The fast twin of ``model`` where one exists (ParallelNet, VolumeNet, PlaneNet), else ``model``.

    The twin shares the parameters of ``model`` (loading new weights into ``model`` updates it),
    starts in the same train/eval mode and is differentiable, so training can use it too.
    """
    if isinstance(model, PlaneNet):
        try:
            return FastPlaneNet(model)
        except TypeError:
            return model
    if isinstance(model, ParallelNet):
        try:
            return FastParallelNet(model)
        except TypeError:
            return model
    return model
