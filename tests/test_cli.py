"""The ``volumenet`` command line: every subcommand end to end on tiny volumes, and every bad input.

Runs ``main([...])`` in-process (capsys) except for two subprocess checks (``python -m``, no Qt import).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_volumenet import __version__, evaluation, inference
from napari_volumenet import weights as weights_module
from napari_volumenet.cli import main
from napari_volumenet.io import lr_affine, read_volume, sr_affine
from napari_volumenet.models import create_model
from napari_volumenet.ops.normalize import fit_normalization
from napari_volumenet.weights import list_bundled, load_weights, save_weights

# a non-trivial (axis-permuting, flipping, anisotropic, translated) affine, exact in float32
AFFINE = np.array([
    [0.0, -1.25, 0.0, 30.0],
    [0.5, 0.0, 0.0, -20.0],
    [0.0, 0.0, 2.0, 5.5],
    [0.0, 0.0, 0.0, 1.0],
])
SHAPE = (12, 10, 8)
FAST = ["--device", "cpu", "--precision", "fp32", "--quiet"]


def make_volume(shape=SHAPE, seed=0, amplitude=1.0) -> np.ndarray:
    """A smooth blob plus noise, positive (MRI-like), float32."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    blob = np.exp(-2 * sum(g**2 for g in grids))
    return (amplitude * (blob + 0.2 * rng.random(shape))).astype(np.float32)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    save_weights(d / "w.pt", create_model("volumenet", depth=2, channels=4), modality="mri")
    save_weights(d / "w112.pt", create_model("volumenet", depth=2, channels=4, scale=(1, 1, 2)), modality="mri")
    torch.save([1, 2, 3], d / "list.pt")
    torch.save(create_model("volumenet", depth=2, channels=4).state_dict(), d / "bare.pt")
    (d / "noise.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    return d


@pytest.fixture
def weights(weights_dir) -> Path:
    return weights_dir / "w.pt"


@pytest.fixture
def scan(tmp_path) -> Path:
    return write_nifti(tmp_path / "scan.nii.gz", make_volume(amplitude=100.0))


@pytest.fixture
def no_bundled(monkeypatch):
    monkeypatch.setattr(weights_module, "list_bundled", lambda: [])
    import napari_volumenet.evaluation as evaluate_module

    monkeypatch.setattr(evaluate_module, "list_bundled", lambda: [])


def sidecar_of(path: Path) -> dict:
    candidates = [p for p in path.parent.iterdir() if p.suffix == ".json" and p.name.startswith(path.name.split(".")[0])]
    assert len(candidates) == 1, list(path.parent.iterdir())
    return json.loads(candidates[0].read_text())


# ----------------------------------------------------------------------------- upscale


def test_upscale_one_file(capsys, tmp_path, scan, weights):
    out = tmp_path / "out" / "scan_x2.nii.gz"
    out.parent.mkdir()
    code, stdout, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, "--tile", "0",
                               "--device", "cpu", "--precision", "fp32")
    assert code == 0, stderr
    img = nib.load(str(out))
    assert img.shape == tuple(2 * n for n in SHAPE)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, sr_affine(AFFINE, 2), atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms(), [0.25, 0.625, 1.0], atol=1e-6)
    assert "volumenet" in img.header["descrip"].item().decode()
    # summary line
    assert "scan.nii.gz" in stdout and "→" in stdout and "12×10×8 → 24×20×16" in stdout and "1 tile" in stdout
    # sidecar with provenance and tiling
    side = sidecar_of(out)
    assert side["model"] == "volumenet" and side["model_kwargs"]["depth"] == 2
    assert side["scale"] == [2, 2, 2] and side["modality"] == "mri" and side["version"] == __version__
    assert side["normalization"]["modality"] == "mri" and side["plan"]["tiles"] == 1
    assert len(side["weights_sha256"]) == 64 and side["weights"].endswith("w.pt")
    assert side["input"].endswith("scan.nii.gz") and side["output"].endswith("scan_x2.nii.gz")
    assert side["seconds"] >= 0

    # the CLI adds no science: same as inference.upscale with the same normalisation
    data = read_volume(scan).data
    model, meta = load_weights(weights)
    expected = inference.upscale(data, model, normalization=fit_normalization(data, "mri"),
                                 tile=0, device="cpu", precision="fp32")
    np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-6, atol=1e-4)


