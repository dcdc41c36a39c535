"""The measurements of the fit to one scan (issue 26 item 5): cubic vs bundled vs fitted against the ground truth.

Each case is an HR test volume made into thick slices (``volumenet degrade --thick-slices``); the thick scan is
fitted for each budget (``volumenet fit``, in its own process: wall seconds and peak memory of that process), and
``volumenet evaluate`` scores cubic, the bundled through-plane weights for the factor (where there are) and every
fit against the HR volume. One case, one command::

    python benchmarks/fit_study.py head-4mm --minutes 2,5,10 --threads 2 --out runs/fit/study

Results: ``OUT/CASE/rows.json`` (one row per method), the folder's ``summary.md`` over every case done so far, and
``--plot PNG`` (PSNR over cubic against fitting minutes, one line per case). The list of cases is :data:`CASES`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD = "splits/heads/test/fnndsc-adi_memprage.nii.gz"
OASIS = "splits/oasis/test/oasis-malf_{}.nii.gz"
CT = "../shared/data/ct/totalseg_aorta-crop.nii.gz"  # 1.5 mm isotropic; the CT test split's scan has 3 mm slices


@dataclass(frozen=True)
class Case:
    """An HR volume made into slices of ``factor`` HR slices along ``axis``, ``gap`` of them left out."""

    hr: str
    axis: int
    factor: int
    gap: float = 0.0
    modality: str = "mri"

    def thick(self) -> str:
        return f"{self.axis},{self.factor}" + (f",{self.gap:g}" if self.gap else "")


def _cases() -> dict[str, Case]:
    cases = {}
    for f in (2, 3, 4, 5):
        cases[f"head-{f}mm"] = Case(HEAD, 2, f)
        cases[f"head-{f}mm-gap"] = Case(HEAD, 2, f, round(0.2 * f, 3))
        for subject in ("1002", "1003"):
            cases[f"oasis{subject}-{f}mm"] = Case(OASIS.format(subject), 2, f)
            cases[f"oasis{subject}-{f}mm-gap"] = Case(OASIS.format(subject), 2, f, round(0.2 * f, 3))
    cases["ct-4.5mm"] = Case(CT, 2, 3, modality="ct")
    return cases


CASES = _cases()


def volumenet(*args: str) -> None:
    """``volumenet ARGS`` in a child process; raises on failure."""
    subprocess.run([sys.executable, "-m", "napari_volumenet", *args], check=True)


def timed_fit(thick: Path, weights: Path, case: Case, minutes: float, slice_mm: float, lr: float | None = None,
              init_from: Path | None = None) -> dict:
    """``volumenet fit`` in a child process: its wall seconds and peak resident memory (GiB)."""
    args = [sys.executable, "-m", "napari_volumenet", "fit", str(thick), "-o", str(weights), "--minutes", str(minutes),
            "--factor", str(case.factor), "--modality", case.modality, "--overwrite"]
    if lr is not None:
        args += ["--lr", f"{lr:g}"]
    if init_from is not None:
        args += ["--init-from", str(init_from)]
    if case.gap:
        args += ["--slice-thickness", f"{slice_mm * (case.factor - case.gap):.6g}"]
    start = time.perf_counter()
    child = subprocess.Popen(args)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, args)
    return {"minutes": minutes, "seconds": time.perf_counter() - start, "peak_gib": usage.ru_maxrss / 2**20,
            **fit_record(weights)}


def fit_record(weights: Path) -> dict:
    """What the fit wrote in its weights' metadata: steps, whether the start was kept, self-validation (dB)."""
    from napari_volumenet.weights import read_weights_file

    fit = read_weights_file(weights)["metadata"]["fit"]
    return {"steps": fit["steps"], "kept": fit["kept"], "self_validation": fit["self_validation"]}


