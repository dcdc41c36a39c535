"""Magnified crops of one region at the current slice (like Fig. 6 of the paper), and their PNG export.

Each crop is shown in its own layer's display window (napari contrast limits) with its title and, for
the outputs, its PSNR/SSIM against the ground-truth crop; the tiles are as large as the dock's width
and the visible height allow, and the titles wrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from qtpy.QtCore import QRect, Qt
from qtpy.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPixmap, QResizeEvent
from qtpy.QtWidgets import QGridLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from .._comparison import Crop
from .._windows import Window

__all__ = ["Crop", "CropsPanel", "Tile", "fit_nearest", "render_panel", "tile_image", "tile_layout", "to_uint8"]

GAP = 6
"""Pixels between tiles (and around the exported picture)."""
MIN_TILE = 112
"""Tiles shrink to fit the visible height down to this side (px); below, the dock scrolls instead."""
HEADER_ROOM = 40
"""Height (px) kept visible above the crops in the dock: the window row."""
EXPORT_TILE = 256
EXPORT_COLUMNS = 4
WRAP = int(Qt.TextFlag.TextWordWrap) | int(Qt.AlignmentFlag.AlignHCenter) | int(Qt.AlignmentFlag.AlignTop)


@dataclass(frozen=True)
class Tile:
    """One crop as shown: its layer's display window and, for an output, its PSNR (dB) and SSIM against the
    ground-truth crop."""

    crop: Crop
    window: Window
    psnr: float | None = None
    ssim: float | None = None

    def caption(self, short: bool = False) -> str:
        """The title, then ``30.52 dB · SSIM 0.931`` (``short``: ``30.52 dB · 0.931``, one line of a narrow tile)."""
        if self.psnr is None or self.ssim is None:
            return self.crop.title
        return f"{self.crop.title}\n{self.psnr:.2f} dB · {'' if short else 'SSIM '}{self.ssim:.3f}"

    @property
    def tooltip(self) -> str:
        if self.psnr is None or self.ssim is None:
            return self.crop.title
        return f"{self.crop.title}: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.4f} against the ground-truth crop"


def to_uint8(data: np.ndarray, window: Window) -> np.ndarray:
    """Map ``window`` (display contrast limits) to 0–255, clipped."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        high = low + 1.0
    scaled = (np.asarray(data, dtype=np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def fit_nearest(image: np.ndarray, magnification: Sequence[int], side: int) -> np.ndarray:
    """A 2D crop magnified (nearest neighbour) so that its displayed size fits a ``side``² square.

    The displayed size is ``image.shape × magnification`` (every crop of a region covers the same
    physical area); the result keeps its aspect ratio, with its longer side equal to ``side`` px.
    """
    image = np.asarray(image)
    extent = [n * m for n, m in zip(image.shape, magnification)]
    factor = side / max(max(extent), 1)
    out = [max(1, int(round(e * factor))) for e in extent]
    rows, cols = (np.minimum(((np.arange(o) + 0.5) * n / o).astype(int), n - 1) for o, n in zip(out, image.shape))
    return image[np.ix_(rows, cols)]


def tile_image(tile: Tile, side: int) -> QImage:
    """The tile's crop in its window, magnified to fit a ``side``² square."""
    return qimage_gray(fit_nearest(to_uint8(tile.crop.data, tile.window), tile.crop.magnification, side))


def tile_layout(count: int, width: int, height: int, caption: Callable[[int], int]) -> tuple[int, int]:
    """(columns, tile side in px) that shows ``count`` square tiles largest in ``width`` × ``height``.

    ``caption(w)``: the height (px) of the captions under the tiles when they are ``w`` px wide; tiles
    are :data:`GAP` px apart. Where no layout fits the height with tiles of at least :data:`MIN_TILE`
    px, the tiles fill the width in as many columns as keep them that large (the dock then scrolls).
    """
    if count <= 0:
        return 1, MIN_TILE

    def across(columns: int) -> int:
        return (width - GAP * (columns - 1)) // columns

    def fit(columns: int) -> int:
        rows = math.ceil(count / columns)
        side = across(columns)
        return min(side, (height - GAP * (rows - 1)) // rows - caption(side))

    best = max(range(1, count + 1), key=lambda c: (fit(c), c))
    if fit(best) >= MIN_TILE:
        return best, fit(best)
    columns = max((c for c in range(1, count + 1) if across(c) >= MIN_TILE), default=1)
    return columns, max(across(columns), 1)


def qimage_gray(image: np.ndarray) -> QImage:
    """A QImage (own copy) of a 2D uint8 array."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape
    return QImage(image.data, w, h, w, QImage.Format_Grayscale8).copy()


def _caption_height(metrics: QFontMetrics, captions: Sequence[str], width: int) -> int:
    """Height of the tallest wrapped caption at ``width`` px."""
    return max(metrics.boundingRect(QRect(0, 0, width, 10_000), WRAP, text).height() for text in captions)


def render_panel(tiles: Sequence[Tile], columns: int = EXPORT_COLUMNS, side: int = EXPORT_TILE) -> QImage:
    """The crops as one picture: ``side``-px tiles in a grid, each with its wrapped caption under it."""
    if not tiles:
        return QImage()
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    font = QFont()
    font.setPixelSize(max(12, side // 16))
    caption = _caption_height(QFontMetrics(font), [t.caption() for t in tiles], side) + GAP
    canvas = QImage(cols * (side + GAP) + GAP, rows * (side + caption + GAP) + GAP, QImage.Format_RGB32)
    canvas.fill(QColor(255, 255, 255))
    painter = QPainter(canvas)
    try:
        painter.setFont(font)
        painter.setPen(QColor(0, 0, 0))
        for n, tile in enumerate(tiles):
            x = GAP + (n % cols) * (side + GAP)
            y = GAP + (n // cols) * (side + caption + GAP)
            image = tile_image(tile, side)
            painter.drawImage(x + (side - image.width()) // 2, y + (side - image.height()) // 2, image)
            painter.drawText(QRect(x, y + side + GAP // 2, side, caption), WRAP, tile.caption())
    finally:
        painter.end()
    return canvas


class CropsPanel(QWidget):
    """A grid of magnified crops with wrapped captions, as large as the dock allows; :meth:`save_png`
    writes them to a file."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tiles: list[Tile] = []
        self.columns, self.side = 1, MIN_TILE
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel("Draw a rectangle (Region ▸ Draw) to see magnified crops of GT, LR, tricubic and SR.")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(GAP)
        layout.addWidget(self.grid_host)
        self.labels: list[tuple[QLabel, QLabel]] = []
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

    @property
    def crops(self) -> list[Crop]:
        return [tile.crop for tile in self._tiles]

    @property
    def tiles(self) -> list[Tile]:
        return list(self._tiles)

    def set_tiles(self, tiles: Sequence[Tile]) -> None:
        """Show ``tiles`` (a new region, slice or run): rebuild the grid."""
        self._tiles = list(tiles)
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.labels = []
        self.hint.setVisible(not self._tiles)
        for tile in self._tiles:
            image = QLabel()
            image.setAlignment(Qt.AlignCenter)
            caption = QLabel(tile.caption(short=True))
            caption.setWordWrap(True)
            caption.setAlignment(Qt.AlignHCenter | Qt.AlignTop)
            caption.setToolTip(tile.tooltip)
            self.labels.append((caption, image))
        self._layout_tiles()

    def set_windows(self, windows: Sequence[Window]) -> None:
        """Redraw the same crops in new display windows (one per tile, in order), e.g. after a contrast change."""
        self._tiles = [replace(t, window=w) for t, w in zip(self._tiles, windows, strict=True)]
        self._draw_images()

    def _room(self) -> tuple[int, int]:
        """(width, height) in px the tiles may take: the panel's width and the dock's visible height."""
        width = max(self.width(), MIN_TILE)
        scroll = self._scroll_area()
        height = scroll.viewport().height() - HEADER_ROOM if scroll is not None else 10 * width
        return width, max(height, MIN_TILE)

    def _scroll_area(self) -> QScrollArea | None:
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        return parent

    def _caption_height(self, width: int) -> int:
        return _caption_height(self.fontMetrics(), [t.caption(short=True) for t in self._tiles], width) + GAP

    def _layout(self) -> tuple[int, int]:
        """(columns, tile side) for the room the panel has now (:func:`tile_layout`)."""
        width, height = self._room()
        return tile_layout(len(self._tiles), width, height, self._caption_height)

    def _layout_tiles(self) -> None:
        """Place the tiles in the grid: columns and size from :func:`tile_layout`, captions wrapped to it."""
        if not self._tiles:
            return
        self.columns, self.side = self._layout()
        caption_height = self._caption_height(self.side)
        for n, (caption, image) in enumerate(self.labels):
            for label in (caption, image):
                self.grid.removeWidget(label)
                label.setFixedWidth(self.side)
            caption.setFixedHeight(caption_height)
            self.grid.addWidget(image, 2 * (n // self.columns), n % self.columns)
            self.grid.addWidget(caption, 2 * (n // self.columns) + 1, n % self.columns)
        self._draw_images()

    def _draw_images(self) -> None:
        for tile, (_, image) in zip(self._tiles, self.labels):
            picture = tile_image(tile, self.side)
            image.setFixedHeight(picture.height())
            image.setPixmap(QPixmap.fromImage(picture))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._tiles and self._layout() != (self.columns, self.side):
            self._layout_tiles()

    def save_png(self, path: str | Path) -> Path:
        """Write the crops (captions included) as a PNG; ``ValueError`` when there is nothing to save."""
        if not self._tiles:
            raise ValueError("There are no crops yet: run, then draw a rectangle in the region layer.")
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        if not render_panel(self._tiles).save(str(path), "PNG"):
            raise OSError(f"Could not write {path}.")
        return path
