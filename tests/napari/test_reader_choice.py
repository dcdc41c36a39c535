"""What napari does with a dropped `.nii.gz` when napari-volumenet is installed, and the preference that makes it
this plugin's file once (what the README's reader paragraph says). No modal dialog is opened."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("napari")

from napari_volumenet._geometry import METADATA_KEY
from napari_volumenet._sample_data import sample_path

PLUGIN = "napari-volumenet"
PATTERNS = ("*.nii", "*.nii.gz", "*.mgh", "*.dcm")
"""The README's one-line command sets these: the patterns napari's builtins claim too."""


@pytest.fixture
def quiet_settings(monkeypatch):
    """napari's settings, with nothing written to the user's settings file."""
    from napari.settings import get_settings

    settings = get_settings()
    monkeypatch.setattr(type(settings), "_maybe_save", lambda self: None)
    monkeypatch.setattr(settings.plugins, "extension2reader", {})
    return settings


def test_napari_asks_because_its_builtins_claim_nifti_too(make_napari_viewer, quiet_settings):
    from napari.errors import MultipleReaderError
    from napari.plugins._npe2 import get_readers

    viewer = make_napari_viewer()
    path = sample_path("mni152_t1_lr_x2.nii.gz")
    for name in ("a.nii", "a.nii.gz", "a.mgh", "a.dcm"):
        assert set(get_readers(name)) == {PLUGIN, "napari"}, name  # imageio's list in napari's builtins
    assert set(get_readers("a.mgz")) == {PLUGIN}
    with pytest.raises(MultipleReaderError):  # what File ▸ Open, drag and drop and `napari FILE` turn into the dialog
        viewer.open(path, plugin=None)
    with pytest.raises(Exception, match="Could not find a backend"):  # choosing "napari builtins" there
        viewer.open(path, plugin="napari")


def test_napari_builtins_fail_on_mgh(make_napari_viewer, tmp_path):
    import nibabel as nib
    import numpy as np

    viewer = make_napari_viewer()
    path = tmp_path / "scan.mgh"
    nib.save(nib.MGHImage(np.ones((8, 8, 8), np.float32), np.eye(4)), path)
    with pytest.raises(Exception):
        viewer.open(path, plugin="napari")
    assert METADATA_KEY in viewer.open(path, plugin=PLUGIN)[0].metadata


def test_the_dialogs_remember_box_is_for_every_gz_file(make_napari_viewer):
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    make_napari_viewer()
    dialog = QtReaderDialog(pth="scan.nii.gz", readers={PLUGIN: "VolumeNet super-resolution"})
    assert dialog._extension == ".gz" and dialog.persist_checkbox.text().endswith("with a .gz extension")
    dialog.deleteLater()


def test_the_preference_opens_nifti_with_this_plugin_without_asking(make_napari_viewer, quiet_settings):
    viewer = make_napari_viewer()
    plugins = quiet_settings.plugins  # the README's command, in-process
    plugins.extension2reader = {**plugins.extension2reader, **dict.fromkeys(PATTERNS, PLUGIN)}
    [layer] = viewer.open(sample_path("mni152_t1_lr_x2.nii.gz"), plugin=None)  # no MultipleReaderError
    assert METADATA_KEY in layer.metadata  # this plugin's reader: the affine and header kept


def test_the_readmes_command_sets_the_preference_for_good(tmp_path):
    """The README's one-line command, run as a user would, then a fresh napari process reads the preference."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    [command] = re.findall(r'`python -c "(from napari\.settings[^"]*)"`', readme)
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "settings.yaml")}
    subprocess.run([sys.executable, "-c", command], env=env, check=True, timeout=300)
    check = ("from napari.plugins import _initialize_plugins; _initialize_plugins(); "
             "from napari.plugins.utils import get_preferred_reader as r; "
             "print([r(p) for p in ('a.nii', 'b.nii.gz', 'c.mgh', 'd.dcm', 'e.tif')])")
    done = subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=300, capture_output=True,
                          text=True)
    assert done.stdout.strip().splitlines()[-1] == str([PLUGIN] * 4 + [None])
