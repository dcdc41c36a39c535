"""``napari_volumenet.evaluation``: the paper's protocol on tiny synthetic HR volumes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import napari_volumenet.evaluation as evaluate_module
from napari_volumenet import weights as weights_module
from napari_volumenet.errors import WeightsError
from napari_volumenet.io import read_volume
from napari_volumenet.models import count_parameters, create_model
from napari_volumenet.ops.degrade import crop_to_multiple, degrade
from napari_volumenet.ops.interpolate import tricubic_upsample_numpy
from napari_volumenet.ops.metrics import compute_metrics
from napari_volumenet.weights import save_weights
from napari_volumenet.evaluation import (
    METRICS, Degradation, Method, NetworkCache, evaluate, format_table, load_methods, resolve_method, summarize,
    to_json,
)
from napari_volumenet.inference import RunOptions

AFFINE = np.diag([1.0, 1.2, 2.0, 1.0])


def synthetic_hr(shape, seed):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    blob = np.exp(-3 * sum(g**2 for g in grids)) + 0.5 * (grids[0] > 0.2)
    return (300 * (blob + 0.1 * rng.random(shape))).astype(np.float32)


@pytest.fixture
def volumes(tmp_path) -> list[Path]:
    paths = []
    for i, shape in enumerate([(13, 12, 9), (10, 12, 8)]):  # the first needs cropping to even sizes
        path = tmp_path / f"hr{i}.nii.gz"
        nib.save(nib.Nifti1Image(synthetic_hr(shape, i), AFFINE), str(path))
        paths.append(path)
    return paths


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_weights(tmp_path / "tiny.pt", create_model("volumenet", depth=2, channels=4), modality="mri")


@pytest.fixture
def no_bundled(monkeypatch):
    monkeypatch.setattr(weights_module, "list_bundled", lambda: [])
    monkeypatch.setattr(evaluate_module, "list_bundled", lambda: [])


RUN = dict(degradation=Degradation.resize(2), modality="mri", options=RunOptions(tile=0, device="cpu", precision="fp32"))


def test_rows_have_finite_metrics(volumes, tiny_weights):
    seen = []
    rows = evaluate(volumes, [str(tiny_weights)], progress=lambda label, done, total: seen.append(label), **RUN)
    assert [(Path(r["volume"]).name, r["architecture"]) for r in rows] == [
        ("hr0.nii.gz", "tricubic"), ("hr0.nii.gz", "volumenet"),
        ("hr1.nii.gz", "tricubic"), ("hr1.nii.gz", "volumenet"),
    ]
    for row in rows:
        assert all(math.isfinite(row[k]) for k in METRICS)
        assert -1 <= row["ssim"] <= 1 and row["seconds"] >= 0
    assert rows[0]["hr_shape"] == [12, 12, 8] and rows[0]["lr_shape"] == [6, 6, 4]
    assert rows[0]["params"] == 0
    assert rows[1]["params"] == count_parameters(create_model("volumenet", depth=2, channels=4))
    assert rows[1]["weights"] == str(tiny_weights)
    # one call per volume for tricubic, one per block of the network's one window (D2: 3 blocks)
    assert len(seen) == 2 * (1 + 3)


def test_tricubic_row_is_the_protocol_exactly(volumes):
    rows = evaluate(volumes, [], **RUN)
    assert len(rows) == 2
    for path, row in zip(volumes, rows):
        hr = read_volume(path).data
        crop = crop_to_multiple(hr, 2)
        expected = compute_metrics(crop, tricubic_upsample_numpy(degrade(hr, 2), 2), border=(2, 2, 2))
        assert {k: row[k] for k in METRICS} == expected


def test_summary_means_are_the_means(volumes, tiny_weights):
    rows = evaluate(volumes, [str(tiny_weights)], **RUN)
    summary = summarize(rows)
    assert [s["model"] for s in summary] == [rows[0]["model"], rows[1]["model"]]
    for s in summary:
        group = [r for r in rows if r["model"] == s["model"]]
        assert s["volumes"] == 2
        for key in (*METRICS, "seconds"):
            assert s[key] == pytest.approx(np.mean([r[key] for r in group]), rel=1e-12)
    table = format_table(summary).splitlines()
    assert table[0].startswith("| model | RMSE | PSNR")
    assert table[2].startswith("| tricubic |") and table[3].startswith("| volumenet (tiny.pt) |")
    report = to_json(rows, summary, scale=[2, 2, 2])
    assert len(report["rows"]) == 4 and report["summary"] == summary


def test_anisotropic_scale(volumes):
    rows = evaluate(volumes[:1], [], **{**RUN, "degradation": Degradation.resize((1, 1, 2))})
    assert rows[0]["lr_shape"] == [13, 12, 4] and rows[0]["scale"] == [1, 1, 2]


def test_specs_are_checked_before_work(volumes, tiny_weights, no_bundled, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a volume was read before the model specs were checked")

    monkeypatch.setattr(evaluate_module, "read_volume", fail)
    with pytest.raises(WeightsError, match="no bundled weights"):
        evaluate(volumes, ["volumenet"], **RUN)
    with pytest.raises(WeightsError, match="neither a weights file"):
        evaluate(volumes, ["nonsense"], **RUN)
    with pytest.raises(WeightsError, match="trained on 'mri'"):
        evaluate(volumes, [str(tiny_weights)], **{**RUN, "modality": "ct"})
    with pytest.raises(WeightsError, match="scale"):
        evaluate(volumes, [str(tiny_weights)], **{**RUN, "degradation": Degradation.resize((1, 1, 2))})
    assert resolve_method("tricubic", scale=(2, 2, 2), modality="mri").label == "tricubic"


def test_block_comparison_weights_are_evaluated_only_when_named(monkeypatch):
    from napari_volumenet.weights import BundledWeights

    bundled = [BundledWeights("default", "a.pt", "volumenet", "mri", (2, 2, 2), "", default=True),
               BundledWeights("compare-cpd", "b.pt", "parallelnet", "mri", (2, 2, 2), "", comparison=True),
               BundledWeights("ct", "c.pt", "volumenet", "ct", (2, 2, 2), "", default=True)]
    monkeypatch.setattr(evaluate_module, "list_bundled", lambda: bundled)
    assert evaluate_module.default_methods("mri", 2) == ["default"]


def test_thick_slices_run_through_plane_networks_along_the_slice_axis(volumes, tmp_path):
    from napari_volumenet.inference import upscale
    from napari_volumenet.ops.degrade import thick_slices

    torch.manual_seed(1)
    network = create_model("volumenet", depth=2, channels=4, scale=(1, 1, 2))
    weights = save_weights(tmp_path / "thick.pt", network, modality="mri")
    degradation = Degradation.thick(axis=0, factor=2)
    rows = evaluate(volumes[:1], [str(weights)], **{**RUN, "degradation": degradation})
    assert [r["architecture"] for r in rows] == ["tricubic", "volumenet"]
    assert rows[0]["scale"] == [2, 1, 1] and rows[0]["lr_shape"] == [6, 12, 9]
    hr = crop_to_multiple(read_volume(volumes[0]).data, (2, 1, 1))
    lr = thick_slices(hr, 0, 2)
    cubic = tricubic_upsample_numpy(lr, (2, 1, 1))
    assert rows[0]["psnr"] == pytest.approx(compute_metrics(hr, cubic, border=(2, 1, 1))["psnr"], abs=1e-4)
    from napari_volumenet.ops.normalize import fit_normalization

    moved = upscale(np.transpose(lr, (1, 2, 0)), network, normalization=fit_normalization(lr, "mri"), tile=0,
                    device="cpu", precision="fp32")
    expected = compute_metrics(hr, np.transpose(moved, (2, 0, 1)), border=(2, 1, 1))
    assert rows[1]["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    with pytest.raises(WeightsError, match="upscales by"):
        evaluate(volumes[:1], [str(tiny_weights_of(tmp_path))], **{**RUN, "degradation": degradation})


def tiny_weights_of(tmp_path: Path) -> Path:
    return save_weights(tmp_path / "iso.pt", create_model("volumenet", depth=2, channels=4), modality="mri")


def test_a_network_cache_builds_each_file_version_once(tmp_path, tiny_weights, monkeypatch):
    cache = NetworkCache()
    first, _, _ = load_methods([Method("SR", tiny_weights)], cache=cache)
    again, _, _ = load_methods([Method("SR again", tiny_weights)], cache=cache)
    assert again[0].network is first[0].network and again[0].label == "SR again"
    save_weights(tiny_weights, create_model("volumenet", depth=2, channels=4), modality="mri")  # written anew
    os.utime(tiny_weights, ns=(0, tiny_weights.stat().st_mtime_ns + 1))
    fresh, _, _ = load_methods([Method("SR", tiny_weights)], cache=cache)
    assert fresh[0].network is not first[0].network
    monkeypatch.setattr(NetworkCache, "capacity", 1)
    other = save_weights(tmp_path / "other.pt", create_model("volumenet", depth=2, channels=4), modality="mri")
    load_methods([Method("other", other)], cache=cache)
    assert load_methods([Method("SR", tiny_weights)], cache=cache)[0][0].network is not fresh[0].network
    assert load_methods([Method("SR", tiny_weights)])[0][0].network is not fresh[0].network  # no cache: built