def run_case(name: str, minutes: list[float], out: Path, lr: float | None = None,
             init_from: Path | None = None) -> list[dict]:
    """Degrade, fit for every budget, evaluate; the rows of ``evaluate --json`` with the fits' cost added."""
    import nibabel as nib

    from napari_volumenet.slices import through_plane_factors

    case, folder = CASES[name], out / name
    folder.mkdir(parents=True, exist_ok=True)
    thick = folder / "thick.nii.gz"
    if not thick.exists():
        volumenet("degrade", case.hr, "-o", str(thick), "--thick-slices", case.thick())
    slice_mm = float(nib.load(case.hr).header.get_zooms()[case.axis])
    fits = {}
    for m in minutes:
        weights = folder / f"fit-{m:g}min.pt"
        fits[str(weights)] = timed_fit(thick, weights, case, m, slice_mm, lr, init_from)
    report = folder / "evaluate.json"
    bundled = ["volumenet"] if case.factor in through_plane_factors(case.modality) else []  # its bundled default
    volumenet("evaluate", case.hr, "--thick-slices", case.thick(), "--modality", case.modality, "--device", "cpu",
              "--models", ",".join([*bundled, *fits]), "--json", str(report), "--overwrite", "--quiet")
    rows = json.loads(report.read_text())["summary"]
    by_name = {Path(path).name: cost for path, cost in fits.items()}
    for row in rows:
        row.update(case=name, **by_name.get(Path(str(row.get("weights") or "")).name, {}))
    (folder / "rows.json").write_text(json.dumps(rows, indent=1))
    return rows


def summary(out: Path, extra: list[Path] = ()) -> list[dict]:
    """Every case's rows under ``out`` (and in the ``extra`` rows files of earlier runs), with the gain over cubic
    (dB); ``out/summary.md`` written from them."""
    rows, cubic = [], {}
    for r in (r for f in [*sorted(out.glob("*/rows.json")), *extra] for r in json.loads(f.read_text())):
        if r["params"] == 0 and r["case"] in cubic:
            continue  # the same cubic row of an earlier run
        rows.append(r)
        cubic.setdefault(r["case"], r["psnr"])
    lines = ["| case | method | PSNR (dB) | over cubic | steps | fit s | peak GiB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        r["gain"] = r["psnr"] - cubic[r["case"]]
        cost = f"{r.get('steps', '')} | {r['seconds']:.0f} | {r['peak_gib']:.2f}" if "peak_gib" in r else " | | "
        lines.append(f"| {r['case']} | {r['model']} | {r['psnr']:.2f} | {r['gain']:+.2f} | {cost} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return rows


def plot(rows: list[dict], path: Path, minutes: float = 10.0) -> None:
    """Left: PSNR over cubic against fitting minutes for the cases fitted for several budgets (dashed: the bundled
    weights). Right: every case's bundled weights and its fit of ``minutes``, PSNR over cubic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    fits = {case: sorted((r["minutes"], r["gain"]) for r in rows if r["case"] == case and "minutes" in r)
            for case in cases}
    bundled = {case: next((r["gain"] for r in rows if r["case"] == case and r["params"] and "minutes" not in r),
                          np.nan) for case in cases}
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.6]})
    for case in (c for c in cases if len(fits[c]) > 1):
        line, = curves.plot(*zip(*fits[case]), marker="o", label=case)
        if np.isfinite(bundled[case]):
            curves.axhline(bundled[case], color=line.get_color(), linestyle="--", linewidth=0.8)
    curves.set(xlabel="fitting minutes (2 cores)", ylabel="PSNR over cubic (dB)",
               title="Fit to this scan over time (dashed: bundled weights)")
    curves.legend(fontsize=8)
    x = np.arange(len(cases))
    bars.bar(x - 0.2, [bundled[c] for c in cases], 0.4, label="bundled weights", color="tab:gray")
    bars.bar(x + 0.2, [dict(fits[c]).get(minutes, np.nan) for c in cases], 0.4, color="tab:orange",
             label=f"fitted for {minutes:g} minutes")
    bars.set_xticks(x, cases, rotation=45, fontsize=8, ha="right")
    bars.axhline(0, color="black", linewidth=0.6)
    bars.set(ylabel="PSNR over cubic (dB)", title="Every case: bundled weights (none for CT and ×5) and the fit")
    bars.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", metavar="CASE",
                        help=f"cases to run, of {', '.join(sorted(CASES))} (none: only the summary and the figure "
                             "of what is there)")
    parser.add_argument("--minutes", default="2,5,10", help="fitting budgets, comma-separated (default 2,5,10)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every child process (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/fit/study"))
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="the figure of every case done so far")
    parser.add_argument("--lr", type=float, default=None, help="the fits' learning rate (default: volumenet fit's)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="WEIGHTS.pt",
                        help="start every fit from these weights (volumenet fit --init-from)")
    parser.add_argument("--rows", type=Path, nargs="*", default=[], metavar="JSON",
                        help="rows of earlier runs (a rows.json each) for the summary and the figure")
    args = parser.parse_args()
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    minutes = [float(m) for m in args.minutes.split(",")]
    for name in args.cases:
        run_case(name, minutes, args.out, args.lr, args.init_from)
    rows = summary(args.out, args.rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
