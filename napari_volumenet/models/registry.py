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
