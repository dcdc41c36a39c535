"""Hostile and odd input (issue 15): each class ends in one clear line, exit 2, nothing left behind.

1 oversize headers, 2 voxels inside the header, 4 SIGTERM/SIGHUP while writing, 5 memory limits and
CPU out-of-memory, 6 crafted weights metadata, 7 folders with bad files and reruns, 8 qform/sform
disagreement, 9 messages naming the file and the real cause, 10 the wrong modality. Class 3
(volumenet-train) is in ``tests/training/test_train_errors.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_volumenet import _memory, inference
from napari_volumenet import io as vio
from napari_volumenet._writer import write_single_image
from napari_volumenet.cli import main
from napari_volumenet.errors import InputError, OutputError, WeightsError
from napari_volumenet.models import create_model
from napari_volumenet.ops.normalize import modality_mismatch
from napari_volumenet.weights import FORMAT, load_weights, save_weights

AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


def blob(shape=(12, 10, 8), low=0.0, high=100.0, seed=0) -> np.ndarray:
    """A smooth positive (MRI-like) float32 volume between ``low`` and ``high``."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    values = np.exp(-2 * sum(g**2 for g in grids)) + 0.1 * rng.random(shape)
    return (low + (high - low) * values / values.max()).astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE, qform: np.ndarray | None = None) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine if qform is None else qform, code=1)
    nib.save(image, str(path))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "w.pt"
    return save_weights(path, create_model("volumenet", depth=2, channels=4), modality="mri")


def header_bytes(shape, dtype=np.float32, offset=352) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_zooms((1.0,) * len(shape))
    header["vox_offset"] = offset
    return header.binaryblock + b"\0" * 4


# ----------------------------------------------------------------------------- 1: declared size


def test_tiny_gzip_declaring_600_cubed_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(header_bytes((600, 600, 600)) + bytes(64)))
    assert path.stat().st_size < 500
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"600×600×600 voxels .* more than a .* gzip file can hold"):
            vio.read_volume(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # nothing near the declared 864 MB


def test_gzip_that_unpacks_to_less_than_declared_is_refused(tmp_path):
    path = tmp_path / "short.nii.gz"
    incompressible = np.random.default_rng(0).bytes(200_000)  # 200 kB of a declared 1 MiB
    path.write_bytes(gzip.compress(header_bytes((64, 64, 64)) + incompressible))
    with pytest.raises(InputError, match=r"is truncated: .* unpacks to only 195\.7 KiB"):
        vio.read_volume(path)


def test_volume_larger_than_the_memory_left_is_refused_before_reading(tmp_path, monkeypatch):
    path = save(tmp_path / "big.nii", blob((64, 64, 64)))
    # the read needs 64³ × (4 + 4 + 1) bytes
    monkeypatch.setattr("napari_volumenet.io.read.available_memory", lambda: 1 << 20)
    with pytest.raises(InputError, match=r"big\.nii needs about 2\.2 MiB of memory .* only 1\.0 MiB is available"):
        vio.read_volume(path)


# ----------------------------------------------------------------------------- 2: vox_offset 0


@pytest.mark.parametrize("name", ["zero.nii", "zero.nii.gz"])
def test_voxels_inside_the_header_are_refused(tmp_path, name):
    data = blob()
    raw = header_bytes(data.shape, offset=0) + data.tobytes()
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(InputError, match=r"voxel data at byte 0, inside the header \(vox_offset must be at least 352\)"):
        vio.read_volume(path)


# ----------------------------------------------------------------------------- 4: signals while writing

SIGNAL_WHILE_SAVING = textwrap.dedent("""
    import os, signal, sys
    import napari_volumenet.io.write as writing
    from napari_volumenet.cli import main

    real_save = writing._save

    def save_then_signal(image, filename):  # the temporary file is complete when the signal comes
        real_save(image, filename)
        assert os.path.basename(filename).startswith(".")
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))

    writing._save = save_then_signal
    sys.exit(main(["degrade", sys.argv[2], "-o", sys.argv[3], "--quiet"]))
""")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_termination_while_writing_leaves_no_temporary_file(tmp_path, name):
    source = save(tmp_path / "hr.nii.gz", blob((16, 16, 16)))
    out = tmp_path / "out"
    out.mkdir()
    number = getattr(signal, name)
    result = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_SAVING, name, str(source), str(out / "lr.nii.gz")],
                            capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: signal.signal(number, signal.SIG_DFL))  # as in a terminal, even under nohup
    assert result.returncode == 128 + number, result.stderr
    assert result.stderr.strip() == f"volumenet: terminated ({name})"
    assert list(out.iterdir()) == []  # neither the output, its sidecar nor a hidden temporary file


