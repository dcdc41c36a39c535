"""Qt parts of the napari plugin (widgets only: the work is done by :mod:`napari_volumenet._pipeline`)."""
