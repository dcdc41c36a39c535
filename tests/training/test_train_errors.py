"""volumenet-train's run folder under stress (issue 15, class 3): a folder it cannot create or fill,
a full disk, a damaged resume.pt or config.json. Each ends in one line on stderr and exit 2, and a
run folder is always resumable or restartable, whatever moment it died at (issue 30)."""

from __future__ import annotations

import errno
import shutil
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import src_training.run_folder as run_folder_module
from napari_volumenet.atomic import Terminated
from src_training.train import main

TINY = ["--model", "volumenet", "--depth", "2", "--channels", "4", "--patch", "8", "--batch", "2",
        "--workers", "0", "--val-tile", "0", "--steps-per-epoch", "3", "--quiet", "--no-tensorboard"]


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread is faster on a busy machine


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(3):
        volume = np.zeros((24, 24, 24), np.float32)
        volume[3:-3, 3:-3, 3:-3] = 100 + 900 * rng.random((18, 18, 18))
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(root / f"subj{i}.nii.gz"))
    return root


def train(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["--data", str(data_dir), "--out", str(out), *TINY, *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("volumenet-train: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def finished(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train(data_dir, out, "--max-steps", "3") == 0
    return out


def copy_run(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def test_an_output_folder_that_cannot_be_created(data_dir, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert train(data_dir, blocker / "run", "--max-steps", "3") == 2
    assert f"cannot create the run folder {blocker / 'run'}: {blocker} is a file" in one_line(capsys)


def test_an_output_folder_without_write_permission(data_dir, tmp_path, capsys, monkeypatch):
    # as for a non-root user on a 0555 folder
    monkeypatch.setattr(run_folder_module.os, "access", lambda path, mode: False)
    assert train(data_dir, tmp_path / "run", "--max-steps", "3") == 2
    assert "permission denied on" in one_line(capsys)
    assert not (tmp_path / "run").exists()


def full_disk_on(monkeypatch, name: str, skip: int = 0) -> None:
    """``torch.save`` fails with ENOSPC for the ``skip + 1``-th temporary file of ``name``."""
    fail_save_of(monkeypatch, name, OSError(errno.ENOSPC, "No space left on device"), skip)


def fail_save_of(monkeypatch, name: str, error: BaseException, skip: int = 0) -> None:
    """``torch.save`` raises ``error`` for the ``skip + 1``-th temporary file of ``name``."""
    real_save = torch.save
    seen = []

    def save(obj, target, *args, **kwargs):
        if Path(target).name.startswith(f".{name}.tmp-"):
            seen.append(target)
            if len(seen) == skip + 1:
                raise error
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_before_the_first_checkpoint_then_a_fresh_start(data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        full_disk_on(patch, "best.pt")
        assert train(data_dir, out, "--max-steps", "3") == 2
    line = one_line(capsys)
    assert f"could not write {out / 'best.pt'}: the disk is full" in line
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert train(data_dir, out, "--max-steps", "3") == 0  # no checkpoint yet: the run starts again
    assert (out / "resume.pt").is_file()


@pytest.mark.parametrize("death, code", [
    (OSError(errno.ENOSPC, "No space left on device"), 2),
    (Terminated(signal.SIGTERM), 130),
])
def test_a_run_that_died_writing_its_first_resume_checkpoint_starts_again(data_dir, tmp_path, capsys, monkeypatch,
                                                                          death, code):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        fail_save_of(patch, "resume.pt", death)
        assert train(data_dir, out, "--max-steps", "3") == code
    assert {"config.json", "best.pt", "last.pt"} <= {p.name for p in out.iterdir()}
    assert not (out / "resume.pt").exists() and not [p for p in out.iterdir() if p.name.startswith(".")]
    capsys.readouterr()
    assert train(data_dir, out, "--max-steps", "3", "--resume") == 2  # not resumable: it says to start again...
    assert "starts again without --resume" in one_line(capsys)
    assert train(data_dir, out, "--max-steps", "3") == 0  # ...and it does
    assert torch.load(out / "resume.pt", weights_only=True)["step"] == 3


def test_weights_without_a_config_are_not_taken_for_a_run(data_dir, finished, tmp_path, capsys):
    out = tmp_path / "weights"
    out.mkdir()
    shutil.copy(finished / "best.pt", out / "best.pt")
    assert train(data_dir, out, "--max-steps", "3") == 2
    assert "holds best.pt but no config.json" in one_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["best.pt"]


def test_a_full_disk_mid_run_then_resume(data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        full_disk_on(patch, "resume.pt", skip=1)  # the second epoch's resume.pt
        assert train(data_dir, out, "--max-steps", "6") == 2
    assert "the disk is full" in one_line(capsys)
    assert torch.load(out / "resume.pt", weights_only=True)["step"] == 3
    assert train(data_dir, out, "--max-steps", "6", "--resume") == 0
    steps = [line.split(",")[0] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["3", "6"]  # the row of the failed epoch was dropped, then written again


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "resume.pt").write_bytes(b"\x00" * 100), "resume.pt cannot be read"),
    (lambda out: torch.save({"format": "napari-volumenet-resume", "step": 3}, out / "resume.pt"),
     "resume.pt is damaged (KeyError"),
    (lambda out: (out / "config.json").write_text("{ not json"), "config.json is damaged or unreadable"),
    (lambda out: (out / "config.json").write_text('{"files": [{"role": "train"}]}'), "config.json is damaged"),
])
def test_a_damaged_run_folder_is_one_clear_line(data_dir, finished, tmp_path, capsys, damage, message):
    out = copy_run(finished, tmp_path)
    damage(out)
    assert train(data_dir, out, "--max-steps", "6", "--resume") == 2
    assert message in one_line(capsys)
