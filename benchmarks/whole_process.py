"""Whole processes, side by side: ``volumenet upscale`` against its peers, NIfTI file in, NIfTI file out.

    python benchmarks/whole_process.py --rounds 3 --json benchmarks/results/whole_process-cpu-2threads.json

For each LR size (default 112×112×72 and 256×256×180) a real T1 (``--source``, resampled onto that grid with
2 mm voxels) or, without one, smooth random data is written as ``.nii.gz`` to a temporary folder, and every
contender runs as a fresh process that reads it and writes its ×2 result as ``.nii.gz``, so import, start-up,
reading, normalising, the network and writing all count:

- ``volumenet upscale``: the real command line with its defaults (bundled VolumeNet D9C32 MRI ×2 weights,
  tile and threads chosen by the tool);
- ``plain eager``: peer (a), :class:`plain_peer.PlainParallelNet` on the same weights, fp32, the whole volume
  at once with the network's zero padding; nibabel in and out, divided by the 99.9th percentile;
- ``scipy cubic``: ``ndimage.zoom(order=3, grid_mode=True, mode="reflect")`` with nibabel in and out;
- ``MONAI sliding window``: peer (b), ``monai.inferers.sliding_window_inference`` (roi 64³ LR, overlap 0.25,
  Gaussian blending) around the same network (skipped with a note when MONAI is not installed).

Contenders are interleaved (round 1: each in turn, round 2: each in turn, …), so drift and other load on a
shared machine fall on all of them alike; report the ratios of the medians. A contender whose peak memory,
extrapolated from the size before, would not fit in ``--memory-fraction`` of the free memory is skipped, and
one whose time, extrapolated the same way, exceeds ``--once-over`` seconds runs in the first round only.
Peak memory is each process's own peak RSS (``wait4``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mri_t1" / "oasis-malf_1000.nii.gz"
LR_VOXEL_MM = 2.0
SCALE = 2
MONAI_ROI = 64
PERCENTILE = 99.9
VOLUMENET = "volumenet upscale"
BASELINE = "volumenet upscale (baseline)"
CONTENDERS = (VOLUMENET, "plain eager", "scipy cubic", "MONAI sliding window")
PEER_MODULES = {"plain eager": "plain", "scipy cubic": "cubic", "MONAI sliding window": "monai"}


# ---------------------------------------------------------------------------------------------- the peers
# Each runs in its own process (``--run NAME IN OUT``) and imports only what it needs.

def _read(path: str):
    """``(data (D, H, W) float32, affine 4×4)`` of a NIfTI file, with nibabel."""
    import nibabel as nib
    import numpy as np

    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def _write(path: str, data, affine) -> None:
    """``data`` (HR, float32) as NIfTI on the ×2 grid of LR ``affine`` (same physical extent), with nibabel."""
    import nibabel as nib
    import numpy as np

    half = np.eye(4)
    half[:3, :3] /= SCALE
    half[:3, 3] = (1 / SCALE - 1) / 2  # the HR voxel centres inside the LR voxel, SPEC §5
    nib.save(nib.Nifti1Image(data, affine @ half), path)


def _network():
    """The bundled default ×2 MRI network (VolumeNet D9C32), built plainly and loaded from its file."""
    import torch

    from napari_volumenet.models import create_model
    from napari_volumenet.weights import default_weights

    payload = torch.load(default_weights("mri", 2), map_location="cpu", weights_only=True)
    kwargs = dict(payload["metadata"]["model_kwargs"])
    net = create_model(payload["metadata"]["model"], **kwargs)
    net.load_state_dict(payload["state_dict"])
    return net.eval()


def run_plain(src: str, dst: str) -> None:
    """Peer (a): the plain forward pass on the whole volume, fp32."""
    import numpy as np
    import torch

    from plain_peer import PlainParallelNet

    lr, affine = _read(src)
    top = float(np.percentile(lr, PERCENTILE)) or 1.0
    with torch.inference_mode():
        hr = PlainParallelNet(_network())(torch.from_numpy(lr / top)[None, None])[0, 0].numpy()
    _write(dst, hr * top, affine)


def run_cubic(src: str, dst: str) -> None:
    """scipy's cubic B-spline zoom ×2 (one thread)."""
    from scipy import ndimage

    lr, affine = _read(src)
    _write(dst, ndimage.zoom(lr, SCALE, order=3, grid_mode=True, mode="reflect"), affine)


