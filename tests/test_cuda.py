"""The CUDA path: skipped without a GPU; ``benchmarks/gpu_check.sh`` runs it on a GPU machine."""

import numpy as np
import pytest
import torch

from napari_volumenet.benchmark import benchmark_model
from napari_volumenet.inference import upscale, upscale_steps
from napari_volumenet.models import create_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {
    "volumenet": dict(depth=3, channels=6),
    "parallelnet": dict(depth=2, channels=6, block="lwv1"),
    "mdcsrn": dict(growth=2, blocks=1, units=2),
}


@pytest.fixture
def volume():
    return np.random.default_rng(0).random((19, 14, 23)).astype(np.float32)


@pytest.mark.parametrize("name", list(TINY))
def test_tiled_on_cuda_equals_the_whole_volume_and_the_cpu(volume, name):
    torch.manual_seed(0)
    model = create_model(name, **TINY[name])
    cpu = upscale(volume, model, tile=0, device="cpu", precision="fp32")
    whole = upscale(volume, model, tile=0, device="cuda", precision="fp32")
    tiled = upscale(volume, model, tile=(5, 3, 7), batch_size=4, device="cuda", precision="fp32")
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(whole - cpu).max() < 1e-2 * (np.abs(cpu).max() + 1)  # TF32 convolutions allowed


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_cuda_stays_close_to_fp32(volume, precision):
    torch.manual_seed(0)
    model = create_model("volumenet", **TINY["volumenet"])
    fp32 = upscale(volume, model, tile=0, device="cuda", precision="fp32")
    half = upscale(volume, model, tile=(9, 9, 9), device="cuda", precision=precision)
    assert half.dtype == np.float32
    assert np.abs(half - fp32).max() < 0.05 * (np.abs(fp32).max() + 1)


def test_benchmark_on_cuda_reports_its_memory_and_roofline():
    result = benchmark_model("volumenet", (16, 16, 16), device="cuda", precision="fp16", repeats=1,
                             bandwidth=3e12)
    assert result["memory_kind"] == "cuda max_memory_allocated" and result["peak_memory_bytes"] > 0
    assert result["plan"]["precision"] == "fp16" and 0 < result["roofline"]["fraction"] < 1


def test_cudnn_autotunes_while_a_volume_is_upscaled_and_is_restored_after(volume, monkeypatch):
    model = create_model("volumenet", **TINY["volumenet"])
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    steps = upscale_steps(volume, model, tile=(9, 9, 9), device="cuda", precision="fp16")
    next(steps)
    assert torch.backends.cudnn.benchmark
    for _ in steps:
        pass
    assert not torch.backends.cudnn.benchmark
