"""Shipping weights with the package (src_training.bundle), against a temporary weights folder."""

import json

import pytest
import torch

import napari_volumenet.weights as weights_module
from napari_volumenet.models import create_model
from napari_volumenet.weights import default_weights, list_bundled, load_weights, save_weights
from src_training import bundle as bundle_module


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "bundled"
    folder.mkdir()
    for module in (weights_module, bundle_module):
        monkeypatch.setattr(module, "BUNDLED_DIR", folder)
        monkeypatch.setattr(module, "BUNDLED_REGISTRY", folder / "bundled.json")
    return folder


def _trained(tmp_path, name, modality="mri"):
    model = create_model("volumenet", depth=2, channels=4)
    training = {"data": [str(tmp_path / "secret" / "oasis")], "init_from": {"path": str(tmp_path / "w.pt")},
                "tricubic_val_psnr": 30.0, "train_files": ["a.nii.gz"]}
    return save_weights(tmp_path / name, model, modality=modality, training=training, val_psnr=31.5), model


def test_bundle_copies_registers_and_strips_paths(tmp_path, weights_dir):
    source, model = _trained(tmp_path, "best.pt")
    entry = bundle_module.bundle(source, "vn-mri", "tiny VolumeNet", "test data", "CC0", default=True)
    assert entry["val_psnr"] == pytest.approx(31.5) and entry["tricubic_val_psnr"] == 30.0
    [listed] = list_bundled()
    assert listed.name == "vn-mri" and listed.default and listed.licence == "CC0"
    assert listed.model_kwargs == {k: v for k, v in model.config.items() if k not in ("name", "scale")}
    assert default_weights("mri") == weights_dir / "vn-mri.pt"
    network, meta = load_weights(default_weights("mri"))
    for key, value in model.state_dict().items():
        assert torch.equal(network.state_dict()[key], value)
    assert meta["training"]["data"] == ["oasis"] and meta["training"]["init_from"]["path"] == "w.pt"
    assert str(tmp_path) not in json.dumps(meta)


def test_a_new_default_replaces_the_old_one(tmp_path, weights_dir):
    first, _ = _trained(tmp_path, "a.pt")
    second, _ = _trained(tmp_path, "b.pt")
    bundle_module.bundle(first, "old", "d", "d", "l", default=True)
    bundle_module.bundle(second, "new", "d", "d", "l", default=True)
    assert {w.name: w.default for w in list_bundled()} == {"old": False, "new": True}
    assert default_weights("mri").name == "new.pt"


def test_bundling_a_name_again_replaces_its_entry_in_place(tmp_path, weights_dir):
    source, _ = _trained(tmp_path, "a.pt")
    for name in ("first", "second", "third"):
        bundle_module.bundle(source, name, "d", "d", "l", default=False)
    bundle_module.bundle(source, "second", "retrained", "d", "l", default=False)
    assert [(w.name, w.description) for w in list_bundled()] == [
        ("first", "d"), ("second", "retrained"), ("third", "d")]


def test_bundle_refuses_a_file_that_is_not_weights(tmp_path, weights_dir, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a weights file")
    code = bundle_module.main([str(bad), "--name", "x", "--description", "d", "--data", "d", "--licence", "l"])
    assert code == 2 and "not a napari-volumenet weights file" in capsys.readouterr().err
    assert not (weights_dir / "bundled.json").exists()


def test_comparison_weights_are_marked_counted_and_never_the_default(tmp_path, weights_dir):
    from napari_volumenet.errors import VolumeNetError
    from napari_volumenet.models import count_parameters

    source, model = _trained(tmp_path, "best.pt")
    bundle_module.bundle(source, "vn-cmp", "d", "d", "l", default=False, comparison=True)
    [listed] = list_bundled()
    assert listed.comparison and not listed.default and listed.params == count_parameters(model)
    with pytest.raises(VolumeNetError, match="never a default"):
        bundle_module.bundle(source, "vn-both", "d", "d", "l", default=True, comparison=True)
