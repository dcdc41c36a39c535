"""What a run tells as it goes: notes, the progress bar, a line and TensorBoard scalars per validation,
and metrics.csv's row. Only the main process reports, and prints nothing with ``--quiet``."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig


def fmt(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; a dash for None, NaN or infinity."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


class Console:
    """Notes on stderr that do not break a progress bar; silent when not ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def say(self, message: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)


@dataclass(frozen=True)
class Validation:
    """One validation: after ``step`` (in ``epoch``, cut short unless ``full_epoch``), the mean training L1
    since the previous one, the validation metrics (PSNR dB, SSIM, foreground PSNR dB), the learning rate,
    the run's seconds so far and the training speed in patches per second over all processes."""

    step: int
    epoch: int
    full_epoch: bool
    train_loss: float
    metrics: dict[str, float]
    lr: float
    seconds: float
    patches_per_s: float
    train_cpu_seconds: float = 0.0
    """CPU seconds of this process's training steps so far (all its threads; validation excluded)."""

    def csv_row(self) -> dict[str, Any]:
        """The row of metrics.csv."""
        m = self.metrics
        return {"step": self.step, "epoch": self.epoch, "train_loss": f"{self.train_loss:.6g}",
                "val_psnr": f"{m['psnr']:.4f}", "val_ssim": f"{m['ssim']:.5f}", "val_psnr_fg": f"{m['psnr_fg']:.4f}",
                "lr": f"{self.lr:.3g}", "seconds": f"{self.seconds:.1f}", "patches_per_s": f"{self.patches_per_s:.2f}",
                "train_cpu_s": f"{self.train_cpu_seconds:.1f}"}


class Reporter:
    """The progress bar (one for the whole run when its end step is known, ETA of the run; else one per
    epoch; shown on a terminal only), the lines around it and the TensorBoard log (when installed)."""

    def __init__(self, config: TrainConfig, run_dir: Path, console: Console, write_tensorboard: bool, step: int,
                 end_step: int | None) -> None:
        from tqdm import tqdm

        self.writer = _summary_writer(run_dir / "tensorboard") if write_tensorboard else None
        self.spe = config.steps_per_epoch
        self.enabled = console.enabled
        self.per_epoch = end_step is None
        self.bar = tqdm(total=self.spe if self.per_epoch else end_step,
                        initial=step % self.spe if self.per_epoch else step, unit="step",
                        disable=None if self.enabled else True, file=sys.stderr, dynamic_ncols=True,
                        desc=f"epoch {step // self.spe + 1}")

    def line(self, text: str) -> None:
        """A line above the bar (nothing when quiet)."""
        if self.enabled:
            self.bar.write(text, file=sys.stderr)

    def step(self, step: int, running_loss: Callable[[], float], best_psnr: float) -> None:
        """After ``step``; ``running_loss()`` gives the epoch's mean loss (read every 10 steps: it syncs)."""
        self.bar.update(1)
        if self.enabled and (step % 10 == 0 or step % self.spe == 0):
            self.bar.set_postfix(loss=f"{running_loss():.4f}", best=f"{fmt(best_psnr)}dB", refresh=False)

    def validation(self, record: Validation, tricubic_psnr: float, improved: bool) -> None:
        """TensorBoard's scalars and the epoch's line."""
        m = record.metrics
        if self.writer is not None:
            for tag, value in (("train/l1", record.train_loss), ("val/psnr", m["psnr"]), ("val/ssim", m["ssim"]),
                               ("val/psnr_fg", m["psnr_fg"]), ("train/lr", record.lr),
                               ("train/patches_per_s", record.patches_per_s)):
                self.writer.add_scalar(tag, value, record.step)
            self.writer.flush()
        gain = m["psnr"] - tricubic_psnr
        sign = "+" if gain >= 0 else ""
        self.line(f"epoch {record.epoch}{'' if record.full_epoch else ' (partial)'} step {record.step}: "
                  f"L1 {record.train_loss:.5f}, val PSNR {fmt(m['psnr'])} dB ({sign}{fmt(gain)} vs tricubic), "
                  f"SSIM {fmt(m['ssim'], 4)}, {record.patches_per_s:.1f} patches/s"
                  f"{', new best → best.pt' if improved else ''}")

    def next_epoch(self, step: int) -> None:
        """A new epoch starts after ``step``: a fresh per-epoch bar, its number in the description."""
        if self.per_epoch:
            self.bar.reset(total=self.spe)
        self.bar.set_description(f"epoch {step // self.spe + 1}")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _summary_writer(path: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` into ``path``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(path))
    except Exception:  # noqa: BLE001 - TensorBoard is optional
        return None
