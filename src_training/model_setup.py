"""The network to train: built from the options, initialised (``--init``, ``--init-from``), described."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrainConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .dataset import VolumePair


def build_model(config: TrainConfig, device: torch.device, say: Callable[[str], None]) -> tuple[nn.Module, dict | None]:
    """The network on ``device``, seeded by ``--seed``, and what ``--init-from`` loaded (None without it)."""
    import torch

    from napari_volumenet.errors import ModelError
    from napari_volumenet.models import count_parameters, create_model, list_models

    if config.model not in list_models():
        raise ModelError(f"unknown model {config.model!r}; choose one of {', '.join(list_models())}")
    if config.model == "tricubic":
        raise ModelError("tricubic interpolation has no parameters to train; choose a network")
    kwargs: dict[str, Any] = {"scale": tuple(config.scale)}
    for key in ("depth", "channels", "block"):
        if getattr(config, key) is not None:
            kwargs[key] = getattr(config, key)
    torch.manual_seed(config.seed)
    try:
        model = create_model(config.model, **kwargs)
    except (ValueError, KeyError) as error:
        raise ModelError(f"invalid arguments for model {config.model!r}: {error}") from None
    if count_parameters(model) == 0:
        raise ModelError(f"model {config.model!r} has no parameters to train")
    if config.init in ("cubic", "linear") and not config.init_from and hasattr(model, "init_as_interpolation"):
        model.init_as_interpolation(config.init)
    if config.init != "random" and not config.init_from and hasattr(model, "init_as_upsampler"):
        model.init_as_upsampler()
    init_meta = _load_init_weights(model, config, say) if config.init_from else None
    return model.to(device), init_meta


def _load_init_weights(model: nn.Module, config: TrainConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """``--init-from``: its weights into ``model`` (same architecture, else a ``WeightsError``); what they were."""
    from napari_volumenet.errors import WeightsError
    from napari_volumenet.weights import load_weights

    path = Path(config.init_from).expanduser()
    source, meta = load_weights(path)
    theirs, ours = dict(source.config), dict(model.config)
    if theirs != ours:
        raise WeightsError(
            f"--init-from {Path(config.init_from).name} holds {describe_config(theirs)}, which does not match "
            f"the requested {describe_config(ours)}; pass the same --model/--depth/--channels/--block/--scale"
        )
    model.load_state_dict(source.state_dict())
    if meta.get("modality") != config.modality:
        say(f"note: --init-from weights were trained on {meta.get('modality')!r} data, "
            f"fine-tuning on {config.modality!r}")
    return {"path": str(path), "model": meta.get("model"), "modality": meta.get("modality"),
            "val_psnr": meta.get("val_psnr")}


def fit_head(model: nn.Module, config: TrainConfig, train_pairs: Sequence[VolumePair], device: torch.device,
             say: Callable[[str], None]) -> None:
    """``--init least-squares``: the head becomes the best linear upsampler of the training pairs."""
    if config.init != "least-squares" or config.init_from or not hasattr(model, "init_head"):
        return
    from napari_volumenet.training.linear_head import fit_linear_head

    say("initialisation: least-squares linear upsampling filter for the head…")
    normalised = ((p.normalization.apply(p.lr), p.normalization.apply(p.hr)) for p in train_pairs)
    weight, bias = fit_linear_head(normalised, tuple(config.scale), seed=config.seed)
    model.init_head(weight.to(device), bias.to(device))


def describe_config(config: dict[str, Any]) -> str:
    """A network's config in a few words, e.g. ``volumenet D9 C32 ×2×2×2``."""
    name = config.get("name", "?")
    parts = [name]
    if "depth" in config:
        parts.append(f"D{config['depth']}")
    if "channels" in config:
        parts.append(f"C{config['channels']}")
    if config.get("block") not in (None, "conv") or name == "parallelnet":
        parts.append(str(config.get("block")))
    scale = config.get("scale")
    if scale is not None:
        parts.append("×" + "×".join(str(s) for s in scale))
    return " ".join(parts)
