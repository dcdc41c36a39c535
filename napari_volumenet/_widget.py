"""napari widgets of the plugin (see :mod:`napari_volumenet._qt.widget`)."""

from ._qt.widget import ComparisonEntry, SuperResolutionWidget

__all__ = ["ComparisonEntry", "SuperResolutionWidget"]
