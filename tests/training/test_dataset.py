"""Training data: subjects and split, degradation cache, aligned patches, background skipping, augmentation."""

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch.utils.data import DataLoader

from napari_volumenet.errors import InputError
from napari_volumenet.ops.degrade import degrade
from src_training.dataset import (
    DataFile,
    IndexRange,
    PatchDataset,
    allowed_permutations,
    find_files,
    load_pair,
    parse_group_weights,
    split_by_subject,
    subject_id,
)

S = (2, 2, 2)
P = (8, 8, 8)


def blobs(shape=(40, 40, 40), seed=0, box=None) -> np.ndarray:
    """Smooth random texture, non-zero only inside ``box`` (slices; default: the whole volume but a margin)."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.random(shape).astype(np.float32), 1.5)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 900 + 100
    mask = np.zeros(shape, bool)
    mask[box if box is not None else tuple(slice(4, n - 4) for n in shape)] = True
    return np.where(mask, texture, 0).astype(np.float32)


def save(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), str(path))
    return path


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory) -> Path:
    return save(tmp_path_factory.mktemp("vol") / "sub-01_T1w.nii.gz", blobs())


@pytest.fixture(scope="module")
def pair(volume_file):
    return load_pair(volume_file, scale=S, modality="mri", patch=P)


# ----------------------------------------------------------------------------- files and split


def test_subject_id():
    assert subject_id(Path("/d/sub-07/ses-1/anat/sub-07_ses-1_T1w.nii.gz")) == "sub-07"
    assert subject_id(Path("/d/ixi2mm_IXI012-HH-1211.nii.gz")) == "IXI012"
    assert subject_id(Path("/d/oasis-malf_1000.nii.gz")) == "oasis-malf_1000"
    assert subject_id(Path("/d/scan.nii")) == "scan"


def test_split_by_subject_is_deterministic_and_keeps_subjects_together():
    files = [DataFile(Path(f"/d/sub-{i:02d}_run-{r}.nii.gz"), 0, f"sub-{i:02d}") for i in range(20) for r in (1, 2)]
    train, val = split_by_subject(files, 0.1, seed=3)
    val_subjects = {f.subject for f in val}
    assert len(val_subjects) == 2 and len(val) == 4
    assert not val_subjects & {f.subject for f in train}
    assert {f.path for f in train} | {f.path for f in val} == {f.path for f in files}
    again = split_by_subject(list(reversed(files)), 0.1, seed=3)[1]
    assert {f.subject for f in again} == val_subjects
    other = {f.subject for f in split_by_subject(files, 0.1, seed=4)[1]}
    assert all(f.role == "val" for f in val) and all(f.role == "train" for f in train)
    assert len(other) == 2 and other != val_subjects  # another seed, other subjects (fixed seeds: no flakiness)


def test_split_needs_two_subjects():
    with pytest.raises(InputError, match="pass --val"):
        split_by_subject([DataFile(Path("/d/a.nii"), 0, "a")], 0.1, seed=0)


def test_group_weights():
    assert parse_group_weights(None, 2, [3, 1]) == [0.75, 0.25]
    assert parse_group_weights("7,3", 2, [1, 1]) == pytest.approx([0.7, 0.3])
    for bad, message in [("0.7", "1 value but 2"), ("a,b", "not a comma-separated"), ("-1,2", "non-negative"),
                         ("0,0", "positive sum")]:
        with pytest.raises(InputError, match=message):
            parse_group_weights(bad, 2, [1, 1])


def test_find_files_is_recursive_and_rejects_empty(tmp_path):
    save(tmp_path / "a" / "b" / "deep.nii.gz", blobs((16, 16, 16)))
    save(tmp_path / "top.nii", blobs((16, 16, 16)))
    names = [p.name for p in find_files(tmp_path)]
    assert sorted(names) == ["deep.nii.gz", "top.nii"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="--data"):
        find_files(tmp_path / "empty")


# ----------------------------------------------------------------------------- volumes


def test_pair_is_cropped_degraded_and_normalised_on_lr(tmp_path):
    data = blobs((41, 40, 43))
    pair = load_pair(save(tmp_path / "odd.nii.gz", data), scale=S, modality="mri", patch=P)
    assert pair.hr.shape == (40, 40, 42) and pair.lr.shape == (20, 20, 21)
    np.testing.assert_array_equal(pair.hr, data[:40, :40, :42])
    np.testing.assert_array_equal(pair.lr, degrade(data[:40, :40, :42], S))
    assert pair.normalization.high == pytest.approx(np.percentile(pair.lr, 99.9))  # what `upscale` sees
    assert len(pair.sha256) == 64 and len(allowed_permutations(S, P, pair.voxel_size)) == 6


def test_disk_cache_round_trip(tmp_path, volume_file):
    first = load_pair(volume_file, scale=S, modality="mri", patch=P, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    second = load_pair(volume_file, scale=S, modality="mri", patch=P, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.lr, second.lr)


@pytest.mark.parametrize(
    "data, message",
    [
        (blobs((30, 40, 40)), r"too small for one 32×32×32 HR patch"),
        (np.stack([blobs((40, 40, 40))] * 2, axis=-1), r"4D|3D"),
    ],
)
def test_unusable_volumes_are_refused(tmp_path, data, message):
    path = save(tmp_path / "bad.nii.gz", data)
    with pytest.raises(InputError, match=message):
        load_pair(path, scale=S, modality="mri", patch=(16, 16, 16))


# ----------------------------------------------------------------------------- patches


def test_lr_and_hr_patches_are_exactly_aligned(pair):
    dataset = PatchDataset([pair], patch=P, scale=S, augment=False, skip_background=False)
    norm = pair.normalization
    for k in range(5):
        patch = dataset.sample(k)
        i = patch.lr_index
        lr_region = tuple(slice(c, c + p) for c, p in zip(i, P))
        hr_region = tuple(slice(s * c, s * (c + p)) for c, s, p in zip(i, S, P))
        assert patch.lr.shape == P and patch.hr.shape == (16, 16, 16)
        np.testing.assert_array_equal(patch.lr, norm.apply(pair.lr[lr_region], clip=True))
        np.testing.assert_array_equal(patch.hr, norm.apply(pair.hr[hr_region], clip=True))
        # the LR patch is the degradation of the HR patch (away from the patch border, where the
        # degradation of the crop sees mirrored instead of real neighbours); one HR voxel off is not
        inner = (slice(2, -2),) * 3
        redone = norm.apply(degrade(pair.hr[hr_region], S))
        assert np.abs(redone[inner] - patch.lr[inner]).max() < 1e-3
        shifted = tuple(slice(r.start + 1, r.stop + 1) for r in hr_region)
        if all(r.stop <= n for r, n in zip(shifted, pair.hr.shape)):
            assert np.abs(norm.apply(degrade(pair.hr[shifted], S))[inner] - patch.lr[inner]).max() > 1e-2


def test_augmentation_transforms_lr_and_hr_alike(pair):
    plain = PatchDataset([pair], patch=P, scale=S, augment=False, skip_background=False)
    augmented = PatchDataset([pair], patch=P, scale=S, augment=True, skip_background=False)
    seen_flip = seen_perm = False
    for k in range(12):
        a, b = plain.sample(k), augmented.sample(k)
        assert a.lr_index == b.lr_index  # augmentation draws after the position
        assert 0.9 <= b.intensity <= 1.1
        undo_lr = b.lr / np.float32(b.intensity)
        undo_hr = b.hr / np.float32(b.intensity)
        inverse = tuple(np.argsort(b.permutation))
        undo_lr, undo_hr = undo_lr.transpose(inverse), undo_hr.transpose(inverse)
        axes = tuple(ax for ax in range(3) if b.flips[ax])
        if axes:
            undo_lr, undo_hr = np.flip(undo_lr, axes), np.flip(undo_hr, axes)
        np.testing.assert_allclose(undo_lr, a.lr, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(undo_hr, a.hr, rtol=1e-6, atol=1e-6)
        seen_flip |= any(b.flips)
        seen_perm |= b.permutation != (0, 1, 2)
    assert seen_flip and seen_perm


def test_axes_are_permuted_only_onto_axes_of_equal_scale_patch_and_voxel_size(tmp_path):
    assert allowed_permutations((2, 2, 2), (8, 8, 8), (1.0, 1.0, 1.05)) == list(itertools.permutations(range(3)))
    assert allowed_permutations((1, 1, 4), (32, 32, 12), (1.0, 1.0, 1.0)) == [(0, 1, 2), (1, 0, 2)]
    assert allowed_permutations((1, 1, 4), (32, 16, 12), (1.0, 1.0, 1.0)) == [(0, 1, 2)]
    assert allowed_permutations((2, 2, 2), (8, 8, 8), (0.9, 0.9, 1.2)) == [(0, 1, 2), (1, 0, 2)]
    thick = load_pair(save(tmp_path / "thick.nii.gz", blobs(), zooms=(1.0, 2.5, 2.5)), scale=S, modality="mri",
                      patch=P)
    dataset = PatchDataset([thick], patch=P, scale=S, skip_background=False)
    assert {dataset.sample(k).permutation for k in range(30)} == {(0, 1, 2), (0, 2, 1)}
    through_plane = load_pair(save(tmp_path / "iso.nii.gz", blobs()), scale=(1, 1, 2), modality="mri", patch=P)
    dataset = PatchDataset([through_plane], patch=P, scale=(1, 1, 2), skip_background=False)
    samples = [dataset.sample(k) for k in range(30)]
    assert {s.permutation for s in samples} == {(0, 1, 2), (1, 0, 2)}
    assert all(s.hr.shape == (8, 8, 16) for s in samples)


def test_background_is_skipped_most_of_the_time(tmp_path):
    # foreground only in one corner block: a uniform draw hits it rarely
    data = blobs((64, 64, 64), seed=5, box=(slice(0, 24), slice(0, 24), slice(0, 24)))
    pair = load_pair(save(tmp_path / "corner.nii.gz", data), scale=S, modality="mri", patch=P)
    n = 200
    uniform = PatchDataset([pair], patch=P, scale=S, skip_background=False, augment=False)
    skipping = PatchDataset([pair], patch=P, scale=S, augment=False)
    fraction_uniform = np.mean([uniform.sample(k).foreground >= 0.1 for k in range(n)])
    samples = [skipping.sample(k) for k in range(n)]
    assert fraction_uniform < 0.3
    assert np.mean([s.foreground >= 0.1 for s in samples]) > 0.8
    # the foreground positions are counted exactly: every patch drawn among them is foreground
    assert all(s.foreground >= 0.1 for s in samples if s.from_foreground)
    assert 0.8 < np.mean([s.from_foreground for s in samples]) < 0.97  # some background is still seen


def test_sampling_is_deterministic_per_index_and_rank(pair):
    a = PatchDataset([pair], patch=P, scale=S, seed=1)
    b = PatchDataset([pair], patch=P, scale=S, seed=1)
    other_rank = PatchDataset([pair], patch=P, scale=S, seed=1, rank=1)
    other_seed = PatchDataset([pair], patch=P, scale=S, seed=2)
    for k in (0, 7, 123456):
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1], b[k][1])
    assert not all(torch.equal(a[k][1], other_rank[k][1]) for k in range(4))
    assert not all(torch.equal(a[k][1], other_seed[k][1]) for k in range(4))


def test_worker_processes_give_the_same_batches(pair):
    dataset = PatchDataset([pair], patch=P, scale=S, seed=0)

    def batches(workers):
        loader = DataLoader(dataset, batch_size=4, sampler=IndexRange(8, 24), num_workers=workers)
        return [torch.cat([lr.flatten(), hr.flatten()]) for lr, hr in loader]

    single, multi = batches(0), batches(2)
    assert len(single) == 4
    for x, y in zip(single, multi):
        assert torch.equal(x, y)


def test_group_weights_steer_the_volume_choice(tmp_path):
    a = load_pair(save(tmp_path / "a.nii.gz", blobs(seed=1)), scale=S, modality="mri", patch=P, group=0)
    b = load_pair(save(tmp_path / "b.nii.gz", blobs(seed=2)), scale=S, modality="mri", patch=P, group=1)
    dataset = PatchDataset([a, b], patch=P, scale=S, group_weights=[0.9, 0.1], skip_background=False)
    share = np.mean([dataset.sample(k).volume == 0 for k in range(300)])
    assert 0.8 < share < 0.97


def test_foreground_positions_match_a_brute_force_count(tmp_path):
    from src_training.dataset import foreground_corners

    data = blobs((32, 32, 36), seed=9, box=(slice(3, 20), slice(10, 30), slice(0, 14)))
    pair = load_pair(save(tmp_path / "fg.nii.gz", data), scale=S, modality="mri", patch=(4, 4, 4))
    patch = (4, 3, 5)
    grid = tuple(n - p + 1 for n, p in zip(pair.lr.shape, patch))
    expected = []
    for flat in range(int(np.prod(grid))):
        c = np.unravel_index(flat, grid)
        hr = pair.hr[tuple(slice(2 * i, 2 * (i + p)) for i, p in zip(c, patch))]
        if np.count_nonzero(hr > pair.foreground_level) >= 0.1 * hr.size:
            expected.append(flat)
    found = foreground_corners(pair, patch, S)
    assert 0 < len(expected) < np.prod(grid)
    np.testing.assert_array_equal(found, expected)


def test_margin_adds_context_and_keeps_the_centre_aligned(tmp_path):
    """With a margin the LR patch grows by 2·margin around the patch; the HR target is the patch's own
    HR region; past the volume's edge the context is the half-sample mirror (as inference extends it)."""
    import nibabel as nib

    from src_training.dataset import PatchDataset, load_pair

    rng = np.random.default_rng(0)
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(rng.random((40, 36, 32)).astype(np.float32) * 100 + 10, np.eye(4)), str(path))
    pair = load_pair(path, scale=(2, 2, 2), modality="mri", patch=(8, 8, 8), group=0, subject="v")
    dataset = PatchDataset([pair], patch=(6, 6, 6), scale=(2, 2, 2), margin=2, augment=False, skip_background=False)
    norm = pair.normalization
    for index in range(40):
        patch = dataset.sample(index)
        assert patch.lr.shape == (10, 10, 10) and patch.hr.shape == (12, 12, 12)
        z, y, x = patch.lr_index
        np.testing.assert_allclose(patch.hr, norm.apply(pair.hr[2 * z:2 * z + 12, 2 * y:2 * y + 12, 2 * x:2 * x + 12],
                                                        clip=True), rtol=1e-6)
        padded = np.pad(norm.apply(pair.lr, clip=True), 2, mode="symmetric")
        np.testing.assert_allclose(patch.lr, padded[z:z + 10, y:y + 10, x:x + 10], rtol=1e-6)
    corners = np.array([dataset.sample(i).lr_index for i in range(400)])
    assert corners.min() == 0  # patches reach the volume's edge, where the margin is mirrored


