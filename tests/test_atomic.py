"""All-or-nothing file writes (napari_volumenet.atomic)."""

import os
import stat

import pytest

from napari_volumenet.atomic import atomic_path, write_text_atomic


def _usual_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_write_replaces_with_usual_permissions(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    write_text_atomic(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE(target.stat().st_mode) == _usual_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_failure_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / "weights.pt"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".pt") as temp:
            assert temp.parent == tmp_path and temp.name.endswith(".pt")
            temp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"]


def test_saved_weights_get_usual_permissions(tmp_path):
    from napari_volumenet.models import create_model
    from napari_volumenet.weights import save_weights

    path = save_weights(tmp_path / "w.pt", create_model("srcnn3d"), modality="mri")
    assert stat.S_IMODE(path.stat().st_mode) == _usual_mode()
