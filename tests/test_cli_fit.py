"""``volumenet fit`` and ``volumenet upscale --fit`` end to end on a tiny thick-slice scan."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_volumenet.cli import main
from napari_volumenet.weights import load_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def write_scan(path: Path, zooms=(1.0, 1.0, 4.0), shape=(32, 28, 8)) -> Path:
    """A textured blob of ``shape`` voxels of ``zooms`` mm (thick slices along array axis 2 by default)."""
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    data = (sum(g**2 for g in grid) < 0.8) * (100 + 30 * np.sin(7 * grid[0]) * np.cos(5 * grid[1] - 2 * grid[2]))
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*zooms, 1.0])), str(path))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_writes_weights_that_upscale_accepts(capsys, tmp_path):
    scan = write_scan(tmp_path / "t2_4mm.nii.gz")
    weights = tmp_path / "t2_fit.pt"
    code, out, err = run(capsys, "fit", str(scan), "-o", str(weights), "--max-steps", "2", "--minutes", "5")
    assert code == 0, err
    assert "×4, box 4 px, no gap" in out and "self-validation: cubic" in out and "peak memory" in out
    network, meta = load_weights(weights)
    assert meta["model"] in ("planenet", "volumenet") and meta["fit"]["source"] == "t2_4mm"
    assert meta["fit"]["steps"] == 2
    code, _, err = run(capsys, "upscale", str(scan), "-o", str(tmp_path / "sr.nii.gz"), "--weights", str(weights),
                       "--device", "cpu", "--quiet")
    assert code == 0, err
    assert nib.load(str(tmp_path / "sr.nii.gz")).shape == (32, 28, 32)


def test_a_fit_can_start_from_an_earlier_one_and_other_weights_are_one_line(capsys, tmp_path):
    scan = write_scan(tmp_path / "ct_4mm.nii.gz")
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    assert run(capsys, "fit", str(scan), "-o", str(first), "--max-steps", "2", "--modality", "ct")[0] == 0
    code, out, err = run(capsys, "fit", str(scan), "-o", str(second), "--max-steps", "2", "--modality", "ct",
                         "--init-from", str(first))
    assert code == 0, err
    assert "starting from weights first" in out and load_weights(second)[1]["fit"]["start"] == "weights first"
    code, _, err = run(capsys, "fit", str(scan), "-o", str(tmp_path / "third.pt"), "--init-from",
                       "volumenet-d9c32-mri-x2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "for (1, 1, 4)" in err
    assert not (tmp_path / "third.pt").exists()


def test_upscale_fit_fits_and_applies_in_one_go(capsys, tmp_path):
    scan = write_scan(tmp_path / "scan.nii.gz", zooms=(1.0, 4.0, 1.0), shape=(32, 8, 28))
    out_path = tmp_path / "scan_1mm.nii.gz"
    code, out, err = run(capsys, "upscale", str(scan), "-o", str(out_path), "--fit", "0.05", "--slice-thickness",
                         "3", "--device", "cpu")
    assert code == 0, err
    assert "fit: " in out and nib.load(str(out_path)).shape == (32, 32, 28)
    sidecar = json.loads((tmp_path / "scan_1mm.json").read_text())
    assert sidecar["fit"]["profile"]["thickness_mm"] == 3.0 and sidecar["fit"]["axis"] == 1
    assert sidecar["slice_axis"] == 1
    assert not list(tmp_path.glob("*.pt"))  # the fitted weights lived in a temporary folder


@pytest.mark.parametrize(("zooms", "output", "match"), [
    ((1.0, 1.0, 1.0), "w.pt", "near-isotropic"),
    ((1.0, 1.0, 4.0), "w.pth", "ends in .pt"),
])
def test_bad_input_is_one_line_and_nothing_is_written(capsys, tmp_path, zooms, output, match):
    scan = write_scan(tmp_path / "scan.nii.gz", zooms=zooms)
    code, _, err = run(capsys, "fit", str(scan), "-o", str(tmp_path / output), "--max-steps", "1")
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]


@pytest.mark.parametrize("rate", ["0", "5", "nan"])
def test_a_learning_rate_outside_0_1_is_one_line(capsys, tmp_path, rate):
    scan = write_scan(tmp_path / "scan.nii.gz")
    code, _, err = run(capsys, "fit", str(scan), "-o", str(tmp_path / "w.pt"), "--lr", rate, "--max-steps", "1")
    assert code == 2 and "--lr must be between 0 and 1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w.pt").exists()


def test_existing_outputs_are_refused_before_any_fitting(capsys, tmp_path):
    scan = write_scan(tmp_path / "scan.nii.gz")
    (tmp_path / "w.pt").write_bytes(b"old")
    code, _, err = run(capsys, "fit", str(scan), "-o", str(tmp_path / "w.pt"))
    assert code == 2 and "already exists" in err and (tmp_path / "w.pt").read_bytes() == b"old"
    (tmp_path / "sr.nii.gz").write_bytes(b"old")
    code, _, err = run(capsys, "upscale", str(scan), "-o", str(tmp_path / "sr.nii.gz"), "--fit", "1")
    assert code == 2 and "already exists" in err and (tmp_path / "sr.nii.gz").read_bytes() == b"old"
    code, _, err = run(capsys, "upscale", str(scan), "-o", str(tmp_path / "x.nii.gz"), "--fit", "1", "--scale", "2")
    assert code == 2 and "leave out --weights and --scale" in err
