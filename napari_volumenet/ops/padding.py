"""CT padding outside the reconstruction circle (SPEC §4).

Scanners fill the corners outside the reconstructed field of view with a constant far below air
(−3024, −2048 or −2000 HU; DICOM PixelPaddingValue). A network trained on real anatomy has never
seen such a cliff: it rings along the circle and writes values far below the input's minimum. So
before the network runs, every input value below air (padding, and the blurred rim a simulated
acquisition makes of it) is raised to air; after it, HR voxels whose LR voxel was padding get the
padding value back, and no other output voxel goes below air.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AIR_HU = -1024.0
"""What the network sees instead of padding, and the floor of every other output voxel (HU)."""
MIN_PADDING_FRACTION = 1e-3
"""The minimum counts as padding when at least this fraction of the voxels holds it exactly."""


def detect_padding(volume: np.ndarray) -> float | None:
    """The padding constant of a CT ``volume`` (HU): its minimum when that lies below air and fills at
    least :data:`MIN_PADDING_FRACTION` of the voxels exactly; ``None`` for a scan without padding."""
    low = float(np.min(volume))
    if low >= AIR_HU:
        return None
    return low if np.count_nonzero(volume == low) >= MIN_PADDING_FRACTION * volume.size else None


@dataclass(frozen=True)
class Padding:
    """How padding of ``value`` HU is hidden from the network and written back."""

    value: float

    def hide(self, lr: np.ndarray) -> np.ndarray:
        """LR values (HU) with everything below air raised to air (a new float32 array)."""
        return np.maximum(lr, np.float32(AIR_HU), dtype=np.float32)

    def restore(self, hr: np.ndarray, lr: np.ndarray, scale: Sequence[int]) -> np.ndarray:
        """``hr`` (the output of the LR region ``lr``, ``s`` times larger per axis) with the padding value
        where the LR voxel was padding and no other voxel below air (in place; returned)."""
        np.maximum(hr, np.float32(AIR_HU), out=hr)
        mask = lr == self.value
        for axis, s in enumerate(scale):
            mask = np.repeat(mask, s, axis=axis)
        hr[mask] = self.value
        return hr


def resolve_padding(volume: np.ndarray, modality: str, pad_value: float | str | None = "auto") -> Padding | None:
    """The padding rule for ``volume``: ``"auto"`` detects it in CT (never in MRI), a number takes that
    value (``--pad-value``), ``None`` or ``"none"`` switches it off."""
    if pad_value is None or pad_value == "none":
        return None
    if pad_value == "auto":
        value = detect_padding(volume) if modality == "ct" else None
        return None if value is None else Padding(value)
    return Padding(float(pad_value))
