"""Which training recipe learns fastest per CPU thread-hour: validation PSNR against training CPU time.

Reads the ``metrics.csv`` of run folders trained side by side on the same data and seed (one thread
each), and writes a table (markdown) and a plot of validation PSNR against training thread-hours: steps ×
the seconds one step takes on an idle thread (``--step-seconds``, measured apart: on a loaded machine even
CPU time stretches), else the ``train_cpu_s`` column (the process's CPU seconds, validation excluded).

    python benchmarks/recipe_study.py runs/study/a_l1_p12b4 runs/study/b_l2_p12b4 runs/study/d_l1_p26b1 \
        --step-seconds 6.05,6.05,6.1 --tricubic 30.90 --markdown benchmarks/results/recipe_study.md \
        --plot benchmarks/results/recipe_study.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from src_training.plots import read_metrics


def run_summary(folder: Path, step_seconds: float | None = None) -> dict[str, Any]:
    """One run: its recipe (from config.json), and validation PSNR against training thread-hours (steps ×
    ``step_seconds`` when given, else its CPU seconds)."""
    args = json.loads((folder / "config.json").read_text())["args"]
    rows = [r for r in read_metrics(folder / "metrics.csv") if math.isfinite(r.get("val_psnr", math.nan))]
    hours = [(r["step"] * step_seconds if step_seconds else r.get("train_cpu_s", math.nan)) / 3600 for r in rows]
    recipe = (f"{args.get('loss', 'l1').upper()}, batch {args['batch']} × {args['patch'][0]}³ + margin "
              f"{args['margin']}, lr {args['lr']:g} {args['lr_schedule']}"
              + (f", warm-up {args['warmup']}" if args.get("warmup") else ""))
    return {"name": folder.name, "recipe": recipe, "steps": [int(r["step"]) for r in rows], "hours": hours,
            "psnr": [r["val_psnr"] for r in rows],
            "seconds_per_step": step_seconds or (hours[-1] * 3600 / rows[-1]["step"] if rows else math.nan)}


def psnr_at(run: dict[str, Any], hours: float) -> float:
    """The best validation PSNR reached within ``hours`` thread-hours of training (nan before the first)."""
    reached = [p for h, p in zip(run["hours"], run["psnr"]) if h <= hours + 1e-9]
    return max(reached) if reached else math.nan


def markdown(runs: list[dict[str, Any]], tricubic: float | None, marks: tuple[float, ...]) -> str:
    """A table: recipe, s per step, best val PSNR (and gain over tricubic) within each thread-hour mark."""
    head = ["run", "recipe", "s / step"] + [f"val PSNR ≤ {m:g} thread-h" for m in marks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (1 + len(marks))]
    for run in runs:
        cells = [run["name"], run["recipe"], f"{run['seconds_per_step']:.2f}"]
        for mark in marks:
            value = psnr_at(run, mark)
            gain = f" ({value - tricubic:+.2f})" if tricubic is not None and math.isfinite(value) else ""
            cells.append("–" if not math.isfinite(value) else f"{value:.2f}{gain}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], tricubic: float | None, path: Path) -> None:
    """Validation PSNR against training thread-hours, one line per run (matplotlib's Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for run in runs:
        axes.plot(run["hours"], run["psnr"], marker="o", markersize=3, label=f"{run['name']}: {run['recipe']}")
    if tricubic is not None:
        axes.axhline(tricubic, color="grey", linestyle="--", label="tricubic")
    axes.set_xlabel("training time (thread-hours, validation excluded)")
    axes.set_ylabel("validation PSNR (dB)")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of volumenet-train")
    parser.add_argument("--tricubic", type=float, default=None, help="tricubic's validation PSNR (dB)")
    parser.add_argument("--step-seconds", default=None, metavar="S1,S2,...",
                        help="seconds per step of each run on an idle thread (default: their train_cpu_s)")
    parser.add_argument("--marks", default="0.25,0.5,0.75,1", help="thread-hours at which to compare")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    seconds = [float(s) for s in args.step_seconds.split(",")] if args.step_seconds else [None] * len(args.runs)
    runs = [run_summary(folder, s) for folder, s in zip(args.runs, seconds, strict=True)]
    table = markdown(runs, args.tricubic, tuple(float(m) for m in args.marks.split(",")))
    print(table, end="")
    if args.markdown:
        args.markdown.write_text(table)
    if args.plot:
        plot(runs, args.tricubic, args.plot)


if __name__ == "__main__":
    main()
