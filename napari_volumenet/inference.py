"""Exact tiled upscaling of whole volumes (SPEC §4), shared by the CLI and the napari widget.

Borders: the LR volume is extended at its true border by half-sample symmetric mirroring
(:mod:`~napari_volumenet.ops.border`) by the receptive-field radius, so the network never sees
zeros where the scan simply ends, and the result is the SR grid of the original volume.

Tiling: the volume is cut into cores of ``tile`` voxels per axis. Each core runs inside a
window that extends it by ``halo = receptive_field`` neighbouring voxels of the extended volume
(real ones inside, mirrored ones past the border), so the stitched result equals whole-volume
inference on the extended volume up to floating-point noise. All windows have the same shape
(the last window of an axis is shifted inwards rather than clipped), so several run as one batch.

Use :func:`upscale` for a blocking call, or :func:`upscale_steps`, a generator yielding
``(done, total)`` progress units and returning the HR volume, to drive it from a GUI worker. A unit
is one block of one window for ParallelNet/VolumeNet's fast twin (:func:`progress_units` per window),
else one window (a tile): a volume that fits in memory runs as one window and still reports progress,
and a cancel waits for one block, not one tile.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ._allocator import reuse_freed_memory, trim_heap
from ._memory import MEMORY_FRACTION, available_memory
from .errors import Cancelled, InputError, SlowPathWarning, VolumeNetError
from .models import SuperResolutionNet
from .models.fast import accelerate
from .models.parallelnet import ParallelNet
from .ops.border import extended_window
from .ops.normalize import Normalization
from .ops.padding import resolve_padding

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MIN_TILE = 8
MAX_BATCH = 16
NETWORK_MIRROR = 4
"""LR voxels of half-sample mirrored context ParallelNet/VolumeNet get past the volume's border by default, the
network's zero padding beyond (SPEC §4's narrower mirror). Measured with ``benchmarks/border_width.py`` on the
test subjects (MRI ×2, through-plane ×4, CT ×2): the border shell stays above tricubic's and the whole-volume
PSNR within 0.002 dB of the full mirror, for a window up to ~1.7× smaller. Interpolation (scipy's
``grid-mirror``) and the baselines (not measured) keep the full mirror."""
ENGINES = ("fast", "reference")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Plan:
    """How a volume will be upscaled: device, precision and tiling (all sizes in LR voxels)."""

    device: str
    precision: str
    tile: tuple[int, int, int]
    window: tuple[int, int, int]
    halo: int
    tiles: int
    batch_size: int
    engine: str = "fast"
    mirror: int | None = None
    """LR voxels of half-sample mirrored context past the volume's border, beyond which the network's own
    zero padding takes over (SPEC §4); ``None``: the halo, exact "as if the scan went on mirrored"."""

    @property
    def border(self) -> int:
        """LR voxels a window may reach past the volume's border."""
        return self.halo if self.mirror is None else self.mirror

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """How to run a network, passed whole from the CLI, the widget, evaluation and training validation.

    ``tile``: core size in LR voxels (``None`` chooses from free memory, ``0`` is the whole volume);
    ``batch_size``: windows per forward pass (``None`` chooses); see :func:`make_plan`.
    """

    device: str = "auto"
    precision: str = "auto"
    tile: int | tuple[int, int, int] | None = None
    engine: str = "fast"
    batch_size: int | None = None
    mirror: int | str = "auto"
    """LR voxels of mirrored context past the border, ``"full"`` (the receptive field) or ``"auto"``
    (:data:`NETWORK_MIRROR` for ParallelNet/VolumeNet, else full); see :class:`Plan`."""

    def plan(self, shape: Sequence[int], model: SuperResolutionNet, *, precision: str | None = None) -> Plan:
        """:func:`make_plan` for an LR volume of ``shape`` (``precision`` overrides, e.g. fp32 for interpolation)."""
        return make_plan(shape, model, tile=self.tile, device=self.device, precision=precision or self.precision,
                         batch_size=self.batch_size, engine=self.engine, mirror=self.mirror)


