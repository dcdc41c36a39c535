"""Reading DICOM series: dcm2niix's grid and values, whatever the orientation and order; what is not one volume is
refused."""

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_volumenet.errors import InputError
from napari_volumenet.io import find_volumes, read_volume, volume_stem

pytest.importorskip("pydicom")

from napari_volumenet.io.dicom import list_series, read_series, series_info  # noqa: E402

SHARED_SERIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom_mri_t1_2d_sag" / "series"
DCM2NIIX = shutil.which("dcm2niix")
needs_dcm2niix = pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix is not installed")

C, S = np.cos(0.3), np.sin(0.3)
CASES = {
    "axial": {},
    "coronal": {"row": (1, 0, 0), "col": (0, 0, -1)},
    "sagittal": {"row": (0, 1, 0), "col": (0, 0, -1)},
    "oblique": {"row": (C, S, 0), "col": (-S * np.cos(0.2), C * np.cos(0.2), np.sin(0.2))},
    "prone": {"row": (-1, 0, 0), "col": (0, -1, 0), "position": "HFP"},
    "decubitus": {"row": (0, -1, 0), "col": (1, 0, 0), "position": "HFDL"},
    "descending": {"order": list(range(7, -1, -1))},
    "shuffled": {"order": [3, 1, 7, 0, 5, 2, 6, 4]},
    "gap": {"spacing": 5.0, "thickness": 4.0},
    "ct rescale": {"modality": "CT", "slope": 0.5, "intercept": -1024.0, "low": -200},
}


def stored(low=0, high=1000, shape=(8, 16, 12), seed=0):
    """Stored integers ``(slices, rows, columns)``."""
    return np.random.default_rng(seed).integers(low, high, size=shape)


def dcm2niix(folder: Path, out: Path) -> nib.Nifti1Image:
    out.mkdir()
    subprocess.run([DCM2NIIX, "-z", "n", "-b", "n", "-f", "%s", "-o", str(out), str(folder)], check=True,
                   capture_output=True)
    (nifti,) = sorted(out.glob("*.nii"))
    return nib.load(nifti)


def assert_same_as(volume, reference: nib.Nifti1Image) -> None:
    """Same array layout on the same grid (to dcm2niix's float32 affine) and the same values."""
    assert volume.shape == reference.shape
    np.testing.assert_allclose(volume.affine, reference.affine, atol=2e-4)
    np.testing.assert_array_equal(volume.data, reference.get_fdata().astype(np.float32))


@needs_dcm2niix
@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_series_equal_dcm2niix(tmp_path, dicom_series, case):
    options = dict(CASES[case])
    low = options.pop("low", 0)
    folder = dicom_series(tmp_path / "in", stored(low), **options)
    volume = read_series(folder)
    assert_same_as(volume, dcm2niix(folder, tmp_path / "out"))


@needs_dcm2niix
@pytest.mark.skipif(not SHARED_SERIES.is_dir(), reason="../shared/data is not here")
def test_real_series_equal_dcm2niix(tmp_path):
    volume = read_volume(SHARED_SERIES)
    assert_same_as(volume, dcm2niix(SHARED_SERIES, tmp_path / "out"))
    assert volume.shape == (256, 256, 35)
    assert volume.slab.thickness == pytest.approx(4.0) and volume.slab.gap == pytest.approx(0.8, abs=1e-4)


