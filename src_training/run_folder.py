"""The run folder (``--out``) and its files: config.json, metrics.csv, curve.png and the checkpoints
best.pt / last.pt (napari-volumenet weights, SPEC §5b) and resume.pt (:mod:`src_training.resume`).

Every file is written whole or not at all, except metrics.csv, which grows by one row per validation
(rows after the checkpoint a run resumes from are dropped then).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_volumenet.atomic import atomic_path, save_torch_atomic, write_json_atomic

if TYPE_CHECKING:
    from torch import nn

METRIC_COLUMNS = [
    "step", "epoch", "train_loss", "val_psnr", "val_ssim", "val_psnr_fg", "lr", "seconds", "patches_per_s",
    "train_cpu_s",
]

CONFIG_BYTES = 64 << 20
"""The most config.json may hold (a few hundred bytes per data file)."""


class RunFolder:
    """The files of one run in ``path``. Only the main process writes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # ---------------------------------------------------------------- the folder
    def check(self, resume: bool, init_from: str | None) -> None:
        """The folder can take this run: a new run needs one without checkpoints, ``--resume`` one with
        resume.pt and config.json; else one clear error (nothing is written)."""
        from napari_volumenet.errors import OutputError, VolumeNetError

        out = self.path
        if resume and init_from:
            raise VolumeNetError("--resume continues a run from its own checkpoint; do not combine it with --init-from")
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder.")
        if resume:
            missing = [n for n in ("resume.pt", "config.json") if not (out / n).is_file()]
            if missing:
                raise VolumeNetError(f"--resume: {out} holds no run to resume (missing {', '.join(missing)}); "
                                     "a run that stopped before its first checkpoint starts again without --resume.")
        elif (out / "resume.pt").exists():
            raise OutputError(f"--out {out} already holds a training run (resume.pt); pass --resume to continue it "
                              "or choose another folder.")
        else:
            self._check_restartable()
        self._check_writable()

    def _check_restartable(self) -> None:
        """A folder without resume.pt is a run that died before its first resume checkpoint (config.json, maybe
        best.pt / last.pt: they are replaced by the new run's); weights without config.json are not a run's."""
        from napari_volumenet.errors import OutputError

        weights = [n for n in ("last.pt", "best.pt") if (self.path / n).exists()]
        if weights and not (self.path / "config.json").is_file():
            raise OutputError(f"--out {self.path} holds {', '.join(weights)} but no config.json, so not a run that "
                              "can be started again; choose another folder.")

    def _check_writable(self) -> None:
        """The folder exists and is writable, or can be created: else one clear :class:`OutputError`."""
        from napari_volumenet.errors import OutputError

        out = self.path
        existing = next(p for p in [out, *out.parents] if p.exists())
        if not existing.is_dir():
            raise OutputError(f"cannot create the run folder {out}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "write into the run folder" if existing == out else "create the run folder"
            raise OutputError(f"cannot {what} {out}: permission denied on {existing}")

    def create(self) -> None:
        """Make the folder (and its parents); a failure is one clear :class:`OutputError`."""
        from napari_volumenet.atomic import write_failure

        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_failure(self.path, error) from None

    # ---------------------------------------------------------------- config.json
    def read_config(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """config.json and the sha256 of its training and validation files; a damaged file is one clear error."""
        from napari_volumenet.errors import VolumeNetError

        from napari_volumenet.io.files import read_text_bounded

        path = self.path / "config.json"
        try:
            text = read_text_bounded(path, CONFIG_BYTES)  # a FIFO or a link to a device is never read
            if text is None:
                raise ValueError(f"not a regular UTF-8 file of at most {CONFIG_BYTES >> 20} MiB")
            config = json.loads(text)
            files = config.get("files", [])
            saved = {role: sorted(f["sha256"] for f in files if f.get("role") == role) for role in ("train", "val")}
        except (OSError, ValueError, AttributeError, KeyError, TypeError, RecursionError) as error:
            raise VolumeNetError(f"--resume: {path} is damaged or unreadable ({type(error).__name__}: "
                                 f"{str(error)[:120]}); start a new run from its last.pt with --init-from") from None
        return config, saved

    def write_config(self, payload: dict[str, Any]) -> None:
        write_json_atomic(self.path / "config.json", payload)

    # ---------------------------------------------------------------- metrics.csv and curve.png
    def start_metrics(self, resumed_step: int | None) -> None:
        """A new metrics.csv (header only), or on resume the old one up to ``resumed_step``."""
        path = self.path / "metrics.csv"
        if resumed_step is None or not path.is_file():
            with open(path, "w", newline="") as handle:
                csv.writer(handle).writerow(METRIC_COLUMNS)
            return
        # rows written after the checkpoint we resume from (a crash between the two) and rows cut short
        # (a full disk) are dropped
        rows = [r for r in self._metrics_rows()
                if None not in (r.get(k, "") for k in METRIC_COLUMNS[:-1]) and _step_of(r) <= resumed_step]
        with atomic_path(path) as temp, open(temp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)

    def _metrics_rows(self) -> list[dict[str, str]]:
        with open(self.path / "metrics.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    def append_metrics(self, row: dict[str, Any]) -> None:
        """One row of :data:`METRIC_COLUMNS` (a NaN or infinite float is written as an empty field)."""
        with open(self.path / "metrics.csv", "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=METRIC_COLUMNS).writerow(
                {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            )

    def plot(self, steps_per_epoch: int, tricubic_psnr: float | None, title: str,
             say: Callable[[str], None]) -> None:
        """curve.png from metrics.csv; a problem (no matplotlib aside) is a warning, never the end of training."""
        from .plots import plot_training_curves, read_metrics

        try:
            plot_training_curves(read_metrics(self.path / "metrics.csv"), self.path / "curve.png",
                                 steps_per_epoch=steps_per_epoch, tricubic_psnr=tricubic_psnr, title=title)
        except Exception as error:  # noqa: BLE001 - a plotting problem must never stop training
            say(f"warning: curve.png not written ({type(error).__name__}: {error})")

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoints(self, network: nn.Module, *, modality: str, training: dict[str, Any],
                         extra: dict[str, Any], val_psnr: float, best: bool, resume: dict[str, Any]) -> None:
        """best.pt (when ``best``), last.pt and resume.pt, in that order; ``val_psnr``: the latest (dB)."""
        from napari_volumenet.weights import save_weights

        if best:
            save_weights(self.path / "best.pt", network, modality=modality, training=training, val_psnr=val_psnr,
                         extra=extra)
        save_weights(self.path / "last.pt", network, modality=modality, training=training,
                     val_psnr=val_psnr if math.isfinite(val_psnr) else None, extra=extra)
        save_torch_atomic(resume, self.path / "resume.pt")


def _step_of(row: dict[str, str]) -> float:
    """The step of a metrics.csv row; infinity for one that cannot be read (so that it is dropped)."""
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return math.inf
