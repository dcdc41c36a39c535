"""volumenet-train's parts on their own (no training): options, stop rules, learning rate, counters."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from src_training.cli import build_parser, parse_config
from src_training.ddp import Distributed
from src_training.progress import Progress
from src_training.schedule import LRSchedule, StopPolicy
from src_training.step import EpochMeter

CPU = torch.device("cpu")


def config(*extra: str):
    return parse_config(["--data", "d", "--out", "o", *extra])


def test_config_keeps_every_option_in_the_parsers_order():
    """config.json's ``args`` stays what ``vars(namespace)`` was."""
    argv = ["--data", "d", "--out", "o", "--thick-slices", "3,0.5"]
    namespace = build_parser().parse_args(argv)
    namespace.scale = (1, 1, 3)
    assert config(*argv[4:]).as_dict() == vars(namespace)
    assert list(config(*argv[4:]).as_dict()) == list(vars(namespace))
    assert config().scale == (2, 2, 2)


@pytest.mark.parametrize("extra, end_step", [([], None), (["--max-steps", "7"], 7),
                                             (["--epochs", "2", "--steps-per-epoch", "5"], 10),
                                             (["--epochs", "2", "--steps-per-epoch", "5", "--max-steps", "12"], 10)])
def test_end_step_is_the_nearer_limit(extra, end_step):
    assert config(*extra).end_step == end_step


def policy(*extra: str, started: float | None = None, val_voxels: int = 1000) -> StopPolicy:
    return StopPolicy(config(*extra), time.perf_counter() if started is None else started, Distributed(), CPU,
                      val_voxels)


def test_step_limits_name_the_option_that_stopped():
    meter = EpochMeter(CPU)
    by_steps = policy("--max-steps", "4", "--epochs", "3", "--steps-per-epoch", "2")
    assert by_steps.after_step(3, meter) is None and by_steps.after_step(4, meter) == "--max-steps"
    by_epochs = policy("--max-steps", "9", "--epochs", "3", "--steps-per-epoch", "2")
    assert by_epochs.after_step(6, meter) == "--epochs"
    assert policy().after_step(10**6, meter) is None  # only early stopping


def test_patience_and_nothing_left_to_do():
    stop = policy("--patience", "2", "--max-steps", "10")
    assert stop.after_validation(1, 0.1) is None
    assert stop.after_validation(2, 0.1) == "--patience (2 epochs without improvement)"
    assert stop.already_done(Progress(step=3, bad_epochs=1), Path("run")) is None
    assert "already at step 10" in stop.already_done(Progress(step=10), Path("run"))
    assert "already stopped early (2 epochs" in stop.already_done(Progress(step=3, bad_epochs=2), Path("run"))


def test_max_minutes_leaves_time_to_validate():
    meter = EpochMeter(CPU)
    meter.add(torch.tensor(1.0))
    fresh = policy("--max-minutes", "1")
    assert fresh.after_step(1, meter) is None
    assert fresh.after_validation(0, 29.0) is None  # 2 × 29 s of validation still fit in the minute
    assert fresh.after_validation(0, 31.0) == "--max-minutes"
    late = policy("--max-minutes", "1", started=time.perf_counter() - 59.9)
    late.val_seconds = 1.0  # the latest validation took a second: no time left for one more
    assert late.after_step(1, meter) == "--max-minutes"


def test_cosine_schedule_from_lr_to_one_percent():
    schedule = LRSchedule(config("--lr", "1e-3", "--lr-schedule", "cosine", "--max-steps", "8"), time.perf_counter(),
                          Distributed(), CPU)
    assert schedule.cosine(0) == pytest.approx(1e-3)
    assert schedule.cosine(4) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert schedule.cosine(8) == pytest.approx(1e-5)
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    schedule.apply(optimizer, 8)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    constant = LRSchedule(config("--lr", "1e-3", "--max-steps", "8"), time.perf_counter(), Distributed(), CPU)
    constant.apply(optimizer, 0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # left alone


def test_progress_counts_only_whole_epochs_without_improvement():
    progress = Progress()
    assert progress.record_validation(10, 1, 30.0, True, 5.0, 1.0)
    assert not progress.record_validation(15, 2, 29.0, False, 2.0, 1.0)  # partial: no bad epoch
    assert progress.bad_epochs == 0
    assert not progress.record_validation(20, 2, math.nan, True, 2.0, 1.0)
    assert (progress.bad_epochs, progress.best_val_psnr, progress.best_step, progress.step) == (1, 30.0, 10, 20)
    assert progress.seconds == pytest.approx(12.0)


def test_progress_round_trips_through_a_resume_payload():
    progress = Progress(step=20, epoch=2, seconds=3.5, best_val_psnr=31.0, best_step=10, bad_epochs=1,
                        last_val_psnr=30.0)
    payload = {"format": "x", **progress.as_dict(), "step": torch.tensor(20)}
    assert list(progress.as_dict()) == ["step", "epoch", "seconds", "best_val_psnr", "best_step", "bad_epochs",
                                        "last_val_psnr", "train_cpu_seconds"]
    assert Progress.from_resume(payload) == progress
    assert Progress.from_resume({"step": 5}) == Progress(step=5)


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_on_a_cpu_with_native_bf16_and_refuses_slow_paths(native, monkeypatch):
    from napari_volumenet import inference
    from napari_volumenet.errors import VolumeNetError
    from src_training.hardware import _resolve_amp

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: native)
    assert _resolve_amp("auto", CPU) == ("bf16" if native else "off")
    assert _resolve_amp("off", CPU) == "off"
    assert _resolve_amp("auto", torch.device("mps")) == "off"
    with pytest.raises(VolumeNetError, match="needs a CUDA GPU"):
        _resolve_amp("fp16", CPU)
    if native:
        assert _resolve_amp("bf16", CPU) == "bf16"
    else:
        with pytest.raises(VolumeNetError, match="no native bf16"):
            _resolve_amp("bf16", CPU)
