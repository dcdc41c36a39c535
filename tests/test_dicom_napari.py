"""The napari reader and writer with DICOM series (no viewer needed: the npe2 functions themselves)."""

import numpy as np
import pytest

from napari_volumenet._geometry import METADATA_KEY
from napari_volumenet._reader import get_reader, read_layers
from napari_volumenet._writer import write_dicom_series
from napari_volumenet.errors import OutputError, VolumeNetError
from napari_volumenet.io import read_volume

pytest.importorskip("pydicom")


def values(slices, seed=0):
    return np.random.default_rng(seed).integers(0, 500, size=(slices, 8, 8))


def test_a_folder_opens_each_series_by_its_description(tmp_path, dicom_series):
    dicom_series(tmp_path / "study" / "a", values(5), number=2, description="t1 sag", spacing=4.8, thickness=4.0)
    dicom_series(tmp_path / "study" / "b", values(6), number=5, description="t2 ax")
    assert get_reader(str(tmp_path / "study")) is not None
    layers = read_layers(tmp_path / "study")
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["t1 sag", "t2 ax"]
    entry = layers[0][1]["metadata"][METADATA_KEY]
    assert entry["slab"].gap == pytest.approx(0.8) and entry["series"].key == "2"
    assert sorted(layers[1][0].shape) == [6, 8, 8]


def test_a_bad_series_does_not_hide_the_others(tmp_path, dicom_series):
    dicom_series(tmp_path / "good", values(5), description="good")
    dicom_series(tmp_path / "gappy", values(6), order=[0, 1, 2, 4, 5], description="gappy")
    errors = []
    layers = read_layers(tmp_path, errors)
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["good"]
    assert len(errors) == 1 and "unequal slice spacing" in errors[0] and "gappy" in errors[0]
    with pytest.raises(VolumeNetError, match="unequal slice spacing"):
        read_layers(tmp_path / "gappy")


def test_reader_claims_only_what_it_reads(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path)) is None and get_reader("x.tif") is None
    assert get_reader("scan.dcm") is not None and get_reader("scan.nii.gz") is not None


def test_writer_makes_a_series_in_the_source_study(tmp_path, dicom_series):
    source = dicom_series(tmp_path / "src", values(5), description="t1 sag")
    data, kwargs, _ = read_layers(source)[0]
    assert write_dicom_series(str(tmp_path / "copy.dcm"), data, kwargs) == [str(tmp_path / "copy")]
    back, original = read_volume(tmp_path / "copy"), read_volume(source)
    np.testing.assert_array_equal(back.data, original.data)
    np.testing.assert_allclose(back.affine, original.affine, atol=1e-6)
    assert back.series.template.StudyInstanceUID == original.series.template.StudyInstanceUID
    plain = {"scale": (1.0, 1.0, 1.0), "translate": (0.0, 0.0, 0.0), "metadata": {}}
    with pytest.raises(OutputError, match="only a layer read from a DICOM series"):
        write_dicom_series(str(tmp_path / "plain.dcm"), np.zeros((4, 4, 4), np.float32), plain)
    assert not (tmp_path / "plain").exists()


def test_writer_finds_the_study_of_a_widget_output(tmp_path, dicom_series):
    """An SR layer of the widget carries no series, but its sidecar names the input series: its study is joined."""
    source = dicom_series(tmp_path / "src", values(5), description="t1 sag")
    data, kwargs, _ = read_layers(source)[0]
    entry = kwargs["metadata"][METADATA_KEY]
    del entry["series"]
    entry["sidecar"] = {"input": str(source), "model": "volumenet", "scale": [1, 1, 2]}
    write_dicom_series(str(tmp_path / "sr.dcm"), data, kwargs)
    written = read_volume(tmp_path / "sr").series
    assert written.description == "t1 sag VolumeNet ×2"
    assert written.template.StudyInstanceUID == read_volume(source).series.template.StudyInstanceUID
