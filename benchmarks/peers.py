"""Side-by-side speed and memory of VolumeNet against its peers, in one run on one machine.

    python benchmarks/peers.py --json benchmarks/results/cpu.json --plot benchmarks/results/cpu.png

Every contender upscales the same random LR volume ×2 with the same random-weight network
(speed and memory only; quality is in the README's Table III):

- ``scipy cubic``: ``scipy.ndimage.zoom(order=3, grid_mode=True, mode="reflect")`` — interpolation;
- ``plain eager``: peer (a), :class:`PlainParallelNet` (``plain_peer.py``), written the way most published code is
  (branch by branch, every feature map kept, ``torch.cat`` before each branch), fp32, whole volume;
- ``MONAI sliding window``: peer (b), ``monai.inferers.sliding_window_inference`` with Gaussian
  blending (roi 64³ LR, overlap 0.25) around the same network (needs ``pip install monai``);
- ``ours reference``: ``napari_volumenet.inference.upscale`` with the plain forward pass
  (``engine="reference"``), tile chosen from free memory;
- ``ours fast``: the same with the fast engine (the default of ``volumenet upscale``), fp32, and
  where the CPU has native bf16, ``ours fast bf16``.

Each contender runs in a fresh process (so one's cached memory does not hide the next one's
peak); its timing is the median of ``--repeats`` runs after a warm-up, its peak memory the peak
RSS above the process's baseline after imports (CPU, sampled every 5 ms) or CUDA
``max_memory_allocated``. The size sweep times ``ours fast`` and ``plain eager`` against the volume
size; where the plain peer's peak, extrapolated from the size before, would exceed 80 % of the free
memory, it is skipped and listed. Ratios are what to compare: these machines are shared and absolute
times drift between runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from scipy import ndimage
from torch import nn

from napari_volumenet.benchmark import PeakRSS
from napari_volumenet.models import create_model
from napari_volumenet.models.parallelnet import ParallelNet
from plain_peer import PlainParallelNet  # benchmarks/ is on sys.path when run as a script

UNBOUNDED = {"plain eager"}  # whole-volume peers: skipped in the sweep where they would not fit in memory
SWEEP_MEMORY_FRACTION = 0.8


def _timed(run: Callable[[], object], repeats: int, device: torch.device) -> dict:
    """Median seconds of ``run`` over ``repeats`` after a warm-up, and its peak memory."""
    gc.collect()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with PeakRSS() as rss:
        run()
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else rss.peak_above_baseline
    return {"seconds": times, "seconds_median": statistics.median(times), "peak_memory_bytes": peak}


def contenders(model: ParallelNet, lr: np.ndarray, device: torch.device, monai_roi: int) -> dict[str, Callable]:
    from napari_volumenet.inference import cpu_has_native_bf16, upscale

    scale = model.scale
    plain = PlainParallelNet(model).eval()
    dev = str(device)

    def plain_eager():
        with torch.no_grad():
            return plain(torch.from_numpy(lr)[None, None].to(device)).cpu()

    runs: dict[str, Callable] = {
        "scipy cubic": lambda: ndimage.zoom(lr, scale, order=3, grid_mode=True, mode="reflect"),
        "plain eager": plain_eager,
    }
    try:
        from monai.inferers import sliding_window_inference

        def monai_window():
            with torch.no_grad():
                return sliding_window_inference(
                    torch.from_numpy(lr)[None, None].to(device), roi_size=(monai_roi,) * 3, sw_batch_size=1,
                    predictor=model, overlap=0.25, mode="gaussian").cpu()

        runs["MONAI sliding window"] = monai_window
    except ImportError:
        print("MONAI is not installed (pip install monai): peer (b) skipped", file=sys.stderr)
    runs["ours reference"] = lambda: upscale(lr, model, device=dev, precision="fp32", engine="reference")
    runs["ours fast"] = lambda: upscale(lr, model, device=dev, precision="fp32", engine="fast")
    if device.type == "cuda":
        runs["ours fast fp16"] = lambda: upscale(lr, model, device=dev, precision="fp16", engine="fast")
        runs["ours fast bf16"] = lambda: upscale(lr, model, device=dev, precision="bf16", engine="fast")
    elif cpu_has_native_bf16():
        runs["ours fast bf16"] = lambda: upscale(lr, model, device=dev, precision="bf16", engine="fast")
    return runs


def training_throughput(model: ParallelNet, device: torch.device, steps: int, batch: int = 8) -> dict:
    """Patches/s of one training step (forward, L1, backward, Adam) with 16³ LR patches, both engines."""
    from napari_volumenet.models.fast import accelerate

    result = {}
    for name, runner in (("reference", model), ("fast", accelerate(model))):
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        lr = torch.rand(batch, 1, 16, 16, 16, device=device)
        hr = torch.rand(batch, 1, 32, 32, 32, device=device)

        def step():
            loss = nn.functional.l1_loss(runner(lr), hr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result[name] = steps * batch / (time.perf_counter() - start)
    model.eval()
    return result


def _available_memory(device: torch.device) -> int:
    return int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else psutil.virtual_memory().available


def _extrapolated_peak(smaller: list[dict], edge: int) -> int:
    """Peak memory at ``edge``³ if it grows with the voxel count from the largest of ``smaller`` (0 if none)."""
    if not smaller:
        return 0
    last = smaller[-1]
    return int(last["peak_memory_bytes"] * math.prod(2 * edge / n for n in last["hr_shape"]))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = report["sweep"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in sorted({row["contender"] for row in sweep}):
        rows = [r for r in sweep if r["contender"] == name]
        voxels = [math.prod(r["hr_shape"]) / 1e6 for r in rows]
        left.plot(voxels, [r["seconds_median"] for r in rows], "o-", label=name)
        right.plot(voxels, [r["peak_memory_bytes"] / 2**20 for r in rows], "o-", label=name)
    left.set(xlabel="HR output (million voxels)", ylabel="seconds (median)", title="time")
    right.set(xlabel="HR output (million voxels)", ylabel="MiB above baseline", title="peak memory")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"VolumeNet D9C32 ×2 · {report['machine']['device']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="125,125,75", help="LR shape of the main comparison (default 125,125,75)")
    parser.add_argument("--sweep", default="32,64,96,128,192,256",
                        help="cube edges (LR) of the size sweep; '' for none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps per engine (0: skip)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--monai-roi", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # child process: one contender
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = create_model("volumenet", depth=9, channels=32).eval().to(device)
    rng = np.random.default_rng(0)
    shape = tuple(int(n) for n in args.size.split(","))
    lr = rng.random(shape, dtype=np.float32)
    hr_voxels = math.prod(shape) * 8
    if args.only:
        run = contenders(model, lr, device, args.monai_roi)[args.only]
        print(json.dumps({"contender": args.only, "lr_shape": list(shape), **_timed(run, args.repeats, device)}))
        return 0
    print(f"VolumeNet D9C32 ×2 on a random {'×'.join(map(str, shape))} LR volume, {device}, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)

    def measure(name: str, lr_shape: tuple[int, ...], repeats: int) -> dict:
        command = [sys.executable, __file__, "--only", name, "--size", ",".join(map(str, lr_shape)),
                   "--repeats", str(repeats), "--device", args.device, "--monai-roi", str(args.monai_roi)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(done.stdout)

    comparison = []
    for name in contenders(model, lr, device, args.monai_roi):
        row = measure(name, shape, args.repeats)
        row["hr_voxels_per_s"] = hr_voxels / row["seconds_median"]
        comparison.append(row)
        print(f"  {name:22s} {row['seconds_median']:8.2f} s  {row['peak_memory_bytes'] / 2**20:9.0f} MiB",
              file=sys.stderr)
    by_name = {r["contender"]: r["seconds_median"] for r in comparison}
    ratios = {name: by_name[name] / by_name["ours fast"] for name in by_name}

    sweep, skipped = [], []
    for edge in [int(e) for e in args.sweep.split(",") if e.strip()]:
        for name in ("plain eager", "ours fast"):
            need = _extrapolated_peak([r for r in sweep if r["contender"] == name], edge)
            if name in UNBOUNDED and need > SWEEP_MEMORY_FRACTION * _available_memory(device):
                skipped.append({"contender": name, "hr_shape": [2 * edge] * 3, "estimated_peak_bytes": need})
                print(f"  sweep {edge}³ {name:12s} skipped: needs ~{need / 2**30:.0f} GiB "
                      "(extrapolated from the size before)", file=sys.stderr)
                continue
            row = {**measure(name, (edge,) * 3, 1), "hr_shape": [2 * edge] * 3}
            sweep.append(row)
            print(f"  sweep {edge}³ {name:12s} {row['seconds_median']:8.2f} s "
                  f"{row['peak_memory_bytes'] / 2**20:9.0f} MiB", file=sys.stderr)

    training = training_throughput(model, device, args.train_steps) if args.train_steps else {}
    report = {
        "machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                    else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads",
                    "torch": torch.__version__, "python": platform.python_version()},
        "model": "volumenet D9C32 ×2 (random weights)",
        "comparison": comparison,
        "time_relative_to_ours_fast": ratios,
        "sweep": sweep,
        "sweep_skipped": skipped,
        "training_patches_per_s": training,
    }
    print(json.dumps({"ratios": ratios, "training_patches_per_s": training}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot and sweep:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
