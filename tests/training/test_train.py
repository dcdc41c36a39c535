"""volumenet-train end to end on tiny synthetic volumes (CPU, a few seconds each)."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from napari_volumenet.inference import cpu_has_native_bf16
from napari_volumenet.io import sha256_file
from napari_volumenet.weights import load_weights
from src_training.train import METRIC_COLUMNS, main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "volumenet", "--depth", "2", "--channels", "8", "--patch", "8", "--batch", "4",
        "--workers", "0", "--val-tile", "0"]


def blobs(shape=(40, 40, 40), seed=0) -> np.ndarray:
    """Smooth random texture inside a margin of background (values 100–1000)."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.random(shape).astype(np.float32), 1.2)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 900 + 100
    out = np.zeros(shape, np.float32)
    inner = tuple(slice(4, n - 4) for n in shape)
    out[inner] = texture[inner]
    return out


def save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread is faster on a busy machine


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for i in range(6):  # one in a subfolder: folders are searched recursively
        save(root / ("deep" if i == 5 else "") / f"subj{i}.nii.gz", blobs(seed=i))
    return root


def train(data_dir: Path, out: Path, *extra: str) -> int:
    return main(["--data", str(data_dir), "--out", str(out), *TINY, "--quiet", *extra])


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory) -> Path:
    """60 steps at lr 1e-3 from the paper's random initialisation, validation every 10 steps."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert train(data_dir, out, "--lr", "1e-3", "--steps-per-epoch", "10", "--max-steps", "60", "--init", "random") == 0
    return out


def test_least_squares_init_starts_above_random_init(data_dir, finished_run, tmp_path):
    """The fitted linear head makes the first validation far better than a random start, and the
    context margin trains on the patch centre only (same metrics file, same weights format)."""
    out = tmp_path / "lsq"
    assert train(data_dir, out, "--lr", "1e-3", "--steps-per-epoch", "5", "--max-steps", "5", "--margin", "2") == 0
    first_random = float(rows(finished_run)[0]["val_psnr"])
    first_fitted = float(rows(out)[0]["val_psnr"])
    assert first_fitted > first_random + 3, (first_fitted, first_random)
    config = json.loads((out / "config.json").read_text())
    assert config["args"]["init"] == "least-squares" and config["args"]["margin"] == 2


@pytest.mark.parametrize("init", ["least-squares", "random"])
def test_baselines_start_at_tricubic_unless_random(init, data_dir, tmp_path):
    out = tmp_path / init
    assert main(["--data", str(data_dir), "--out", str(out), "--model", "srcnn3d", "--patch", "8", "--batch", "1",
                 "--val-tile", "0", "--quiet", "--lr", "1e-12", "--steps-per-epoch", "1", "--max-steps", "1",
                 "--init", init]) == 0
    gap = float(rows(out)[0]["val_psnr"]) - json.loads((out / "config.json").read_text())["tricubic_val"]["psnr"]
    assert abs(gap) < 0.2 if init == "least-squares" else gap < -3, gap


def test_training_lowers_the_loss(finished_run):
    losses = [float(r["train_loss"]) for r in rows(finished_run)]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.7 * losses[0], losses


def test_run_folder_contents(finished_run, data_dir):
    out = finished_run
    assert {"best.pt", "last.pt", "resume.pt", "metrics.csv", "config.json"} <= {p.name for p in out.iterdir()}
    table = rows(out)
    assert list(table[0]) == METRIC_COLUMNS
    assert [int(r["step"]) for r in table] == [10, 20, 30, 40, 50, 60]
    assert [int(r["epoch"]) for r in table] == [1, 2, 3, 4, 5, 6]
    assert all(float(r["lr"]) == pytest.approx(1e-3) for r in table)
    seconds = [float(r["seconds"]) for r in table]
    assert seconds == sorted(seconds)

    _, meta = load_weights(out / "best.pt", model="volumenet", scale=2, modality="mri")
    assert meta["model_kwargs"]["depth"] == 2 and meta["model_kwargs"]["channels"] == 8
    best_psnr = max(float(r["val_psnr"]) for r in table)
    assert meta["val_psnr"] == pytest.approx(best_psnr, abs=1e-3)
    assert meta["training"]["train_volumes"] == 5 and meta["training"]["val_volumes"] == 1
    _, last = load_weights(out / "last.pt")
    assert last["step"] == 60 and last["training"]["steps"] == 60
    resume = torch.load(out / "resume.pt", weights_only=True)
    assert resume["step"] == 60

    config = json.loads((out / "config.json").read_text())
    files = sorted(data_dir.rglob("*.nii.gz"))
    assert sorted(config["split"]["train"] + config["split"]["val"]) == sorted(map(str, files))
    assert len(config["split"]["val"]) == 1 and "subject" in config["split"]["method"]
    for entry in config["files"]:
        assert entry["sha256"] == sha256_file(entry["path"])
        assert entry["role"] in ("train", "val")
    assert config["args"]["lr"] == 1e-3 and config["args"]["max_steps"] == 60
    assert config["versions"]["torch"] == torch.__version__ and config["device"]["type"] == "cpu"
    assert config["model"]["params"] > 0
    tricubic = config["tricubic_val"]["psnr"]
    assert 20 < tricubic < 80

    curve = out / "curve.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not curve.exists()
    else:
        assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_the_same_run(data_dir, tmp_path):
    common = ["--lr", "1e-3", "--steps-per-epoch", "5", "--seed", "3"]
    assert train(data_dir, tmp_path / "split", *common, "--max-steps", "10") == 0
    assert [r["step"] for r in rows(tmp_path / "split")] == ["5", "10"]
    assert train(data_dir, tmp_path / "split", *common, "--max-steps", "20", "--resume") == 0
    assert train(data_dir, tmp_path / "whole", *common, "--max-steps", "20") == 0

    split, whole = rows(tmp_path / "split"), rows(tmp_path / "whole")
    assert [r["step"] for r in split] == ["5", "10", "15", "20"]
    # same step counter, optimizer state, weights and patch stream: the resumed run is the uninterrupted one
    for a, b in zip(split, whole):
        assert (a["step"], a["epoch"], a["train_loss"], a["val_psnr"]) == (b["step"], b["epoch"], b["train_loss"],
                                                                           b["val_psnr"])
    resumed = torch.load(tmp_path / "split" / "resume.pt", weights_only=True)
    straight = torch.load(tmp_path / "whole" / "resume.pt", weights_only=True)
    assert resumed["step"] == 20
    assert int(resumed["optimizer"]["state"][0]["step"]) == 20
    for key, tensor in straight["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][key], tensor, atol=1e-6), key
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    assert [r["from_step"] for r in config["resumes"]] == [10]

    # nothing left to do: a clear note, no change
    assert train(data_dir, tmp_path / "split", *common, "--max-steps", "20", "--resume") == 0
    assert len(rows(tmp_path / "split")) == 4


def test_refuses_to_reuse_a_run_folder_or_resume_nothing(data_dir, finished_run, tmp_path, capsys):
    assert train(data_dir, finished_run, "--max-steps", "1") == 2
    assert "pass --resume" in capsys.readouterr().err
    assert train(data_dir, tmp_path / "nothing", "--max-steps", "1", "--resume") == 2
    assert "no run to resume" in capsys.readouterr().err
    assert train(data_dir, finished_run, "--max-steps", "70", "--resume", "--depth", "3") == 2
    assert "--depth" in capsys.readouterr().err


def test_init_from_loads_the_weights(data_dir, finished_run, tmp_path, capsys):
    out = tmp_path / "fine"
    # a learning rate so small that one step leaves the weights as loaded
    assert train(data_dir, out, "--init-from", str(finished_run / "best.pt"), "--lr", "1e-12",
                 "--steps-per-epoch", "1", "--max-steps", "1") == 0
    source, _ = load_weights(finished_run / "best.pt")
    tuned, meta = load_weights(out / "last.pt")
    for (key, a), (_, b) in zip(source.state_dict().items(), tuned.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-8), key
    assert meta["training"]["init_from"]["path"].endswith("best.pt")

    assert train(data_dir, tmp_path / "other", "--init-from", str(finished_run / "best.pt"),
                 "--channels", "16", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "Traceback" not in err


def test_same_seed_same_run_with_any_number_of_workers(data_dir, tmp_path):
    args = ["--lr", "1e-3", "--steps-per-epoch", "4", "--max-steps", "8", "--seed", "11"]
    assert train(data_dir, tmp_path / "a", *args) == 0
    assert train(data_dir, tmp_path / "b", *args, "--workers", "2") == 0  # last --workers wins
    assert train(data_dir, tmp_path / "c", *args[:-1], "12") == 0
    a, b, c = rows(tmp_path / "a"), rows(tmp_path / "b"), rows(tmp_path / "c")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["val_psnr"] for r in a] == [r["val_psnr"] for r in b]
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]
    wa, _ = load_weights(tmp_path / "a" / "last.pt")
    wb, _ = load_weights(tmp_path / "b" / "last.pt")
    for (key, x), (_, y) in zip(wa.state_dict().items(), wb.state_dict().items()):
        assert torch.equal(x, y), key


def test_max_minutes_stops_cleanly(data_dir, tmp_path):
    out = tmp_path / "short"
    assert train(data_dir, out, "--max-minutes", "0.001", "--steps-per-epoch", "1000") == 0
    table = rows(out)
    assert len(table) == 1 and 1 <= int(table[0]["step"]) < 1000 and table[0]["val_psnr"]
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


def test_two_folders_with_weights_and_a_validation_folder(data_dir, tmp_path):
    second = tmp_path / "second"
    for i in range(2):
        save(second / f"other{i}.nii.gz", blobs(seed=50 + i))
    val = tmp_path / "val"
    save(val / "held_out.nii.gz", blobs(seed=99))
    out = tmp_path / "mixed"
    assert train(data_dir, out, "--data", str(second), "--data-weights", "0.7,0.3", "--val", str(val),
                 "--max-steps", "2", "--steps-per-epoch", "2") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["split"]["val"] == [str(val / "held_out.nii.gz")]
    assert len(config["split"]["train"]) == 8
    assert [d["weight"] for d in config["data"]] == pytest.approx([0.7, 0.3])


@pytest.fixture
def bad_folders(tmp_path):
    made = {}
    made["empty"] = tmp_path / "empty"
    made["empty"].mkdir()
    made["not_nifti"] = tmp_path / "not_nifti"
    made["not_nifti"].mkdir()
    (made["not_nifti"] / "notes.txt").write_text("no volumes here\n")
    made["corrupt"] = tmp_path / "corrupt"
    made["corrupt"].mkdir()
    (made["corrupt"] / "broken.nii.gz").write_bytes(b"this is not a NIfTI file" * 20)
    for i in range(2):
        save(made["corrupt"] / f"good{i}.nii.gz", blobs(seed=i))
    made["4d"] = tmp_path / "four_d"
    for i in range(2):
        save(made["4d"] / f"t{i}.nii.gz", np.stack([blobs(seed=i)] * 3, axis=-1))
    made["small"] = tmp_path / "small"
    for i in range(3):
        save(made["small"] / f"s{i}.nii.gz", blobs((12, 40, 40), seed=i))
    return made


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("empty", [], "empty"),
        ("not_nifti", [], "not_nifti"),
        ("corrupt", [], "broken.nii.gz"),
        ("4d", [], "t0.nii.gz"),
        ("small", [], "too small"),
        ("val_empty", [], "--val"),
        ("bad_weights", ["--data-weights", "0.7,0.3"], "--data-weights"),
        ("bad_weights", ["--data-weights", "x"], "--data-weights"),
    ],
)
def test_bad_data_gives_one_clear_line(case, extra, message, bad_folders, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    if case == "val_empty":
        argv = ["--data", str(data_dir), "--val", str(bad_folders["empty"])]
    elif case == "bad_weights":
        argv = ["--data", str(data_dir)]
    else:
        argv = ["--data", str(bad_folders[case])]
    code = main([*argv, "--out", str(out), *TINY, *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("volumenet-train: error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun")
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def test_ddp_two_cpu_processes_only_rank0_writes(data_dir, tmp_path):
    out = tmp_path / "ddp"
    command = [*_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "src_training.train",
               "--data", str(data_dir), "--out", str(out), *TINY, "--steps-per-epoch", "3", "--max-steps", "6",
               "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {p.name for p in out.iterdir()} - {"curve.png"}  # curve.png when matplotlib is installed
    assert names == {"best.pt", "last.pt", "resume.pt", "metrics.csv", "config.json"}  # no stray temp files
    table = rows(out)
    assert [r["step"] for r in table] == ["3", "6"]  # one writer: no duplicate rows
    assert len(list(tmp_path.rglob("metrics.csv"))) == 1 and len(list(tmp_path.rglob("config.json"))) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["device"]["world_size"] == 2
    _, meta = load_weights(out / "best.pt")
    assert meta["training"]["world_size"] == 2
    assert result.stdout.count("stopped at step") + result.stderr.count("stopped at step") == 1


def test_cosine_schedule_decays_to_one_percent(data_dir, tmp_path):
    out = tmp_path / "cosine"
    assert train(data_dir, out, "--lr", "1e-3", "--lr-schedule", "cosine", "--steps-per-epoch", "4",
                 "--max-steps", "8") == 0
    lrs = [float(r["lr"]) for r in rows(out)]
    # the lr column is the rate of the epoch's last step: step 4 of 8 (half-way) and step 8 (the end)
    assert lrs[0] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 3 / 8))), rel=0.02)
    assert lrs[1] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 7 / 8))), rel=0.02)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (training refuses --amp bf16)")
def test_bf16_autocast_trains_on_the_cpu(data_dir, tmp_path):
    out = tmp_path / "bf16"
    assert train(data_dir, out, "--amp", "bf16", "--lr", "1e-3", "--steps-per-epoch", "3", "--max-steps", "3") == 0
    network, _ = load_weights(out / "best.pt")
    assert all(p.dtype == torch.float32 for p in network.parameters())
    assert math.isfinite(float(rows(out)[-1]["val_psnr"]))


def test_thick_slices_train_a_through_plane_network(data_dir, tmp_path, capsys):
    out = tmp_path / "thick"
    assert train(data_dir, out, "--thick-slices", "4", "--patch", "8,8,4", "--max-steps", "2",
                 "--steps-per-epoch", "2") == 0
    network, meta = load_weights(out / "best.pt")
    assert tuple(network.scale) == (1, 1, 4)
    assert meta["training"]["degradation"] == {"kind": "thick-slices", "axis": 2, "factor": 4, "gap": 0.0,
                                               "volume_axes": [0, 1, 2]}
    config = json.loads((out / "config.json").read_text())
    assert sorted({f["slice_axis"] for f in config["files"]}) == [0, 1, 2]
    assert len(config["files"]) == 3 * 6  # each volume once per axis
    capsys.readouterr()
    assert train(data_dir, tmp_path / "both", "--thick-slices", "4", "--scale", "2") == 2
    assert "leave out --scale" in capsys.readouterr().err
    assert train(data_dir, tmp_path / "bad", "--thick-slices", "1") == 2
