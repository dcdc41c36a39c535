"""Exact tiled inference (SPEC §4): tiled == whole volume, bounded memory, progress and cancel."""

import math

import numpy as np
import pytest
import torch

from napari_volumenet import inference
from napari_volumenet.benchmark import benchmark_model
from napari_volumenet.errors import Cancelled, SlowPathWarning, VolumeNetError
from napari_volumenet.inference import auto_tile, make_plan, progress_units, tile_windows, upscale, upscale_steps
from napari_volumenet.models import create_model, list_models
from napari_volumenet.models.fast import accelerate

TINY = {
    "volumenet": dict(depth=3, channels=6),
    "parallelnet": dict(depth=2, channels=6, block="lwv1"),
    "mdcsrn": dict(growth=2, blocks=1, units=2),
    "tricubic": {},
}
SMALL = {  # every registry model, small enough for a test
    **TINY,
    "srcnn3d": {},
    "dcsrn": dict(growth=2, units=2),
}


@pytest.fixture
def volume():
    return np.random.default_rng(0).random((19, 14, 23)).astype(np.float32)


def _model(name, scale=2):
    torch.manual_seed(0)
    return create_model(name, scale=scale, **TINY[name])


# every window is its core plus the receptive field on each side, so mDCSRN (radius 17) skips the tiniest tiles
TILINGS = [(n, t) for n in TINY for t in (3, 4, (5, 3, 7), 9) if n != "mdcsrn" or t not in (3, 4)]


@pytest.mark.parametrize(("name", "tile"), TILINGS)
def test_tiled_equals_whole_volume(volume, name, tile):
    model = _model(name)
    whole = upscale(volume, model, tile=0)
    tiled = upscale(volume, model, tile=tile, batch_size=4)
    assert tiled.shape == tuple(2 * n for n in volume.shape)
    assert np.abs(tiled - whole).max() < 1e-4


def test_tiles_smaller_than_halo_and_anisotropic_scale(volume):
    model = _model("volumenet", scale=(1, 1, 2))
    assert model.receptive_field > 2
    volume = volume[:8, :7, :9]
    whole = upscale(volume, model, tile=0)
    tiled = upscale(volume, model, tile=2)
    assert whole.shape == (8, 7, 18)
    assert np.abs(tiled - whole).max() < 1e-4


def test_tiling_without_halo_would_differ(volume):
    """The halo matters: the same cores run without neighbours give a different result."""
    model = _model("volumenet")
    whole = upscale(volume, model, tile=0).astype(np.float64)
    naive = np.zeros_like(whole)
    with torch.inference_mode():
        for z in range(0, 19, 5):
            core = volume[z:z + 5]
            naive[2 * z:2 * z + 2 * core.shape[0]] = model(torch.from_numpy(core)[None, None])[0, 0].numpy()
    assert np.abs(naive - whole).max() > 1e-3


@pytest.mark.parametrize("name", list_models())
def test_upscaling_is_the_network_on_the_half_sample_mirrored_volume(name):
    """SPEC §4: the LR volume is extended by mirroring (edge voxel repeated) by the receptive field,
    run whole, and cropped back to the SR grid; tiled inference gives the same."""
    torch.manual_seed(0)
    model = create_model(name, scale=2, **SMALL.get(name, {}))
    volume = np.random.default_rng(1).random((7, 5, 6)).astype(np.float32)
    rf = model.receptive_field
    with torch.inference_mode():
        full = model.eval()(torch.from_numpy(np.pad(volume, rf, mode="symmetric"))[None, None])[0, 0].numpy()
    expected = full[tuple(slice(s * rf, s * (rf + n)) for s, n in zip(model.scale, volume.shape))]
    assert np.abs(upscale(volume, model, tile=0, mirror="full") - expected).max() < 1e-4
    assert np.abs(upscale(volume, model, tile=(4, 5, 3), batch_size=2, mirror="full") - expected).max() < 1e-4


