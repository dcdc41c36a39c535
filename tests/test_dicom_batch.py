"""Batch and cluster runs: inputs listed in a file, --part K/N shares, --skip-existing restarts."""

import argparse

import nibabel as nib
import numpy as np
import pytest

from napari_volumenet.cli import main
from napari_volumenet.cli._batch import expand_lists, part_arg, take_part
from napari_volumenet.errors import InputError


def test_part_arg():
    assert part_arg("3/10") == (3, 10) and part_arg("1/1") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(argparse.ArgumentTypeError, match="K/N"):
            part_arg(bad)


@pytest.mark.parametrize("count", [0, 1, 7, 23])
@pytest.mark.parametrize("shares", [1, 2, 3, 5, 8])
def test_shares_cover_every_input_exactly_once(count, shares):
    items = [f"scan{i}" for i in range(count)]
    parts = [take_part(items, (k, shares), quiet=True) for k in range(1, shares + 1)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_input_lists(tmp_path):
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "inputs.txt"
    listing.write_text("# scans to do\n../a.nii.gz\n\n  /abs/b.nii.gz  \n")
    assert expand_lists([str(listing), "c.nii.gz"]) == [str(tmp_path / "lists" / "../a.nii.gz"), "/abs/b.nii.gz",
                                                        "c.nii.gz"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="names no input"):
        expand_lists([str(tmp_path / "empty.txt")])


def test_cluster_shares_and_restart(tmp_path, capsys, monkeypatch):
    """The plumbing of ``upscale`` (inputs, shares, skips), with a stand-in for the network."""
    from napari_volumenet.cli import upscale
    from napari_volumenet.io import read_volume, write_volume

    def fake_upscale(args, src, dst, choice, cache, bars):
        volume = read_volume(src)
        write_volume(dst, volume.data, volume.affine, overwrite=args.overwrite)

    monkeypatch.setattr(upscale, "_upscale_one", fake_upscale)
    rng = np.random.default_rng(0)
    names = [f"s{i}" for i in range(3)]
    for name in names:
        nib.save(nib.Nifti1Image(rng.random((8, 8, 8), dtype=np.float32) * 100, np.eye(4)), tmp_path / f"{name}.nii.gz")
    (tmp_path / "list.txt").write_text("".join(f"{name}.nii.gz\n" for name in names))
    out = tmp_path / "out"
    common = ["upscale", str(tmp_path / "list.txt"), "-o", str(out), "--scale", "2", "--tile", "0", "-q"]
    assert main([*common, "--part", "1/2"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["s0_x2.nii.gz", "s2_x2.nii.gz"]
    assert main([*common, "--part", "2/2"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{n}_x2.nii.gz" for n in names]
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main([*common, "--skip-existing"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    capsys.readouterr()
    assert main(common) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