def through_plane_axes(axis: int) -> tuple[int, int, int]:
    """The volume's axes in the order of a through-plane network (scale ``(1, 1, f)``): the two in-plane
    axes in their order, then the slice ``axis``; ``np.transpose(volume, through_plane_axes(a))``."""
    if axis not in (0, 1, 2):
        raise InputError(f"The slice axis must be 0, 1 or 2 (array axes), got {axis}.")
    return (*(a for a in range(3) if a != axis), axis)  # type: ignore[return-value]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → the first of cuda, mps, cpu that is available; ``cuda:1`` style names are kept."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise VolumeNetError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise VolumeNetError(f"device {device!r} was requested but no CUDA GPU is available; use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise VolumeNetError(f"device {device!r} was requested but this machine has {count} CUDA GPU(s), "
                             f"cuda:0 to cuda:{count - 1}; pass one of them or --device cuda")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise VolumeNetError("device 'mps' was requested but Apple MPS is not available; use --device cpu")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise VolumeNetError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    return resolved


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 and newer); else bf16 runs on slow generic code."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → fp16 on CUDA, fp32 elsewhere; refuses combinations the device cannot run.

    Warns (:class:`SlowPathWarning`) for bf16 on a CPU without native bf16, which runs it ~100× slower.
    """
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise VolumeNetError(f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise VolumeNetError("fp16 is not supported on the CPU; use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bf16 instructions, so bf16 runs about 100× slower than fp32 here; "
                      "fp32 (the default on the CPU) is faster and loses nothing", SlowPathWarning, stacklevel=2)
    return precision


def free_memory(device: torch.device) -> int:
    """Bytes that can be used on ``device`` now: on the CPU, free RAM within the cgroup and ``ulimit -v`` limits."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_memory()


def _bytes_per_voxel(model: SuperResolutionNet, precision: str) -> int:
    itemsize = 4 if precision == "fp32" else 2
    # autocast keeps fp32 copies of some inputs; count fp32 plus the half-precision working set
    return model.floats_per_voxel() * (itemsize if precision == "fp32" else itemsize + 2)


def _window_length(n: int, core: int, halo: int, border: int) -> int:
    """LR voxels one window spans along an axis of ``n``: its core and a halo each side, but never more than
    the axis with its ``border`` (the mirrored context past each end)."""
    return min(core + 2 * halo, n + 2 * border)


