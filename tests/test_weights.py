"""Weights files: metadata round trip, safe loading, clear refusals."""

import json

import pytest
import torch

from napari_volumenet import __version__
from napari_volumenet.errors import WeightsError
from napari_volumenet.models import create_model
from napari_volumenet.weights import default_weights, list_bundled, load_weights, save_weights


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(1)
    model = create_model("volumenet", depth=2, channels=4)
    path = save_weights(tmp_path / "tiny.pt", model, modality="mri", training={"volumes": 3}, val_psnr=33.5)
    return model, path


def test_round_trip_keeps_weights_and_metadata(tiny):
    model, path = tiny
    loaded, meta = load_weights(path)
    assert meta["model"] == "volumenet"
    assert meta["model_kwargs"]["depth"] == 2 and meta["model_kwargs"]["channels"] == 4
    assert meta["scale"] == [2, 2, 2] and meta["modality"] == "mri"
    assert meta["val_psnr"] == 33.5 and meta["training"] == {"volumes": 3}
    assert meta["version"] == __version__ and "percentile" in meta["normalization"]
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not loaded.training


def test_weights_stored_in_another_float_precision_load_as_float32(tmp_path, tiny):
    model, path = tiny
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v.double() for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "double.pt")
    loaded, _ = load_weights(tmp_path / "double.pt")
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in loaded.parameters())
    x = torch.rand(1, 1, 6, 6, 6)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)


def test_file_loads_with_weights_only(tiny):
    payload = torch.load(tiny[1], weights_only=True)
    assert payload["format"] == "napari-volumenet-weights"
    json.dumps(payload["metadata"])


@pytest.mark.parametrize(
    "expect, message",
    [
        (dict(model="parallelnet"), "holds weights for model 'volumenet'"),
        (dict(scale=(1, 1, 2)), "trained for scale"),
        (dict(modality="ct"), "trained on 'mri' data"),
    ],
)
def test_mismatch_is_refused(tiny, expect, message):
    with pytest.raises(WeightsError, match=message):
        load_weights(tiny[1], **expect)


def test_not_our_file_is_refused(tmp_path, tiny):
    model, _ = tiny
    cases = {
        "list.pt": lambda p: torch.save([1, 2, 3], p),
        "bare.pt": lambda p: torch.save(model.state_dict(), p),
        "noise.pt": lambda p: p.write_bytes(b"\x00garbage" * 100),
    }
    for name, make in cases.items():
        make(tmp_path / name)
        with pytest.raises(WeightsError, match="not a napari-volumenet weights file"):
            load_weights(tmp_path / name)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.pt")


def test_pickled_objects_are_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"format": "napari-volumenet-weights", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "evil.pt")


def test_weights_of_another_shape_are_refused(tmp_path):
    model = create_model("volumenet", depth=2, channels=4)
    path = save_weights(tmp_path / "w.pt", model, modality="mri")
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["model_kwargs"]["channels"] = 8
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="does not fit model 'volumenet'"):
        load_weights(path)


def test_bundled_registry_entries_exist_and_load():
    for entry in list_bundled():
        model, meta = load_weights(entry.path, model=entry.model, modality=entry.modality, scale=entry.scale)
        assert meta["model"] == entry.model
        # the registry names the architecture without opening the file (the Compare tab reads it at once)
        assert entry.model_kwargs == {k: v for k, v in meta["model_kwargs"].items() if k != "scale"}


def test_default_weights_never_fall_back_silently():
    if any(w.modality == "ct" for w in list_bundled()):
        pytest.skip("CT weights are bundled")
    with pytest.raises(WeightsError, match="pass --weights"):
        default_weights("ct")


def test_preview_weights_are_used_only_when_named(tmp_path, monkeypatch):
    import napari_volumenet.weights as weights_module
    from napari_volumenet.models import create_model
    from napari_volumenet.weights import BundledWeights, default_weights, save_weights

    save_weights(tmp_path / "p.pt", create_model("volumenet", depth=2, channels=4), modality="mri")
    monkeypatch.setattr(weights_module, "BUNDLED_DIR", tmp_path)
    preview = BundledWeights("vn-preview", "p.pt", "volumenet", "mri", (2, 2, 2), "preview", default=False)
    monkeypatch.setattr(weights_module, "list_bundled", lambda: [preview])
    with pytest.raises(WeightsError, match="not default: vn-preview"):
        default_weights("mri")
    monkeypatch.setattr(weights_module, "list_bundled", lambda: [preview, BundledWeights(
        "vn", "p.pt", "volumenet", "mri", (2, 2, 2), "default", default=True)])
    assert default_weights("mri") == tmp_path / "p.pt"


def test_checking_a_file_does_not_pull_in_the_compiler_stack():
    """The shape check builds the network on the meta device; its random fills must not reach ``torch._refs``,
    whose first use imports ``torch._dynamo`` and sympy (1.6 s of every command's start-up)."""
    import subprocess
    import sys

    code = ("import sys; from napari_volumenet.weights import load_weights, default_weights; "
            "load_weights(default_weights('mri', 2)); print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
