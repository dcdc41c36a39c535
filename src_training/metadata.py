"""What a run records about itself: config.json's contents and the ``training`` metadata of its weights."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli import PROG

if TYPE_CHECKING:
    from .run_setup import Setup


def training_summary(setup: Setup, step: int, epoch: int) -> dict[str, Any]:
    """The weights files' ``training`` metadata after ``step`` steps (``epoch`` epochs)."""
    config, data = setup.config, setup.data
    digest = hashlib.sha256(json.dumps(data.fingerprint(), sort_keys=True).encode()).hexdigest()
    return {
        "tool": PROG,
        "data": [str(Path(d).expanduser()) for d in config.data],
        "data_weights": data.group_weights,
        "val": [str(Path(d).expanduser()) for d in config.val] if config.val else None,
        "split": data.split_method,
        "train_volumes": len(data.train_pairs),
        "val_volumes": len(data.val_pairs),
        "train_files": [p.path.name for p in data.train_pairs],
        "val_files": [p.path.name for p in data.val_pairs],
        "data_sha256": digest,
        "degradation": _degradation(config.scale, config.thick_slices),
        "patch": list(config.patch),
        "batch": config.batch,
        "world_size": setup.dist.world_size,
        "optimizer": "adam",
        "lr": config.lr,
        "lr_schedule": config.lr_schedule,
        "init": "from weights" if config.init_from else config.init,
        "margin": config.margin,
        "edge_cut": config.edge_cut,
        "loss": config.loss,
        "warmup": config.warmup,
        "steps": step,
        "epoch": epoch,
        "steps_per_epoch": config.steps_per_epoch,
        "seed": config.seed,
        "tricubic_val_psnr": setup.tricubic.get("psnr"),
        "init_from": setup.init_meta,
    }


def _degradation(scale: Sequence[int], thick_slices: tuple[int, float] | None) -> dict[str, Any]:
    """How the LR volumes were made: ``degrade`` by ``scale``, or thick slices moved to array axis 2."""
    if thick_slices is None:
        return {"kind": "degrade", "scale": list(scale)}
    factor, gap = thick_slices
    return {"kind": "thick-slices", "axis": 2, "factor": factor, "gap": gap, "volume_axes": [0, 1, 2]}


def config_payload(setup: Setup, argv: Sequence[str]) -> dict[str, Any]:
    """config.json of a new run: the options, the network, every data file with its sha256 and split role,
    the tricubic baseline, the device and the versions."""
    from napari_volumenet.models import count_parameters

    config, data, model = setup.config, setup.data, setup.model
    return {
        "tool": PROG,
        "created": _now(),
        "argv": list(argv),
        "args": config.as_dict(),
        "model": {**model.config, "params": count_parameters(model), "receptive_field": model.receptive_field},
        "data": [
            {"folder": str(Path(d).expanduser()), "weight": w,
             "train_volumes": sum(1 for p in data.train_pairs if p.group == g),
             "val_volumes": sum(1 for p in data.val_pairs if p.group == g)}
            for g, (d, w) in enumerate(zip(config.data, data.group_weights))
        ],
        "split": {
            "method": data.split_method,
            "train": [str(p.path) for p in data.train_pairs],
            "val": [str(p.path) for p in data.val_pairs],
        },
        "files": [{**p.describe(), "role": "train"} for p in data.train_pairs]
        + [{**p.describe(), "role": "val"} for p in data.val_pairs],
        "tricubic_val": setup.tricubic,
        "device": _device(setup),
        "versions": _versions(),
        "init_from": setup.init_meta,
        "resumes": [],
    }


def with_resume_entry(saved: dict[str, Any], argv: Sequence[str], step: int) -> dict[str, Any]:
    """A run's config.json with this ``--resume`` (its time, command line and step) added to ``resumes``."""
    entry = {"time": _now(), "argv": list(argv), "from_step": step}
    return {**saved, "resumes": [*saved.get("resumes", []), entry]}


def _device(setup: Setup) -> dict[str, Any]:
    import torch

    device, hardware = setup.hardware.device, setup.hardware
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"type": device.type, "name": name, "amp": hardware.amp, "world_size": setup.dist.world_size,
            "threads": torch.get_num_threads(), "workers": hardware.workers}


def _versions() -> dict[str, str]:
    import nibabel
    import numpy
    import scipy
    import skimage
    import torch

    from napari_volumenet import __version__

    return {"napari_volumenet": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "scikit-image": skimage.__version__, "nibabel": nibabel.__version__,
            "python": platform.python_version()}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