def test_termination_handlers_are_restored_and_ignored_signals_stay_ignored():
    from napari_volumenet.atomic import Terminated, termination_unwinds

    before = signal.getsignal(signal.SIGTERM)
    previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with termination_unwinds():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            with pytest.raises(Terminated) as info:
                signal.raise_signal(signal.SIGTERM)
            assert isinstance(info.value, KeyboardInterrupt) and info.value.name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGHUP, previous_hup)


# ----------------------------------------------------------------------------- 5: memory limits, OOM


def fake_cgroup(root: Path, relative: str, files: dict[str, str]) -> Path:
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text + "\n")
    return folder


def test_cgroup_v2_limit_is_the_tightest_level_less_its_usage(tmp_path):
    root = tmp_path / "cgroup"
    fake_cgroup(root, "", {"memory.max": "max"})
    fake_cgroup(root, "box", {"memory.max": str(4 << 30), "memory.current": str(1 << 30)})
    fake_cgroup(root, "box/job", {"memory.max": "max", "memory.current": str(1 << 30)})
    proc = tmp_path / "cgroup.self"
    proc.write_text("0::/box/job\n")
    assert _memory.cgroup_room(root, proc) == 3 << 30
    proc.write_text("0::/\n")  # a container with its own cgroup namespace: no limit at its root
    assert _memory.cgroup_room(root, proc) is None


def test_cgroup_v1_limit(tmp_path):
    root = tmp_path / "cgroup"
    no_limit = "9223372036854771712"  # how cgroup v1 writes "no limit"
    fake_cgroup(root, "memory", {"memory.limit_in_bytes": no_limit})
    fake_cgroup(root, "memory/box", {"memory.limit_in_bytes": str(2 << 30), "memory.usage_in_bytes": str(512 << 20)})
    proc = tmp_path / "cgroup.self"
    proc.write_text("5:cpu,cpuacct:/other\n4:memory:/box\n0::/\n")
    assert _memory.cgroup_room(root, proc) == (2 << 30) - (512 << 20)
    proc.write_text("4:memory:/\n")
    assert _memory.cgroup_room(root, proc) is None


def test_the_tile_plan_stays_within_the_memory_limit(monkeypatch):
    model = create_model("volumenet", depth=2, channels=4)
    monkeypatch.setattr(inference, "available_memory", lambda: 1 << 40)
    whole = inference.make_plan((96, 96, 96), model, device="cpu", precision="fp32")
    assert whole.tiles == 1
    limit = 64 << 20
    monkeypatch.setattr(inference, "available_memory", lambda: limit)
    plan = inference.make_plan((96, 96, 96), model, device="cpu", precision="fp32")
    window_bytes = np.prod(plan.window) * inference._bytes_per_voxel(inference.accelerate(model), "fp32")
    assert plan.tiles > 1 and window_bytes <= limit


