"""Learned 3D super-resolution (ParallelNet / VolumeNet) for MRI and CT volumes."""

__version__ = "0.1.0"
