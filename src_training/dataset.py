"""Training data: whole-volume LR/HR pairs and random, exactly aligned patches from them.

Pipeline (SPEC §3), per volume and once (the result is cached in memory, and optionally on disk):

1. read the HR volume (:func:`napari_volumenet.io.read_volume`) and crop it to a multiple of the
   scale (:func:`~napari_volumenet.ops.degrade.crop_to_multiple`);
2. degrade it with :func:`~napari_volumenet.ops.degrade.degrade` (cubic B-spline, anti-aliased) in
   the volume's own units, or, for through-plane training (:func:`load_thick_slice_pairs`), make
   thick slices along each volume axis in turn, moved to the network's through-plane axis 2;
3. fit the intensity normalisation on the **LR** volume, exactly as ``volumenet upscale`` and
   ``volumenet evaluate`` do on their input (MRI: 99.9th percentile, CT: [−1000, 1000] HU), and
   use it for both LR and HR, clipped to [0, 1] (``Normalization.apply(x, clip=True)``).

Patches (:class:`PatchDataset`): an LR patch of ``p`` voxels per axis at LR index ``i`` is paired
with the HR patch of ``s·p`` voxels at HR index ``s·i`` — LR voxel ``i`` is made from HR voxels
``s·i … s·i + s − 1`` (see :mod:`napari_volumenet.ops.degrade`), so the pair is exactly aligned.
Sample ``k`` of process ``rank`` is drawn from its own random generator seeded by
``(seed, rank, k)``: the stream of patches is the same with any number of DataLoader workers,
continues identically after ``--resume``, and differs between DDP processes (the random-sampling
equivalent of a ``DistributedSampler``).

Sampling skips empty background most of the time. A patch position is *foreground* when at least
:data:`MIN_FOREGROUND_FRACTION` of its HR voxels are above 5 % of the normalised range (the
foreground of ``psnr_fg``); the foreground positions of every volume are counted exactly, once
(:func:`foreground_corners`, box sums over the HR mask). A sample takes a uniformly random
foreground position with probability ``1 − BACKGROUND_KEEP`` and a uniformly random position
otherwise, so the network still sees some empty background (and learns to keep it empty).

Augmentation (same transform on LR and HR): a flip of every axis with probability 1/2; a random
permutation of the axes among those that share their scale factor, patch size and voxel size (within
:data:`ISOTROPY_TOLERANCE`): all three for isotropic ×s, the two in-plane axes of thick slices; an
intensity factor uniform in ``1 ± INTENSITY_JITTER``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from napari_volumenet.atomic import atomic_path
from napari_volumenet.errors import InputError
from napari_volumenet.io import find_volumes, read_volume, sha256_file, volume_stem
from napari_volumenet.ops.border import extended_window
from napari_volumenet.ops.degrade import MIN_LR_SIZE, crop_to_multiple, degrade, thick_slices
from napari_volumenet.ops.normalize import Normalization, fit_normalization
from napari_volumenet.ops.scale import Scale

FOREGROUND_LEVEL = 0.05
"""A voxel is foreground when its normalised HR value is above this (as ``psnr_fg``)."""
MIN_FOREGROUND_FRACTION = 0.1
"""A patch with less foreground than this fraction of its voxels counts as background."""
BACKGROUND_KEEP = 0.1
"""Share of the samples drawn uniformly over all positions (the rest: over foreground positions)."""
INTENSITY_JITTER = 0.1
"""Augmentation multiplies LR and HR by a factor uniform in ``[1 − j, 1 + j]``."""
ISOTROPY_TOLERANCE = 1.1
"""Two axes count as having the same voxel size when the larger is at most this times the smaller."""

_BIDS_SUBJECT = re.compile(r"^(sub-[A-Za-z0-9]+)")
_IXI_SUBJECT = re.compile(r"(IXI\d+)")


# ----------------------------------------------------------------------------- files


def subject_id(path: Path) -> str:
    """The subject a volume belongs to, so that a subject's scans never straddle the train/val split.

    BIDS ``sub-XXX`` (a folder or the file name), then an IXI number (``IXI012``), else the file
    name without its suffix (:func:`napari_volumenet.io.volume_stem`).
    """
    for part in reversed(path.parts):
        match = _BIDS_SUBJECT.match(part)
        if match:
            return match.group(1)
    name = volume_stem(path)
    match = _IXI_SUBJECT.search(name)
    return match.group(1) if match else name


def find_files(folder: str | Path, option: str = "--data") -> list[Path]:
    """NIfTI volumes under ``folder`` (:func:`napari_volumenet.io.find_volumes`: recursive, hidden
    files skipped, sorted), or ``folder`` itself if it is a file; :class:`InputError` if there are none.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise InputError(f"{option} {folder} does not exist.")
    try:
        files = find_volumes([folder])
    except InputError as error:
        message = str(error).rstrip(".")
        where = option if str(folder) in message else f"{option} {folder}"
        raise InputError(f"{where}: {message}.") from None
    if not files:
        raise InputError(f"{option} {folder} holds no NIfTI volume (.nii or .nii.gz).")
    return sorted({Path(f) for f in files})


