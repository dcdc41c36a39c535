"""The run's volumes: found in ``--data`` / ``--val``, split by subject, loaded and degraded to LR/HR pairs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import TrainConfig

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from .dataset import DataFile, VolumePair
    from .hardware import Hardware


@dataclass(frozen=True)
class TrainingData:
    """The training and validation pairs, the sampling weight of each ``--data`` folder, and how they were split."""

    train_pairs: list[VolumePair]
    val_pairs: list[VolumePair]
    group_weights: list[float]
    split_method: str

    def fingerprint(self) -> dict[str, list[str]]:
        """The sorted sha256 of the training and of the validation files (what ``--resume`` compares)."""
        return {"train": sorted(p.sha256 for p in self.train_pairs), "val": sorted(p.sha256 for p in self.val_pairs)}


def load_training_data(config: TrainConfig, is_main: bool, show_progress: bool) -> TrainingData:
    """Find, split and load every volume (``--disk-cache`` written by the main process only)."""
    from napari_volumenet.errors import InputError

    from .dataset import parse_group_weights

    groups, train_files, val_files, split_method = _split_files(config)
    counts = [sum(1 for f in train_files if f.group == g) for g in range(groups)]
    group_weights = parse_group_weights(config.data_weights, groups, counts)
    if config.data_weights is not None:
        empty = [config.data[g] for g in range(groups) if counts[g] == 0 and group_weights[g] > 0]
        if empty:
            raise InputError(f"--data {empty[0]} has no training volume left after the validation split.")
    cache = config.run_dir / "cache" if config.disk_cache and is_main else None
    train_pairs, val_pairs = _load_pairs(config, train_files, val_files, cache, show_progress)
    return TrainingData(train_pairs, val_pairs, group_weights, split_method)


def _split_files(config: TrainConfig) -> tuple[int, list[DataFile], list[DataFile], str]:
    """The number of ``--data`` folders, the training and the validation files, and how they were split."""
    from napari_volumenet.errors import InputError

    from .dataset import DataFile, find_files, split_by_subject, subject_id

    groups = [[DataFile(p, g, subject_id(p)) for p in find_files(folder, "--data")]
              for g, folder in enumerate(config.data)]
    everything = [f for group in groups for f in group]
    if not config.val:
        train_files, val_files = split_by_subject(everything, config.val_fraction, config.seed)
        return len(groups), train_files, val_files, f"by subject, seed {config.seed}, fraction {config.val_fraction}"
    val_files = [DataFile(p, -1, subject_id(p), "val") for folder in config.val for p in find_files(folder, "--val")]
    train_paths = {f.path.resolve() for f in everything}
    shared = [f.path for f in val_files if f.path.resolve() in train_paths]
    if shared:
        raise InputError(f"{shared[0]} is in both --data and --val; validation volumes must not be trained on.")
    return len(groups), everything, val_files, "--val folder"


def _load_pairs(config: TrainConfig, train_files: list[DataFile], val_files: list[DataFile], cache: Path | None,
                show_progress: bool) -> tuple[list[VolumePair], list[VolumePair]]:
    """Each file loaded and degraded: one pair, or with ``--thick-slices`` one per volume axis."""
    from tqdm import tqdm

    from .dataset import load_pair, load_thick_slice_pairs

    jobs = [(f, True) for f in train_files] + [(f, False) for f in val_files]
    bar = tqdm(jobs, desc="loading + degrading volumes", unit="vol", disable=None if show_progress else True,
               file=sys.stderr, dynamic_ncols=True, leave=False)
    train_pairs: list[VolumePair] = []
    val_pairs: list[VolumePair] = []
    for f, is_train in bar:
        patch = tuple(config.patch) if is_train else None
        if config.thick_slices is not None:
            factor, gap = config.thick_slices
            pairs = load_thick_slice_pairs(f.path, factor=factor, gap=gap, modality=config.modality, patch=patch,
                                           group=f.group, subject=f.subject)
        else:
            pairs = [load_pair(f.path, scale=tuple(config.scale), modality=config.modality, patch=patch,
                               group=f.group, subject=f.subject, cache_dir=cache)]
        (train_pairs if is_train else val_pairs).extend(pairs)
    bar.close()
    return train_pairs, val_pairs


def patch_loader(data: TrainingData, config: TrainConfig, rank: int, hardware: Hardware, step: int,
                 end_step: int | None) -> DataLoader:
    """Batches of ``(LR, HR)`` patches for steps ``step`` to ``end_step`` (without end: 2⁴⁰ more). Patch ``i``
    depends only on ``--seed``, the rank and ``i``, so a resumed run draws what the whole run would have."""
    from torch.utils.data import DataLoader

    from .dataset import IndexRange, PatchDataset, worker_init

    dataset = PatchDataset(data.train_pairs, patch=tuple(config.patch), scale=tuple(config.scale), seed=config.seed,
                           rank=rank, group_weights=data.group_weights, augment=not config.no_augment,
                           margin=config.margin, edge_cut=config.edge_cut)
    stop_index = (end_step if end_step is not None else step + (1 << 40)) * config.batch
    return DataLoader(
        dataset, batch_size=config.batch, sampler=IndexRange(step * config.batch, stop_index),
        num_workers=hardware.workers, worker_init_fn=worker_init if hardware.workers else None,
        pin_memory=hardware.device.type == "cuda", persistent_workers=False,
    )