def test_a_slow_setting_is_one_warning_line_and_the_run_goes_on(capsys, tmp_path, scan, weights, monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    out = tmp_path / "o.nii.gz"
    code, _, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, "--device", "cpu",
                          "--precision", "bf16", "--quiet")
    assert code == 0 and out.exists()
    warning_lines = [line for line in stderr.splitlines() if "warning" in line.lower()]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("volumenet: warning: this CPU has no native bf16")
    assert "Traceback" not in stderr and ".py:" not in stderr


def test_upscale_tiled_equals_whole(capsys, tmp_path, weights):
    src = write_nifti(tmp_path / "v.nii.gz", make_volume((11, 9, 8), seed=3))
    whole, tiled = tmp_path / "whole.nii.gz", tmp_path / "tiled.nii.gz"
    assert run(capsys, "upscale", src, "-o", whole, "--weights", weights, "--tile", "0", *FAST)[0] == 0
    code, _, _ = run(capsys, "upscale", src, "-o", tiled, "--weights", weights, "--tile", "3", *FAST)
    assert code == 0
    assert sidecar_of(tiled)["plan"]["tiles"] > 1
    a, b = (np.asarray(nib.load(str(p)).dataobj) for p in (whole, tiled))
    assert a.shape == b.shape == (22, 18, 16)
    assert np.max(np.abs(a - b)) < 1e-4


def test_upscale_folder_in_folder_out(capsys, tmp_path, weights):
    src = tmp_path / "in"
    src.mkdir()
    write_nifti(src / "a.nii.gz", make_volume(seed=1))
    write_nifti(src / "b.nii", make_volume((8, 8, 8), seed=2))
    (src / "notes.txt").write_text("not a volume")
    out = tmp_path / "out" / "sub"
    code, stdout, stderr = run(capsys, "upscale", src, "-o", out, "--weights", weights, "--device", "cpu")
    assert code == 0, stderr
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a_x2.nii.gz", "b_x2.nii.gz"]
    assert nib.load(str(out / "b_x2.nii.gz")).shape == (16, 16, 16)
    assert len([line for line in stdout.splitlines() if "a.nii.gz → " in line or "b.nii → " in line]) == 2


def test_upscale_several_files_and_anisotropic_names(capsys, tmp_path, weights_dir):
    a = write_nifti(tmp_path / "a.nii.gz", make_volume(seed=1))
    b = write_nifti(tmp_path / "b.nii.gz", make_volume(seed=2))
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "upscale", a, b, "-o", out, "--weights", weights_dir / "w112.pt", *FAST)
    assert code == 0, stderr
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a_x1x1x2.nii.gz", "b_x1x1x2.nii.gz"]
    img = nib.load(str(out / "a_x1x1x2.nii.gz"))
    assert img.shape == (12, 10, 16)
    np.testing.assert_allclose(img.affine, sr_affine(AFFINE, (1, 1, 2)), atol=1e-5)


def test_existing_output_needs_overwrite(capsys, tmp_path, scan, weights):
    out = tmp_path / "o.nii.gz"
    out.write_bytes(b"precious")
    code, stdout, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, *FAST)
    assert code == 2 and stderr.startswith("volumenet: error:") and len(stderr.splitlines()) == 1
    assert out.read_bytes() == b"precious"
    code, _, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, "--overwrite", *FAST)
    assert code == 0, stderr
    assert nib.load(str(out)).shape == (24, 20, 16)


# ----------------------------------------------------------------------------- degrade


def test_degrade(capsys, tmp_path):
    hr = write_nifti(tmp_path / "hr.nii.gz", make_volume((13, 10, 8)))
    out = tmp_path / "lr.nii.gz"
    code, stdout, stderr = run(capsys, "degrade", hr, "-o", out)
    assert code == 0, stderr
    img = nib.load(str(out))
    assert img.shape == (6, 5, 4)
    np.testing.assert_allclose(img.affine, lr_affine(AFFINE, 2), atol=1e-5)
    # LR voxel = HR voxel · s, and the SR affine of the LR affine is the HR affine (same extent)
    np.testing.assert_allclose(img.affine[:3, :3], AFFINE[:3, :3] * 2, atol=1e-6)
    np.testing.assert_allclose(sr_affine(img.affine, 2), AFFINE, atol=1e-5)
    assert "hr.nii.gz" in stdout

    out2 = tmp_path / "lr_z.nii.gz"
    code, _, stderr = run(capsys, "degrade", hr, "-o", out2, "--scale", "1,1,2", "--quiet")
    assert code == 0, stderr
    assert nib.load(str(out2)).shape == (13, 10, 4)
    np.testing.assert_allclose(nib.load(str(out2)).affine, lr_affine(AFFINE, (1, 1, 2)), atol=1e-5)


