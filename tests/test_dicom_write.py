"""Writing DICOM series (a new series in the source's study, all at once) and the info / convert / upscale commands."""

import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from napari_volumenet.cli import main
from napari_volumenet.errors import OutputError
from napari_volumenet.io import read_volume, sr_affine

pydicom = pytest.importorskip("pydicom")

from napari_volumenet.io.dicom import write_series  # noqa: E402
from napari_volumenet.io.dicom.write import quantise  # noqa: E402

DCM2NIIX = shutil.which("dcm2niix")


def gap_series(dicom_series, folder, **options):
    """A 2D-style series: 1 mm pixels, 4 mm slices every 4.8 mm (the gap-aware choice is ×4, by spacing ×5)."""
    values = np.random.default_rng(1).integers(0, 800, size=(8, 16, 16))
    return dicom_series(folder, values, pixel=(1.0, 1.0), spacing=4.8, thickness=4.0, **options)


def bound(values):
    """Quantisation error allowed: half a slope, plus float32 rounding of what is read back."""
    return quantise(values)[1] / 2 + 1e-6 * float(np.abs(values).max())


def with_private_tag(folder):
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.add_new(0x00291010, "LO", "vendor secret")
        ds.save_as(path, enforce_file_format=True)
    return folder


def test_quantise_keeps_integers_and_bounds_the_error():
    integers = np.array([[[-1024.0, 0.0, 3071.0]]], dtype=np.float32)
    stored, slope, intercept = quantise(integers)
    assert (slope, intercept) == (1.0, 0.0) and np.array_equal(stored, integers)
    floats = np.linspace(-3.3, 1234.567, 1000, dtype=np.float32).reshape(10, 10, 10)
    stored, slope, intercept = quantise(floats)
    assert stored.dtype == np.int16 and np.abs(stored * slope + intercept - floats).max() <= slope / 2 * 1.001


def test_sr_series_keeps_study_and_grid(tmp_path, dicom_series):
    source = read_volume(with_private_tag(gap_series(dicom_series, tmp_path / "src")))
    sr = np.repeat(source.data, 4, axis=2) * 0.37
    affine = sr_affine(source.affine, (1, 1, 4))
    out = write_series(tmp_path / "sr", sr, affine, source.series, description="t1 synth VolumeNet ×4")
    back = read_volume(out)
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
    assert np.abs(back.data - sr).max() <= bound(sr)
    assert back.slab.thickness == pytest.approx(1.2) and back.slab.gap == pytest.approx(0, abs=1e-6)
    first, template = pydicom.dcmread(sorted(out.iterdir())[0]), source.series.template
    for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientName", "PatientID", "Modality"):
        assert first.get(keyword) == template.get(keyword), keyword
    assert first.SeriesInstanceUID != template.SeriesInstanceUID and first.SOPInstanceUID != template.SOPInstanceUID
    assert list(first.ImageType) == ["DERIVED", "SECONDARY"] and first.SeriesDescription == "t1 synth VolumeNet ×4"
    assert not any(element.tag.is_private for element in first)
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in out.iterdir()}) == 32


@pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix is not installed")
def test_sr_series_reads_back_through_dcm2niix(tmp_path, dicom_series):
    c, s = np.cos(0.4), np.sin(0.4)
    source = read_volume(gap_series(dicom_series, tmp_path / "src", row=(c, 0, s), col=(0, 1, 0)))
    sr = np.repeat(source.data, 4, axis=2) + 0.25
    affine = sr_affine(source.affine, (1, 1, 4))
    out = write_series(tmp_path / "sr", sr, affine, source.series, description="oblique VolumeNet ×4")
    (tmp_path / "nii").mkdir()
    subprocess.run([DCM2NIIX, "-z", "n", "-b", "n", "-f", "%s", "-o", str(tmp_path / "nii"), str(out)], check=True,
                   capture_output=True)
    (nifti,) = (tmp_path / "nii").glob("*.nii")
    reference = nib.load(nifti)
    np.testing.assert_allclose(reference.affine, affine, atol=2e-4)
    np.testing.assert_array_equal(reference.get_fdata().astype(np.float32), read_volume(out).data)
    assert np.abs(reference.get_fdata() - sr).max() <= bound(sr)