@pytest.mark.parametrize("mirror", [0, 2, 4])
def test_a_narrow_mirror_is_the_network_on_the_narrowly_mirrored_volume_and_tiles_exactly(volume, mirror):
    """SPEC §4's narrower mirror: ``mirror`` voxels of half-sample mirror, then the network's own zero
    padding; every tiling gives the result of one whole window on that extended volume, and costs less."""
    model = _model("volumenet")  # receptive field 5
    assert mirror < model.receptive_field
    with torch.inference_mode():
        extended = torch.from_numpy(np.pad(volume, mirror, mode="symmetric"))[None, None]
        full = model.eval()(extended)[0, 0].numpy()
    expected = full[tuple(slice(2 * mirror, 2 * (mirror + n)) for n in volume.shape)]
    for tile in (0, 4, (5, 3, 7), 9):
        assert np.abs(upscale(volume, model, tile=tile, mirror=mirror) - expected).max() < 1e-4, tile
    narrow, wide = (make_plan(volume.shape, model, tile=0, mirror=m) for m in (mirror, "full"))
    assert narrow.window == tuple(n + 2 * mirror for n in volume.shape) and narrow.border == mirror
    assert wide.border == model.receptive_field and math.prod(narrow.window) < math.prod(wide.window)
    assert make_plan(volume.shape, model, tile=0, mirror=99).mirror is None  # wider than the field: the full rule
    with pytest.raises(VolumeNetError, match="mirrored border"):
        make_plan(volume.shape, model, mirror=-1)


def test_parallelnets_get_the_narrow_mirror_by_default_and_the_others_the_full_one(volume):
    network = create_model("volumenet")  # D9C32: receptive field 11
    for engine in ("fast", "reference"):
        assert make_plan(volume.shape, network, engine=engine).mirror == inference.NETWORK_MIRROR
    assert inference.NETWORK_MIRROR < network.receptive_field
    for other in ("tricubic", "mdcsrn"):  # interpolation, and a baseline whose border was not measured
        assert make_plan(volume.shape, _model(other)).mirror is None


@pytest.mark.parametrize("name", ["volumenet", "mdcsrn"])
def test_the_border_is_not_zero_padded(name):
    """On a constant volume every output voxel of one sub-voxel phase sees the same input, up to the
    border: no rim (with zero padding the outer voxels would differ)."""
    out = upscale(np.full((6, 7, 8), 0.5, np.float32), _model(name), tile=3, mirror="full")
    phases = out.reshape(6, 2, 7, 2, 8, 2).transpose(1, 3, 5, 0, 2, 4).reshape(8, -1)
    assert np.ptp(phases, axis=1).max() < 1e-5


@pytest.mark.parametrize("mirror", ["full", 2, 0])
def test_windows_cover_the_volume_once_and_keep_the_halo(mirror):
    """Each core keeps ``halo`` voxels of context where the mirrored-out axis has them; windows reach at most
    ``border`` past the ends and all have one shape."""
    model = _model("volumenet")
    shape = (30, 17, 9)
    plan = make_plan(shape, model, tile=6, device="cpu", mirror=mirror)
    border = plan.border
    covered = np.zeros(shape, dtype=int)
    for core, window in tile_windows(shape, plan):
        covered[core] += 1
        for c, w, n, length in zip(core, window, shape, plan.window):
            assert w.stop - w.start == length == min(min(n, 6) + 2 * plan.halo, n + 2 * border)
            assert -border <= w.start <= max(c.start - plan.halo, -border)
            assert min(c.stop + plan.halo, n + border) <= w.stop <= n + border
    assert (covered == 1).all()
    assert plan.tiles == len(tile_windows(shape, plan))


def test_normalization_is_applied_and_inverted(volume):
    from napari_volumenet.ops.normalize import Normalization

    model = _model("volumenet")
    norm = Normalization("ct", -1000.0, 1000.0)
    hu = volume * 2000 - 1000
    result = upscale(hu, model, normalization=norm, tile=5)
    expected = norm.invert(upscale(norm.apply(hu), model, tile=0))
    assert np.allclose(result, expected, atol=1e-3)


