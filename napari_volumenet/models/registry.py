"""Name → builder registry of every network: ``create_model("volumenet", depth=9)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .._registry import Registry
from ..errors import ModelError
from .base import SuperResolutionNet
from .baselines import DCSRN, MDCSRN, SRCNN3D, Tricubic
from .parallelnet import ParallelNet
from .planenet import PlaneNet

Builder = Callable[..., SuperResolutionNet]
_MODELS: Registry[Builder] = Registry("model")


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name``; a name can be registered once."""
    return _MODELS.register(name)


def list_models() -> list[str]:
    """Registered model names."""
    return _MODELS.names()


def create_model(name: str, **kwargs: Any) -> SuperResolutionNet:
    """Build the network ``name`` with ``kwargs`` (``depth``, ``channels``, ``block``, ``scale``, ...)."""
    builder = _MODELS.get(name)
    try:
        return builder(**kwargs)
    except TypeError as error:
        raise ModelError(f"invalid arguments for model {name!r}: {error}") from None


TITLES = {"parallelnet": "ParallelNet", "volumenet": "VolumeNet", "srcnn3d": "3D SRCNN", "dcsrn": "DCSRN",
          "mdcsrn": "mDCSRN", "tricubic": "tricubic", "planenet": "PlaneNet"}


def display_name(name: str, kwargs: dict[str, Any] | None = None) -> str:
    """A network as the paper names it, with its size when ``kwargs`` give one: ``ParallelNet D9C32``."""
    kwargs = kwargs or {}
    size = "".join(f"{letter}{kwargs[key]}" for letter, key in (("D", "depth"), ("C", "channels")) if key in kwargs)
    return " ".join(part for part in (TITLES.get(name, name), size) if part)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weights and biases)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@register("parallelnet")
def parallelnet(depth: int = 5, channels: int = 32, block: str = "conv", scale: Any = 2,
                ratio: float = 0.5) -> ParallelNet:
    """ParallelNet, standard 3×3×3 convolutions by default (SPEC §1)."""
    return ParallelNet(depth, channels, block, scale, ratio, name="parallelnet")


@register("volumenet")
def volumenet(depth: int = 9, channels: int = 32, block: str = "queue", scale: Any = 2,
              ratio: float = 0.5) -> ParallelNet:
    """VolumeNet: ParallelNet built from Queue blocks (R = C/2); D9C32 by default."""
    return ParallelNet(depth, channels, block, scale, ratio, name="volumenet")


@register("planenet")
def planenet(depth: int = 9, channels: int = 16, block: str = "queue", scale: Any = (1, 1, 4),
             ratio: float = 0.5) -> PlaneNet:
    """A ParallelNet on the 2D planes holding array axis 2, run in both and averaged (the fit to one scan)."""
    return PlaneNet(depth, channels, block, scale, ratio)


@register("srcnn3d")
def srcnn3d(scale: Any = 2, block: str = "conv") -> SRCNN3D:
    return SRCNN3D(scale, block)


@register("dcsrn")
def dcsrn(scale: Any = 2, block: str = "conv", growth: int = 24, units: int = 4) -> DCSRN:
    return DCSRN(scale, growth, units, block)


@register("mdcsrn")
def mdcsrn(scale: Any = 2, block: str = "conv", growth: int = 16, blocks: int = 4, units: int = 4) -> MDCSRN:
    return MDCSRN(scale, growth, blocks, units, block)


@register("tricubic")
def tricubic(scale: Any = 2) -> Tricubic:
    """Cubic B-spline interpolation, no parameters."""
    return Tricubic(scale)
