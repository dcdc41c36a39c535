"""Subject-level train/val/test splits as folders of links (src_training.splits)."""

import json

import nibabel as nib
import numpy as np
import pytest

from src_training.splits import main, split_subjects


def _volume(path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    return path


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    files = [_volume(tmp_path / f"sub-{i:02d}.nii.gz") for i in range(10)]
    parts = split_subjects(files, val=2, test=3, seed=1)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [5, 2, 3]
    assert sorted(sum(parts.values(), [])) == sorted(files)
    assert parts == split_subjects(files, val=2, test=3, seed=1)
    assert parts != split_subjects(files, val=2, test=3, seed=2)


def test_split_refuses_to_leave_nothing_to_train(tmp_path):
    files = [_volume(tmp_path / f"sub-{i}.nii.gz") for i in range(3)]
    with pytest.raises(ValueError, match="keep some to train"):
        split_subjects(files, val=1, test=2)


def test_cli_writes_link_folders(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        _volume(data / f"sub-{i}.nii.gz")
    assert main([str(data), "--out", str(tmp_path / "split"), "--val", "1", "--test", "1"]) == 0
    listed = json.loads((tmp_path / "split" / "split.json").read_text())
    for part in ("train", "val", "test"):
        links = sorted(p.name for p in (tmp_path / "split" / part).iterdir())
        assert links == sorted(listed[part])
        assert all((tmp_path / "split" / part / name).is_symlink() for name in links)
    assert main([str(tmp_path / "empty-missing"), "--out", str(tmp_path / "x")]) == 2
    assert "error" in capsys.readouterr().err
