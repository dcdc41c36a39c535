"""Short names for what the widget shows, and its words for the command line's (no Qt, no napari).

Every layer, table row and crop title of a run carries a short label: what tells the outputs apart,
first (the block of a comparison network, the weights' name), middle-elided (``…``) to at most
:data:`MAX_NAME` characters. The full name goes in tooltips and the layers' provenance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

MAX_NAME = 20
"""Visible characters of a layer name, table row or crop title: what the metrics table's name column shows
whole at the widget's width."""
ELLIPSIS = "…"
SEPARATOR = " · "
GT_SUFFIX = " − GT|"


CAPTION_PT = 10.0
"""napari's font size (points) for a layer's name in the canvas."""
MIN_CAPTION_PT = 7.0
"""The smallest caption kept readable on a 1366×768 screen."""
PX_PER_CHARACTER_PT = 1.1
"""Width of a caption per character and point, in screen pixels, with a margin: measured ~9.5 px a character
at 10 pt for lower case, more for capitals and digits."""


def caption_size(name: str, cell_px: float) -> float:
    """The font size (points, by halves) at which ``name`` fits a grid cell ``cell_px`` pixels wide, napari's
    default at most and :data:`MIN_CAPTION_PT` at least."""
    fitting = cell_px / (PX_PER_CHARACTER_PT * max(len(name), 1))
    return max(MIN_CAPTION_PT, min(CAPTION_PT, int(2 * fitting) / 2))


def elide_middle(text: str, limit: int = MAX_NAME) -> str:
    """``text`` with its middle replaced by ``…`` so that it is at most ``limit`` characters long."""
    if len(text) <= limit:
        return text
    if limit < 3:
        return text[:limit]
    tail = limit // 2
    head = limit - 1 - tail
    return text[:head].rstrip() + ELLIPSIS + text[-tail:].lstrip()


def numbered(names: Iterable[str], taken: Iterable[str] = (), limit: int = MAX_NAME) -> list[str]:
    """``names`` made distinct (from each other and from ``taken``) by a number after repeats: ``a``, ``a 2``."""
    used = set(taken)
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            suffix = f" {n}"
            candidate = elide_middle(name, limit - len(suffix)) + suffix
        used.add(candidate)
        out.append(candidate)
    return out


def short_labels(parts: Sequence[Sequence[str]], limit: int = MAX_NAME, taken: Iterable[str] = ()) -> list[str]:
    """One short, distinct label per name given as parts, the most telling first (``["xception",
    "ParallelNet D9C32"]``): the fewest leading parts that tell the names apart, joined by `` · `` and
    middle-elided to ``limit``; names that no number of parts tells apart are numbered."""
    taken = set(taken)
    longest = max((len(p) for p in parts), default=0)
    for count in range(1, longest + 1):
        labels = [elide_middle(SEPARATOR.join(p[:count]), limit) for p in parts]
        if len(set(labels)) == len(labels) and not taken.intersection(labels):
            return labels
    return numbered([elide_middle(SEPARATOR.join(p), limit) for p in parts], taken, limit)


def difference_names(labels: Sequence[str], limit: int = MAX_NAME) -> list[str]:
    """``|label − GT|`` for each label, the label middle-elided so that the name fits ``limit``; distinct."""
    room = limit - len("|") - len(GT_SUFFIX)
    return [f"|{label}{GT_SUFFIX}" for label in numbered((elide_middle(label, room) for label in labels), (), room)]


def scale_label(view_scale: Sequence[int]) -> str:
    """A scale in napari's terms: ``×2`` when isotropic, ``×4 axis 0`` for thick slices along the napari
    axis whose factor is not 1, ``×1×2×4`` for anything else."""
    if len(set(view_scale)) == 1:
        return f"×{view_scale[0]}"
    coarse = [axis for axis, s in enumerate(view_scale) if s != 1]
    if len(coarse) == 1:
        return f"×{view_scale[coarse[0]]} axis {coarse[0]}"
    return "×" + "×".join(map(str, view_scale))


def simulated_lr_name(view_scale: Sequence[int]) -> str:
    """The name of Simulate mode's LR layer: ``LR ×2 (simulated)``, ``LR ×4 axis 0 (sim.)``."""
    name = f"LR {scale_label(view_scale)} (simulated)"
    return name if len(name) <= MAX_NAME else elide_middle(f"LR {scale_label(view_scale)} (sim.)")


def network_name(config: dict[str, Any]) -> str:
    """A network from its config, in full: ``ParallelNet D9C32 with xception blocks``."""
    from .models import display_name

    name = str(config.get("name", "?"))
    if name == "tricubic":
        return "cubic B-spline interpolation"
    network = display_name(name, {k: config[k] for k in ("depth", "channels") if k in config})
    return network + (f" with {config['block']} blocks" if "depth" in config and "block" in config else "")


def full_name(label: str, config: dict[str, Any], weights: Any = None, untrained: bool = False) -> str:
    """What an output is, in full (tooltips): ``xception: ParallelNet D9C32 with xception blocks, weights
    compare-d9c32-xception-mri-x2.pt``."""
    if config.get("name") == "tricubic":
        return f"{label}: {network_name(config)}"
    source = "random weights (speed only)" if untrained or weights is None else f"weights {weights}"
    return f"{label}: {network_name(config)}, {source}"


def output_name(out: Any) -> str:
    """:func:`full_name` of a :class:`~napari_volumenet._pipeline.Output`."""
    return full_name(out.label, out.model_config, None if out.weights is None else out.weights.name, out.untrained)


# ---------------------------------------------------------------------- the widget's words
CONTROLS = {"device": "Device ▸ Device", "precision": "Device ▸ Precision", "tile": "Device ▸ Tile",
            "modality": "Model ▸ Modality", "weights": "Model ▸ Weights", "scale": "Model ▸ Weights"}
"""The widget's control for each command-line flag that library messages advise."""
WIDGET_TERMS: tuple[tuple[str, Any], ...] = (
    (r"(?:use|pass) --(device|precision) ([\w:]+(?: or [\w:]+)?)", lambda m: f"choose {m[2]} in {CONTROLS[m[1]]}"),
    (r"pass one of them or --device cuda", "choose one of them in Device ▸ Device"),
    (r"pass a smaller --tile", "choose a smaller Device ▸ Tile"),
    (r"pass --scale(?: 2)? or --weights(?: to choose one)?", "choose the weights in Model ▸ Weights"),
    (r"--modality \w+ --scale 2 runs the isotropic (\w+) ×2 weights",
     r"choose the isotropic \1 ×2 weights in Model ▸ Weights"),
    (r"\(volumenet-train [^)]*\)", "(with volumenet-train)"),
    (r"pass them with --weights", "choose them in Model ▸ Weights"),
    (r"--modality (\w+)", r"Model ▸ Modality \1"),
    (r"--scale: ", ""),
    (r"(?<![\w-])--([a-z][\w-]*)", lambda m: CONTROLS.get(m[1], m[1])),
)
"""Command-line advice in library messages → the widget's controls, in this order (the last catches any flag)."""


def in_widget_terms(message: str, ornt: Any = None) -> str:
    """A library message in the widget's terms: its controls instead of command-line flags, napari axes
    (``ornt``: the input layer's view transform) instead of array axes."""
    for pattern, replacement in WIDGET_TERMS:
        message = re.sub(pattern, replacement, message)
    if ornt is not None:
        message = re.sub(r"array axis (\d)", lambda m: f"napari axis {int(ornt[int(m[1])][0])}", message)
    return message.replace("array axis", "axis")