def _axis_splits(n: int, halo: int, border: int) -> list[tuple[int, int, int]]:
    """Every distinct way to cut an axis of ``n`` LR voxels: ``(cores, core, window)``, fewest cores first."""
    splits = {}
    for k in range(1, max(1, n // MIN_TILE) + 1):
        core = math.ceil(n / k)
        if core not in splits:
            splits[core] = (math.ceil(n / core), core, _window_length(n, core, halo, border))
    return list(splits.values())


def auto_tile(
    shape: Sequence[int], model: SuperResolutionNet, device: torch.device, precision: str = "fp32",
    budget: int | None = None, border: int | None = None,
) -> tuple[int, int, int]:
    """Core size per axis (LR voxels) that computes the fewest window voxels within the memory budget.

    The whole volume (``shape``) when it fits; otherwise the cut whose windows fit the budget
    with the least halo recomputed, so a volume slightly over the budget is split once along
    one axis rather than into eight nearly volume-sized windows.
    """
    budget = int(free_memory(device) * MEMORY_FRACTION[device.type]) if budget is None else budget
    max_window = budget // _bytes_per_voxel(model, precision)
    halo = model.receptive_field
    first, second, third = (_axis_splits(n, halo, halo if border is None else border) for n in shape)
    best: tuple[tuple[int, int], tuple[int, int, int]] | None = None
    for (k0, c0, w0), (k1, c1, w1) in itertools.product(first, second):
        room = max_window // (w0 * w1)
        # along the last axis the recomputed halo only grows with the number of cores: take the fewest that fit
        fitting = next(((k2, c2, w2) for k2, c2, w2 in third if w2 <= room), None)
        if fitting is None:
            continue
        k2, c2, w2 = fitting
        cost = (k0 * w0 * k1 * w1 * k2 * w2, k0 * k1 * k2)
        if best is None or cost < best[0]:
            best = (cost, (c0, c1, c2))
    if best is None:
        raise VolumeNetError(
            f"not enough free memory on {device.type} for even a {MIN_TILE}³ tile; close other programs "
            "or choose a smaller model"
        )
    return best[1]


def make_plan(
    shape: Sequence[int],
    model: SuperResolutionNet,
    *,
    tile: int | Sequence[int] | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    engine: str = "fast",
    mirror: int | str = "auto",
) -> Plan:
    """Decide device, precision, tile and batch size for an LR volume of ``shape``.

    ``tile``: ``None`` chooses from free memory (:func:`auto_tile`), ``0`` runs the whole volume at
    once, an int or three ints give the core size per axis (LR voxels; any size ≥ 1 is exact, even
    below the halo).
    ``engine``: ``fast`` runs ParallelNet/VolumeNet through :mod:`~napari_volumenet.models.fast`
    (channels-last, no concatenations; same result up to float rounding), ``reference`` runs the
    plain ``forward``. ``mirror``: LR voxels of mirrored context past the border (:class:`Plan`): ``"auto"``
    (:data:`NETWORK_MIRROR` for ParallelNet/VolumeNet, full for the others), ``"full"``, or a number (at least
    the receptive field is the full, exact extension).
    """
    if engine not in ENGINES:
        raise VolumeNetError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    model = accelerate(model) if engine == "fast" else model
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    halo = model.receptive_field
    mirror = _resolve_mirror(mirror, model, halo)
    border = halo if mirror is None else mirror
    if tile is None:
        tile = auto_tile(shape, model, dev, prec, border=border)
    tiles3 = tuple(tile) if isinstance(tile, Sequence) else (tile,) * 3
    if len(tiles3) != 3 or any(int(t) < 0 for t in tiles3):
        raise VolumeNetError(f"tile must be 0 (whole volume) or a positive number of voxels, got {tile!r}")
    core = tuple(n if t == 0 else min(int(t), n) for t, n in zip(tiles3, shape))
    window = tuple(_window_length(n, c, halo, border) for n, c in zip(shape, core))
    count = math.prod(math.ceil(n / c) for n, c in zip(shape, core))
    if batch_size is None:
        budget = int(free_memory(dev) * MEMORY_FRACTION[dev.type])
        per_window = math.prod(window) * _bytes_per_voxel(model, prec)
        batch_size = max(1, min(MAX_BATCH, count, budget // max(per_window, 1)))
        if dev.type == "cpu":
            batch_size = 1  # one big window already keeps every core busy; batching only adds memory
    return Plan(dev.type if dev.index is None else str(dev), prec, core, window, halo, count, int(batch_size), engine,
                mirror)


def _resolve_mirror(mirror: int | str, model: torch.nn.Module, halo: int) -> int | None:
    """The mirror width of a plan: ``None`` for the full one (the halo), else LR voxels below the halo."""
    if mirror == "auto":
        mirror = NETWORK_MIRROR if isinstance(getattr(model, "net", model), ParallelNet) else "full"
    if mirror == "full":
        return None
    if isinstance(mirror, bool) or not isinstance(mirror, (int, np.integer)) or mirror < 0:
        raise VolumeNetError(f"the mirrored border must be 'auto', 'full' or 0 or more voxels, got {mirror!r}")
    return None if int(mirror) >= halo else int(mirror)


def _axis_windows(n: int, core: int, window: int, halo: int, border: int) -> list[tuple[slice, slice]]:
    """(core, window) slice pairs along an axis of ``n``; windows all have length ``window``, keep ``halo``
    voxels of context on each side of their core where the axis (with its ``border``) has them, and reach
    at most ``border`` voxels past either end (into the mirrored extension). A window that ends at the
    extension's end meets the network's zero padding exactly where one whole-volume window would."""
    pairs = []
    for start in range(0, n, core):
        stop = min(start + core, n)
        w0 = max(-border, min(start - halo, n + border - window))
        pairs.append((slice(start, stop), slice(w0, w0 + window)))
    return pairs


def tile_windows(shape: Sequence[int], plan: Plan) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Every ``(core, window)`` pair of LR slices for ``plan`` over a volume of ``shape`` (windows in the
    volume's coordinates, reaching past its border by up to ``plan.border``)."""
    axes = [_axis_windows(n, c, w, plan.halo, plan.border) for n, c, w in zip(shape, plan.tile, plan.window)]
    return [tuple(zip(*combo)) for combo in itertools.product(*axes)]  # type: ignore[misc]


def _hr_slices(core: tuple[slice, ...], window: tuple[slice, ...], scale: Sequence[int]) -> tuple[slice, ...]:
    """Where ``core`` lies inside the HR output of ``window``."""
    return tuple(slice((c.start - w.start) * s, (c.stop - w.start) * s) for c, w, s in zip(core, window, scale))


def upscale_steps(
    volume: np.ndarray,
    model: SuperResolutionNet,
    *,
    normalization: Normalization | None = None,
    plan: Plan | None = None,
    pad_value: float | str | None = "auto",
    axes: Sequence[int] | None = None,
    **plan_options,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Upscale ``volume`` ``(D, H, W)`` (input units) tile by tile.

    Yields ``(done, total)`` progress units (:func:`progress_units` per window) and returns the HR volume
    ``(D·s0, H·s1, W·s2)`` float32 in the input's units (``StopIteration.value``).
    ``normalization`` maps the input to the network's [0, 1] range and back; ``None`` means
    the volume is already normalised. ``pad_value``: CT padding outside the field of view
    (:func:`~napari_volumenet.ops.padding.resolve_padding`; ``"auto"`` detects it when the
    normalisation is CT). ``axes``: the volume's axes in the network's order (e.g.
    :func:`through_plane_axes`): the network runs on ``volume.transpose(axes)`` (so ``plan``
    is for that shape) and the result is transposed back. ``plan_options`` go to :func:`make_plan`.
    The model is left on its device and in its train/eval mode, as it came.
    Closing the generator early (cancel) frees everything; no partial result escapes.
    """
    if volume.ndim != 3:
        raise InputError(f"expected a 3D volume, got shape {volume.shape}")
    if axes is not None:
        order = tuple(int(a) for a in axes)
        hr = yield from upscale_steps(np.transpose(volume, order), model, normalization=normalization, plan=plan,
                                      pad_value=pad_value, **plan_options)
        return np.ascontiguousarray(np.transpose(hr, np.argsort(order)))
    plan = plan or make_plan(volume.shape, model, **plan_options)
    was_training = model.training
    parameter = next(model.parameters(), None)
    home = None if parameter is None else parameter.device
    try:
        return (yield from _upscale_tiles(volume, model, normalization, plan, pad_value))
    finally:
        model.train(was_training)
        if home is not None:
            model.to(home)


def _upscale_tiles(volume: np.ndarray, model: SuperResolutionNet, normalization: Normalization | None, plan: Plan,
                   pad_value: float | str | None) -> Generator[tuple[int, int], None, np.ndarray]:
    """The tile loop of :func:`upscale_steps` (the model is moved to the plan's device and set to eval)."""
    padding = resolve_padding(volume, normalization.modality if normalization else "mri", pad_value)
    device = torch.device(plan.device)
    scale = model.scale
    model = model.to(device).eval()
    runner = accelerate(model) if plan.engine == "fast" else model
    out = np.empty(tuple(n * s for n, s in zip(volume.shape, scale)), dtype=np.float32)
    pairs = tile_windows(volume.shape, plan)
    autocast = (
        torch.autocast(device.type, dtype=PRECISIONS[plan.precision])
        if plan.precision != "fp32" else contextlib.nullcontext()
    )
    # where the fast twin allocates the same few feature-map sizes for every window, freed blocks fit the next
    # ones; ever wider maps (the dense baselines' concatenations, MobileNetV2's expansions) a heap cannot reuse
    on_cpu_fast = runner is not model and device.type == "cpu"
    reuse = (functools.partial(reuse_freed_memory, trim=False) if on_cpu_fast and runner.uniform_feature_maps
             else contextlib.nullcontext)
    autotune = _cudnn_autotune if device.type == "cuda" else contextlib.nullcontext

    @contextlib.contextmanager
    def running() -> Generator[None, None, None]:
        # entered per part, never held across a yield: a paused or abandoned generator leaves
        # glibc's process-wide settings and cuDNN's flag as they were
        with reuse(), autotune(), torch.inference_mode(), autocast:
            yield

    units = progress_units(runner)  # per window
    total = len(pairs) * units
    try:
        for start in range(0, len(pairs), plan.batch_size):
            batch = pairs[start:start + plan.batch_size]
            windows = np.stack([extended_window(volume, window) for _, window in batch])
            windows = windows.astype(np.float32, copy=False) if padding is None else padding.hide(windows)
            if normalization is not None:
                windows = normalization.apply(windows)
            tensor = torch.from_numpy(windows)[:, None].to(device)
            result = yield from _forward_in_parts(runner, tensor, running, (start * units, len(batch), total), plan)
            for (core, window), hr in zip(batch, result[:, 0].cpu().numpy()):
                target = tuple(slice(c.start * s, c.stop * s) for c, s in zip(core, scale))
                core_hr = hr[_hr_slices(core, window, scale)]
                core_hr = core_hr if normalization is None else normalization.invert(core_hr)
                out[target] = core_hr if padding is None else padding.restore(core_hr, volume[core], scale)
            yield (start + len(batch)) * units, total
    finally:
        if on_cpu_fast:
            trim_heap()
    return out


def progress_units(runner: torch.nn.Module) -> int:
    """The parts one forward pass of ``runner`` reports progress in (its blocks where it can, else 1)."""
    return int(getattr(runner, "progress_units", 1)) if hasattr(runner, "forward_steps") else 1


def _forward_in_parts(runner: torch.nn.Module, x: torch.Tensor, running: Callable[[], Any],
                      progress: tuple[int, int, int], plan: Plan) -> Generator[tuple[int, int], None, torch.Tensor]:
    """``runner(x)`` as float, each part under ``running()``. ``progress``: units done before, windows in ``x``
    (each part of the pass is that many units), units in all; yields ``(done, total)`` between the parts."""
    done, windows, total = progress
    steps = runner.forward_steps(x) if hasattr(runner, "forward_steps") else None
    while True:
        with running():
            try:
                if steps is None:
                    return runner(x).float()
                next(steps)
            except StopIteration as finished:
                return finished.value.float()
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                if isinstance(error, RuntimeError) and not _is_out_of_memory(error):
                    raise
                raise VolumeNetError(
                    f"out of memory on {plan.device} with {plan.window} voxel windows; pass a smaller --tile"
                ) from None
        done += windows
        yield done, total


def _is_out_of_memory(error: RuntimeError) -> bool:
    """Whether ``error`` is an allocation failure (the CPU allocator raises a plain RuntimeError)."""
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in text or "not enough memory" in text


@contextlib.contextmanager
def _cudnn_autotune() -> Generator[None, None, None]:
    """Let cuDNN time its convolution algorithms once and keep the fastest: every window has one shape."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def upscale(
    volume: np.ndarray,
    model: SuperResolutionNet,
    *,
    normalization: Normalization | None = None,
    plan: Plan | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    pad_value: float | str | None = "auto",
    axes: Sequence[int] | None = None,
    **plan_options,
) -> np.ndarray:
    """Blocking form of :func:`upscale_steps`.

    ``progress(done, total)`` is called after each progress unit; when ``cancel()`` returns
    true there, :class:`~napari_volumenet.errors.Cancelled` is raised.
    """
    steps = upscale_steps(volume, model, normalization=normalization, plan=plan, pad_value=pad_value, axes=axes,
                          **plan_options)
    return drive(steps, progress, cancel)


def drive(steps: Generator[tuple[int, int], None, Any], progress: Progress | None = None,
          cancel: Callable[[], bool] | None = None) -> Any:
    """Run a generator that yields ``(done, total)`` tiles to its end and return its value.

    ``progress(done, total)`` after each step; ``cancel()`` true at a step boundary closes it and raises
    :class:`~napari_volumenet.errors.Cancelled`.
    """
    while True:
        try:
            done, total = next(steps)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(done, total)
        if cancel is not None and cancel() and done < total:
            steps.close()
            raise Cancelled("upscaling was cancelled; no result was kept")
