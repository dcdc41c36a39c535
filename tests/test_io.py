"""NIfTI input/output and SR geometry (SPEC §5): napari_volumenet.io."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import rescale_affine

import napari_volumenet.io as vio
from napari_volumenet.errors import InputError, OutputError
from napari_volumenet.io import (
    NIFTI_SUFFIXES,
    Volume,
    check_output_path,
    find_volumes,
    is_nifti,
    lr_affine,
    napari_scale_translate,
    provenance_description,
    read_volume,
    sha256_file,
    sidecar_path,
    sr_affine,
    sr_volume_geometry,
    validate_volume,
    write_volume,
)


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_affine(zooms=(0.9, 1.2, 3.0), angles=(0.2, -0.35, 0.5), origin=(-90.0, 12.5, 40.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation(*angles) @ np.diag(zooms)
    affine[:3, 3] = origin
    return affine


OBLIQUE = oblique_affine()
FLIPPED = np.array([[-1.5, 0, 0, 80.0], [0, 1.0, 0, -120.0], [0, 0, 2.5, -60.0], [0, 0, 0, 1]])


def make_data(shape=(10, 12, 8), seed=0, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)


def save_nifti(path: Path, data, affine=OBLIQUE, *, sform_code=1, qform_code=1, units=("mm", "sec")) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_sform(affine, code=sform_code)
    image.set_qform(affine, code=qform_code)
    image.header.set_xyzt_units(*units)
    nib.save(image, str(path))
    return path


def box_corners(affine: np.ndarray, shape) -> np.ndarray:
    """Physical positions of the 8 outer corners of a voxel grid (voxel centres at integers)."""
    corners = np.array([[(-0.5 if c == 0 else n - 0.5) for c, n in zip(choice, shape, strict=True)]
                        for choice in itertools.product((0, 1), repeat=3)])
    return (affine @ np.c_[corners, np.ones(8)].T).T[:, :3]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- round trip


def test_suffixes():
    assert NIFTI_SUFFIXES == (".nii", ".nii.gz")
    assert is_nifti("a.nii") and is_nifti("a.nii.gz") and is_nifti(Path("dir/A.NII.GZ"))
    assert not is_nifti("a.gz") and not is_nifti("a.nii.bak") and not is_nifti(".nii") and not is_nifti("a.mgz")
    assert sidecar_path("out/scan_x2.nii.gz") == Path("out/scan_x2.json")
    assert sidecar_path("scan.nii") == Path("scan.json")


@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nii"])
def test_read_write_round_trip(tmp_path, name):
    data = make_data()
    src = save_nifti(tmp_path / f"src_{name}", data, sform_code=4, qform_code=2, units=("mm", "msec"))
    volume = read_volume(src)
    assert isinstance(volume, Volume) and volume.path == src
    assert volume.data.dtype == np.float32 and volume.data.shape == data.shape
    np.testing.assert_array_equal(volume.data, data)
    assert volume.affine.dtype == np.float64 and volume.affine.shape == (4, 4)
    np.testing.assert_allclose(volume.affine, OBLIQUE, atol=1e-6)
    np.testing.assert_allclose(volume.zooms, (0.9, 1.2, 3.0), atol=1e-6)

    out = write_volume(tmp_path / name, volume.data, volume.affine, volume.header)
    assert out == tmp_path / name
    back = read_volume(out)
    np.testing.assert_array_equal(back.data, data)  # float32 exact
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-6)
    np.testing.assert_allclose(back.zooms, volume.zooms, atol=1e-6)
    image = nib.load(str(out))
    assert image.get_data_dtype() == np.float32
    assert image.header.get_xyzt_units() == ("mm", "msec")
    assert (int(image.header["sform_code"]), int(image.header["qform_code"])) == (4, 2)
    np.testing.assert_allclose(image.header.get_zooms(), (0.9, 1.2, 3.0), atol=1e-6)
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_gz_output_is_deflated_by_isal_with_the_bytes_nibabel_writes(tmp_path, monkeypatch):
    import napari_volumenet.io.write as writing

    assert writing.igzip is not None  # a dependency: ~8× faster than zlib
    data = make_data()
    fast = write_volume(tmp_path / "isal.nii.gz", data, OBLIQUE)
    monkeypatch.setattr(writing, "igzip", None)
    plain = write_volume(tmp_path / "zlib.nii.gz", data, OBLIQUE)
    assert gzip.decompress(fast.read_bytes()) == gzip.decompress(plain.read_bytes())
    np.testing.assert_array_equal(read_volume(fast).data, data)


def test_codes_default_to_scanner(tmp_path):
    data = make_data()
    header = nib.Nifti1Header()  # sform_code = qform_code = 0
    out = write_volume(tmp_path / "a.nii.gz", data, OBLIQUE, header)
    hdr = nib.load(str(out)).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (1, 1)
    out = write_volume(tmp_path / "b.nii.gz", data, OBLIQUE)  # no header: scanner, millimetres
    hdr = nib.load(str(out)).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (1, 1)
    assert hdr.get_xyzt_units()[0] == "mm"
    header = nib.Nifti1Header()
    header.set_sform(OBLIQUE, code="mni")  # only one code set: the other follows it
    out = write_volume(tmp_path / "c.nii.gz", data, OBLIQUE, header)
    hdr = nib.load(str(out)).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (4, 4)


def test_scaled_integers_are_read_scaled_and_written_unscaled(tmp_path):
    raw = np.random.default_rng(2).integers(-100, 100, size=(6, 7, 8)).astype(np.int16)
    image = nib.Nifti1Image(raw, FLIPPED, dtype=np.int16)
    image.header.set_slope_inter(2.0, 10.0)
    image.header["cal_min"], image.header["cal_max"] = -5.0, 5.0
    image.header["intent_code"] = 2  # kept
    src = tmp_path / "int.nii.gz"
    nib.save(image, str(src))
    volume = read_volume(src)
    np.testing.assert_array_equal(volume.data, raw.astype(np.float32) * 2 + 10)
    out = write_volume(tmp_path / "out.nii.gz", volume.data, volume.affine, volume.header)
    hdr = nib.load(str(out)).header
    assert hdr.get_data_dtype() == np.float32
    slope, inter = hdr.get_slope_inter()
    assert slope in (None, 1.0) and inter in (None, 0.0)
    assert float(hdr["cal_min"]) == 0.0 and float(hdr["cal_max"]) == 0.0
    assert int(hdr["intent_code"]) == 2
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), volume.data)


def test_int_data_written_as_float32(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    out = write_volume(tmp_path / "i.nii.gz", data, FLIPPED, header)
    image = nib.load(str(out))
    assert image.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(image.dataobj), data.astype(np.float32))


def test_mgh_is_read_as_well(tmp_path):
    data = make_data((6, 7, 8))
    path = tmp_path / "brain.mgz"
    nib.save(nib.MGHImage(data, FLIPPED), str(path))
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, FLIPPED, atol=1e-5)
    assert isinstance(volume.header, nib.Nifti1Header)
    out = write_volume(tmp_path / "brain.nii.gz", volume.data, volume.affine, volume.header)
    np.testing.assert_allclose(read_volume(out).affine, FLIPPED, atol=1e-5)


def test_nifti2_header_is_converted(tmp_path):
    data = make_data((6, 7, 8))
    image = nib.Nifti2Image(data, OBLIQUE)
    image.set_sform(OBLIQUE, code=2)
    image.header["descrip"] = b"from nifti2"
    nib.save(image, str(tmp_path / "n2.nii"))
    volume = read_volume(tmp_path / "n2.nii")
    out = write_volume(tmp_path / "n1.nii", volume.data, volume.affine, volume.header)
    hdr = nib.load(str(out)).header
    assert type(hdr) is nib.Nifti1Header and int(hdr["sizeof_hdr"]) == 348
    assert int(hdr["sform_code"]) == 2 and hdr["descrip"].item() == b"from nifti2"
    np.testing.assert_array_equal(read_volume(out).data, data)


# ----------------------------------------------------------------------------- SR geometry


def test_sr_affine_identity_scale_2():
    hr = sr_affine(np.eye(4), 2)
    # HR voxel (0,0,0) centre sits at LR voxel coordinate -(s-1)/(2s) = -0.25 on every axis
    np.testing.assert_allclose(hr @ [0, 0, 0, 1], [-0.25, -0.25, -0.25, 1])
    np.testing.assert_allclose(hr @ [1, 1, 1, 1], [0.25, 0.25, 0.25, 1])
    np.testing.assert_allclose(np.diag(hr)[:3], [0.5, 0.5, 0.5])


@pytest.mark.parametrize("affine", [np.eye(4), FLIPPED, OBLIQUE, oblique_affine((0.5, 0.5, 4.0), (1.0, 0.1, -2.0))],
                         ids=["identity", "flipped", "oblique", "oblique-thick"])
@pytest.mark.parametrize("scale", [2, 3, (1, 1, 2), (3, 2, 1)])
def test_sr_grid_covers_the_lr_extent(affine, scale):
    lr_shape = (7, 6, 5)
    s = (scale,) * 3 if isinstance(scale, int) else scale
    hr_shape = tuple(n * f for n, f in zip(lr_shape, s, strict=True))
    hr = sr_affine(affine, scale)
    # first HR corner == first LR corner, last == last, and all 8 corners of the box
    np.testing.assert_allclose(box_corners(hr, hr_shape), box_corners(affine, lr_shape), atol=1e-9)
    # voxel size divided by s along each axis, directions kept
    np.testing.assert_allclose(vio.affine_zooms(hr), np.array(vio.affine_zooms(affine)) / s)
    # the s HR voxels of LR voxel v are centred on v
    v = np.array([3, 2, 4])
    children = [np.array(v) * s + np.array(o) for o in itertools.product(*(range(f) for f in s))]
    centres = np.mean([(hr @ [*c, 1])[:3] for c in children], axis=0)
    np.testing.assert_allclose(centres, (affine @ [*v, 1])[:3], atol=1e-9)
    # lr_affine is the inverse
    np.testing.assert_allclose(lr_affine(hr, scale), affine, atol=1e-12)
    np.testing.assert_allclose(sr_affine(lr_affine(affine, scale), scale), affine, atol=1e-12)


@pytest.mark.parametrize("n", [4, 5])
def test_sr_affine_is_not_rescale_affine(n):
    # nibabel's rescale_affine keeps the voxel at the integer centre index (n-1)//2 … of the
    # field of view fixed, so the new grid is offset by 0 or half an HR voxel depending on
    # whether n is odd or even: the SR volume would be shifted against its LR input. SPEC §5
    # keeps the physical extent instead (HR voxel 0 at LR coordinate -(s-1)/(2s)).
    shape, s = (n, n, n), 2
    ours = sr_affine(np.eye(4), s)
    theirs = rescale_affine(np.eye(4), shape, (0.5, 0.5, 0.5), (n * s,) * 3)
    np.testing.assert_allclose(theirs[:3, :3], ours[:3, :3])  # same voxel size...
    assert not np.allclose(theirs, ours)  # ...but a different (shifted) grid
    assert not np.allclose(box_corners(theirs, (n * s,) * 3), box_corners(np.eye(4), shape))


def test_napari_scale_translate_agrees_with_sr_affine():
    zooms, origin = np.array([0.8, 1.5, 3.0]), np.array([-20.0, 4.0, 7.5])
    affine = np.eye(4)
    affine[:3, :3] = np.diag(zooms)
    affine[:3, 3] = origin
    for s in [2, (1, 1, 2), (3, 2, 1)]:
        hr = sr_affine(affine, s)
        scale, translate = napari_scale_translate(zooms, origin, s)
        np.testing.assert_allclose(scale, np.diag(hr)[:3])
        np.testing.assert_allclose(translate, hr[:3, 3])
    scale, translate = napari_scale_translate([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], np.array([2, 2, 2]))
    assert scale == (0.5, 0.5, 0.5) and translate == (-0.25, -0.25, -0.25)


@pytest.mark.parametrize("scale", [2, (1, 1, 2), (3, 2, 1)])
def test_written_sr_file_has_sr_geometry(tmp_path, scale):
    lr_shape = (6, 5, 4)
    src = save_nifti(tmp_path / "lr.nii.gz", make_data(lr_shape), sform_code=1, qform_code=1)
    lr = read_volume(src)
    s = (scale,) * 3 if isinstance(scale, int) else scale
    affine, header = sr_volume_geometry(lr, scale)
    np.testing.assert_allclose(affine, sr_affine(lr.affine, scale))
    hr_shape = tuple(n * f for n, f in zip(lr_shape, s, strict=True))
    assert header.get_data_shape() == hr_shape
    np.testing.assert_allclose(header.get_zooms(), np.array(lr.zooms) / s, atol=1e-6)
    assert lr.header.get_data_shape() == lr_shape  # the volume's own header is untouched

    out = write_volume(tmp_path / "lr_x2.nii.gz", make_data(hr_shape, seed=5), affine, header)
    image = nib.load(str(out))
    assert image.shape == hr_shape
    np.testing.assert_allclose(image.get_sform(), affine, atol=1e-6)
    np.testing.assert_allclose(image.get_qform(), affine, atol=1e-5)
    np.testing.assert_allclose(image.header.get_zooms(), np.array(lr.zooms) / s, atol=1e-6)
    assert (int(image.header["sform_code"]), int(image.header["qform_code"])) == (1, 1)
    np.testing.assert_allclose(box_corners(image.affine, hr_shape), box_corners(lr.affine, lr_shape), atol=1e-4)


def test_bad_scale_is_refused():
    with pytest.raises(Exception, match="scale"):
        sr_affine(np.eye(4), 0)
    with pytest.raises(Exception, match="scale"):
        sr_affine(np.eye(4), (2, 2))


# ----------------------------------------------------------------------------- atomic writing


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, name):
    import napari_volumenet.io.write as writing

    def partial_then_fail(image, filename):
        Path(filename).write_bytes(b"\x1f\x8b partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing, "_save", partial_then_fail)
    with pytest.raises(OutputError, match=f"could not write .*{name}.*No space left"):
        write_volume(tmp_path / name, make_data(), OBLIQUE, sidecar={"a": 1})
    assert listing(tmp_path) == []

    def crash(image, filename):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("boom")

    monkeypatch.setattr(writing, "_save", crash)
    with pytest.raises(RuntimeError):
        write_volume(tmp_path / name, make_data(), OBLIQUE)
    assert listing(tmp_path) == []

    def interrupted(image, filename):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(writing, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_volume(tmp_path / name, make_data(), OBLIQUE)
    assert listing(tmp_path) == []


def test_temp_file_is_hidden_in_the_same_folder(tmp_path, monkeypatch):
    import napari_volumenet.io.write as writing

    seen = []
    real_save = writing._save

    def spy(image, filename):
        seen.append(Path(filename))
        real_save(image, filename)

    monkeypatch.setattr(writing, "_save", spy)
    out = write_volume(tmp_path / "scan_x2.nii.gz", make_data(), OBLIQUE)
    [temp] = seen
    assert temp.parent == tmp_path and temp.name.startswith(".") and temp.name.endswith(".nii.gz")
    assert listing(tmp_path) == ["scan_x2.nii.gz"]
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # compressed, as the name says


def test_overwrite_refused_then_allowed(tmp_path):
    target = tmp_path / "o.nii.gz"
    write_volume(target, make_data(seed=1), OBLIQUE)
    before = target.read_bytes()
    with pytest.raises(OutputError, match=r"o\.nii\.gz exists; pass --overwrite to replace it"):
        write_volume(target, make_data(seed=2), OBLIQUE)
    assert target.read_bytes() == before
    write_volume(target, make_data(seed=2), OBLIQUE, overwrite=True)
    np.testing.assert_array_equal(read_volume(target).data, make_data(seed=2))
    assert listing(tmp_path) == ["o.nii.gz"]


def test_file_appearing_during_the_write_is_not_replaced(tmp_path, monkeypatch):
    import napari_volumenet.io.write as writing

    target = tmp_path / "o.nii.gz"
    real_save = writing._save

    def other_process_writes_target(image, filename):
        real_save(image, filename)
        target.write_bytes(b"someone else's")

    monkeypatch.setattr(writing, "_save", other_process_writes_target)
    with pytest.raises(OutputError, match="exists"):
        write_volume(target, make_data(), OBLIQUE)
    assert target.read_bytes() == b"someone else's"
    assert listing(tmp_path) == ["o.nii.gz"]


def test_write_refuses_bad_data(tmp_path):
    for data in (np.ones((4, 4, 4, 2), np.float32), np.full((4, 4, 4), np.nan, np.float32), np.ones((4, 4))):
        with pytest.raises(InputError):
            write_volume(tmp_path / "bad.nii.gz", data, OBLIQUE)
    with pytest.raises(OutputError, match="affine"):
        write_volume(tmp_path / "bad.nii.gz", np.ones((4, 4, 4)), np.full((4, 4), np.nan))
    assert listing(tmp_path) == []


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "new.nii.gz", False) == tmp_path / "new.nii.gz"
    (tmp_path / "old.nii").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"old\.nii exists; pass --overwrite to replace it"):
        check_output_path(tmp_path / "old.nii", False)
    assert check_output_path(tmp_path / "old.nii", True) == tmp_path / "old.nii"
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "o.nii.gz", False)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_path(tmp_path / "file.txt" / "o.nii.gz", False)
    (tmp_path / "folder.nii.gz").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path / "folder.nii.gz", True)
    for bad in ("o.nii.bak", "o.txt", "o.gz", "o.mgz"):
        with pytest.raises(OutputError, match=r"\.nii or \.nii\.gz"):
            check_output_path(tmp_path / bad, True)
    # the sidecar of a new output is not silently replaced either
    (tmp_path / "side.json").write_text("{}")
    with pytest.raises(OutputError, match=r"side\.json exists"):
        check_output_path(tmp_path / "side.nii.gz", False)
    check_output_path(tmp_path / "side.nii.gz", False, check_sidecar=False)


def test_check_output_path_unwritable_folder_via_access(tmp_path, monkeypatch):
    # works as root too: the folder permission check goes through os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="is not writable"):
        check_output_path(tmp_path / "o.nii.gz", True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_check_output_path_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_path(folder / "o.nii.gz", False)
        with pytest.raises(OutputError):
            write_volume(folder / "o.nii.gz", make_data(), OBLIQUE)
        assert listing(folder) == []
    finally:
        folder.chmod(0o755)


# ----------------------------------------------------------------------------- sidecar and provenance


def test_sidecar_and_description(tmp_path):
    sidecar = {"model": "volumenet", "scale": np.array([2, 2, 2]), "psnr": np.float32(31.5),
               "ssim": float("nan"), "weights": tmp_path / "w.pt", "shape": (4, 5, 6)}
    description = provenance_description("volumenet", 2, "1a2b3c4d" * 8, "0.1.0")
    assert description == "volumenet x2 w=1a2b3c4d v0.1.0"
    out = write_volume(tmp_path / "scan_x2.nii.gz", make_data(), OBLIQUE, description=description,
                       sidecar=sidecar)
    assert listing(tmp_path) == ["scan_x2.json", "scan_x2.nii.gz"]
    meta = json.loads((tmp_path / "scan_x2.json").read_text())
    assert meta == {"model": "volumenet", "scale": [2, 2, 2], "psnr": 31.5, "ssim": None,
                    "weights": str(tmp_path / "w.pt"), "shape": [4, 5, 6]}
    assert nib.load(str(out)).header["descrip"].item().decode() == description
    # the sidecar is also never replaced without overwrite, and replaced with it
    with pytest.raises(OutputError, match="exists"):
        write_volume(tmp_path / "scan_x2.nii.gz", make_data(), OBLIQUE, sidecar={"b": 2})
    write_volume(tmp_path / "scan_x2.nii.gz", make_data(), OBLIQUE, sidecar={"b": 2}, overwrite=True)
    assert json.loads((tmp_path / "scan_x2.json").read_text()) == {"b": 2}
    assert listing(tmp_path) == ["scan_x2.json", "scan_x2.nii.gz"]


def test_unserialisable_sidecar_writes_nothing(tmp_path):
    with pytest.raises(OutputError, match="sidecar"):
        write_volume(tmp_path / "a.nii.gz", make_data(), OBLIQUE, sidecar={"x": object()})
    assert listing(tmp_path) == []


def test_description_kept_or_truncated(tmp_path):
    header = nib.Nifti1Header()
    header["descrip"] = b"original"
    out = write_volume(tmp_path / "keep.nii", make_data(), OBLIQUE, header)
    assert nib.load(str(out)).header["descrip"].item() == b"original"
    long = "é" * 100  # 200 bytes in UTF-8
    out = write_volume(tmp_path / "long.nii", make_data(), OBLIQUE, header, description=long)
    stored = nib.load(str(out)).header["descrip"].item()
    assert len(stored) <= 79 and stored.decode("utf-8") == "é" * 39


def test_provenance_description():
    assert provenance_description("srcnn3d", (1, 1, 2), None, "v0.2.0") == "srcnn3d x1x1x2 v0.2.0"
    assert provenance_description("dcsrn", 3, "ab" * 32, "1.0") == "dcsrn x3 w=abababab v1.0"
    text = provenance_description("m" * 200, 2, "f" * 64, "0.1.0")
    assert len(text.encode()) <= 79


def test_sha256_file(tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    path = tmp_path / "w.pt"
    path.write_bytes(payload)
    assert sha256_file(path) == hashlib.sha256(payload).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(payload).hexdigest()
    with pytest.raises(InputError, match="no such file"):
        sha256_file(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- bad inputs


def _text(path: Path) -> None:
    path.write_text("this is not a NIfTI file\n" * 20)


def _gzip_text(path: Path) -> None:
    path.write_bytes(gzip.compress(b"hello, not a NIfTI header" * 20))


def _truncated(path: Path) -> None:
    save_nifti(path, make_data((16, 16, 16)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _renamed(path: Path) -> None:
    save_nifti(path.with_name("good.nii.gz"), make_data()).rename(path)


def _volume(data):
    return lambda path: save_nifti(path, data)


def _with_bad(value, count=1):
    data = make_data()
    data.flat[:count] = value
    return data


BAD_INPUTS = {
    "missing file": (None, "bad.nii.gz", r"no such file: .*bad\.nii\.gz"),
    "text renamed .nii.gz": (_text, "bad.nii.gz", "not a valid NIfTI file"),
    "text renamed .nii": (_text, "bad.nii", "not a valid NIfTI file"),
    "gzip of text": (_gzip_text, "bad.nii.gz", "not a valid NIfTI file"),
    "truncated .nii.gz": (_truncated, "bad.nii.gz", "truncated or corrupt"),
    "truncated .nii": (_truncated, "bad.nii", "is truncated: its header declares 16×16×16 voxels"),
    "wrong suffix": (_renamed, "bad.img.txt", r"not a NIfTI file .*\.nii or \.nii\.gz"),
    "4D": (_volume(np.ones((8, 8, 8, 3), np.float32)), "bad.nii.gz", r"is 4D \(8×8×8×3\).*extract one volume"),
    "complex": (_volume((make_data() + 1j).astype(np.complex64)), "bad.nii.gz", "complex"),
    "NaN": (_volume(_with_bad(np.nan, 12)), "bad.nii.gz", "contains 12 NaN/Inf voxels; fix or mask them first"),
    "Inf": (_volume(_with_bad(-np.inf, 3)), "bad.nii.gz", "contains 3 NaN/Inf voxels"),
    "axis of 3": (_volume(make_data((3, 64, 64))), "bad.nii.gz", "is 3×64×64 voxels; every axis needs at least 4"),
    "2D": (_volume(make_data((16, 16))), "bad.nii.gz", "2D"),
    "RGB": (_volume(np.zeros((8, 8, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])), "bad.nii.gz", "RGB"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_give_one_clear_input_error(tmp_path, case):
    make, name, message = BAD_INPUTS[case]
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(InputError, match=message) as info:
        read_volume(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text and "Traceback" not in text


def test_directory_is_refused(tmp_path):
    (tmp_path / "scan.nii.gz").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_volume(tmp_path / "scan.nii.gz")


def test_4d_with_trailing_singleton_axes_is_accepted(tmp_path):
    data = make_data((8, 9, 10))
    volume = read_volume(save_nifti(tmp_path / "t.nii.gz", data[..., None]))
    assert volume.data.shape == (8, 9, 10)
    np.testing.assert_array_equal(volume.data, data)


def test_validate_volume():
    data = np.arange(4 * 5 * 6, dtype=np.int32).reshape(4, 5, 6)
    out = validate_volume(data)
    assert out.dtype == np.float32 and out.shape == (4, 5, 6)
    assert validate_volume(data[..., None, None]).shape == (4, 5, 6)
    assert validate_volume(np.ones((2, 2, 2)), min_size=1).shape == (2, 2, 2)
    cases = {
        "bool": (np.ones((5, 5, 5), bool), "boolean"),
        "object": (np.empty((5, 5, 5), object), "non-numeric"),
        "str": (np.full((5, 5, 5), "a"), "non-numeric"),
        "complex": (np.ones((5, 5, 5), np.complex128), "complex"),
        "5D": (np.ones((5, 5, 5, 2, 1)), r"5D \(5×5×5×2×1\)"),
        "1D": (np.ones(10), "1D"),
        "scalar": (np.float32(1), "0D"),
        "empty": (np.ones((0, 5, 5)), "0×5×5 voxels"),
        "nan": (np.full((5, 5, 5), np.nan), "contains 125 NaN/Inf voxels"),
        "overflow": (np.full((5, 5, 5), 1e300), "too large for 32-bit floats"),
    }
    for array, message in cases.values():
        with pytest.raises(InputError, match=message):
            validate_volume(array, name="my.nii.gz")
    with pytest.raises(InputError, match=r"^my\.nii\.gz is a boolean"):
        validate_volume(np.ones((5, 5, 5), bool), name="my.nii.gz")


def test_degenerate_affine_is_refused(tmp_path):
    header = nib.Nifti1Header()  # an sform that squashes the second axis to nothing
    header.set_data_shape((10, 12, 8))
    header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code="scanner")
    image = nib.Nifti1Image(make_data(), None, header)
    path = tmp_path / "flat.nii.gz"
    nib.save(image, str(path))
    with pytest.raises(InputError, match="zero voxel sizes"):
        read_volume(path)


# ----------------------------------------------------------------------------- finding volumes


def test_find_volumes_nested(tmp_path):
    root = tmp_path / "data"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    for rel in ["b/deep/z.nii.gz", "a/y.nii", "x.nii.gz", "b/w.NII.GZ"]:
        (root / rel).write_bytes(b"")
    for rel in ["readme.txt", "a/y.nii.bak", ".x.nii.gz.tmp-1.nii.gz", "a/._y.nii"]:
        (root / rel).write_bytes(b"")
    (root / ".cache").mkdir()
    (root / ".cache" / "hidden.nii.gz").write_bytes(b"")
    (root / "folder.nii.gz").mkdir()
    found = find_volumes([root])
    assert [p.relative_to(root).as_posix() for p in found] == ["a/y.nii", "b/deep/z.nii.gz", "b/w.NII.GZ", "x.nii.gz"]
    assert [p.name for p in find_volumes([str(root)], recursive=False)] == ["x.nii.gz"]
    # files are taken as given, in order, each once
    other = tmp_path / "other.nii"
    other.write_bytes(b"")
    assert find_volumes([other, root / "x.nii.gz", other]) == [other, root / "x.nii.gz"]
    assert find_volumes(other) == [other]
    assert find_volumes([root / "readme.txt"]) == [root / "readme.txt"]  # read_volume will judge it


def test_find_volumes_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no .nii or .nii.gz files or DICOM series .*empty"):
        find_volumes([empty])
    with pytest.raises(InputError, match=r"no such file: .*nope\.nii\.gz"):
        find_volumes([tmp_path / "nope.nii.gz"])
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "sub").mkdir()
    (tmp_path / "top" / "sub" / "deep.nii").write_bytes(b"")
    assert find_volumes([tmp_path / "top"]) == [tmp_path / "top" / "sub" / "deep.nii"]
    with pytest.raises(InputError, match="no .nii or .nii.gz files or DICOM series in the folder .*top"):
        find_volumes([tmp_path / "top"], recursive=False)
