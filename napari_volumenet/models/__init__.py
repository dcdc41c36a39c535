"""Networks: the building blocks, ParallelNet / VolumeNet, the baselines and their registry."""

from .base import SuperResolutionNet
from .blocks import Block, list_blocks
from .registry import count_parameters, create_model, display_name, list_models, register

__all__ = ["Block", "SuperResolutionNet", "count_parameters", "create_model", "display_name", "list_blocks",
           "list_models", "register"]