def test_edge_cut_mirrors_the_patch_into_whole_margins_and_changes_nothing_else(tmp_path):
    """``edge_cut``: some sides' margins become the mirror of the patch about that side (a scan's edge
    with anatomy beyond it, as inference extends it); the patch itself, the other margins and the HR
    target are untouched."""
    import nibabel as nib

    from src_training.dataset import PatchDataset, load_pair

    rng = np.random.default_rng(1)
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(rng.random((40, 36, 32)).astype(np.float32) * 100 + 10, np.eye(4)), str(path))
    pair = load_pair(path, scale=(2, 2, 2), modality="mri", patch=(8, 8, 8), group=0, subject="v")
    common = dict(patch=(6, 6, 6), scale=(2, 2, 2), margin=2, augment=False, skip_background=False, seed=3)
    plain = PatchDataset([pair], **common)
    cut = PatchDataset([pair], edge_cut=0.3, **common)
    counts = []
    for index in range(60):
        expected, got = plain.sample(index), cut.sample(index)
        np.testing.assert_array_equal(got.hr, expected.hr)
        keep = np.ones_like(expected.lr, dtype=bool)
        for side in got.cut_sides:
            index_ = [slice(None)] * 3
            index_[side // 2] = slice(None, 2) if side % 2 == 0 else slice(-2, None)
            keep[tuple(index_)] = False
        np.testing.assert_array_equal(got.lr[keep], expected.lr[keep])
        for side in got.cut_sides:
            lr = np.moveaxis(got.lr, side // 2, 0)
            margin, inside = (lr[:2], lr[2:4]) if side % 2 == 0 else (lr[-2:], lr[-4:-2])
            np.testing.assert_array_equal(margin, inside[::-1])
        counts.append(len(got.cut_sides))
    assert 0.5 < np.mean(counts) / 6 / 0.3 < 1.5  # about edge_cut of the sides
    assert plain.sample(0).cut_sides == ()
    with pytest.raises(ValueError):
        PatchDataset([pair], edge_cut=1.5, **common)
    with pytest.raises(InputError, match="--margin"):
        PatchDataset([pair], edge_cut=0.1, **{**common, "margin": 7})


# ----------------------------------------------------------------------------- thick slices


def test_thick_slice_pairs_put_each_volume_axis_through_plane(tmp_path):
    from napari_volumenet.ops.degrade import thick_slices
    from src_training.dataset import load_thick_slice_pairs

    data = blobs((24, 32, 40))
    path = save(tmp_path / "aniso.nii.gz", data, zooms=(1.0, 1.1, 1.2))
    pairs = load_thick_slice_pairs(path, factor=4, modality="mri", patch=(4, 4, 4))
    assert [p.slice_axis for p in pairs] == [0, 1, 2]
    for axis, pair in zip((0, 1, 2), pairs):
        order = [a for a in range(3) if a != axis] + [axis]
        np.testing.assert_array_equal(pair.hr, data.transpose(order))  # every axis length is a multiple of 4
        np.testing.assert_allclose(pair.lr, thick_slices(data, axis, 4).transpose(order), rtol=1e-6)
        assert pair.voxel_size == pytest.approx([(1.0, 1.1, 1.2)[a] for a in order])
        assert np.shares_memory(pair.hr, pairs[0].hr)  # views of one copy
        assert pair.describe()["slice_axis"] == axis
    dataset = PatchDataset(pairs, patch=(4, 4, 3), scale=(1, 1, 4), margin=2, skip_background=False)
    lr, hr = dataset[0]
    assert lr.shape == (1, 8, 8, 7) and hr.shape == (1, 4, 4, 12)


def test_thick_slice_pairs_refuse_a_volume_too_thin(tmp_path):
    from src_training.dataset import load_thick_slice_pairs

    path = save(tmp_path / "thin.nii.gz", blobs((40, 40, 12)))
    with pytest.raises(InputError, match="thin.nii.gz"):
        load_thick_slice_pairs(path, factor=4, modality="mri", patch=(8, 8, 8))