def _max_window_voxels(model, shape, tile):
    """Largest window the network's first convolution saw (both engines run it as a module)."""
    seen = []
    hook = model.head.register_forward_pre_hook(lambda _m, args: seen.append(args[0][0].numel()))
    upscale(np.zeros(shape, np.float32), model, tile=tile, batch_size=1)
    hook.remove()
    return max(seen)


def test_working_memory_is_bounded_by_the_tile_not_the_volume():
    model = _model("volumenet")
    small = _max_window_voxels(model, (24, 24, 24), tile=8)
    large = _max_window_voxels(model, (60, 48, 40), tile=8)
    assert small == large == (8 + 2 * model.receptive_field) ** 3


def test_auto_tile_respects_the_budget():
    model = create_model("volumenet")
    per_voxel = model.floats_per_voxel() * 4
    halo = model.receptive_field
    whole = per_voxel * (20 + 2 * halo) ** 3  # the volume with its mirrored border
    assert auto_tile((20, 20, 20), model, torch.device("cpu"), budget=whole) == (20, 20, 20)
    budget = per_voxel * 40**3
    core = auto_tile((200, 200, 200), model, torch.device("cpu"), budget=budget)
    assert min(core) >= 8
    assert math.prod(c + 2 * halo for c in core) * per_voxel <= budget
    with pytest.raises(VolumeNetError, match="not enough free memory"):
        auto_tile((200, 200, 200), model, torch.device("cpu"), budget=per_voxel * 10**3)


def test_a_volume_just_over_the_budget_is_cut_once_not_into_eight():
    model = create_model("volumenet")
    per_voxel = model.floats_per_voxel() * 4
    shape = (128, 128, 128)
    extended = 128 + 2 * model.receptive_field  # with the mirrored border
    budget = per_voxel * (extended - 2) ** 3
    plan = make_plan(shape, model, tile=auto_tile(shape, model, torch.device("cpu"), budget=budget))
    assert plan.tiles == 2
    assert math.prod(plan.window) <= (extended - 2) ** 3
    computed = plan.tiles * math.prod(plan.window)
    assert computed < 1.4 * extended**3