def test_degrade_thick_slices(capsys, tmp_path):
    from napari_volumenet.ops.degrade import thick_slices

    data = make_volume((13, 10, 17))
    hr = write_nifti(tmp_path / "hr.nii.gz", data)
    out = tmp_path / "thick.nii.gz"
    code, _, stderr = run(capsys, "degrade", hr, "-o", out, "--thick-slices", "2,4,1", "--quiet")
    assert code == 0, stderr
    img = nib.load(str(out))
    assert img.shape == (13, 10, 4)
    np.testing.assert_allclose(img.get_fdata(), thick_slices(nib.load(str(hr)).get_fdata(), 2, 4, 1), atol=1e-3)
    np.testing.assert_allclose(img.affine, lr_affine(AFFINE, (1, 1, 4)), atol=1e-5)
    for bad in ("3,4", "2,1", "2,4,4", "z,4"):
        code, _, stderr = run(capsys, "degrade", hr, "-o", tmp_path / f"x{bad}.nii.gz", "--thick-slices", bad)
        assert code == 2 and "--thick-slices" in stderr


@pytest.mark.parametrize("bad", ["0", "2,2", "two", "1.5", "-1"])
def test_bad_scale_is_a_usage_error(capsys, tmp_path, bad):
    hr = write_nifti(tmp_path / "hr.nii.gz", make_volume())
    code, out, err = run(capsys, "degrade", hr, "-o", tmp_path / "lr.nii.gz", f"--scale={bad}")
    assert code == 2 and "--scale" in err and "Traceback" not in out + err
    assert not (tmp_path / "lr.nii.gz").exists()


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_table_json_csv(capsys, tmp_path, weights):
    a = write_nifti(tmp_path / "a.nii.gz", make_volume(seed=1, amplitude=50))
    b = write_nifti(tmp_path / "b.nii.gz", make_volume((9, 10, 8), seed=2, amplitude=50))
    j, c = tmp_path / "r.json", tmp_path / "r.csv"
    code, stdout, stderr = run(capsys, "evaluate", a, b, "--models", weights, "--json", j, "--csv", c, *FAST)
    assert code == 0, stderr
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert "RMSE" in table[0] and "PSNR-fg" in table[0] and "SSIM" in table[0] and "#params" in table[0]
    assert table[2].startswith("| tricubic") and table[3].startswith("| volumenet")
    report = json.loads(j.read_text())
    assert len(report["rows"]) == 4 and [r["model"] for r in report["summary"]][0] == "tricubic"
    assert all(np.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 for r in report["rows"])
    rows = list(csv.DictReader(c.open()))
    assert [r["model"] for r in rows] == [s["model"] for s in report["summary"]]
    assert float(rows[1]["psnr"]) == pytest.approx(report["summary"][1]["psnr"])


def test_evaluate_markdown_and_fig5_plot(capsys, tmp_path, weights):
    a = write_nifti(tmp_path / "a.nii.gz", make_volume(seed=1, amplitude=50))
    md, png = tmp_path / "table.md", tmp_path / "fig5.png"
    code, stdout, stderr = run(capsys, "evaluate", a, "--models", weights, "--markdown", md, "--plot", png, *FAST)
    assert code == 0, stderr
    table = md.read_text().splitlines()
    assert table[0].startswith("| model") and table[2].startswith("| tricubic") and len(table) == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, stderr = run(capsys, "evaluate", a, "--models", weights, "--markdown", md, *FAST)
    assert code == 2 and "exists" in stderr
    code, _, stderr = run(capsys, "evaluate", a, "--csv", tmp_path / "x", "--markdown", tmp_path / "x", *FAST)
    assert code == 2 and "different files" in stderr


def test_evaluate_without_models_says_none_bundled(capsys, tmp_path, no_bundled):
    a = write_nifti(tmp_path / "a.nii.gz", make_volume(seed=1))
    code, stdout, stderr = run(capsys, "evaluate", a, *FAST)
    assert code == 0, stderr
    assert "| tricubic" in stdout and "no bundled weights yet" in stdout


# ----------------------------------------------------------------------------- models, benchmark, entry points


