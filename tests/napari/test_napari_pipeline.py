"""The widget's work, run synchronously: same numbers as the library, cancel, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_volumenet._geometry import from_view, to_view, view_ornt
from napari_volumenet.inference import RunOptions
from napari_volumenet._comparison import slice_metrics
from napari_volumenet._pipeline import ModelSpec, RunRequest, Step, run_steps, run_sync
from napari_volumenet._sample_data import make_phantom
from napari_volumenet.errors import InputError, VolumeNetError, WeightsError
from napari_volumenet.inference import progress_units, upscale
from napari_volumenet.models.fast import accelerate
from napari_volumenet.models import create_model
from napari_volumenet.ops.degrade import crop_to_multiple, degrade
from napari_volumenet.ops.interpolate import tricubic_upsample_numpy
from napari_volumenet.ops.metrics import compute_metrics
from napari_volumenet.ops.normalize import fit_normalization
from napari_volumenet.weights import load_weights, save_weights

# an LAS-stored volume, so the view differs from the stored order (permutation-free, one flip)
LAS = np.diag([-1.0, 1.0, 1.0, 1.0])

CPU = RunOptions(device="cpu")
FP32_CPU = RunOptions(device="cpu", precision="fp32", tile=0)


@pytest.fixture(scope="module")
def hr_stored() -> np.ndarray:
    return make_phantom((33, 40, 36))  # odd first axis: simulate mode must crop it


def test_simulate_matches_the_library(hr_stored, tiny_weights):
    ornt = view_ornt(LAS)
    steps: list[Step] = []
    result = run_sync(run_steps(to_view(hr_stored, ornt), [ModelSpec("SR", tiny_weights)], RunRequest(
        "simulate", ornt=ornt, options=RunOptions(tile=12, device="cpu", precision="fp32"))), steps.append)
    cropped = crop_to_multiple(hr_stored, 2)
    lr = degrade(hr_stored, 2)
    np.testing.assert_array_equal(from_view(result.lr, ornt), lr)
    np.testing.assert_array_equal(from_view(result.ground_truth, ornt), cropped)
    assert result.gt_cropped and result.scale == (2, 2, 2) and result.modality == "mri"
    # tricubic = the library's interpolation; SR = inference.upscale in the stored order (as the CLI)
    tri, sr = result.output("tricubic"), result.output("SR")
    np.testing.assert_allclose(from_view(tri.data, ornt), tricubic_upsample_numpy(lr, 2), atol=1e-4)
    model, _ = load_weights(tiny_weights)
    expected = upscale(lr, model, normalization=fit_normalization(lr, "mri"), tile=0, device="cpu",
                       precision="fp32")
    np.testing.assert_allclose(from_view(sr.data, ornt), expected, atol=1e-4, rtol=1e-5)  # fp32 noise, input units
    # metrics are compute_metrics on exactly the arrays the layers show
    gt = result.ground_truth
    for out in result.outputs:
        assert out.metrics == compute_metrics(gt, out.data)
        np.testing.assert_array_equal(out.difference, np.abs(out.data - gt))
    assert result.diff_limits[1] >= max(np.percentile(o.difference, 99.5) for o in result.outputs) - 1e-6
    # one Step per progress unit (each block of each window), for each output
    tiles = [s for s in steps if s.stage == "tiles"]
    assert sr.plan.tiles > 1
    assert tiles[-1].done == tiles[-1].total == sr.plan.tiles * progress_units(accelerate(model)) == len(
        [s for s in tiles if s.label == "SR"])
    assert {s.label for s in tiles} == {"tricubic", "SR"}
    # slice metrics use the whole GT range
    rng = (float(gt.min()), float(gt.max()))
    assert slice_metrics(gt, sr.data, 0, 5, rng) == compute_metrics(gt[5], sr.data[5], value_range=rng)


def test_upscale_mode_with_ground_truth_and_untrained_models(hr_stored):
    lr = degrade(hr_stored, 2)
    specs = [ModelSpec("A", None, "volumenet", {"depth": 1, "channels": 4, "block": "lwv1"}),
             ModelSpec("B", None, "srcnn3d")]
    result = run_sync(run_steps(lr, specs, RunRequest(ground_truth=hr_stored, scale=2, tricubic=False, options=CPU)))
    assert [o.label for o in result.outputs] == ["A", "B"]
    assert all(o.untrained and o.params > 0 and o.seconds > 0 for o in result.outputs)
    assert result.ground_truth.shape == (32, 40, 36)  # cropped to 2 × the LR shape
    again = run_sync(run_steps(lr, specs[:1], RunRequest(scale=2, tricubic=False, options=CPU)))
    np.testing.assert_array_equal(again.outputs[0].data, result.outputs[0].data)  # seeded: reproducible


def test_closing_the_generator_cancels_cleanly(hr_stored, tiny_weights):
    steps = run_steps(degrade(hr_stored, 2), [ModelSpec("SR", tiny_weights)],
                      RunRequest(options=RunOptions(tile=4, device="cpu"), tricubic=False))
    for step in steps:
        if step.stage == "tiles":
            break
    steps.close()  # what the worker's quit() leads to: no result, nothing left running
    with pytest.raises(StopIteration):
        next(steps)


def test_errors_are_volumenet_errors(tmp_path, hr_stored, tiny_weights):
    lr = degrade(hr_stored, 2)
    bad = tmp_path / "bad.pt"
    bad.write_text("not weights")
    with pytest.raises(WeightsError):
        run_sync(run_steps(lr, [ModelSpec("bad", bad)]))
    with pytest.raises(InputError):
        run_sync(run_steps(lr, [ModelSpec("SR", tiny_weights)], RunRequest(ground_truth=np.zeros((5, 5, 5)))))
    with pytest.raises(InputError):
        run_sync(run_steps(lr[0], [ModelSpec("SR", tiny_weights)]))
    nan = lr.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError):
        run_sync(run_steps(nan, [ModelSpec("SR", tiny_weights)]))
    torch.manual_seed(0)
    x3 = save_weights(tmp_path / "x3.pt", create_model("volumenet", depth=1, channels=4, scale=3), modality="mri")
    with pytest.raises(WeightsError, match="scale"):
        run_sync(run_steps(lr, [ModelSpec("a", tiny_weights), ModelSpec("b", Path(x3))]))
    with pytest.raises(WeightsError):
        run_sync(run_steps(lr, [ModelSpec("a", tiny_weights)], RunRequest(modality="ct")))
    with pytest.raises(VolumeNetError):
        run_sync(run_steps(lr, [ModelSpec("a", tiny_weights)], RunRequest(options=RunOptions(device="nonsense"))))
    with pytest.raises(InputError, match="Unknown mode"):
        RunRequest("resample")


def test_a_ct_under_mri_weights_is_flagged(tiny_weights):
    ct = np.full((16, 16, 12), -1000.0, np.float32)  # air in Hounsfield units
    ct[4:12, 4:12, 3:9] = 40.0
    result = run_sync(run_steps(ct, [ModelSpec("SR", tiny_weights)], RunRequest(options=FP32_CPU)))
    assert result.modality_warning and "CT" in result.modality_warning
    mri = run_sync(run_steps(np.abs(ct), [ModelSpec("SR", tiny_weights)], RunRequest(options=FP32_CPU)))
    assert mri.modality_warning is None
