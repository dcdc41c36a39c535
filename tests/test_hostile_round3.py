"""Hostile input, round three (issue 30): each class ends in one line naming the file, exit 2, nothing left behind,
the rest of a batch done.

1 one geometry (the sform, the one written) behind every decision; 2 special files (FIFOs, devices) refused by
type and sidecars read with a bound: no hang; 3 voxel sizes no arithmetic survives and full disks: no internal
error; 4 batches go on past a bad file and leave no empty folder; 5 words: options and messages. The training
run folder (always resumable or restartable) is in ``tests/training/test_train_errors.py``.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_volumenet import atomic
from napari_volumenet import io as vio
from napari_volumenet._reader import read_layers
from napari_volumenet.cli import main
from napari_volumenet.cli.upscale import _choose_each
from napari_volumenet.errors import InputError, OutputError, WeightsError
from napari_volumenet.io.header import output_header
from napari_volumenet.models import create_model
from napari_volumenet.slices import choose
from napari_volumenet.weights import load_weights, read_weights_file, save_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def blob(shape=(12, 10, 8), seed=0) -> np.ndarray:
    return (100 * np.random.default_rng(seed).random(shape) + 10).astype(np.float32)


def save(path: Path, data: np.ndarray | None = None, sform=np.eye(4), qform=None, pixdim=None) -> Path:
    """A NIfTI file with ``sform``, ``qform`` (default: the sform) and, when given, a ``pixdim`` of its own."""
    image = nib.Nifti1Image(blob() if data is None else data, sform)
    image.set_sform(sform, code=1)
    image.set_qform(sform if qform is None else qform, code=1)
    if pixdim is not None:
        image.header["pixdim"][1:4] = pixdim
    nib.save(image, str(path))
    return path


@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` runs ``volumenet`` in this process: ``(exit code, stdout, stderr)``."""
    def run(*argv) -> tuple[int, str, str]:
        return (main([str(a) for a in argv]), *capsys.readouterr())

    return run


def error_lines(err: str) -> list[str]:
    lines = [line for line in err.strip().splitlines() if line.startswith("volumenet")]
    assert "Traceback" not in err and "internal error" not in err, err
    return lines


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_weights(tmp_path_factory.mktemp("w") / "w.pt", create_model("volumenet", depth=2, channels=4),
                        modality="mri")


class Hang(Exception):
    """A call blocked (a FIFO opened or read) for longer than :func:`no_hang` allows."""


@pytest.fixture
def no_hang():
    """Turns a blocking call into a :class:`Hang` after 20 s (SIGALRM), so a regression fails instead of hanging."""
    def alarm(signum, frame):
        raise Hang("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------- 1: one geometry


def test_the_automatic_choice_reads_the_sform_not_pixdim(tmp_path):
    iso = save(tmp_path / "iso.nii.gz", pixdim=(1.0, 1.0, 4.0))  # sform 1 mm isotropic, pixdim says 4 mm slices
    thick = save(tmp_path / "thick.nii.gz", sform=np.diag([1.0, 1.0, 4.0, 1.0]), pixdim=(1.0, 1.0, 1.0))
    assert nib.load(iso).header.get_zooms() == (1.0, 1.0, 4.0)
    choices, refused = _choose_each([iso, thick], modality="mri")
    assert not refused
    assert choices[iso].scale == (2, 2, 2)
    assert choices[thick].scale == (1, 1, 4)


def test_a_carried_qform_keeps_its_own_voxel_sizes(tmp_path):
    sform = np.diag([1.0, 1.0, 1.0, 1.0])
    qform = np.diag([1.2, 1.2, 1.2, 1.0])
    qform[:3, 3] = (3.0, -2.0, 1.0)
    header = nib.load(save(tmp_path / "scan.nii.gz", sform=sform, qform=qform)).header
    shape = (24, 20, 16)
    out = output_header(header, vio.sr_affine(sform, 2), shape)
    np.testing.assert_allclose(out.get_sform(), vio.sr_affine(sform, 2), atol=1e-6)
    np.testing.assert_allclose(out.get_qform(), vio.sr_affine(qform, 2), atol=1e-5)  # 0.6 mm, not the sform's 0.5


# ----------------------------------------------------------------------------- 2: special files, sidecars


@pytest.mark.parametrize("command", ["upscale", "degrade"])
def test_a_fifo_input_is_refused_by_type(cli, tmp_path, weights, no_hang, command):
    fifo = tmp_path / "scan.nii"
    os.mkfifo(fifo)
    extra = ["--weights", weights] if command == "upscale" else []
    code, _, err = cli(command, fifo, "-o", tmp_path / "out.nii.gz", *extra)
    assert code == 2
    assert error_lines(err) == [f"volumenet: error: {fifo} is a FIFO (named pipe), not a regular file; "
                                "only a NIfTI file saved on disk can be read"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii"]


def test_the_napari_reader_refuses_a_fifo_and_a_device(tmp_path, no_hang):
    fifo, device = tmp_path / "pipe.nii.gz", tmp_path / "zero.nii"
    os.mkfifo(fifo)
    device.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="FIFO"):
        read_layers(fifo)
    with pytest.raises(InputError, match="is a character device, not a regular file"):
        read_layers(device)


def test_weights_that_are_a_fifo_are_refused_by_type(tmp_path, no_hang):
    fifo = tmp_path / "w.pt"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match=r"w\.pt is a FIFO \(named pipe\), not a weights file"):
        read_weights_file(fifo)


