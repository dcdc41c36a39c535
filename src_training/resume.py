"""resume.pt: what ``--resume`` needs beyond the weights (optimizer, scaler, counters, RNG state).

A dict of tensors and plain values (``torch.load(..., weights_only=True)`` reads it)::

    format, format_version   RESUME_FORMAT, 1
    step … last_val_psnr     the counters of :class:`~src_training.progress.Progress`
    model_config             the network's config as sorted JSON
    state_dict, optimizer, scaler, torch_rng, cuda_rng
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .model_setup import describe_config
from .progress import Progress
from .run_folder import RunFolder

if TYPE_CHECKING:
    import torch
    from torch import nn

RESUME_FORMAT = "napari-volumenet-resume"


def resume_payload(network: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                   progress: Progress, device: torch.device) -> dict[str, Any]:
    """The resume.pt contents now (weights copied to the CPU)."""
    import torch

    return {
        "format": RESUME_FORMAT,
        "format_version": 1,
        **progress.as_dict(),
        "model_config": json.dumps(network.config, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
    }


def read_resume(folder: RunFolder, model: nn.Module, fingerprint: dict[str, list[str]],
                config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The folder's resume.pt payload (its weights loaded into ``model``) and config.json, once they are
    checked against this run (network, data ``fingerprint``, ``--modality``, ``--patch``); else one clear error."""
    import torch

    from napari_volumenet.errors import VolumeNetError

    path = folder.path / "resume.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged file is a user-facing problem
        raise VolumeNetError(f"--resume: {path} cannot be read ({type(error).__name__}); it may be damaged") from None
    if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
        raise VolumeNetError(f"--resume: {path} is not a volumenet-train resume file")
    _check_payload(path, payload, model)
    if payload.get("model_config") != json.dumps(model.config, sort_keys=True):
        raise VolumeNetError(
            f"--resume: the run in {folder.path} trained {describe_config(json.loads(payload['model_config']))}, "
            f"not {describe_config(model.config)}; pass the run's --model/--depth/--channels/--block/--scale"
        )
    saved_config, saved_fingerprint = folder.read_config()
    if saved_fingerprint != fingerprint:
        raise VolumeNetError(
            f"--resume: the training or validation volumes differ from those in {folder.path / 'config.json'}; "
            "resume with the same --data, --val, --val-fraction and --seed"
        )
    for key in ("modality", "patch"):
        before = saved_config.get("args", {}).get(key)
        now = getattr(config, key)
        if before is not None and json.loads(json.dumps(before)) != json.loads(json.dumps(now)):
            raise VolumeNetError(f"--resume: the run used --{key} {before}, not {now}")
    return payload, saved_config


def _check_payload(path: Path, payload: dict[str, Any], model: nn.Module) -> None:
    """Every part of a resume file is there and fits (weights, optimizer), else one clear error."""
    import torch

    from napari_volumenet.errors import VolumeNetError

    try:
        missing = [k for k in ("model_config", "state_dict", "optimizer", "step") if k not in payload]
        if missing:
            raise KeyError(missing[0])
        if payload["model_config"] == json.dumps(model.config, sort_keys=True):  # else read_resume says so
            model.load_state_dict(payload["state_dict"])
            torch.optim.Adam(model.parameters()).load_state_dict(payload["optimizer"])
        int(payload["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise VolumeNetError(f"--resume: {path} is damaged ({type(error).__name__}: {str(error)[:120]}); "
                             "start a new run from its last.pt with --init-from") from None


def restore(payload: dict[str, Any], network: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler | None, lr: float, device: torch.device) -> Progress:
    """Weights, optimizer (at learning rate ``lr``), scaler and RNG state as saved; the saved counters."""
    import torch

    network.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = lr
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    with contextlib.suppress(Exception):  # best effort: RNG state of another device type
        torch.set_rng_state(payload["torch_rng"])
        if device.type == "cuda" and payload.get("cuda_rng"):
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return Progress.from_resume(payload)
