"""The layers a run adds (no Qt): names, grids, difference maps and provenance."""

from __future__ import annotations

import numpy as np
import pytest

from napari_volumenet._geometry import METADATA_KEY, LayerGeometry, to_view
from napari_volumenet._pipeline import RunRequest, run_steps, run_sync
from napari_volumenet._result_layers import DIFF_COLORMAP, RunContext, result_layers
from napari_volumenet._sample_data import make_phantom
from napari_volumenet.inference import RunOptions

FP32_CPU = RunOptions(device="cpu", precision="fp32", tile=0)


@pytest.mark.parametrize("visible", [False, True])
def test_simulated_thick_slices_are_laid_on_their_grids(visible):
    geometry = LayerGeometry.from_affine(np.diag([0.5, 0.5, 1.0, 1.0]), path="head.nii.gz")
    hr = make_phantom((24, 20, 16))
    request = RunRequest("simulate", ornt=geometry.ornt, modality="mri", thick_slices=(2, 4), options=FP32_CPU)
    result = run_sync(run_steps(to_view(hr, geometry.ornt), [], request))
    context = RunContext("head", geometry, "simulate", None, False, (0.0, 1.0))

    layers = result_layers(context, result, differences_visible=visible)

    assert layers.lr is not None and layers.lr.name == layers.lr_name == "LR ×4 axis 0 (sim.)"
    view = to_view(hr, geometry.ornt)  # napari's view order: the slice axis (stored axis 2) comes first
    assert layers.lr.kwargs["scale"] == (4.0, 0.5, 0.5) and layers.lr.data.shape == (4, *view.shape[1:])
    [tricubic] = layers.outputs
    assert tricubic.name == "tricubic" and tricubic.data.shape == view.shape
    hr_grid = geometry.layer_kwargs(hr.shape)  # the SR lies on the input's grid again, voxel for voxel
    assert tricubic.kwargs["scale"] == hr_grid["scale"]
    np.testing.assert_allclose(tricubic.kwargs["translate"], hr_grid["translate"], atol=1e-9)
    [difference] = layers.differences
    assert difference.name == "|tricubic − GT|" and difference.kwargs["colormap"] == DIFF_COLORMAP
    assert difference.kwargs["visible"] is visible and difference.kwargs["contrast_limits"] == result.diff_limits
    saved = tricubic.kwargs["metadata"][METADATA_KEY]
    assert saved["made_by"] == "widget" and saved["role"] == "tricubic"
    assert saved["sidecar"]["scale"] == [1, 1, 4] and saved["sidecar"]["mode"] == "simulate"
    assert saved["sidecar"]["input"] == "head.nii.gz" and saved["description"].endswith("tricubic x1x1x4")


def test_upscale_mode_adds_no_lr_layer_and_names_the_input():
    geometry = LayerGeometry.from_affine(np.eye(4))
    lr = make_phantom((10, 12, 8))
    result = run_sync(run_steps(lr, [], RunRequest(ornt=geometry.ornt, modality="mri", scale=2, options=FP32_CPU)))
    layers = result_layers(RunContext("scan", geometry, "upscale", None, False, (0.0, 1.0)), result,
                           differences_visible=False)
    assert layers.lr is None and layers.lr_name == "scan" and layers.differences == []
    assert [new.name for new in layers.outputs] == ["tricubic"] and layers.outputs[0].kwargs["scale"] == (0.5,) * 3