def parse_group_weights(text: str | None, groups: int, counts: Sequence[int]) -> list[float]:
    """``--data-weights "0.7,0.3"`` → normalised weights, one per ``--data`` folder.

    Without weights every volume is equally likely (folder weight ∝ its number of volumes).
    """
    if text is None:
        total = sum(counts)
        return [c / total for c in counts]
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--data-weights {text!r} is not a comma-separated list of numbers.") from None
    if len(values) != groups:
        raise InputError(
            f"--data-weights has {len(values)} value{'s' if len(values) != 1 else ''} but {groups} --data "
            f"folder{'s were' if groups != 1 else ' was'} given; give one weight per folder."
        )
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise InputError(f"--data-weights {text!r} must be non-negative numbers with a positive sum.")
    total = sum(values)
    return [v / total for v in values]


@dataclass(frozen=True)
class DataFile:
    """One input file, the folder (group) it came from, and its role in the run."""

    path: Path
    group: int
    subject: str
    role: str = "train"  # "train" or "val"


def split_by_subject(
    files: Sequence[DataFile], val_fraction: float, seed: int
) -> tuple[list[DataFile], list[DataFile]]:
    """Hold out ``round(val_fraction · subjects)`` (at least 1) whole subjects for validation.

    Deterministic given ``seed`` and the set of subjects (independent of the file order).
    """
    if not 0 < val_fraction < 1:
        raise InputError(f"--val-fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    subjects = sorted({f.subject for f in files})
    if len(subjects) < 2:
        raise InputError(
            f"found only {len(subjects)} subject in the --data folders, so no validation subject can be held "
            "out; add volumes or pass --val DIR."
        )
    n_val = min(len(subjects) - 1, max(1, round(val_fraction * len(subjects))))
    order = np.random.default_rng([int(seed), 0x5EED]).permutation(len(subjects))
    val_subjects = {subjects[i] for i in order[:n_val]}
    train = [DataFile(f.path, f.group, f.subject, "train") for f in files if f.subject not in val_subjects]
    val = [DataFile(f.path, f.group, f.subject, "val") for f in files if f.subject in val_subjects]
    return train, val


# ----------------------------------------------------------------------------- volumes


@dataclass
class VolumePair:
    """A whole HR volume, its LR version and its normalisation, all kept in the volume's units.

    ``hr`` is cropped to a multiple of the scale and ``lr = degrade(hr, scale)`` exactly, or, for
    thick-slice pairs, ``lr = thick_slices(hr, 2, factor, gap)`` with the volume's ``slice_axis`` at axis 2.
    """

    path: Path
    group: int
    subject: str
    sha256: str
    hr: np.ndarray
    lr: np.ndarray
    normalization: Normalization
    voxel_size: tuple[float, float, float]
    slice_axis: int | None = None
    """Thick-slice pairs: the volume axis made thick and moved to array axis 2 (None: ``degrade``)."""
    foreground_level: float = field(init=False)

    def __post_init__(self) -> None:
        # FOREGROUND_LEVEL of the normalised range, in the volume's units
        self.foreground_level = self.normalization.low + FOREGROUND_LEVEL * self.normalization.width

    def describe(self) -> dict:
        """JSON-safe summary for ``config.json``."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "subject": self.subject,
            "group": self.group,
            "hr_shape": list(self.hr.shape),
            "lr_shape": list(self.lr.shape),
            "voxel_size": [round(float(v), 6) for v in self.voxel_size],
            **({"slice_axis": self.slice_axis} if self.slice_axis is not None else {}),
            "normalization": self.normalization.to_dict(),
        }


def allowed_permutations(scale: Scale, patch: Scale, voxel_size: Sequence[float]) -> list[tuple[int, int, int]]:
    """The axis orders that move each axis only onto one of equal scale factor, patch size and voxel size
    (within :data:`ISOTROPY_TOLERANCE`); the identity first."""
    def same(a: int, b: int) -> bool:
        small, large = sorted((abs(voxel_size[a]), abs(voxel_size[b])))
        return scale[a] == scale[b] and patch[a] == patch[b] and 0 < small and large <= ISOTROPY_TOLERANCE * small

    return [p for p in itertools.permutations(range(3)) if all(same(a, p[a]) for a in range(3))]


def hr_patch_shape(patch: Scale, scale: Scale) -> Scale:
    """HR patch shape ``s·p`` per axis."""
    return tuple(p * s for p, s in zip(patch, scale))  # type: ignore[return-value]


def _read_hr(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The volume of ``path`` (3D, finite) and its voxel sizes; :class:`InputError` naming the file otherwise."""
    try:
        volume = read_volume(path)
    except InputError as error:
        message = str(error).rstrip(".")
        raise InputError(message + "." if path.name in message else f"{path}: {message}.") from None
    data = np.asarray(volume.data)
    if data.ndim != 3:
        raise InputError(f"{path} is {data.ndim}D (shape {data.shape}); training needs 3D volumes.")
    if not np.isfinite(data).all():
        raise InputError(f"{path} contains NaN or infinite values.")
    return data, tuple(float(v) for v in volume.zooms)  # type: ignore[return-value]


def _check_size(path: Path, shape: Sequence[int], scale: Scale, patch: Scale | None) -> None:
    need = hr_patch_shape(patch, scale) if patch is not None else tuple(MIN_LR_SIZE * s for s in scale)
    if any(n < k for n, k in zip(shape, need)):
        what = (f"one {'×'.join(map(str, need))} HR patch (--patch {'×'.join(map(str, patch))} at scale "
                f"{'×'.join(map(str, scale))})" if patch is not None
                else f"degrading by {'×'.join(map(str, scale))}")
        raise InputError(f"{path} of shape {tuple(shape)} is too small for {what}.")


def _normalization(path: Path, lr: np.ndarray, modality: str) -> Normalization:
    try:
        return fit_normalization(lr, modality)
    except InputError as error:
        raise InputError(f"{path}: {str(error).rstrip('.')}.") from None


def load_pair(
    path: Path,
    *,
    scale: Scale,
    modality: str,
    patch: Scale | None = None,
    group: int = 0,
    subject: str | None = None,
    cache_dir: Path | None = None,
) -> VolumePair:
    """Read, crop, degrade and normalise one volume (see the module docstring).

    ``patch`` (LR voxels) given: the cropped HR volume must hold one HR patch ``s·p``.
    ``cache_dir`` given: the LR volume is read from / written to ``<sha256[:24]>_<scale>.npy`` there.
    Raises :class:`InputError` naming the file for anything unusable.
    """
    path = Path(path)
    data, zooms = _read_hr(path)
    hr = np.ascontiguousarray(crop_to_multiple(data, scale), dtype=np.float32)
    _check_size(path, data.shape, scale, patch)
    sha = sha256_file(path)
    lr = None
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{sha[:24]}_{'x'.join(map(str, scale))}.npy"
        if cache_file.is_file():
            cached = np.load(cache_file, allow_pickle=False)
            if cached.shape == tuple(n // s for n, s in zip(hr.shape, scale)) and cached.dtype == np.float32:
                lr = cached
    if lr is None:
        try:
            lr = degrade(hr, scale)
        except InputError as error:
            raise InputError(f"{path}: {str(error).rstrip('.')}.") from None
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache_file, suffix=".npy") as temp:
                np.save(temp, lr)
    return VolumePair(path=path, group=group, subject=subject or subject_id(path), sha256=sha, hr=hr,
                      lr=np.ascontiguousarray(lr, dtype=np.float32),
                      normalization=_normalization(path, lr, modality), voxel_size=zooms)


def load_thick_slice_pairs(
    path: Path,
    *,
    factor: int,
    gap: float = 0.0,
    axes: Sequence[int] = (0, 1, 2),
    modality: str,
    patch: Scale | None = None,
    group: int = 0,
    subject: str | None = None,
) -> list[VolumePair]:
    """One pair per volume axis in ``axes``: that axis made of thick slices
    (:func:`~napari_volumenet.ops.degrade.thick_slices`, ``factor`` HR slices each, ``gap`` HR slices
    apart) and moved to array axis 2, the through-plane axis of a ``(1, 1, factor)`` network.

    The HR arrays are views of one float32 copy of the volume (no extra memory per axis).
    """
    path = Path(path)
    data, zooms = _read_hr(path)
    data = np.asarray(data, dtype=np.float32)
    scale = (1, 1, int(factor))
    sha = sha256_file(path)
    pairs = []
    for axis in axes:
        order = [a for a in range(3) if a != axis] + [axis]
        hr = crop_to_multiple(data.transpose(order), scale)
        _check_size(path, hr.shape, scale, patch)
        try:
            lr = thick_slices(hr, 2, int(factor), gap)
        except InputError as error:
            raise InputError(f"{path}: {str(error).rstrip('.')}.") from None
        pairs.append(VolumePair(path=path, group=group, subject=subject or subject_id(path), sha256=sha, hr=hr,
                                lr=lr, normalization=_normalization(path, lr, modality),
                                voxel_size=tuple(zooms[a] for a in order), slice_axis=int(axis)))
    return pairs


# ----------------------------------------------------------------------------- patches


def _box_sum(counts: np.ndarray, width: int, axis: int) -> np.ndarray:
    """Sums of ``width`` consecutive entries along ``axis`` (length ``n − width + 1``)."""
    cumulative = np.cumsum(counts, axis=axis, dtype=np.int64)
    shape = list(cumulative.shape)
    shape[axis] = 1
    cumulative = np.concatenate([np.zeros(shape, np.int64), cumulative], axis=axis)
    n = counts.shape[axis]
    upper = [slice(None)] * 3
    lower = [slice(None)] * 3
    upper[axis] = slice(width, n + 1)
    lower[axis] = slice(0, n + 1 - width)
    return cumulative[tuple(upper)] - cumulative[tuple(lower)]


def foreground_corners(
    pair: VolumePair, patch: Sequence[int], scale: Sequence[int], min_fraction: float = MIN_FOREGROUND_FRACTION
) -> np.ndarray:
    """Flat indices (into the grid of LR corners ``lr_shape − patch + 1``) of the patch positions whose
    HR patch has at least ``min_fraction`` of its voxels in the foreground — counted exactly.
    """
    lr_shape = pair.lr.shape
    mask = pair.hr > pair.foreground_level
    cells = mask.reshape(lr_shape[0], scale[0], lr_shape[1], scale[1], lr_shape[2], scale[2]).sum(
        axis=(1, 3, 5), dtype=np.int32
    )  # foreground HR voxels of every LR voxel
    counts = cells
    for axis, width in enumerate(patch):
        counts = _box_sum(counts, int(width), axis)
    need = min_fraction * math.prod(p * s for p, s in zip(patch, scale))
    flat = np.flatnonzero(counts >= need)
    return flat.astype(np.int32) if counts.size < 2**31 else flat


@dataclass
class Patch:
    """One training sample and where it came from (for tests and debugging)."""

    lr: np.ndarray  # (p0, p1, p2) normalised, augmented
    hr: np.ndarray  # (s0·p0, s1·p1, s2·p2)
    volume: int  # index into PatchDataset.pairs
    lr_index: tuple[int, int, int]  # corner of the LR patch in the LR volume
    foreground: float  # foreground fraction of the HR patch
    from_foreground: bool  # drawn among the foreground positions
    flips: tuple[bool, bool, bool] = (False, False, False)
    permutation: tuple[int, int, int] = (0, 1, 2)
    intensity: float = 1.0
    cut_sides: tuple[int, ...] = ()  # sides (2·axis + 0 before / 1 after) whose margin was mirrored


class PatchDataset(Dataset):
    """Map-style dataset of random aligned (LR, HR) patches: item ``k`` is a pure function of
    ``(seed, rank, k)``.

    Parameters
    ----------
    pairs
        The training volumes.
    patch, scale
        LR patch size and upscaling factor per axis.
    margin
        LR voxels of context added around the patch on every side: the LR input is
        ``patch + 2·margin``, the HR target only the central ``scale·patch`` (crop the prediction
        the same way), so the loss is not spent on the network's zero padding at patch borders.
        The context is the volume itself, or its half-sample mirror past the volume's edge (as at
        inference, SPEC §4).
    edge_cut
        Chance, per side, that the margin on that side is replaced by the mirror of the patch: the
        patch then lies at the edge of a scan whose anatomy goes on past it (a cropped field of view),
        where inference sees mirrored context. Without it the network only meets the mirror against
        background (air, skull-stripped brains) and leaves a rim where anatomy reaches the edge.
        Needs ``margin ≤ patch``.
    group_weights
        Probability of each ``--data`` group (indexed by ``VolumePair.group``); within a group
        every volume is equally likely.
    length
        Nominal ``len()`` (indices beyond it work just as well).
    """

    def __init__(
        self,
        pairs: Sequence[VolumePair],
        *,
        patch: Scale,
        scale: Scale,
        seed: int = 0,
        rank: int = 0,
        group_weights: Sequence[float] | None = None,
        augment: bool = True,
        skip_background: bool = True,
        length: int = 1 << 40,
        margin: int = 0,
        edge_cut: float = 0.0,
    ) -> None:
        if not 0 <= edge_cut <= 1:
            raise ValueError(f"edge_cut must be in [0, 1], got {edge_cut}")
        if not pairs:
            raise InputError("no training volume is left after the train/validation split.")
        if edge_cut and margin > min(patch):
            raise InputError(f"--edge-cut mirrors the patch into its margin, so --margin ({margin}) must not "
                             f"exceed --patch ({min(patch)}).")
        self.pairs = list(pairs)
        self.margin = int(margin)
        self.edge_cut = float(edge_cut)
        self.patch = tuple(int(p) for p in patch)  # the LR region the loss sees
        self.scale = tuple(int(s) for s in scale)
        self.hr_patch = hr_patch_shape(self.patch, self.scale)  # type: ignore[arg-type]
        for pair in self.pairs:
            if any(n < k for n, k in zip(pair.hr.shape, self.hr_patch)):
                raise InputError(
                    f"{pair.path} of cropped shape {pair.hr.shape} is too small for a "
                    f"{'×'.join(map(str, self.hr_patch))} HR patch."
                )
        self.seed, self.rank = int(seed), int(rank)
        self.augment, self.skip_background = augment, skip_background
        self.length = int(length)
        groups = sorted({p.group for p in self.pairs})
        n_groups = max(groups) + 1
        weights = list(group_weights) if group_weights is not None else [1.0] * n_groups
        if len(weights) < n_groups:
            raise ValueError("one weight per group is needed")
        # groups left without any training volume (all went to validation) get no weight
        self.members = {g: [i for i, p in enumerate(self.pairs) if p.group == g] for g in range(n_groups)}
        masked = np.array([w if self.members[g] else 0.0 for g, w in enumerate(weights[:n_groups])], dtype=float)
        if masked.sum() <= 0:  # every weighted group is empty: fall back to uniform over volumes
            masked = np.array([len(self.members[g]) for g in range(n_groups)], dtype=float)
        self.group_probability = masked / masked.sum()
        self.permutations = [allowed_permutations(self.scale, self.patch, pair.voxel_size) for pair in self.pairs]
        self.grids = [tuple(n - p + 1 for n, p in zip(pair.lr.shape, self.patch)) for pair in self.pairs]
        self.foreground = [
            foreground_corners(pair, self.patch, self.scale) if skip_background else np.empty(0, np.int64)
            for pair in self.pairs
        ]

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` (independent of workers and of earlier samples)."""
        return np.random.default_rng([self.seed, self.rank, int(index)])

    def sample(self, index: int) -> Patch:
        """Draw sample ``index``: volume, position (background skipping), augmentation."""
        rng = self.rng(index)
        group = int(rng.choice(len(self.group_probability), p=self.group_probability))
        members = self.members[group]
        volume = members[int(rng.integers(len(members)))]
        pair = self.pairs[volume]
        candidates = self.foreground[volume]
        from_foreground = bool(self.skip_background and candidates.size and rng.random() >= BACKGROUND_KEEP)
        if from_foreground:
            flat = int(candidates[rng.integers(candidates.size)])
            corner = tuple(int(c) for c in np.unravel_index(flat, self.grids[volume]))
        else:
            corner = tuple(int(rng.integers(g)) for g in self.grids[volume])
        hr_region = tuple(slice(c * s, c * s + k) for c, s, k in zip(corner, self.scale, self.hr_patch))
        hr = pair.hr[hr_region]
        foreground = float(np.count_nonzero(hr > pair.foreground_level)) / hr.size
        norm = pair.normalization
        lr_patch = self.lr_window(pair.lr, corner, norm)
        hr_patch = norm.apply(hr, clip=True)
        cut_sides = self.cut_edges(lr_patch, rng)
        flips = (False, False, False)
        permutation = (0, 1, 2)
        intensity = 1.0
        if self.augment:
            flips = tuple(bool(f) for f in rng.random(3) < 0.5)  # type: ignore[assignment]
            axes = tuple(a for a in range(3) if flips[a])
            if axes:
                lr_patch = np.flip(lr_patch, axis=axes)
                hr_patch = np.flip(hr_patch, axis=axes)
            choices = self.permutations[volume]
            if len(choices) > 1:
                permutation = choices[int(rng.integers(len(choices)))]
                lr_patch = lr_patch.transpose(permutation)
                hr_patch = hr_patch.transpose(permutation)
            intensity = float(rng.uniform(1 - INTENSITY_JITTER, 1 + INTENSITY_JITTER))
            lr_patch = lr_patch * np.float32(intensity)
            hr_patch = hr_patch * np.float32(intensity)
        return Patch(
            lr=np.ascontiguousarray(lr_patch, dtype=np.float32),
            hr=np.ascontiguousarray(hr_patch, dtype=np.float32),
            volume=volume,
            lr_index=corner,  # type: ignore[arg-type]
            foreground=foreground,
            from_foreground=from_foreground,
            flips=flips,  # type: ignore[arg-type]
            permutation=permutation,  # type: ignore[arg-type]
            intensity=intensity,
            cut_sides=cut_sides,
        )

    def cut_edges(self, lr_window: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
        """Treat sides drawn with chance ``edge_cut`` each as the edge of a cropped scan: their margin of
        ``lr_window`` is replaced (in place) by the half-sample mirror of the patch about that side,
        exactly what inference feeds the network where a scan ends (SPEC §4) while the anatomy, and so
        the HR target, goes on. Returns the sides (``2·axis`` before the patch, ``2·axis + 1`` after)."""
        m = self.margin
        if not m or not self.edge_cut:
            return ()
        sides = tuple(int(side) for side in np.flatnonzero(rng.random(6) < self.edge_cut))
        for side in sides:
            axis = side // 2
            n = lr_window.shape[axis]
            target, source = (slice(0, m), slice(2 * m - 1, m - 1, -1)) if side % 2 == 0 else (
                slice(n - m, n), slice(n - m - 1, n - 2 * m - 1, -1))
            moved = np.moveaxis(lr_window, axis, 0)
            moved[target] = moved[source]
        return sides

    def lr_window(self, lr: np.ndarray, corner: Sequence[int], norm: Normalization) -> np.ndarray:
        """Normalised LR patch at ``corner`` grown by ``margin`` on every side; where that reaches past
        the volume it is the half-sample mirror of the volume, as inference extends it (SPEC §4)."""
        m = self.margin
        window = tuple(slice(c - m, c + p + m) for c, p in zip(corner, self.patch))
        return norm.apply(extended_window(lr, window), clip=True)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self.sample(index)
        return torch.from_numpy(patch.lr)[None], torch.from_numpy(patch.hr)[None]


class IndexRange(Sampler[int]):
    """Indices ``start, start + 1, …, stop − 1`` in order (the sample stream of one process)."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = int(start), int(stop)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def worker_init(_worker_id: int) -> None:
    """DataLoader workers only slice numpy arrays: one thread each leaves the cores to the model."""
    torch.set_num_threads(1)
