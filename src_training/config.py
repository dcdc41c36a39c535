"""The options of one ``volumenet-train`` run, typed (built by :func:`src_training.cli.parse_config`)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Every command-line option, in the parser's order (config.json's ``args`` keeps that order).

    Sizes are in voxels, ``scale`` per array axis, times in minutes, rates per step.
    """

    # data
    data: list[str]
    data_weights: str | None
    val: list[str] | None
    val_fraction: float
    modality: str
    scale: tuple[int, int, int]
    thick_slices: tuple[int, float] | None  # (factor, gap in HR slices)
    patch: tuple[int, int, int]  # LR voxels
    margin: int  # LR voxels
    edge_cut: float
    no_augment: bool
    disk_cache: bool
    workers: int | None
    # model
    model: str
    depth: int | None
    channels: int | None
    block: str | None
    init_from: str | None
    init: str
    # training
    out: str
    batch: int
    lr: float
    lr_schedule: str
    warmup: int  # steps of linear warm-up
    loss: str  # l1, l2
    steps_per_epoch: int
    epochs: int | None
    patience: int
    max_steps: int | None
    max_minutes: float | None
    resume: bool
    seed: int
    device: str
    amp: str
    grad_checkpoint: str
    val_tile: int | None
    no_tensorboard: bool
    quiet: bool

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> TrainConfig:
        """The parsed options (``scale`` already resolved); a missing or unknown one is a ``TypeError``."""
        return cls(**vars(args))

    def as_dict(self) -> dict[str, Any]:
        """``{option: value}`` as argparse gave it (config.json's ``args``)."""
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        """The run folder ``--out``, ``~`` expanded."""
        return Path(self.out).expanduser()

    @property
    def end_step(self) -> int | None:
        """The step the run stops at from ``--max-steps`` and ``--epochs``; None when only other rules stop it."""
        limits = [self.max_steps] if self.max_steps else []
        if self.epochs:
            limits.append(self.epochs * self.steps_per_epoch)
        return min(limits) if limits else None