def test_models(capsys, no_bundled):
    code, stdout, _ = run(capsys, "models")
    assert code == 0
    for name in ("volumenet", "parallelnet", "srcnn3d", "dcsrn", "mdcsrn", "tricubic"):
        assert name in stdout
    assert "0.230 M" in stdout and "no bundled weights yet" in stdout


def test_models_shows_the_terms_of_use_of_bundled_weights_and_the_sample(capsys):
    from napari_volumenet.weights import licence_notice, list_bundled

    code, stdout, _ = run(capsys, "models")
    assert code == 0
    mri = next(w for w in list_bundled() if w.modality == "mri" and w.default)
    row = next(line for line in stdout.splitlines() if line.startswith(mri.name))
    assert row.rstrip().endswith("non-commercial use only")
    assert f"terms: non-commercial use only; {mri.licence}" in stdout
    assert "mni152_t1_lr_x2.nii.gz" in stdout
    assert licence_notice(mri.path).startswith(f"{mri.name}: non-commercial use only")
    assert licence_notice(__file__) is None


def test_benchmark(capsys, tmp_path):
    j = tmp_path / "bench.json"
    code, stdout, stderr = run(capsys, "benchmark", "--models", "volumenet,tricubic", "--size", "8,8,6",
                               "--repeats", "1", "--device", "cpu", "--bandwidth", "10", "--json", j)
    assert code == 0, stderr
    assert "random weights" in stdout and "volumenet" in stdout and "10.0 GB/s (given)" in stdout
    report = json.loads(j.read_text())
    result = report["results"][0]
    assert result["model"] == "volumenet" and result["seconds_median"] > 0 and result["hr_voxels_per_s"] > 0
    assert result["params"] == 230472 and result["peak_memory_bytes"] >= 0 and "sampled" in result["memory_kind"]
    bound = result["roofline"]
    assert bound["bandwidth_bytes_per_s"] == 1e10 and not bound["bandwidth_measured"]
    assert bound["fraction"] == pytest.approx(bound["bytes"] / 1e10 / result["seconds_median"])
    assert f"{100 * bound['fraction']:.1f} %" in stdout


@pytest.mark.parametrize("value", ["0", "-3", "fast", "nan"])
def test_benchmark_refuses_a_bad_bandwidth(capsys, value):
    code, _, stderr = run(capsys, "benchmark", "--bandwidth", value)
    assert code == 2 and "--bandwidth" in stderr and "GB/s" in stderr


def test_version_and_help(capsys):
    assert run(capsys, "--version")[0:2] == (0, f"volumenet {__version__}\n")
    code, stdout, _ = run(capsys, "upscale", "--help")
    assert code == 0 and "examples:" in stdout and "--tile" in stdout