def run_monai(src: str, dst: str) -> None:
    """Peer (b): MONAI's sliding-window inference around the network (Gaussian blending)."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    lr, affine = _read(src)
    top = float(np.percentile(lr, PERCENTILE)) or 1.0
    with torch.inference_mode():
        hr = sliding_window_inference(torch.from_numpy(lr / top)[None, None], roi_size=(MONAI_ROI,) * 3,
                                      sw_batch_size=1, predictor=_network(), overlap=0.25, mode="gaussian")
    _write(dst, hr[0, 0].numpy() * top, affine)


PEERS = {"plain": run_plain, "cubic": run_cubic, "monai": run_monai}


# ------------------------------------------------------------------------------------------- the inputs

def make_input(path: Path, shape: tuple[int, int, int], source: Path | None) -> str:
    """Write an LR volume of ``shape`` with 2 mm voxels to ``path``: ``source`` resampled onto it (linear), else
    smooth random data (Gaussian-filtered noise plus a ramp, 0–1000); returns what it is."""
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    if source is not None and source.is_file():
        data = np.asarray(nib.load(source).dataobj, dtype=np.float32)
        factors = [n / m for n, m in zip(shape, data.shape)]
        lr = np.clip(ndimage.zoom(data, factors, order=1, grid_mode=True, mode="nearest"), 0, None)
        what = f"{source.name} resampled to {'×'.join(map(str, shape))}"
    else:
        rng = np.random.default_rng(0)
        lr = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 3)
        lr = (lr - lr.min()) / (np.ptp(lr) or 1) * 1000
        what = "smooth random data"
    affine = np.diag([LR_VOXEL_MM] * 3 + [1.0])
    nib.save(nib.Nifti1Image(lr.astype(np.float32), affine), str(path))
    return what


# ------------------------------------------------------------------------------------------- measuring

@dataclass
class Run:
    """One whole process: wall seconds, CPU seconds (user, system), peak RSS (bytes), and what it said."""

    contender: str
    lr_shape: list[int]
    round: int
    seconds: float
    user_s: float
    system_s: float
    peak_rss_bytes: int
    output_bytes: int
    details: dict = field(default_factory=dict)


def command(contender: str, src: Path, dst: Path) -> list[str]:
    """The command line that runs ``contender`` on ``src`` into ``dst``."""
    if contender == BASELINE:  # another checkout's package (PYTHONPATH, see ``environment``)
        return [sys.executable, "-m", "napari_volumenet", "upscale", str(src), "-o", str(dst), "--overwrite", "-q"]
    if contender == VOLUMENET:
        exe = shutil.which("volumenet")
        head = [exe] if exe else [sys.executable, "-m", "napari_volumenet"]
        return [*head, "upscale", str(src), "-o", str(dst), "--overwrite", "-q"]
    return [sys.executable, __file__, "--run", PEER_MODULES[contender], str(src), str(dst)]


def environment(contender: str, baseline: Path | None) -> dict[str, str] | None:
    """The baseline runs the package of the ``baseline`` folder (e.g. ``git archive HEAD napari_volumenet``)."""
    if contender != BASELINE or baseline is None:
        return None
    return {**os.environ, "PYTHONPATH": str(baseline)}


def measure(contender: str, shape: tuple[int, int, int], src: Path, dst: Path, round_: int,
            baseline: Path | None = None) -> Run:
    """Run ``contender`` once as a fresh process and measure it (``wait4`` for its own peak RSS and CPU)."""
    dst.unlink(missing_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        env = environment(contender, baseline)
        process = subprocess.Popen(command(contender, src, dst), stdout=subprocess.DEVNULL, stderr=err, env=env,
                                   cwd=None if env is None else baseline)  # not this checkout's folder first
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        said = err.read().decode(errors="replace")
    if process.returncode != 0 or not dst.exists():
        raise RuntimeError(f"{contender} failed ({process.returncode}): {said[-800:]}")
    details = {}
    sidecar = dst.with_name(dst.name.removesuffix(".nii.gz") + ".json")
    if contender in (VOLUMENET, BASELINE) and sidecar.exists():
        record = json.loads(sidecar.read_text())
        details = {"tiles": record["plan"]["tiles"], "window": record["plan"]["window"],
                   "network_seconds": record["seconds"]}
    return Run(contender, list(shape), round_, seconds, usage.ru_utime, usage.ru_stime, usage.ru_maxrss * 1024,
               dst.stat().st_size, details)


def _extrapolate(runs: list[Run], contender: str, shape: tuple[int, int, int], key: str) -> float:
    """``key`` of ``contender`` at ``shape`` from its largest measured size, in proportion to the voxels (0: none, or
    none with at least 1/16 of the voxels)."""
    done = [r for r in runs if r.contender == contender]
    if not done:
        return 0.0
    last = max(done, key=lambda r: math.prod(r.lr_shape))
    if 16 * math.prod(last.lr_shape) < math.prod(shape):
        return 0.0  # too small to say: fixed costs (imports) would be scaled up with the voxels
    return getattr(last, key) * math.prod(shape) / math.prod(last.lr_shape)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _summary(runs: list[Run], shapes: list[tuple[int, int, int]], contenders: list[str]) -> list[dict]:
    """Per size and contender: median seconds, the ratios against ``volumenet upscale``, peak RSS."""
    rows = []
    for shape in shapes:
        mine = [r for r in runs if tuple(r.lr_shape) == shape]
        ours = [r.seconds for r in mine if r.contender == VOLUMENET]
        base = statistics.median(ours) if ours else math.nan
        for contender in contenders:
            own = [r for r in mine if r.contender == contender]
            if not own:
                continue
            median = statistics.median(r.seconds for r in own)
            rows.append({"lr_shape": list(shape), "contender": contender, "runs": len(own),
                         "seconds": [round(r.seconds, 2) for r in own], "seconds_median": median,
                         "time_over_volumenet": median / base, "volumenet_over_this": base / median,
                         "peak_rss_bytes": max(r.peak_rss_bytes for r in own),
                         "cpu_seconds_median": statistics.median(r.user_s + r.system_s for r in own)})
    return rows


def _print_table(rows: list[dict]) -> None:
    print("| LR size | contender | median s (runs) | ÷ volumenet | volumenet ÷ it | peak RSS |", file=sys.stderr)
    print("|---|---|---:|---:|---:|---:|", file=sys.stderr)
    for row in rows:
        runs = ", ".join(f"{s:.1f}" for s in row["seconds"])
        print(f"| {'×'.join(map(str, row['lr_shape']))} | {row['contender']} | {row['seconds_median']:.2f} "
              f"({runs}) | {row['time_over_volumenet']:.2f} | {row['volumenet_over_this']:.2f} | "
              f"{row['peak_rss_bytes'] / 2**30:.2f} GiB |", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="112,112,72;256,256,180", help="LR shapes, ';'-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="a T1 NIfTI to resample onto each LR grid (default: the shared OASIS T1 if present)")
    parser.add_argument("--memory-fraction", type=float, default=0.8)
    parser.add_argument("--once-over", type=float, default=240.0,
                        help="contenders extrapolated to take longer (s) run in the first round only")
    parser.add_argument("--skip-over", type=float, default=480.0,
                        help="contenders extrapolated to take longer (s) are skipped, their estimate reported")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a folder holding another version's napari_volumenet package: its upscale runs too, "
                             "interleaved (an A/B of the whole process)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--run", nargs=3, metavar=("PEER", "IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        PEERS[args.run[0]](args.run[1], args.run[2])
        return 0

    import importlib.util

    shapes = [tuple(int(n) for n in size.split(",")) for size in args.sizes.split(";") if size.strip()]
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if args.baseline is not None:
        contenders.insert(1, BASELINE)
    notes = []
    if "MONAI sliding window" in contenders and importlib.util.find_spec("monai") is None:
        contenders.remove("MONAI sliding window")
        notes.append("MONAI is not installed: peer (b) skipped")
    runs: list[Run] = []
    skipped: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="volumenet-whole-") as folder:
        inputs = {}
        for shape in shapes:
            src = Path(folder) / f"lr_{'x'.join(map(str, shape))}.nii.gz"
            inputs[shape] = (src, make_input(src, shape, args.source))
        for shape in shapes:
            src, what = inputs[shape]
            print(f"{'×'.join(map(str, shape))} LR ({what})", file=sys.stderr)
            for round_ in range(1, args.rounds + 1):
                for contender in contenders:
                    need = _extrapolate(runs, contender, shape, "peak_rss_bytes")
                    if need > args.memory_fraction * available_memory():
                        if round_ == 1:
                            skipped.append({"contender": contender, "lr_shape": list(shape),
                                            "why": f"needs ~{need / 2**30:.0f} GiB (extrapolated from the size "
                                                   f"before), {available_memory() / 2**30:.0f} GiB free"})
                            print(f"  {contender}: skipped, {skipped[-1]['why']}", file=sys.stderr)
                        continue
                    expected = _extrapolate(runs, contender, shape, "seconds")
                    if expected > args.skip_over:
                        if round_ == 1:
                            skipped.append({"contender": contender, "lr_shape": list(shape),
                                            "why": f"would take ~{expected:.0f} s (extrapolated from the size before)"})
                            print(f"  {contender}: skipped, {skipped[-1]['why']}", file=sys.stderr)
                        continue
                    if round_ > 1 and expected > args.once_over:
                        continue
                    name = {VOLUMENET: "volumenet", BASELINE: "baseline"}.get(contender) or PEER_MODULES[contender]
                    dst = Path(folder) / f"out_{name}_{round_}.nii.gz"
                    run = measure(contender, shape, src, dst, round_, args.baseline)
                    runs.append(run)
                    print(f"  round {round_} {contender:22s} {run.seconds:7.2f} s  cpu {run.user_s:6.1f}+"
                          f"{run.system_s:4.1f} s  {run.peak_rss_bytes / 2**30:5.2f} GiB  {run.details or ''}",
                          file=sys.stderr)
            for path in Path(folder).glob("out_*"):
                path.unlink()
        inputs_described = {"×".join(map(str, s)): what for s, (_, what) in inputs.items()}
    rows = _summary(runs, shapes, contenders)
    _print_table(rows)
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "baseline": None if args.baseline is None else str(args.baseline),
        "inputs": inputs_described, "notes": notes, "skipped": skipped, "summary": rows,
        "runs": [asdict(r) for r in runs],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
