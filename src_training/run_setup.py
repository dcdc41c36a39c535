"""Everything a run needs before its first step, checked on every process before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .ddp import Distributed, all_ok, broadcast
from .hardware import Hardware
from .reporting import Console
from .run_folder import RunFolder
from .training_data import TrainingData
from .validator import Validator

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Setup:
    """The parts of one run; ``started``: ``time.perf_counter()`` when the command began; ``tricubic``: the
    baseline's validation metrics (PSNR dB, SSIM, foreground PSNR dB)."""

    config: TrainConfig
    dist: Distributed
    started: float
    console: Console
    folder: RunFolder
    hardware: Hardware
    model: nn.Module
    init_meta: dict[str, Any] | None
    data: TrainingData
    validator: Validator
    tricubic: dict[str, float] = field(default_factory=dict)


def prepare(config: TrainConfig, info: Distributed, started: float,
            argv: Sequence[str]) -> tuple[Setup, dict[str, Any] | None]:
    """The run's parts and, with ``--resume``, the resume.pt payload; the run folder made, config.json and a
    fresh (or on resume, trimmed) metrics.csv written by the main process."""
    from .metadata import config_payload, with_resume_entry

    setup, resume, saved_config = _build(config, info, started)
    if info.is_main:
        setup.folder.create()
    if resume is None:
        setup.console.say(f"validation: tricubic baseline on {len(setup.data.val_pairs)} volume(s)…")
        setup.tricubic = broadcast(info, setup.validator.tricubic(config.scale) if info.is_main else None)
        if info.is_main:
            setup.folder.write_config(config_payload(setup, argv))
    else:
        setup.tricubic = saved_config.get("tricubic_val") or {}
        if info.is_main:
            setup.folder.write_config(with_resume_entry(saved_config, argv, int(resume["step"])))
    if info.is_main:
        setup.folder.start_metrics(None if resume is None else int(resume["step"]))
    return setup, resume


def _build(config: TrainConfig, info: Distributed,
           started: float) -> tuple[Setup, dict[str, Any] | None, dict[str, Any] | None]:
    """Device, folder checks, network, data and the resume file; an error on any process stops them all."""
    from napari_volumenet.errors import VolumeNetError

    from .hardware import setup_hardware
    from .model_setup import build_model, fit_head
    from .resume import read_resume
    from .training_data import load_training_data

    console = Console(info.is_main and not config.quiet)
    folder = RunFolder(config.run_dir)
    hardware: Hardware | None = None
    error: VolumeNetError | None = None
    try:
        hardware = setup_hardware(config, info)
        folder.check(config.resume, config.init_from)
        model, init_meta = build_model(config, hardware.device, console.say)
        data = load_training_data(config, info.is_main, console.enabled)
        resume, saved_config = read_resume(folder, model, data.fingerprint(), config) if config.resume else (None, None)
        if resume is None:
            fit_head(model, config, data.train_pairs, hardware.device, console.say)
    except VolumeNetError as caught:
        error = caught
    if not all_ok(info, error is None, hardware.device if hardware is not None else None):
        if error is not None:
            raise error
        raise VolumeNetError("another training process failed during setup (see its message)")
    validator = Validator(data.val_pairs, config.val_tile, hardware.device)
    return (Setup(config, info, started, console, folder, hardware, model, init_meta, data, validator),
            resume, saved_config)
