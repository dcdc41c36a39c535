"""``napari_volumenet.slices``: which weights a scan's voxel sizes call for, and ``volumenet upscale`` using it."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_volumenet import slices as slices_module
from napari_volumenet import weights as weights_module
from napari_volumenet.cli import main
from napari_volumenet.errors import InputError, WeightsError
from napari_volumenet.io import sr_affine
from napari_volumenet.models import create_model
from napari_volumenet.slices import choose, modality_remedy, slice_axis, slice_ratio
from napari_volumenet.weights import BundledWeights, save_weights


@pytest.mark.parametrize("zooms, axis", [
    ((1.0, 1.0, 1.0), None), ((1.0, 1.2, 1.1), None), ((0.9, 0.9, 4.0), 2), ((5.0, 0.45, 0.45), 0),
    ((1.0, 3.0, 1.0), 1), ((0.5, 1.25, 2.0), 2), ((1.0, 1.0, 1.4), None),
])
def test_the_slice_axis_is_the_one_clearly_coarser_than_both_others(zooms, axis):
    assert slice_axis(zooms) == axis


def test_two_coarse_axes_are_refused_in_one_line():
    with pytest.raises(InputError, match="coarse along two axes"):
        slice_axis((1.0, 4.0, 4.0))


def test_slice_ratio_is_over_the_mean_in_plane_spacing():
    assert slice_ratio((1.146, 4.0, 1.0), 1) == pytest.approx(4.0 / 1.073)


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """Bundled tiny ×2 isotropic and ×2 / ×4 through-plane MRI weights (random)."""
    torch.manual_seed(0)
    files = {
        (2, 2, 2): save_weights(tmp_path / "iso.pt", create_model("volumenet", depth=2, channels=4), modality="mri"),
        (1, 1, 2): save_weights(tmp_path / "t2.pt", create_model("volumenet", depth=2, channels=4, scale=(1, 1, 2)),
                                modality="mri"),
        (1, 1, 4): save_weights(tmp_path / "t4.pt", create_model("volumenet", depth=2, channels=4, scale=(1, 1, 4)),
                                modality="mri"),
    }

    class Bundled(BundledWeights):
        @property
        def path(self):
            return files[self.scale]

    entries = [Bundled(f"w{''.join(map(str, s))}", f"{s}.pt", "volumenet", "mri", s, "tiny", True) for s in files]
    monkeypatch.setattr(weights_module, "list_bundled", lambda: entries)
    monkeypatch.setattr(slices_module, "list_bundled", lambda: entries)
    return files


def test_choice_follows_the_voxel_sizes(bundled):
    iso = choose((1.0, 1.0, 1.0))
    assert iso.weights == bundled[(2, 2, 2)] and iso.slice_axis is None and iso.scale == (2, 2, 2)
    thick = choose((1.146, 4.0, 1.0))  # 4 mm slices along array axis 1 on a ~1.07 mm plane
    assert thick.weights == bundled[(1, 1, 4)] and thick.slice_axis == 1 and thick.scale == (1, 4, 1)
    assert "through-plane ×4" in thick.reason
    assert choose((2.1, 1.0, 1.0)).scale == (2, 1, 1)
    with pytest.raises(WeightsError, match=r"no MRI through-plane weights for ×3 \(bundled: ×2, ×4\)"):
        choose((1.0, 1.0, 3.0))
    with pytest.raises(WeightsError, match="through-plane weights for ×6"):
        choose((1.0, 1.0, 6.0))


def test_scale_and_weights_override_the_choice(bundled):
    assert choose((1.0, 1.0, 4.0), scale=2).scale == (2, 2, 2)
    forced = choose((1.0, 1.0, 1.0), scale=(1, 4, 1))
    assert forced.weights == bundled[(1, 1, 4)] and forced.slice_axis == 1
    own = choose((1.0, 1.0, 1.0), weights=bundled[(1, 1, 2)], network_scale=(1, 1, 2))
    assert own.slice_axis == 2 and own.scale == (1, 1, 2)  # near-isotropic: the network's own axis
    along = choose((3.0, 1.0, 1.0), weights=bundled[(1, 1, 2)], network_scale=(1, 1, 2))
    assert along.slice_axis == 0
    with pytest.raises(InputError, match="one axis's factor"):
        choose((1.0, 1.0, 1.0), scale=(1, 2, 4))


def test_upscale_moves_the_slice_axis_and_writes_the_per_axis_geometry(bundled, tmp_path, capsys):
    affine = np.diag([1.0, 4.0, 1.0, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 2.0)
    data = np.random.default_rng(0).random((12, 6, 10)).astype(np.float32) * 100 + 10
    src = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(src))
    out = tmp_path / "out.nii.gz"
    code = main(["upscale", str(src), "-o", str(out), "--device", "cpu", "--precision", "fp32"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "through-plane ×4" in stdout
    img = nib.load(str(out))
    assert img.shape == (12, 24, 10)
    np.testing.assert_allclose(img.affine, sr_affine(affine, (1, 4, 1)), atol=1e-6)
    np.testing.assert_allclose(img.header.get_zooms(), (1.0, 1.0, 1.0), atol=1e-6)
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert sidecar["slice_axis"] == 1 and sidecar["scale"] == [1, 4, 1] and sidecar["network_scale"] == [1, 1, 4]
    assert "through-plane ×4" in sidecar["choice"]
    # the network ran with the slice axis moved to its axis 2
    from napari_volumenet.inference import upscale
    from napari_volumenet.ops.normalize import fit_normalization
    from napari_volumenet.weights import load_weights

    network, _ = load_weights(bundled[(1, 1, 4)])
    moved = upscale(np.transpose(data, (0, 2, 1)), network, normalization=fit_normalization(data, "mri"), tile=0,
                    device="cpu", precision="fp32")
    np.testing.assert_allclose(np.asarray(img.dataobj), np.transpose(moved, (0, 2, 1)), atol=1e-3)


def test_upscale_names_what_is_bundled_when_no_weights_fit(bundled, tmp_path, capsys):
    src = tmp_path / "five.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.diag([1.0, 1.0, 5.0, 1.0])), str(src))
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.nii.gz")])
    stderr = capsys.readouterr().err
    assert code == 2 and len(stderr.splitlines()) == 1 and "bundled: ×2, ×4" in stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_the_other_modality_is_only_advised_where_it_has_such_weights(bundled):
    assert modality_remedy("mri", (2, 2, 2)) is None  # isotropic: CT ×2 weights exist, the usual advice
    remedy = modality_remedy("mri", (1, 1, 4))
    assert remedy.startswith("there are no CT through-plane weights for ×4 (bundled: none)")
    assert "--modality ct --scale 2" in remedy and "--thick-slices 4" in remedy
    assert modality_remedy("ct", (1, 1, 2)) is None  # MRI through-plane ×2 exists


def test_a_thick_ct_is_not_sent_to_ct_weights_that_do_not_exist(bundled, tmp_path, capsys):
    data = np.random.default_rng(1).uniform(-1000.0, 1500.0, (12, 10, 6)).astype(np.float32)
    src = tmp_path / "thick_ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.2, 1.0])), str(src))
    code = main(["upscale", str(src), "-o", str(tmp_path / "o.nii.gz"), "--device", "cpu", "-q"])
    stderr = capsys.readouterr().err
    assert code == 0 and len(stderr.splitlines()) == 1
    assert "no CT through-plane weights for ×4" in stderr and "use CT weights" not in stderr


def test_a_slab_with_a_gap_chooses_by_its_thickness(bundled):
    """4 mm slices every 4.8 mm on a 1.02 mm plane: by spacing ×5 (none bundled); the slab model says ×4."""
    from napari_volumenet.io.volume import Slab
    from napari_volumenet.slices import gap_slices

    zooms = (1.015625, 1.015625, 4.8)
    with pytest.raises(WeightsError, match="×5"):
        choose(zooms)
    slab = Slab(axis=2, thickness=4.0, spacing=4.8)
    gapped = choose(zooms, slab=slab)
    assert gapped.scale == (1, 1, 4) and gapped.weights == bundled[(1, 1, 4)]
    assert "4 mm slices every 4.8 mm (gap 0.8 mm)" in gapped.reason and "3.9×" in gapped.reason
    assert gap_slices(slab, 4) == pytest.approx(4 * 0.8 / 4.8)
    overlap = Slab(axis=2, thickness=6.0, spacing=4.0)  # overlapping slices: the spacing decides, as without a slab
    assert choose((1.0, 1.0, 4.0), slab=overlap).scale == choose((1.0, 1.0, 4.0)).scale == (1, 1, 4)
    assert gap_slices(overlap, 4) == 0.0