def test_progress_reports_every_batch(volume):
    model = _model("tricubic")
    calls = []
    upscale(volume, model, tile=8, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    total = make_plan(volume.shape, model, tile=8).tiles
    assert [t for _, t in calls] == [total] * len(calls)
    assert [d for d, _ in calls] == list(range(2, total, 2)) + [total]


def test_cancel_stops_at_a_tile_boundary(volume):
    model = _model("tricubic")  # no fast twin: one progress unit per window
    calls = []
    with pytest.raises(Cancelled):
        upscale(volume, model, tile=4, progress=lambda d, t: calls.append(d), cancel=lambda: len(calls) >= 2)
    assert calls == [1, 2]


def test_one_window_reports_progress_after_every_block_and_cancels_between_them(volume):
    """ParallelNet/VolumeNet run in parts: a volume in one window still moves the bar, and a cancel stops
    the pass between two blocks; the result is the same as one uninterrupted pass."""
    model = _model("volumenet")
    units = progress_units(accelerate(model))
    assert units == model.depth * (model.depth + 1) // 2
    calls: list[tuple[int, int]] = []
    whole = upscale(volume, model, tile=0, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(d, units) for d in range(1, units + 1)]
    np.testing.assert_allclose(whole, upscale(volume, model, tile=0, engine="reference"), atol=1e-4)
    calls.clear()
    with pytest.raises(Cancelled):
        upscale(volume, model, tile=0, progress=lambda d, t: calls.append((d, t)), cancel=lambda: len(calls) >= 2)
    assert calls == [(1, units), (2, units)]  # stopped inside the one window


def test_generator_can_be_driven_step_by_step(volume):
    model = _model("tricubic")
    steps = upscale_steps(volume, model, tile=10)
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    assert progress[-1][0] == progress[-1][1]
    assert np.array_equal(result, upscale(volume, model, tile=0))


def test_bf16_on_cpu_is_close_to_fp32(volume, monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    model = _model("volumenet")
    fp32 = upscale(volume, model, tile=0, precision="fp32")
    bf16 = upscale(volume, model, tile=0, precision="bf16")
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - fp32).max() < 0.05 * (np.abs(fp32).max() + 1)


def test_bf16_on_a_cpu_without_native_bf16_warns_that_it_is_slow(monkeypatch, recwarn):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(SlowPathWarning, match="no native bf16"):
        make_plan((8, 8, 8), _model("volumenet"), device="cpu", precision="bf16")
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    make_plan((8, 8, 8), _model("volumenet"), device="cpu", precision="bf16")
    make_plan((8, 8, 8), _model("volumenet"), device="cpu", precision="fp32")
    assert not [w for w in recwarn if issubclass(w.category, SlowPathWarning)]


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(device="tpu"), "unknown device"),
        (dict(device="cpu", precision="fp16"), "fp16 is not supported on the CPU"),
        (dict(device="cpu", precision="int8"), "unknown precision"),
        (dict(device="cpu", tile=-3), "tile must be"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(VolumeNetError, match=message):
        make_plan((10, 10, 10), _model("tricubic"), **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_gpu():
    with pytest.raises(VolumeNetError, match="no CUDA GPU"):
        make_plan((10, 10, 10), _model("tricubic"), device="cuda")


# ----------------------------------------------------------------------------- CUDA (skipped without a GPU;
# benchmarks/gpu_check.sh runs them on a GPU machine)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("name", ["volumenet", "parallelnet", "mdcsrn"])
def test_cuda_tiled_equals_the_whole_volume_and_the_cpu(volume, name):
    model = _model(name)
    cpu = upscale(volume, model, tile=0, device="cpu", precision="fp32")
    whole = upscale(volume, model, tile=0, device="cuda", precision="fp32")
    tiled = upscale(volume, model, tile=(5, 3, 7), batch_size=4, device="cuda", precision="fp32")
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(whole - cpu).max() < 1e-2 * (np.abs(cpu).max() + 1)  # TF32 convolutions allowed


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precision_stays_close_to_fp32(volume, precision):
    model = _model("volumenet")
    fp32 = upscale(volume, model, tile=0, device="cuda", precision="fp32")
    half = upscale(volume, model, tile=(9, 9, 9), device="cuda", precision=precision)
    assert half.dtype == np.float32
    assert np.abs(half - fp32).max() < 0.05 * (np.abs(fp32).max() + 1)


@needs_cuda
def test_cuda_benchmark_reports_its_memory_and_roofline():
    result = benchmark_model("volumenet", (16, 16, 16), options=inference.RunOptions(device="cuda", precision="fp16"),
                             repeats=1, bandwidth=3e12)
    assert result["memory_kind"] == "cuda max_memory_allocated" and result["peak_memory_bytes"] > 0
    assert result["plan"]["precision"] == "fp16" and 0 < result["roofline"]["fraction"] < 1


@needs_cuda
def test_cuda_autotunes_while_a_batch_is_computed_and_restores_the_setting_between_and_after(volume, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    model = _model("volumenet")
    during = []
    model.register_forward_pre_hook(lambda module, args: during.append(torch.backends.cudnn.benchmark))
    steps = upscale_steps(volume, model, tile=(9, 9, 9), device="cuda", precision="fp16", engine="reference",
                          batch_size=1)
    next(steps)
    assert during == [True]
    assert not torch.backends.cudnn.benchmark  # not held while the generator waits at a yield
    for _ in steps:
        pass
    assert len(during) > 1 and all(during)
    assert not torch.backends.cudnn.benchmark


def test_upscale_leaves_the_model_as_it_found_it_and_moves_axes():
    torch.manual_seed(0)
    model = create_model("volumenet", depth=1, channels=4, scale=(1, 1, 2)).train()
    volume = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32)
    moved = upscale(volume, model, axes=(0, 2, 1), tile=0, device="cpu", precision="fp32")
    assert model.training  # validation in training must not switch it to eval
    assert moved.shape == (6, 14, 5)
    by_hand = upscale(np.transpose(volume, (0, 2, 1)), model, tile=0, device="cpu", precision="fp32")
    np.testing.assert_allclose(moved, np.transpose(by_hand, (0, 2, 1)), atol=1e-6)
