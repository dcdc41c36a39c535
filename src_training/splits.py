"""Subject-level train / validation / test splits of a data folder, as folders of symbolic links.

The bundled weights were trained and evaluated on the splits this module makes from
``../shared/data`` (see the README, "Bundled weights")::

    python -m src_training.splits ../shared/data/mri_t1 --out splits/oasis --val 2 --test 5
    python -m src_training.splits ../shared/data/mri_t1_ixi2mm --out splits/ixi --val 2 --test 6

makes ``splits/oasis/{train,val,test}/`` holding links to the original files, ready for
``volumenet-train --data splits/oasis/train --val splits/oasis/val`` and
``volumenet evaluate splits/oasis/test``. The split is a seeded shuffle of the subjects,
so the same command always gives the same split, and a subject never sits in two parts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_volumenet.atomic import write_json_atomic
from napari_volumenet.errors import VolumeNetError

from .dataset import find_files, subject_id

PARTS = ("train", "val", "test")


def split_subjects(files: Sequence[Path], val: int, test: int, seed: int = 0) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...], "test": [...]}``: ``val`` and ``test`` subjects drawn by a
    seeded shuffle, every other subject in ``train``; all files of a subject stay together."""
    subjects = sorted({subject_id(f) for f in files})
    if val < 0 or test < 0 or val + test >= len(subjects):
        raise ValueError(f"cannot hold out {val} + {test} of {len(subjects)} subjects and keep some to train on")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    role = {s: "test" for s in order[:test]} | {s: "val" for s in order[test:test + val]}
    parts: dict[str, list[Path]] = {p: [] for p in PARTS}
    for f in sorted(files):
        parts[role.get(subject_id(f), "train")].append(f)
    return parts


def write_split(parts: dict[str, list[Path]], out: Path) -> None:
    """Folders ``out/train``, ``out/val``, ``out/test`` of links, and ``out/split.json`` naming them."""
    for part, files in parts.items():
        folder = out / part
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            link = folder / f.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(f.resolve())
    write_json_atomic(out / "split.json", {p: [f.name for f in fs] for p, fs in parts.items()})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src_training.splits", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="folder of NIfTI volumes")
    parser.add_argument("--out", required=True, help="where the train/val/test folders of links go")
    parser.add_argument("--val", type=int, default=2, help="validation subjects (default 2)")
    parser.add_argument("--test", type=int, default=5, help="test subjects (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    args = parser.parse_args(argv)
    try:
        parts = split_subjects(find_files(args.data), args.val, args.test, args.seed)
    except (ValueError, OSError, VolumeNetError) as error:
        print(f"splits: error: {error}", file=sys.stderr)
        return 2
    write_split(parts, Path(args.out))
    print(", ".join(f"{p}: {len(fs)}" for p, fs in parts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