def test_series_appears_whole_or_not_at_all(tmp_path, dicom_series, monkeypatch):
    source = read_volume(gap_series(dicom_series, tmp_path / "src"))
    calls = []

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    original = pydicom.dataset.Dataset.save_as
    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", failing_save)
    with pytest.raises(OutputError, match=r"could not write .*sr: No space left on device"):
        write_series(tmp_path / "sr", source.data, source.affine, source.series, description="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    monkeypatch.undo()
    write_series(tmp_path / "sr", source.data, source.affine, source.series, description="x")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        write_series(tmp_path / "sr", source.data, source.affine, source.series, description="x")
    write_series(tmp_path / "sr", source.data * 2, source.affine, source.series, description="x", overwrite=True)
    assert read_volume(tmp_path / "sr").data.max() == 2 * source.data.max()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr", "src"]


def test_info_shows_slab_and_the_gap_aware_choice(tmp_path, dicom_series, capsys):
    folder = gap_series(dicom_series, tmp_path / "s")
    assert main(["info", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "4 mm slices every 4.8 mm (gap 0.8 mm)" in text and "slices-x4" in text and "16×16×8" in text
    assert main(["info", str(folder), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["orientation"] == "LAS" and record["modality"] == "MR" and record["description"] == "t1 synth"
    assert record["slices"]["gap_mm"] == pytest.approx(0.8) and record["upscale"]["scale"] == [1, 1, 4]
    assert record["voxel_sizes_mm"] == pytest.approx([1.0, 1.0, 4.8])


def test_convert_both_ways(tmp_path, dicom_series, capsys):
    folder = gap_series(dicom_series, tmp_path / "s")
    assert main(["convert", str(folder), "-o", str(tmp_path / "s.nii.gz"), "-q"]) == 0
    volume, nifti = read_volume(folder), read_volume(tmp_path / "s.nii.gz")
    np.testing.assert_array_equal(volume.data, nifti.data)
    np.testing.assert_allclose(volume.affine, nifti.affine, atol=1e-5)
    assert json.loads((tmp_path / "s.json").read_text())["slab"]["thickness_mm"] == 4.0
    assert main(["convert", str(tmp_path / "s.nii.gz"), "-o", str(tmp_path / "back"), "--template", str(folder),
                 "-q"]) == 0
    back = read_volume(tmp_path / "back")
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.series.template.StudyInstanceUID == volume.series.template.StudyInstanceUID
    assert main(["convert", str(tmp_path / "s.nii.gz"), "-o", str(tmp_path / "nope")]) == 2
    assert "is not a DICOM series: give --template" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_upscale_a_series_to_dicom_and_nifti(tmp_path, dicom_series, capsys):
    folder = gap_series(dicom_series, tmp_path / "s")
    assert main(["upscale", str(folder), "-o", str(tmp_path / "sr"), "--format", "dicom", "-q", "--tile", "0"]) == 0
    assert main(["upscale", str(folder), "-o", str(tmp_path / "sr_nifti.nii.gz"), "-q", "--tile", "0"]) == 0
    series, nifti = read_volume(tmp_path / "sr"), read_volume(tmp_path / "sr_nifti.nii.gz")
    assert series.shape == nifti.shape == (16, 16, 32)
    np.testing.assert_allclose(series.affine, nifti.affine, atol=1e-6)
    assert np.abs(series.data - nifti.data).max() <= bound(nifti.data)
    assert series.series.description == "t1 synth VolumeNet ×4"
    sidecar = json.loads((tmp_path / "sr.json").read_text())
    assert sidecar["slab"]["gap_mm"] == pytest.approx(0.8) and "gap 0.8 mm" in sidecar["choice"]
    nifti_in = tmp_path / "sr_nifti.nii.gz"
    assert main(["upscale", str(nifti_in), "-o", str(tmp_path / "x"), "--format", "dicom", "-q"]) == 2
    assert "is not a DICOM series: --format dicom" in capsys.readouterr().err


def test_a_ct_series_gets_ct_weights(tmp_path, dicom_series, capsys):
    from napari_volumenet.slices import bundled_name, choose_for

    values = np.random.default_rng(2).integers(0, 2000, size=(8, 16, 16))
    folder = dicom_series(tmp_path / "ct", values, modality="CT", intercept=-1024.0, pixel=(1.0, 1.0), spacing=1.0,
                          thickness=1.0)
    assert "-ct-" in bundled_name(choose_for(folder).weights)
    assert main(["info", str(folder), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["modality"] == "CT" and record["upscale"]["modality"] == "ct" and record["slices"]["gap_mm"] == 0