def test_axial_grid_by_hand(tmp_path, dicom_series):
    """Without dcm2niix: the affine and array of an axial series from the DICOM rules themselves."""
    values = stored(shape=(6, 5, 4))
    folder = dicom_series(tmp_path / "in", values, pixel=(0.8, 0.9), spacing=3.0, thickness=2.5,
                          origin=(-10.0, -20.0, 30.0), order=[5, 0, 4, 1, 3, 2])
    volume = read_series(folder)
    expected = np.array([[-0.9, 0, 0, 10.0], [0, 0.8, 0, 20.0 - 4 * 0.8], [0, 0, 3.0, 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected, atol=1e-9)
    np.testing.assert_array_equal(volume.data, np.transpose(values[:, ::-1, :], (2, 1, 0)))
    assert volume.slab.thickness == 2.5 and volume.slab.spacing == pytest.approx(3.0)
    assert volume.slab.gap == pytest.approx(0.5) and "gap 0.5 mm" in volume.slab.text()
    assert volume.series.description == "t1 synth" and volume.header["sform_code"] == 1


def test_ct_values_in_hu(tmp_path, dicom_series):
    values = stored(0, 3000, shape=(4, 5, 6))
    volume = read_series(dicom_series(tmp_path / "ct", values, modality="CT", slope=1.0, intercept=-1024.0))
    assert volume.data.min() == values.min() - 1024 and volume.data.max() == values.max() - 1024
    assert volume.series.modality == "CT"


def test_two_series_in_one_folder_need_a_choice(tmp_path, dicom_series):
    folder = tmp_path / "mixed"
    dicom_series(folder / "a", stored(shape=(4, 6, 6)), number=3, description="t1")
    dicom_series(folder / "b", stored(shape=(5, 6, 6)), number=7, description="t2")
    for sub in ("a", "b"):
        for file in (folder / sub).iterdir():
            file.rename(folder / f"{sub}_{file.name}")
    with pytest.raises(InputError, match=r"holds 2 series \(series 3 \"t1\" \(4 files\); series 7 \"t2\".*--series"):
        read_volume(folder)
    assert read_series(folder, "7").shape[2] == 5
    assert read_series(folder, "t1").shape[2] == 4
    assert read_volume(next(folder.glob("b_*.dcm"))).shape[2] == 5  # a file: its own series
    assert [s.key for s in list_series(folder)] == ["3", "7"]
    with pytest.raises(InputError, match="no single series '9'"):
        read_series(folder, "9")


def test_non_image_files_are_skipped(tmp_path, dicom_series):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = dicom_series(tmp_path / "s", stored(shape=(4, 6, 6)))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.1.3.10", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir = Dataset()
    dicomdir.file_meta = meta
    dicomdir.FileSetID = "TEST"
    dicomdir.save_as(folder / "DICOMDIR", enforce_file_format=True)
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 not an image")
    (folder / "notes.txt").write_text("scan notes")
    assert read_volume(folder).shape == (6, 6, 4)


def test_corrupt_file_is_named(tmp_path, dicom_series):
    folder = dicom_series(tmp_path / "s", stored(shape=(4, 6, 6)))
    victim = folder / "IM0002.dcm"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(InputError, match=r"IM0002\.dcm is a damaged DICOM file"):
        read_volume(folder)


@pytest.mark.parametrize(("options", "message"), [
    ({"order": [0, 1, 3, 4, 5]}, r"unequal slice spacing: 6 mm between IM0001\.dcm and IM0002\.dcm.*missing slice"),
    ({"tilt": 0.5}, "tilted CT gantry"),
    ({"frames": 2}, "multi-frame"),
    ({"order": [0, 1, 2, 0, 1, 2]}, r"several images at one position.*4-D"),
])
def test_what_is_not_one_volume_is_refused(tmp_path, dicom_series, options, message):
    folder = dicom_series(tmp_path / "s", stored(shape=(6, 6, 6)), **options)
    with pytest.raises(InputError, match=message) as info:
        read_volume(folder)
    assert "\n" not in str(info.value) and str(folder) in str(info.value)


def test_series_folders_are_found_as_inputs(tmp_path, dicom_series):
    dicom_series(tmp_path / "study" / "s1", stored(shape=(4, 6, 6)))
    dicom_series(tmp_path / "study" / "s2.x", stored(shape=(4, 6, 6)))
    (tmp_path / "study" / "vol.nii.gz").write_bytes(b"")
    found = find_volumes(tmp_path / "study")
    assert [p.name for p in found] == ["s1", "s2.x", "vol.nii.gz"]
    assert volume_stem(found[1]) == "s2.x"
    assert series_info(found[0]).grid.shape == (6, 6, 4)


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="is a folder with no DICOM files"):
        read_volume(tmp_path)


def test_a_series_is_training_data(tmp_path, dicom_series):
    """Training folders take series like NIfTI files: found, read, and checksummed by their files."""
    from napari_volumenet.io import sha256_file
    from src_training.dataset import find_files, load_pair

    folder = dicom_series(tmp_path / "data" / "s1", stored(shape=(8, 16, 16)))
    assert find_files(tmp_path / "data") == [folder]
    pair = load_pair(folder, scale=(2, 2, 2), modality="mri")
    assert pair.hr.shape == (16, 16, 8) and pair.lr.shape == (8, 8, 4)
    before = sha256_file(folder)
    (folder / "IM0003.dcm").write_bytes((folder / "IM0003.dcm").read_bytes()[:-2] + b"\0\0")
    assert sha256_file(folder) != before == pair.sha256
