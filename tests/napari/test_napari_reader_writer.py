"""Manifest, reader, writer and sample data, through napari and npe2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")

import napari_volumenet
from napari_volumenet._geometry import METADATA_KEY
from napari_volumenet._reader import get_reader
from napari_volumenet.io import napari_scale_translate, read_volume, sr_affine, write_volume

MANIFEST = Path(napari_volumenet.__file__).parent / "napari.yaml"
PLUGIN = "napari-volumenet"

# stored L-I-A with voxel sizes (0.9, 1.2, 2.0), as some scanners write
ODD_AFFINE = np.array([
    [-0.9, 0.0, 0.0, 90.0],
    [0.0, 0.0, 2.0, -100.0],
    [0.0, -1.2, 0.0, 80.0],
    [0.0, 0.0, 0.0, 1.0],
])


def _error_messages(records_before: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [str(n.message) for n in notification_manager.records[records_before:]
            if n.severity == NotificationSeverity.ERROR]


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == PLUGIN
    contributions = manifest.contributions
    assert {s.key for s in contributions.sample_data} == {"mni152_t1", "phantom"}
    assert [w.display_name for w in contributions.widgets][0] == "VolumeNet super-resolution"
    npe2 = shutil.which("npe2")
    command = [npe2] if npe2 else [sys.executable, "-m", "npe2"]
    done = subprocess.run([*command, "validate", str(MANIFEST)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def odd_file(tmp_path) -> Path:
    data = np.random.default_rng(1).integers(0, 1000, size=(10, 12, 8)).astype(np.int16)
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    path = tmp_path / "odd.nii.gz"
    write_volume(path, data, ODD_AFFINE, header)
    return path


def test_reader_writer_round_trip_through_napari(make_napari_viewer, odd_file, tmp_path):
    viewer = make_napari_viewer()
    assert get_reader(str(odd_file)) is not None and get_reader("x.tif") is None
    [layer] = viewer.open(str(odd_file), plugin=PLUGIN)
    source = read_volume(odd_file)
    # axial slices on the slider (S), anterior up (P rows), patient's right on the left (L columns)
    assert layer.data.shape == (12, 8, 10)
    np.testing.assert_allclose(layer.scale, (1.2, 2.0, 0.9))
    entry = layer.metadata[METADATA_KEY]
    np.testing.assert_array_equal(entry["affine"], source.affine)
    assert entry["header"] is not None
    out = tmp_path / "saved.nii.gz"
    written = layer.save(str(out), plugin=PLUGIN)
    assert [Path(p) for p in written] == [out]
    back = read_volume(out)
    np.testing.assert_array_equal(back.data, source.data)
    np.testing.assert_array_equal(back.affine, source.affine)
    # napari picks this writer for .nii.gz by itself
    plain_save = tmp_path / "by_extension.nii.gz"
    layer.save(str(plain_save))
    np.testing.assert_array_equal(read_volume(plain_save).data, source.data)
    [again] = viewer.open(str(plain_save), plugin=PLUGIN)
    np.testing.assert_array_equal(again.data, layer.data)
    np.testing.assert_allclose(again.translate, layer.translate)


def test_writer_gives_sr_layers_the_spec_affine(make_napari_viewer, odd_file, tmp_path):
    from napari_volumenet._geometry import LayerGeometry

    viewer = make_napari_viewer()
    [lr] = viewer.open(str(odd_file), plugin=PLUGIN)
    geometry = LayerGeometry.from_layer(lr.metadata, lr.scale, lr.translate, 3)
    hr_stored = np.zeros((20, 24, 16), dtype=np.float32)
    hr_stored[3, 4, 5] = 7.0
    hr_geometry = geometry.replace(sr_affine(geometry.affine, 2), role="sr", description="test SR")
    sr = viewer.add_image(hr_geometry.view(hr_stored), **hr_geometry.layer_kwargs(hr_stored.shape))
    expected_scale, expected_translate = napari_scale_translate(lr.scale, lr.translate, (2, 2, 2))
    np.testing.assert_allclose(sr.scale, expected_scale)
    np.testing.assert_allclose(sr.translate, expected_translate)
    out = tmp_path / "sr.nii.gz"
    sr.save(str(out), plugin=PLUGIN)
    back = read_volume(out)
    np.testing.assert_array_equal(back.data, hr_stored)
    np.testing.assert_allclose(back.affine, sr_affine(ODD_AFFINE, 2), atol=1e-6)
    # a layer made in napari (no metadata) writes the affine its scale/translate imply, and reads back the same
    plain = viewer.add_image(np.arange(120, dtype=np.float32).reshape(4, 5, 6), scale=(2, 1, 0.5),
                             translate=(1, 2, 3))
    plain.save(str(tmp_path / "plain.nii.gz"), plugin=PLUGIN)
    [reread] = viewer.open(str(tmp_path / "plain.nii.gz"), plugin=PLUGIN)
    np.testing.assert_array_equal(reread.data, plain.data)
    np.testing.assert_allclose(reread.scale, plain.scale)
    np.testing.assert_allclose(reread.translate, plain.translate)


def test_bad_file_gives_a_notification_not_a_crash(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    before = len(notification_manager.records)
    assert viewer.open(str(bad), plugin=PLUGIN) == []
    assert len(viewer.layers) == 0
    messages = _error_messages(before)
    assert messages and "broken.nii.gz" in messages[-1]


@pytest.mark.parametrize("key", ["mni152_t1", "phantom"])
def test_samples_open_as_aligned_pairs(make_napari_viewer, key):
    viewer = make_napari_viewer()
    layers = viewer.open_sample(PLUGIN, key)
    assert len(layers) == 2
    hr, lr = layers
    assert hr.metadata[METADATA_KEY]["role"] == "hr" and lr.metadata[METADATA_KEY]["role"] == "lr"
    assert tuple(n // 2 for n in hr.data.shape) == lr.data.shape
    scale, translate = napari_scale_translate(lr.scale, lr.translate, (2, 2, 2))
    np.testing.assert_allclose(hr.scale, scale, atol=1e-6)
    np.testing.assert_allclose(hr.translate, translate, atol=1e-5)
    assert float(np.std(hr.data)) > 0
    if key == "mni152_t1":
        assert hr.data.shape == (112, 128, 128)  # view of the 128×128×112 RAS crop
        np.testing.assert_allclose(hr.scale, (1.0, 1.0, 1.0))


def test_missing_sample_files_give_a_clear_error(make_napari_viewer, monkeypatch, tmp_path):
    from napari_volumenet import _sample_data

    monkeypatch.setattr(_sample_data, "SAMPLE_DIRS", (tmp_path,))
    viewer = make_napari_viewer()
    # napari shows the exception of a sample command as a notification (File ▸ Open Sample)
    with pytest.raises(Exception, match="make_samples.py"):
        viewer.open_sample(PLUGIN, "mni152_t1")
    assert len(viewer.layers) == 0