def test_a_special_or_endless_sidecar_does_not_hang_the_folder_scan(cli, tmp_path, weights, no_hang):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b", "c"):
        save(folder / f"{name}.nii.gz", blob(seed=len(name)))
    os.mkfifo(folder / "a.json")
    (folder / "b.json").symlink_to("/dev/zero")
    record = json.dumps({"tool": "volumenet upscale", "output": "c.nii.gz"})
    (folder / "c.json").write_text(record + " " * (2 << 20))  # would mark c as an output, if read at all
    assert vio.written_by(folder / "c.nii.gz", "volumenet upscale") is False
    code, _, err = cli("upscale", folder, "-o", tmp_path / "out", "--weights", weights, "-q")
    assert code == 0 and err == ""
    assert len(list((tmp_path / "out").glob("*_x2.nii.gz"))) == 3


# ----------------------------------------------------------------------------- 3: no internal error


def test_an_infinite_voxel_size_in_a_folder_is_named_and_the_others_run(cli, tmp_path, weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    save(folder / "a.nii.gz")
    bad = save(folder / "b.nii.gz", pixdim=(1.0, 1.0, np.inf))
    code, _, err = cli("upscale", folder, "-o", tmp_path / "out", "--weights", weights, "-q")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 2
    assert lines[0] == f"volumenet: error: {bad} has a zero or invalid voxel size in its header (pixdim 1, 1, inf); " \
                       "fix the header first"
    assert lines[1].endswith(f"1 of 2 volumes failed (see above): {bad}; the other volume was written")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.json", "a_x2.nii.gz"]


def test_a_slice_ratio_of_infinity_is_no_weights_fit():
    with pytest.raises(WeightsError, match="no MRI through-plane weights for ×inf"):
        choose((1e-310, 1e-310, 1e300))


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def full_disk(monkeypatch) -> None:
    """Every write of a report through :mod:`napari_volumenet.atomic` fails with ENOSPC."""
    monkeypatch.setattr(atomic, "open", no_space, raising=False)


@pytest.mark.parametrize("command", [
    ["evaluate", "{hr}", "--models", "tricubic", "--json", "{report}"],
    ["evaluate", "{hr}", "--models", "tricubic", "--plot", "{report}"],
    ["benchmark", "--models", "tricubic", "--size", "8", "--repeats", "1", "--bandwidth", "100", "--json", "{report}"],
])
def test_a_full_disk_under_a_report_is_one_line(cli, tmp_path, monkeypatch, command):
    hr = save(tmp_path / "hr.nii.gz", blob((16, 16, 16)))
    report = tmp_path / "report.png"
    if "--plot" in command:
        from matplotlib.figure import Figure

        monkeypatch.setattr(Figure, "savefig", no_space)
    else:
        full_disk(monkeypatch)
    code, _, err = cli(*[a.format(hr=hr, report=report) for a in command], "-q")
    assert code == 2
    assert error_lines(err) == [f"volumenet: error: could not write {report}: the disk is full (no space left on "
                                "device); free some space"]
    assert os.listdir(tmp_path) == ["hr.nii.gz"]


# ----------------------------------------------------------------------------- 4: batches


def test_a_file_no_weights_fit_is_named_and_the_others_run(cli, tmp_path, weights, monkeypatch):
    import napari_volumenet.slices as slices

    monkeypatch.setattr(slices, "default_weights", lambda *args, **kwargs: weights)  # fast stand-in for ×2
    folder = tmp_path / "scans"
    folder.mkdir()
    save(folder / "a.nii.gz")
    coarse = save(folder / "b.nii.gz", sform=np.diag([1.0, 1.0, 9.0, 1.0]))
    code, _, err = cli("upscale", folder, "-o", tmp_path / "out", "-q")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 2
    assert lines[0].startswith(f"volumenet: error: {coarse}: voxels 1×1×9 mm") and "no MRI through-plane" in lines[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.json", "a_x2.nii.gz"]


def test_evaluate_scores_the_good_volumes_past_a_corrupt_one(cli, tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    save(folder / "a.nii.gz", blob((16, 16, 16)))
    (folder / "b.nii.gz").write_bytes(b"not a volume" * 40)
    report = tmp_path / "rows.json"
    code, out, err = cli("evaluate", folder, "--models", "tricubic", "--json", report, "-q")
    lines = error_lines(err)
    assert code == 2 and "tricubic" in out and "1 volume(s)" in out
    assert lines[0] == f"volumenet: error: {folder / 'b.nii.gz'} is not a valid NIfTI file (its header cannot be read)"
    assert lines[1].endswith("the other volume was scored (see the table)")
    assert [row["volume"] for row in json.loads(report.read_text())["rows"]] == [str(folder / "a.nii.gz")]


def test_a_batch_that_writes_nothing_leaves_no_folder(cli, tmp_path, weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.nii.gz").write_text("junk")
    out = tmp_path / "new" / "out"
    code, _, err = cli("upscale", folder, "-o", out, "--weights", weights, "-q")
    assert code == 2 and error_lines(err)[-1].endswith("no volume was written")
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_a_missing_gpu_is_one_line_before_any_volume(cli, tmp_path, weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b", "c"):
        save(folder / f"{name}.nii.gz")
    for device in ("cuda", "cuda:99"):
        code, _, err = cli("upscale", folder, "-o", tmp_path / "out", "--weights", weights, "--device", device)
        assert code == 2
        assert error_lines(err) == [f"volumenet: error: device '{device}' was requested but no CUDA GPU is "
                                    "available; use --device cpu"]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- 5: words


def test_a_long_legal_output_name_is_written(cli, tmp_path):
    scan = save(tmp_path / "a.nii.gz", blob((8, 8, 8)))
    name = "x" * 245 + ".nii.gz"  # 252 bytes: legal, but not with the hidden temporary name's additions
    code, _, err = cli("degrade", scan, "-o", tmp_path / name, "-q")
    assert code == 0 and err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.nii.gz", name, "x" * 245 + ".json"])


def test_nibabel_log_lines_stay_quiet_in_upscale(capfd, tmp_path, weights):
    scan = save(tmp_path / "scan.nii")
    raw = bytearray(scan.read_bytes())
    raw[252:256] = np.array([7, 7], "<i2").tobytes()  # qform_code 7, sform_code 7: nibabel logs a fix-up
    scan.write_bytes(bytes(raw))
    assert main(["upscale", str(scan), "-o", str(tmp_path / "out.nii.gz"), "--weights", str(weights), "-q"]) == 0
    assert "not valid" not in capfd.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-inf", "inf"])
def test_a_pad_value_must_be_finite(cli, tmp_path, value):
    code, _, err = cli("upscale", tmp_path / "a.nii.gz", "-o", tmp_path / "b.nii.gz", f"--pad-value={value}")
    assert code == 2 and f"expected auto, none or a finite number of HU, got '{value}'" in err


def test_weights_of_an_unknown_modality_are_refused_at_load(tmp_path):
    path = save_weights(tmp_path / "pet.pt", create_model("volumenet", depth=2, channels=4), modality="mri")
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["modality"] = "pet"
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="pet.pt is damaged or crafted: its modality 'pet' is not one of mri, ct"):
        load_weights(path)


def test_unreadable_weights_say_why(tmp_path, weights, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(WeightsError, match=r"w\.pt cannot be read: Permission denied$"):
        read_weights_file(weights)


@pytest.mark.parametrize("packed", [False, True])
def test_an_empty_axis_is_named_as_declared(tmp_path, packed):
    header = nib.Nifti1Header()
    header.set_data_shape((0, 16, 16))
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4
    path = tmp_path / ("empty.nii.gz" if packed else "empty.nii")
    path.write_bytes(gzip.compress(raw) if packed else raw)
    with pytest.raises(InputError, match=r"empty\.nii(\.gz)? is 0×16×16 voxels: its header declares an axis"):
        vio.read_volume(path)


def test_too_thick_slices_name_the_file_and_its_shape(cli, tmp_path):
    scan = save(tmp_path / "a.nii.gz", blob((24, 24, 24)))
    code, _, err = cli("evaluate", scan, "--models", "tricubic", "--thick-slices", "2,50", "-q")
    assert code == 2
    assert error_lines(err) == [f"volumenet: error: {scan}: The volume of shape (24, 24, 24) is too small for 50× "
                                "thick slices along axis 2: the LR axis needs at least 4 slices."]


def test_degrade_refuses_thick_slices_with_a_scale(cli, tmp_path):
    scan = save(tmp_path / "a.nii.gz", blob((24, 24, 24)))
    code, _, err = cli("degrade", scan, "-o", tmp_path / "lr.nii.gz", "--thick-slices", "2,4", "--scale", "3")
    assert code == 2
    assert error_lines(err) == ["volumenet: error: --thick-slices sets the factor; leave out --scale"]


def test_a_write_that_fails_is_one_output_error(tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(OutputError, match="the disk is full"):
        atomic.write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert os.listdir(tmp_path) == []
