"""napari widgets of the plugin (see :mod:`napari_volumenet._qt.widget`)."""

from ._qt.widget import ComparisonWidget, SuperResolutionWidget

__all__ = ["ComparisonWidget", "SuperResolutionWidget"]
