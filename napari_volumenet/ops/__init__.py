"""The science: LR simulation, interpolation, metrics, normalisation, voxel shuffle."""