def test_python_m_help():
    proc = subprocess.run([sys.executable, "-m", "napari_volumenet", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "upscale" in proc.stdout and "evaluate" in proc.stdout


def test_the_program_says_everything_before_its_quick_exit(tmp_path):
    """``volumenet`` leaves with ``os._exit``: what it printed into a pipe must still arrive, with its code."""
    listing = subprocess.run([sys.executable, "-m", "napari_volumenet", "models"], capture_output=True, text=True,
                             timeout=120)
    assert listing.returncode == 0
    assert all(w.name in listing.stdout for w in list_bundled())
    missing = subprocess.run([sys.executable, "-m", "napari_volumenet", "upscale", str(tmp_path / "none.nii.gz"),
                              "-o", str(tmp_path / "out.nii.gz")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("volumenet: error:")


def test_the_program_keeps_its_heap_and_exits_with_the_code_of_main():
    code = ("import napari_volumenet.cli as cli, napari_volumenet._allocator as allocator\n"
            "cli.main = lambda: print('keeps its heap:', allocator._trim_threshold == allocator._NO_TRIM) or 3\n"
            "cli.run()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (3, "keeps its heap: True\n")


def test_upscale_faults_in_the_heap_of_its_first_input_while_torch_loads(capsys, tmp_path, scan, weights,
                                                                          monkeypatch):
    import napari_volumenet.cli.upscale as upscale_command

    asked = []

    @contextlib.contextmanager
    def recording(nbytes):
        asked.append(nbytes)
        yield

    monkeypatch.setattr(upscale_command, "prefault_heap", recording)
    for device in ("cpu", "cuda"):
        run(capsys, "upscale", str(scan), "-o", str(tmp_path / f"{device}.nii.gz"), "--weights", str(weights),
            "--device", device, "-q")
    voxels = int(np.prod(nib.load(str(scan)).shape))
    assert asked == [voxels * upscale_command.HEAP_BYTES_PER_VOXEL, 0]


def test_cli_never_imports_qt_or_napari():
    code = ("import napari_volumenet.cli, napari_volumenet.benchmark, napari_volumenet.evaluation, sys; "
            "bad = [m for m in sys.modules if m.startswith(('napari.', 'qtpy', 'PyQt5', 'PyQt6', 'PySide')) "
            "or m == 'napari']; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_internal_error_is_one_line(capsys, monkeypatch, scan, weights, tmp_path):
    def boom(*args, **kwargs):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(evaluation, "upscale_steps", boom)
    out = tmp_path / "o.nii.gz"
    code, stdout, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, *FAST)
    assert code == 1 and not out.exists()
    assert stderr == "volumenet: internal error: RuntimeError: kaboom second line (rerun with --debug for details)\n"
    code, _, stderr = run(capsys, "--debug", "upscale", scan, "-o", out, "--weights", weights, *FAST)
    assert code == 1 and "Traceback" in stderr


def test_keyboard_interrupt(capsys, monkeypatch, scan, weights, tmp_path):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "upscale_steps", interrupt)
    out = tmp_path / "o.nii.gz"
    code, _, stderr = run(capsys, "upscale", scan, "-o", out, "--weights", weights, *FAST)
    assert code == 130 and stderr == "volumenet: interrupted\n" and not out.exists()


# ----------------------------------------------------------------------------- bad input: one clear line


def _nifti_4d(p):
    write_nifti(p, np.ones((12, 10, 8, 2), np.float32))


def _nifti_complex(p):
    write_nifti(p, (make_volume() + 1j * make_volume()).astype(np.complex64))


def _nifti_nan(p):
    data = make_volume()
    data[3, 4, 5] = np.nan
    write_nifti(p, data)


def _nifti_inf(p):
    data = make_volume()
    data[3, 4, 5] = np.inf
    write_nifti(p, data)


def _nifti_small(p):
    write_nifti(p, make_volume((12, 10, 3)))


def _nifti_truncated(p):
    write_nifti(p, make_volume())
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _text_file(p):
    p.write_text("this is not a NIfTI file\n" * 10)


def _plain_gzip_text(p):
    p.write_bytes(gzip.compress(b"hello, not a NIfTI header" * 20))


BAD_VOLUMES = {
    "missing file": None,
    "not a NIfTI": _text_file,
    "gzip of text": _plain_gzip_text,
    "truncated .nii.gz": _nifti_truncated,
    "4D data": _nifti_4d,
    "complex data": _nifti_complex,
    "NaN data": _nifti_nan,
    "Inf data": _nifti_inf,
    "axis < 4 voxels": _nifti_small,
}


def assert_clean_failure(code: int, stdout: str, stderr: str) -> None:
    assert code != 0
    assert stderr.startswith("volumenet: error:"), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize("case", list(BAD_VOLUMES))
def test_bad_volume_upscale(capsys, tmp_path, weights, case):
    src = tmp_path / "bad.nii.gz"
    if BAD_VOLUMES[case] is not None:
        BAD_VOLUMES[case](src)
    outdir = tmp_path / "out"
    outdir.mkdir()
    code, stdout, stderr = run(capsys, "upscale", src, "-o", outdir / "o.nii.gz", "--weights", weights, *FAST)
    assert_clean_failure(code, stdout, stderr)
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("case", ["missing file", "not a NIfTI", "truncated .nii.gz", "4D data", "NaN data"])
def test_bad_volume_degrade_and_evaluate(capsys, tmp_path, weights, case):
    src = tmp_path / "bad.nii.gz"
    if BAD_VOLUMES[case] is not None:
        BAD_VOLUMES[case](src)
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert_clean_failure(*run(capsys, "degrade", src, "-o", outdir / "o.nii.gz", "--quiet"))
    assert_clean_failure(*run(capsys, "evaluate", src, "--json", outdir / "r.json", *FAST))
    assert list(outdir.iterdir()) == []


def test_too_small_to_degrade(capsys, tmp_path):
    src = write_nifti(tmp_path / "hr.nii.gz", make_volume((12, 10, 6)))
    code, stdout, stderr = run(capsys, "degrade", src, "-o", tmp_path / "lr.nii.gz")
    assert_clean_failure(code, stdout, stderr)
    assert not (tmp_path / "lr.nii.gz").exists()


def _weights_case(name, weights_dir, tmp_path):
    """(extra argv, message fragment) for upscale with a problem in the model or weights options."""
    cases = {
        "unknown model": (["--model", "nonsense", "--weights", weights_dir / "w.pt"], "nonsense"),
        "other architecture": (["--model", "parallelnet", "--weights", weights_dir / "w.pt"], "parallelnet"),
        "other modality": (["--modality", "ct", "--weights", weights_dir / "w.pt"], "ct"),
        "list, not a state dict": (["--weights", weights_dir / "list.pt"], "not a napari-volumenet weights file"),
        "random bytes": (["--weights", weights_dir / "noise.pt"], "not a napari-volumenet weights file"),
        "bare state dict": (["--weights", weights_dir / "bare.pt"], "not a napari-volumenet weights file"),
        "missing weights": (["--weights", tmp_path / "nope.pt"], "not found"),
        "weights is a folder": (["--weights", tmp_path], "not a weights file"),
        "no weights, none bundled": (["--scale", "2"], "no default weights"),
        "no weights for model, none bundled": (["--model", "parallelnet", "--scale", "2"], "no default weights"),
        "bad device": (["--weights", weights_dir / "w.pt", "--device", "cuda:7"], "device"),
    }
    return cases[name]


WEIGHTS_CASES = ["unknown model", "other architecture", "other modality", "list, not a state dict",
                 "random bytes", "bare state dict", "missing weights", "weights is a folder",
                 "no weights, none bundled", "no weights for model, none bundled", "bad device"]


@pytest.mark.parametrize("case", WEIGHTS_CASES)
def test_bad_model_or_weights(capsys, tmp_path, scan, weights_dir, no_bundled, case):
    if case == "bad device" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    extra, fragment = _weights_case(case, weights_dir, tmp_path)
    outdir = tmp_path / "out"
    outdir.mkdir()
    code, stdout, stderr = run(capsys, "upscale", scan, "-o", outdir / "o.nii.gz", *FAST, *extra)
    assert_clean_failure(code, stdout, stderr)
    assert fragment in stderr
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("spec, fragment", [
    ("w112.pt", "scale"),          # weights of another scale
    ("list.pt", "not a napari-volumenet weights file"),
    ("volumenet", "no bundled weights"),  # registry name without bundled weights
    ("nonsense", "neither a weights file"),
    ("missing.pt", "not found"),
])
def test_evaluate_bad_model_spec(capsys, tmp_path, weights_dir, no_bundled, spec, fragment):
    a = write_nifti(tmp_path / "a.nii.gz", make_volume())
    value = str(weights_dir / spec) if spec.endswith(".pt") else spec
    code, stdout, stderr = run(capsys, "evaluate", a, "--scale", "2", "--models", value,
                               "--json", tmp_path / "r.json", *FAST)
    assert_clean_failure(code, stdout, stderr)
    assert fragment in stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("where", ["missing folder", "parent is a file", "output is a folder of several"])
def test_unwritable_output(capsys, tmp_path, scan, weights, where):
    (tmp_path / "file.txt").write_text("x")
    if where == "missing folder":
        argv = [scan, "-o", tmp_path / "nope" / "o.nii.gz"]
    elif where == "parent is a file":
        argv = [scan, "-o", tmp_path / "file.txt" / "o.nii.gz"]
    else:  # several inputs need a folder, but -o is an existing file
        argv = [scan, scan, "-o", tmp_path / "file.txt"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, stderr = run(capsys, "upscale", *argv, "--weights", weights, *FAST)
    assert_clean_failure(code, stdout, stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "file.txt").read_text() == "x"


def test_existing_report_needs_overwrite(capsys, tmp_path, scan):
    report = tmp_path / "r.json"
    report.write_text("{}")
    assert_clean_failure(*run(capsys, "evaluate", scan, "--json", report, *FAST))
    assert report.read_text() == "{}"
    assert run(capsys, "evaluate", scan, "--json", report, "--overwrite", *FAST)[0] == 0
    assert "summary" in json.loads(report.read_text())


def test_output_may_not_replace_input(capsys, tmp_path, scan, weights):
    assert_clean_failure(*run(capsys, "upscale", scan, "-o", scan, "--weights", weights, "--overwrite", *FAST))
    assert read_volume(scan).data.shape == SHAPE
