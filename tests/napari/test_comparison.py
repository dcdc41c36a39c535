"""The widget's arithmetic without Qt: layer choice, grid layout, metric rows, crops, tile plans.

The slice and region in voxel indices are tested in ``test_view.py``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from napari_volumenet._comparison import (
    LayerInfo, block_candidates, choose_layers, comparison_weights, crops, factors_between, grid_order, grid_shape, metric_rows,
    same_layer,
)
from napari_volumenet.inference import RunOptions
from napari_volumenet._pipeline import MIN_STEPS, ModelSpec, RunRequest, progress_tile, run_steps, run_sync
from napari_volumenet._sample_data import make_phantom
from napari_volumenet.models import create_model
from napari_volumenet.ops.degrade import degrade
from napari_volumenet.ops.metrics import compute_metrics

HR = LayerInfo("hr", (96, 96, 80), "hr", "p")
LR = LayerInfo("lr", (48, 48, 40), "lr", "p")


def test_factors_between_allows_the_crop_remainder():
    assert factors_between((48, 48, 40), (96, 97, 80)) == (2, 2, 2)
    assert factors_between((48, 48, 40), (48, 48, 40)) is None
    assert factors_between((48, 48, 40), (96, 96)) is None


def test_sample_pair_whatever_the_order():
    for layers in ([HR], [HR, LR], [LR, HR]):
        expected = ("lr", "hr") if len(layers) == 2 else ("hr", None)
        assert choose_layers(layers, None, None) == expected
    # a choice made while only the HR layer existed is not kept once the pair is complete
    assert choose_layers([HR, LR], "hr", None) == ("lr", "hr")


def test_plain_volumes_the_coarser_is_the_input_and_never_twice():
    fine, coarse = LayerInfo("a", (64, 64, 64)), LayerInfo("b", (32, 32, 32))
    assert choose_layers([fine, coarse], None, None) == ("b", "a")
    assert choose_layers([coarse, fine], None, None) == ("b", "a")
    # the user's choices are kept; a ground truth equal to the input is not
    assert choose_layers([fine, coarse], "a", None, input_fixed=True) == ("a", None)
    assert choose_layers([fine, coarse], "b", "b", input_fixed=True, truth_fixed=True) == ("b", "a")
    assert choose_layers([fine, coarse], "b", None, truth_fixed=True) == ("b", None)  # "(none)" chosen
    # outputs of a run are never picked automatically
    out = LayerInfo("SR", (96, 96, 80), "sr")
    assert choose_layers([LR, out], None, None) == ("lr", None)


def test_same_layer_compares_names_and_data():
    data = np.zeros(3)
    assert same_layer(SimpleNamespace(name="x", data=np.ones(2)), SimpleNamespace(name="x", data=data))
    assert same_layer(SimpleNamespace(name="x", data=data), SimpleNamespace(name="y", data=data))
    assert not same_layer(SimpleNamespace(name="x", data=data), SimpleNamespace(name="y", data=data.copy()))
    assert not same_layer(None, SimpleNamespace(name="x", data=data))


def test_grid_order_and_shape():
    order = grid_order("GT", ["tricubic", "SR a", "SR b"], "LR", ["|SR a − GT|", "|tricubic − GT|"])
    assert order == ["GT", "tricubic", "SR a", "SR b", "LR", "|tricubic − GT|", "|SR a − GT|"]
    assert grid_order(None, ["tricubic"], "LR", []) == ["tricubic", "LR"]
    assert grid_shape(6, (900, 600), (100, 100)) == (2, 3)  # wide canvas, square images
    assert grid_shape(6, (400, 900), (100, 100)) == (3, 2)
    assert grid_shape(1, (900, 600), (100, 100)) == (1, 1)


def test_metric_rows_region_first_with_the_gain_over_tricubic(tiny_weights):
    hr = make_phantom((32, 32, 24))
    lr = degrade(hr, 2)
    specs = [ModelSpec("SR", tiny_weights), ModelSpec("random", None, "volumenet", {"depth": 1, "channels": 4})]
    options = RunOptions(device="cpu", precision="fp32", tile=0)
    result = run_sync(run_steps(lr, specs, RunRequest(ground_truth=hr, options=options)))
    assert result.output("random").metrics is None and result.output("random").difference is None
    region = (slice(4, 12), slice(6, 20))
    rows = metric_rows(result, ["tricubic", "SR", "random"], (0, 10), region)
    assert [(r["output"], r["scope"]) for r in rows] == [
        ("tricubic", "region 8×14"), ("SR", "region 8×14"), ("tricubic", "slice 10"), ("SR", "slice 10"),
        ("tricubic", "volume"), ("SR", "volume")]  # the speed-only network has no rows
    rng = result.value_range
    expected = compute_metrics(hr[10], result.output("SR").data[10], value_range=rng, region=region)
    assert {k: rows[1][k] for k in expected} == expected
    assert rows[0]["gain"] is None and rows[1]["gain"] == rows[1]["psnr"] - rows[0]["psnr"]
    shown = crops(result, ["tricubic", "SR"], (0, 10), region, (slice(2, 6), slice(3, 10)))
    assert [c.title for c in shown] == ["GT", "LR", "tricubic", "SR"]
    assert shown[0].data.shape == (8, 14) and shown[1].data.shape == (4, 7)
    np.testing.assert_array_equal(shown[1].data, lr[5][2:6, 3:10])  # HR slice 10 lies in LR slice 5


def test_progress_tiles_for_the_issue_volume():
    model = create_model("volumenet")  # D9C32: receptive field 11
    cores = progress_tile((125, 125, 75), model)
    tiles = math.prod(math.ceil(n / c) for n, c in zip((125, 125, 75), cores))
    windows = [c + 2 * model.receptive_field for c in cores]
    assert tiles >= MIN_STEPS >= 10
    assert math.prod(windows) * 32 * 4 <= 32 * 2**20  # every feature map stays below glibc's mmap threshold
    assert min(cores) >= 2 * model.receptive_field
    # a volume too small for 12 such tiles gets as many as it holds; a memory bound is respected
    assert progress_tile((20, 20, 20), model) == (20, 20, 20)
    small = progress_tile((125, 125, 75), model, max_window=40**3)
    assert math.prod(c + 22 for c in small) <= 40**3


def test_comparison_weights_one_per_block_of_one_modality():
    def entry(name, block, modality="mri", comparison=False, model="volumenet"):
        return SimpleNamespace(name=name, block=block, modality=modality, scale=(2, 2, 2), model=model,
                               comparison=comparison)

    bundled = [entry("ct", "queue", "ct"), entry("mri", "queue"), entry("srcnn", "conv", model="srcnn3d")]
    assert {k: v.name for k, v in comparison_weights(bundled, lambda e: e.block).items()} == {"queue": "mri"}
    flagged = bundled + [entry("c1", "conv", comparison=True), entry("c2", "lwv1", comparison=True)]
    assert {k: v.name for k, v in comparison_weights(flagged, lambda e: e.block).items()} == {
        "conv": "c1", "lwv1": "c2"}
    assert comparison_weights([], lambda e: e.block) == {}


def test_block_candidates_named_block_first_by_what_their_weights_hold():
    from napari_volumenet.weights import BundledWeights

    def entry(name, model, kwargs, val, steps=60):
        return BundledWeights(name, f"{name}.pt", model, "mri", (2, 2, 2), "", comparison=True, val_psnr=val,
                              tricubic_val_psnr=30.0, steps=steps, model_kwargs=kwargs)

    bundled = [entry("q", "volumenet", {"depth": 9, "channels": 32, "block": "queue"}, 31.25, 1200),
               entry("x", "parallelnet", {"depth": 9, "channels": 16, "block": "xception"}, 29.5)]
    rows = block_candidates(bundled, ["conv", "xception", "queue"])
    by_name = {r.name: r for r in rows}
    assert list(by_name) == ["conv · ParallelNet", "xception · ParallelNet D9C16", "queue · VolumeNet D9C32",
                             "3D SRCNN", "DCSRN", "mDCSRN"]
    queue, xception = by_name["queue · VolumeNet D9C32"], by_name["xception · ParallelNet D9C16"]
    assert queue.checked and queue.weights.name == "q.pt" and not queue.below_tricubic
    assert queue.note == "1,200 steps · val 31.25 dB (+1.25 over tricubic)"
    assert xception.below_tricubic and xception.note.endswith("NOT better than tricubic")  # marked
    assert not by_name["conv · ParallelNet"].checked and by_name["conv · ParallelNet"].weights is None
    assert not by_name["3D SRCNN"].checked
