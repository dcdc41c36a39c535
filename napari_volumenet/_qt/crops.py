"""Magnified crops of one region at the current slice (like Fig. 6 of the paper), and their PNG export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from qtpy.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .._comparison import Crop

__all__ = ["COLUMNS", "Crop", "CropsPanel", "magnify", "render_panel", "to_uint8"]

COLUMNS = 2


def to_uint8(data: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``window`` (display contrast limits) to 0–255, clipped."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        high = low + 1.0
    scaled = (np.asarray(data, dtype=np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def magnify(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour magnification: every pixel becomes a ``factors`` block."""
    return np.repeat(np.repeat(image, factors[0], axis=0), factors[1], axis=1)


def qimage_gray(image: np.ndarray) -> QImage:
    """A QImage (own copy) of a 2D uint8 array."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape
    return QImage(image.data, w, h, w, QImage.Format_Grayscale8).copy()


def render_panel(crops: Sequence[Crop], window: tuple[float, float], columns: int = COLUMNS) -> QImage:
    """The crops as one image: magnified tiles in a grid with their titles above."""
    tiles = [magnify(to_uint8(c.data, window), c.magnification) for c in crops]
    if not tiles:
        return QImage()
    pad, title_h = 8, 18
    cell_w = max(t.shape[1] for t in tiles) + pad
    cell_h = max(t.shape[0] for t in tiles) + title_h + pad
    cols = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // cols)
    canvas = QImage(cols * cell_w + pad, rows * cell_h + pad, QImage.Format_RGB32)
    canvas.fill(QColor(255, 255, 255))
    painter = QPainter(canvas)
    try:
        font = QFont()
        font.setPixelSize(12)
        painter.setFont(font)
        painter.setPen(QColor(0, 0, 0))
        for n, (crop, tile) in enumerate(zip(crops, tiles)):
            x = pad + (n % cols) * cell_w
            y = pad + (n // cols) * cell_h
            painter.drawText(x, y + 12, crop.title)
            painter.drawImage(x, y + title_h, qimage_gray(tile))
    finally:
        painter.end()
    return canvas


class CropsPanel(QWidget):
    """A grid of magnified crops with titles; :meth:`save_png` writes the same layout to a file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._crops: list[Crop] = []
        self._window: tuple[float, float] = (0.0, 1.0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel("Draw a rectangle (Region ▸ Draw) to see magnified crops of GT, LR, tricubic and SR.")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.grid_host)
        self.labels: list[tuple[QLabel, QLabel]] = []

    @property
    def crops(self) -> list[Crop]:
        return list(self._crops)

    def clear(self, hint: str | None = None) -> None:
        self.set_crops([], self._window)
        if hint is not None:
            self.hint.setText(hint)

    def set_crops(self, crops: Sequence[Crop], window: tuple[float, float]) -> None:
        self._crops = list(crops)
        self._window = window
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.labels = []
        self.hint.setVisible(not self._crops)
        for n, crop in enumerate(self._crops):
            title = QLabel(crop.title)
            title.setAlignment(Qt.AlignCenter)
            image = QLabel()
            image.setPixmap(QPixmap.fromImage(qimage_gray(magnify(to_uint8(crop.data, window), crop.magnification))))
            image.setAlignment(Qt.AlignCenter)
            image.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Minimum)
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(2, 2, 2, 2)
            box_layout.addWidget(title)
            box_layout.addWidget(image)
            self.grid.addWidget(box, n // COLUMNS, n % COLUMNS)
            self.labels.append((title, image))

    def save_png(self, path: str | Path) -> Path:
        """Write the crops (titles included) as a PNG; ``ValueError`` when there is nothing to save."""
        if not self._crops:
            raise ValueError("There are no crops yet: run, then draw a rectangle in the region layer.")
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        if not render_panel(self._crops, self._window).save(str(path), "PNG"):
            raise OSError(f"Could not write {path}.")
        return path
