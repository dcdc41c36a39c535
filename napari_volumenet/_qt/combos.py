"""Combo boxes of layer names."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox, QWidget


class LayerCombo(QComboBox):
    """A combo box of layer names that refreshes itself (with ``refresh``) when opened."""

    def __init__(self, refresh: Callable[[], None], tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._refresh = refresh
        self.setToolTip(tooltip)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(14)

    def showPopup(self) -> None:  # noqa: N802 - Qt API
        self._refresh()
        super().showPopup()

    def set_items(self, items: list[str], current: str) -> None:
        """Replace the items without emitting signals, keeping ``current`` when it is one of them."""
        self.blockSignals(True)
        self.clear()
        self.addItems(items)
        if current in items:
            self.setCurrentIndex(items.index(current))
        self.blockSignals(False)
