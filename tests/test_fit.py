"""The fit to one scan (napari_volumenet.fit): slice profile, plane pairs, the loop, what is kept, the metadata."""

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_volumenet.errors import InputError, WeightsError
from napari_volumenet.fit import FitSettings, prepare, run, slice_profile_of
from napari_volumenet.fit.pairs import PlanePairs
from napari_volumenet.io.volume import Slab
from napari_volumenet.models.planenet import PlaneNet
from napari_volumenet.ops.degrade import thick_slices
from napari_volumenet.slices import choose
from napari_volumenet.weights import load_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def head(shape=(32, 28, 40), seed=0) -> np.ndarray:
    """A smooth bright ellipsoid with texture on a dark background, ~1 mm isotropic, float32."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    inside = sum(g**2 for g in grid) < 0.8
    texture = np.sin(7 * grid[0] + 3 * grid[2]) * np.cos(5 * grid[1] - 4 * grid[2])
    return (inside * (100 + 30 * texture) + rng.normal(0, 2, shape)).astype(np.float32).clip(0)


def drain(steps):
    """Run a fit generator to its end: (updates, returned value)."""
    updates = []
    while True:
        try:
            updates.append(next(steps))
        except StopIteration as finished:
            return updates, finished.value


def test_profile_from_spacing_option_and_header():
    plain = slice_profile_of((1, 1, 4))
    assert (plain.axis, plain.factor, plain.gap, plain.source) == (2, 4, 0.0, "spacing")
    gap = slice_profile_of((5, 1, 1), thickness_mm=4)
    assert (gap.axis, gap.factor, gap.gap, gap.source) == (0, 5, 1.0, "--slice-thickness")  # the grid of the header
    dicom = slice_profile_of((0.9, 4.8, 0.9), slab=Slab(axis=1, thickness=4.0, spacing=4.8))
    # the slab, 4 / 0.9 = 4.4, makes ×4 (spacing alone, 4.8 / 0.9 = 5.3, would ask for ×5): the factor upscale chooses
    assert (dicom.axis, dicom.factor, dicom.source) == (1, 4, "header")
    assert dicom.factor == choose((0.9, 4.8, 0.9), slab=Slab(axis=1, thickness=4.0, spacing=4.8)).network_scale[2]
    assert dicom.gap == pytest.approx(4 * 0.8 / 4.8)
    forced = slice_profile_of((1.15, 1.15, 4), factor=4)  # 4 / 1.15 rounds to 3; the user knows the grid
    assert (forced.factor, forced.gap) == (4, 0.0) and slice_profile_of((1.15, 1.15, 4)).factor == 3


@pytest.mark.parametrize(("zooms", "thickness", "match"), [((1, 1, 1.2), None, "near-isotropic"),
                                                             ((1, 1, 4), 5, "does not fit"),
                                                             ((1, 1, 4), 0, "does not fit")])
def test_profile_refuses_what_cannot_be_fitted(zooms, thickness, match):
    with pytest.raises(InputError, match=match):
        slice_profile_of(zooms, thickness_mm=thickness)
    with pytest.raises(InputError, match="factor"):
        slice_profile_of((1, 1, 4), factor=99)


def test_pairs_are_the_sharp_planes_made_thick_with_the_slice_profile():
    volume = head((24, 20, 10))
    profile = slice_profile_of((1, 1, 3), thickness_mm=2, factor=3)  # ×3, a 1/3 gap
    pairs = PlanePairs(volume, profile)
    along_y = pairs.directions[0]  # in-plane axis 0 made thick: planes (Z, A=Y, B=X)
    np.testing.assert_allclose(along_y.lr, thick_slices(volume, 0, 3, 1.0).transpose(2, 1, 0), rtol=1e-6)
    np.testing.assert_array_equal(along_y.hr, volume.transpose(2, 1, 0))
    assert set(pairs.val_planes).isdisjoint(pairs.train_planes)
    assert len(pairs.val_planes) >= 1 and len(pairs.train_planes) + len(pairs.val_planes) == 10
    lr, hr = pairs.batch(np.random.default_rng(0), 5, (8, 4))
    assert lr.shape == (5, 1, 8, 1, 4) and hr.shape == (5, 1, 8, 1, 12)
    val_lr, val_hr = pairs.validation()
    assert tuple(val_lr.shape[2:]) in {(20, 1, 8), (24, 1, 6)}  # whole held-back planes of one direction
    assert val_hr.shape[2:] == (val_lr.shape[2], 1, 3 * val_lr.shape[4])


def thick_scan(factor=4) -> tuple[np.ndarray, tuple[float, float, float]]:
    return thick_slices(head(), 2, factor), (1.0, 1.0, float(factor))


def test_a_fit_from_bundled_weights_trains_and_says_what_it_kept(tmp_path):
    data, zooms = thick_scan()
    job = prepare(data, zooms, source="head")
    assert job.start.bundled is not None and job.start.label == "bundled volumenet-d9c16-mri-slices-x4"
    updates, fitted = drain(run(job, FitSettings(max_steps=3, batch=2, patch_hr=16, validations=3)))
    assert [u.step for u in updates] == [1, 2, 3] and updates[-1].fraction == 1.0
    fit = fitted.fit
    assert fit["steps"] == 3 and fit["factor"] == 4 and fit["axis"] == 2 and fit["source"] == "head"
    assert fit["profile"]["source"] == "spacing"
    v = fit["self_validation"]
    assert v["fitted"] >= v["start"] and np.isfinite(v["cubic"])
    if fitted.kept == "fitted":
        assert isinstance(fitted.network, PlaneNet) and v["fitted"] > v["start"]
    network, meta = load_weights(fitted.save(tmp_path / "fit.pt"))
    assert meta["fit"] == fit and meta["val_psnr"] == v["fitted"]
    assert tuple(network.scale) == (1, 1, 4)


def test_a_fit_that_does_not_beat_the_bundled_weights_keeps_them():
    data, zooms = thick_scan()
    job = prepare(data, zooms, source="head")
    _, fitted = drain(run(job, FitSettings(max_steps=2, batch=2, patch_hr=16, lr=1e-12, warmup=0, validations=2)))
    assert fitted.kept == "bundled" and fitted.network is job.start.bundled
    assert "keeping the bundled weights" in fitted.summary()


def test_a_fit_starts_from_given_weights_and_keeps_them_where_it_does_not_beat_them(tmp_path):
    data, zooms = thick_scan(factor=5)  # no bundled weights for ×5: alone, a fit would start from least squares
    first = drain(run(prepare(data, zooms, source="head"), FitSettings(max_steps=2, batch=2, patch_hr=20)))[1]
    earlier = first.save(tmp_path / "earlier.pt")
    job = prepare(data, zooms, source="head", weights=earlier)
    assert job.start.label == "weights earlier" and job.start.keep_margin_db == 0.0
    assert isinstance(job.start.bundled, PlaneNet) and job.start.plane is not job.start.bundled
    for key, value in load_weights(earlier)[0].state_dict().items():
        assert torch.equal(job.start.plane.state_dict()[key], value), key
    settings = FitSettings(max_steps=2, batch=2, patch_hr=20, lr=1e-12, warmup=0, validations=2)
    _, fitted = drain(run(job, settings))
    assert fitted.kept == "bundled" and fitted.network is job.start.bundled
    assert "keeping the weights it started from" in fitted.summary()
    bundled_x4 = prepare(*thick_scan(factor=4), source="head").start.weights
    three_d = prepare(*thick_scan(factor=4), source="head", weights=bundled_x4).start  # a 3D through-plane start
    assert three_d.keep_margin_db > 0 and not isinstance(three_d.bundled, PlaneNet)
    with pytest.raises(InputError, match="for \\(1, 1, 5\\)"):
        prepare(data, zooms, source="head", weights=bundled_x4)


def test_patience_stops_a_fit_only_past_half_of_its_run():
    data, zooms = thick_scan()
    settings = FitSettings(max_steps=10, validations=10, patience=2, batch=1, patch_hr=16, lr=1e-12, warmup=0)
    _, fitted = drain(run(prepare(data, zooms, source="head"), settings))
    assert fitted.fit["steps"] == 5  # no improvement from step 1 on, but the first half always runs


def test_without_bundled_weights_the_fit_starts_from_least_squares():
    data, zooms = thick_scan(factor=5)  # no bundled ×5
    job = prepare(data * 10 - 1000, zooms, source="ct", modality="ct")
    assert job.start.bundled is None and job.start.label == "least-squares"
    _, fitted = drain(run(job, FitSettings(max_steps=2, batch=2, patch_hr=20, validations=1)))
    v = fitted.fit["self_validation"]
    assert v["start"] > v["cubic"]  # the least-squares head alone beats cubic on the held-back planes
    assert fitted.kept in ("fitted", "least-squares") and fitted.fit["modality"] == "ct"


def test_a_fit_serves_its_steps_from_the_heap(monkeypatch):
    """In the command line (heap kept, glibc's threshold stopped at 128 KiB) a step's tensors were mapped and
    faulted in afresh at every step: the fit settles the threshold before its first step."""
    from napari_volumenet.fit import loop

    calls = []
    monkeypatch.setattr(loop, "settle_mmap_threshold", lambda: calls.append(True))
    data, zooms = thick_scan()
    steps = run(prepare(data, zooms, source="head"), FitSettings(max_steps=1, batch=1, patch_hr=16))
    assert next(steps).step == 1 and calls == [True]
    steps.close()


def test_closing_the_generator_stops_between_steps():
    data, zooms = thick_scan()
    steps = run(prepare(data, zooms, source="head"), FitSettings(max_steps=1000, batch=1, patch_hr=16))
    assert next(steps).step == 1
    steps.close()
    with pytest.raises(StopIteration):
        next(steps)


def test_damaged_fit_metadata_is_refused(tmp_path):
    data, zooms = thick_scan()
    _, fitted = drain(run(prepare(data, zooms, source="head"), FitSettings(max_steps=1, batch=1, patch_hr=16)))
    path = fitted.save(tmp_path / "fit.pt")
    payload = torch.load(path, weights_only=True)
    for bad in ({"steps": "many"}, {"axis": 7}, {"self_validation": {"cubic": float("nan"), "start": 1, "fitted": 1}}):
        payload["metadata"]["fit"] = {**fitted.fit, **bad}
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(WeightsError, match="fit"):
            load_weights(tmp_path / "bad.pt")
    assert Path(path).is_file()
