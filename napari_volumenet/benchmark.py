"""Speed and memory benchmark of the networks (``volumenet benchmark``).

The networks get **random weights** and a **random LR volume**: the numbers say how fast a
network runs and how much memory it needs, nothing about the quality of its output. Every
model runs through :func:`napari_volumenet.inference.upscale` (the same tiling as ``volumenet
upscale``), once as a warm-up and then ``repeats`` times; the reported time is the median.

Peak memory:

- CUDA: ``torch.cuda.max_memory_allocated`` over the warm-up and the timed runs, after
  ``reset_peak_memory_stats`` (tensors allocated by PyTorch on the GPU, weights included);
- CPU / MPS: the peak resident set size (RSS) of this process above its value just before the
  warm-up, **sampled** by a background thread every ~5 ms with psutil, so a spike shorter than
  that can be missed and the value is a lower bound of the true peak.

Bandwidth roofline (:mod:`napari_volumenet.roofline`): the bytes the network's layers must read
and write for the whole volume at the run's precision, divided by the memory bandwidth — given,
or measured as the copy bandwidth of the device — is the shortest time the memory allows;
``roofline.fraction`` is that time over the measured median.
"""

from __future__ import annotations

import functools
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil
import torch

from .inference import RunOptions, upscale
from .models import count_parameters, create_model
from .roofline import layer_costs, measure_bandwidth, roofline

DEFAULT_SIZE = (125, 125, 75)
SAMPLE_INTERVAL_S = 0.005
NOTE = "random weights and a random volume: these numbers measure speed and memory only, not quality"


class PeakRSS:
    """Context manager sampling this process's RSS every ``interval`` seconds in a thread.

    ``peak_above_baseline`` is the largest sample minus the RSS measured on entry (≥ 0).
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, name="volumenet-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_above_baseline(self) -> int:
        return max(0, self.peak - self.baseline)


@functools.cache
def _device_bandwidth(device: str) -> float:
    """The copy bandwidth of ``device``, measured once per process."""
    return measure_bandwidth(device)


def benchmark_model(
    name: str,
    size: Sequence[int] = DEFAULT_SIZE,
    *,
    options: RunOptions = RunOptions(),
    repeats: int = 3,
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    bandwidth: float | None = None,
) -> dict[str, Any]:
    """Time one registry model (random weights) on a random LR volume of ``size``; see the module docstring.

    ``bandwidth``: memory bandwidth in bytes/s for the roofline; ``None`` measures the device's.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    torch.manual_seed(seed)
    model = create_model(name, **(model_kwargs or {})).eval()
    lr = np.random.default_rng(seed).random(tuple(int(n) for n in size), dtype=np.float32)
    plan = options.plan(lr.shape, model)
    is_cuda = plan.device.startswith("cuda")
    times: list[float] = []
    if is_cuda:
        dev = torch.device(plan.device)
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        upscale(lr, model, plan=plan)  # warm-up: cuDNN autotuning, allocator, lazy init
        for _ in range(repeats):
            torch.cuda.synchronize(dev)
            start = time.perf_counter()
            upscale(lr, model, plan=plan)
            times.append(time.perf_counter() - start)
        peak = int(torch.cuda.max_memory_allocated(dev))
        memory_kind = "cuda max_memory_allocated"
    else:
        with PeakRSS() as rss:
            upscale(lr, model, plan=plan)
            for _ in range(repeats):
                start = time.perf_counter()
                upscale(lr, model, plan=plan)
                times.append(time.perf_counter() - start)
        peak = rss.peak_above_baseline
        memory_kind = f"peak RSS above baseline, sampled every {SAMPLE_INTERVAL_S * 1000:.0f} ms"
    median = statistics.median(times)
    costs = layer_costs(model, lr.shape, bytes_per_element=4 if plan.precision == "fp32" else 2)
    measured = bandwidth is None
    bound = roofline(costs, median, _device_bandwidth(plan.device) if measured else bandwidth)
    hr_voxels = math.prod(lr.shape) * math.prod(model.scale)
    return {
        "model": name,
        "config": dict(model.config),
        "params": count_parameters(model),
        "receptive_field": model.receptive_field,
        "lr_shape": list(lr.shape),
        "hr_shape": [n * s for n, s in zip(lr.shape, model.scale)],
        "repeats": repeats,
        "seconds": times,
        "seconds_median": median,
        "hr_voxels_per_s": hr_voxels / median if median > 0 else float("inf"),
        "peak_memory_bytes": peak,
        "memory_kind": memory_kind,
        "roofline": {**bound, "bandwidth_measured": measured},
        "plan": plan.to_dict(),
    }


def run_benchmark(
    models: Sequence[str] = ("volumenet",),
    size: Sequence[int] = DEFAULT_SIZE,
    *,
    options: RunOptions = RunOptions(),
    repeats: int = 3,
    seed: int = 0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    bandwidth: float | None = None,
) -> dict[str, Any]:
    """Benchmark every model of ``models``; ``on_result(result)`` is called after each one."""
    results = []
    for name in models:
        result = benchmark_model(name, size, options=options, repeats=repeats, seed=seed, bandwidth=bandwidth)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return {
        "note": NOTE,
        "size": [int(n) for n in size],
        "repeats": repeats,
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "results": results,
    }


def format_bytes(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"


def format_results(report: dict[str, Any]) -> str:
    """Plain-text table of a :func:`run_benchmark` report."""
    header = ["model", "#params", "device", "tiles", "median s", "HR Mvox/s", "GFLOP/s", "roofline",
              "peak memory"]
    rows = [header]
    for r in report["results"]:
        plan = r["plan"]
        rows.append([
            r["model"],
            f"{r['params'] / 1e6:.3f} M",
            f"{plan['device']} {plan['precision']}",
            str(plan["tiles"]),
            f"{r['seconds_median']:.3f}",
            f"{r['hr_voxels_per_s'] / 1e6:.2f}",
            f"{r['roofline']['achieved_flops_per_s'] / 1e9:.1f}",
            f"{100 * r['roofline']['fraction']:.1f} %",
            format_bytes(r["peak_memory_bytes"]),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    kinds = sorted({r["memory_kind"] for r in report["results"]})
    size = "×".join(map(str, report["size"]))
    lines.insert(0, f"LR volume {size}, median of {report['repeats']} run(s) after 1 warm-up; {NOTE}.")
    lines.append("peak memory: " + "; ".join(kinds))
    bandwidths = sorted({(r["roofline"]["bandwidth_bytes_per_s"], r["roofline"]["bandwidth_measured"])
                         for r in report["results"]})
    lines.append("roofline: (bytes every layer must read and write ÷ " + "; ".join(
        f"{b / 1e9:.1f} GB/s ({'measured copy bandwidth' if m else 'given'})" for b, m in bandwidths)
        + ") ÷ median time")
    return "\n".join(lines)