ULIMIT_V = textwrap.dedent("""
    import resource, sys
    import psutil, torch
    vms = psutil.Process().memory_info().vms
    resource.setrlimit(resource.RLIMIT_AS, (vms + (512 << 20), resource.RLIM_INFINITY))
    from napari_volumenet._memory import available_memory
    from napari_volumenet.inference import free_memory
    assert available_memory() <= 256 << 20, available_memory()  # half the address space left (reservations)
    assert free_memory(torch.device("cpu")) <= 256 << 20
    from napari_volumenet.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced as a hard address-space limit on Linux")
def test_ulimit_v_is_planned_within_and_an_oom_asks_for_a_smaller_tile(tmp_path, weights):
    scan = save(tmp_path / "scan.nii.gz", blob((128, 128, 128)))  # the whole volume at once needs ~600 MB
    base = ["upscale", str(scan), "--weights", str(weights), "--device", "cpu", "--precision", "fp32", "-q"]
    result = subprocess.run([sys.executable, "-c", ULIMIT_V, *base, "-o", str(tmp_path / "whole.nii.gz"),
                             "--tile", "0"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "out of memory on cpu" in one_error_line(result.stderr) and "pass a smaller --tile" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
    result = subprocess.run([sys.executable, "-c", ULIMIT_V, *base, "-o", str(tmp_path / "auto.nii.gz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "auto.json").read_text())["plan"]["tiles"] > 1


# ----------------------------------------------------------------------------- 6: weights metadata


def crafted(tmp_path: Path, **meta_changes) -> Path:
    meta = {"model": "volumenet", "model_kwargs": {"depth": 2, "channels": 4, "block": "queue"},
            "scale": [2, 2, 2], "modality": "mri", **meta_changes}
    path = tmp_path / "crafted.pt"
    torch.save({"format": FORMAT, "format_version": 1, "state_dict": {}, "metadata": meta}, path)
    return path


@pytest.mark.parametrize("change, message", [
    ({"scale": [100, 100, 100]}, r"scale \(100, 100, 100\); at most ×8"),
    ({"scale": "two"}, "its scale 'two' is not"),
    ({"model_kwargs": {"depth": 100000}}, "depth=100000 is not an integer from 1 to 64"),
    ({"model_kwargs": {"channels": 10**6}}, "channels=1000000 is not an integer from 1 to 256"),
    ({"model_kwargs": {"depth": 2.5}}, "depth=2.5 is not an integer"),
    ({"model_kwargs": {"block": "rm -rf"}}, "block='rm -rf' is not one of conv"),
    ({"model_kwargs": {"ratio": 0}}, r"ratio=0 is not a number in \(0, 1\]"),
    ({"model_kwargs": {"evil": 1}}, "model argument 'evil' this version does not know"),
    ({"model_kwargs": [1, 2]}, "model arguments are not a mapping"),
    ({"model": "os.system"}, "unknown model 'os.system'"),
    ({}, "does not fit model 'volumenet': missing"),  # metadata fine, no tensors: compared on the meta device
])
def test_crafted_metadata_is_refused_before_anything_is_built(tmp_path, monkeypatch, change, message):
    import napari_volumenet.weights as weights_module

    built = []

    def create_model_on_meta_only(name, **kwargs):
        built.append(torch.empty(0).device.type)
        assert built[-1] == "meta", "a network was built in memory from unchecked metadata"
        return create_model(name, **kwargs)

    monkeypatch.setattr(weights_module, "create_model", create_model_on_meta_only)
    with pytest.raises(WeightsError, match=message):
        load_weights(crafted(tmp_path, **change))
    assert built == (["meta"] if not change else [])  # range checks come before any build, even on meta


def test_nan_weights_are_refused_when_loaded(tmp_path):
    model = create_model("volumenet", depth=2, channels=4)
    with torch.no_grad():
        next(iter(model.parameters()))[0] = float("nan")
    path = save_weights(tmp_path / "nan.pt", model, modality="mri")
    with pytest.raises(WeightsError, match=r"nan\.pt contains NaN or infinite weights"):
        load_weights(path)


# ----------------------------------------------------------------------------- 7: folders


def test_a_bad_file_in_a_folder_does_not_stop_the_others(capsys, tmp_path, weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    save(folder / "a.nii.gz", blob(seed=1))
    (folder / "b.nii.gz").write_text("not a volume")
    save(folder / "c.nii.gz", blob(seed=2))
    out = tmp_path / "out"
    code, _, err = run(capsys, "upscale", folder, "-o", out, "--weights", weights, "--device", "cpu", "-q")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert str(folder / "b.nii.gz") in lines[0] and "not a valid NIfTI" in lines[0]
    assert lines[1].startswith("volumenet: error: 1 of 3 volumes failed") and "b.nii.gz" in lines[1]
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.json", "a_x2.nii.gz", "c_x2.json", "c_x2.nii.gz"]


def test_upscaling_a_folder_into_itself_twice_skips_its_own_outputs(capsys, tmp_path, weights):
    folder = tmp_path / "scans"
    folder.mkdir()
    save(folder / "a.nii.gz", blob())
    argv = ["upscale", folder, "-o", folder, "--weights", weights, "--device", "cpu", "-q"]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)  # a_x2.nii.gz is not taken as an input; a's output exists
    assert code == 2 and "a_x2.nii.gz exists; pass --overwrite" in one_error_line(err)
    code, _, err = run(capsys, *argv, "--overwrite")
    assert code == 0 and err == ""
    assert sorted(p.name for p in folder.iterdir()) == ["a.nii.gz", "a_x2.json", "a_x2.nii.gz"]
    assert run(capsys, "upscale", folder / "a_x2.nii.gz", "-o", tmp_path / "x4.nii.gz",  # named: taken
               "--weights", weights, "--device", "cpu", "-q")[0] == 0


# ----------------------------------------------------------------------------- 8: qform and sform


def test_qform_and_sform_keep_their_own_meaning_with_a_warning(capsys, tmp_path, weights):
    qform = AFFINE.copy()
    qform[:3, 3] += (60.0, 0.0, 0.0)
    scan = save(tmp_path / "scan.nii.gz", blob(), qform=qform)
    out = tmp_path / "scan_x2.nii.gz"
    code, _, err = run(capsys, "upscale", scan, "-o", out, "--weights", weights, "--device", "cpu", "-q")
    assert code == 0
    line = one_error_line(err)
    assert line.startswith("volumenet: warning: ") and "qform and sform disagree by up to 60.0 mm" in line
    header = nib.load(out).header
    np.testing.assert_allclose(header.get_sform(), vio.sr_affine(AFFINE, 2), atol=1e-5)
    np.testing.assert_allclose(header.get_qform(), vio.sr_affine(qform, 2), atol=1e-4)


def test_agreeing_qform_and_sform_give_no_warning(capsys, tmp_path, weights):
    scan = save(tmp_path / "scan.nii.gz", blob())
    code, _, err = run(capsys, "upscale", scan, "-o", tmp_path / "sr.nii.gz", "--weights", weights,
                       "--device", "cpu", "-q")
    assert code == 0 and err == ""


# ----------------------------------------------------------------------------- 9: messages


def test_an_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = save(tmp_path / "locked.nii.gz", blob())
    real_open = open

    def denied(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(InputError, match=r"locked\.nii\.gz cannot be read: permission denied$"):
        vio.read_volume(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_permission_denied_for_real(tmp_path):
    path = save(tmp_path / "locked.nii.gz", blob())
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        vio.read_volume(path)


def test_an_all_zero_volume_names_its_file(capsys, tmp_path, weights):
    scan = save(tmp_path / "empty.nii.gz", np.zeros((12, 10, 8), np.float32))
    code, _, err = run(capsys, "upscale", scan, "-o", tmp_path / "sr.nii.gz", "--weights", weights, "--device", "cpu")
    assert code == 2
    line = one_error_line(err)
    assert str(scan) in line and "empty (no positive intensity)" in line


def test_nibabel_fix_ups_do_not_leak_to_stderr(capfd, tmp_path):
    path = save(tmp_path / "odd.nii", blob())
    raw = bytearray(path.read_bytes())
    raw[76:80] = np.float32(0.5).tobytes()  # pixdim[0] (qfac) must be ±1: nibabel logs and fixes it
    raw[80:84] = np.float32(-1.5).tobytes()  # a negative voxel size: nibabel logs and takes its magnitude
    path.write_bytes(bytes(raw))
    volume = vio.read_volume(path)
    assert volume.shape == (12, 10, 8)
    assert capfd.readouterr().err == ""


def test_a_zero_voxel_size_is_refused(tmp_path):
    path = save(tmp_path / "flat.nii", blob())
    raw = bytearray(path.read_bytes())
    raw[84:88] = np.float32(0.0).tobytes()  # pixdim[2]; nibabel would quietly make it 1 mm
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"flat\.nii has a zero or invalid voxel size .*pixdim 1\.5, 0, 2"):
        vio.read_volume(path)


@pytest.mark.parametrize("data, meta, message", [
    (np.zeros((8, 8)), {}, "Only single-channel 3D image layers"),
    (np.full((8, 8, 8), np.nan), {}, "NaN"),
    (np.zeros((8, 8, 8)), {"metadata": {"volumenet": {"affine": "nonsense", "ornt": [[0, 1]]}}},
     "cannot be written as NIfTI"),
])
def test_the_napari_writer_raises_one_clean_sentence(tmp_path, data, meta, message):
    target = tmp_path / "layer.nii.gz"
    with pytest.raises(OutputError, match=message) as info:
        write_single_image(str(target), data, meta)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_the_napari_writer_names_a_missing_folder(tmp_path):
    target = tmp_path / "missing" / "layer.nii.gz"
    with pytest.raises(OutputError, match=r"the folder .*missing does not exist"):
        write_single_image(str(target), np.zeros((8, 8, 8)), {})


# ----------------------------------------------------------------------------- 10: modality


def test_modality_mismatch():
    mri = blob(high=800.0)
    ct = blob(low=-1000.0, high=1500.0)
    assert modality_mismatch(mri, "mri") is None and modality_mismatch(ct, "ct") is None
    assert "weights are for MRI" in modality_mismatch(ct, "mri")
    assert "weights are for CT" in modality_mismatch(mri, "ct")
    slightly_negative = mri - 5.0  # interpolation undershoot in an MRI is no CT
    assert modality_mismatch(slightly_negative, "mri") is None


def test_mri_weights_on_a_ct_warn_in_one_line(capsys, tmp_path, weights):
    scan = save(tmp_path / "ct.nii.gz", blob(low=-1000.0, high=1500.0))
    code, _, err = run(capsys, "upscale", scan, "-o", tmp_path / "sr.nii.gz", "--weights", weights,
                       "--device", "cpu", "-q")
    assert code == 0
    line = one_error_line(err)
    assert line.startswith(f"volumenet: warning: {scan}: ") and "use CT weights (--modality ct)" in line
