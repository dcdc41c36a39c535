"""Weights files: saving, safe loading, and the registry of weights bundled with the package.

A weights file is a ``torch.save`` of a plain dict (loaded with ``weights_only=True``)::

    {"format": "napari-volumenet-weights", "format_version": 1,
     "state_dict": {...tensors...},
     "metadata": {"model": "volumenet", "model_kwargs": {...}, "scale": [2, 2, 2],
                  "modality": "mri", "normalization": {...}, "training": {...},
                  "val_psnr": 37.1, "version": "0.1.0", "created": "2026-11-25T04:00:00Z"}}
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import save_torch_atomic
from ..errors import ModelError, WeightsError
from ..io._text import reason
from ..io.files import special_kind
from ..models import SuperResolutionNet, create_model
from ..ops.normalize import MODALITIES
from ..ops.scale import as_scale

FORMAT = "napari-volumenet-weights"
FORMAT_VERSION = 1
BUNDLED_DIR = Path(__file__).parent
BUNDLED_REGISTRY = BUNDLED_DIR / "bundled.json"

NORMALIZATION_RULES = {
    "mri": {"rule": "divide by the 99.9th percentile", "low": 0.0, "percentile": 99.9},
    "ct": {"rule": "window [-1000, 1000] HU to [0, 1]", "low": -1000.0, "high": 1000.0},
}


def model_metadata(model: SuperResolutionNet) -> dict[str, Any]:
    """Name, kwargs and scale of ``model`` as stored in a weights file."""
    kwargs = dict(model.config)
    name = kwargs.pop("name")
    return {"model": name, "model_kwargs": kwargs, "scale": list(model.scale)}


def save_weights(
    path: str | Path,
    model: SuperResolutionNet,
    *,
    modality: str,
    training: dict[str, Any] | None = None,
    val_psnr: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and metadata to ``path`` atomically (temp file + rename)."""
    if modality not in MODALITIES:
        raise WeightsError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    metadata = {
        **model_metadata(model),
        "modality": modality,
        "normalization": NORMALIZATION_RULES[modality],
        "training": training or {},
        "val_psnr": None if val_psnr is None else float(val_psnr),
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": json.loads(json.dumps(metadata)),  # plain types only, so weights_only loading works
    }
    return save_torch_atomic(payload, path)


def read_weights_file(path: str | Path) -> dict[str, Any]:
    """The raw payload of a weights file, checked to be ours; :class:`WeightsError` otherwise."""
    path = Path(path)
    if not path.is_file():
        kind = special_kind(path.stat().st_mode) if path.exists() else None  # a FIFO is never opened
        raise WeightsError(f"{path} is {kind}, not a weights file" if kind else f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:  # the file cannot be opened or read: say why, not "damaged"
        raise WeightsError(f"{path} cannot be read: {reason(error)}") from None
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise WeightsError(
            f"{path} is not a napari-volumenet weights file: PyTorch cannot read it safely "
            f"({type(error).__name__}); it may be damaged, truncated or not a .pt file at all"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        bare = isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values())
        what = ("a bare state dict, which names no model, scale or modality, so it cannot be used safely; "
                "save it with napari_volumenet.weights.save_weights" if bare
                else f"it holds a {type(payload).__name__} without the '{FORMAT}' header")
        raise WeightsError(f"{path} is not a napari-volumenet weights file: {what}")
    if not isinstance(payload.get("state_dict"), dict) or not isinstance(payload.get("metadata"), dict):
        raise WeightsError(f"{path} is damaged: it has no state dict or no metadata")
    return payload


def load_weights(
    path: str | Path,
    *,
    model: str | None = None,
    scale: int | tuple[int, int, int] | None = None,
    modality: str | None = None,
) -> tuple[SuperResolutionNet, dict[str, Any]]:
    """Build the network a weights file describes and load its weights (``weights_only=True``).

    ``model``, ``scale`` and ``modality``, when given, must match the file's metadata;
    a mismatch raises :class:`WeightsError` instead of silently running the wrong network.
    Returns ``(network in eval mode, metadata)``.
    """
    path = Path(path)
    payload = read_weights_file(path)
    meta = payload["metadata"]
    name, kwargs = check_metadata(path, meta)
    if model is not None and model != name:
        raise WeightsError(f"{path.name} holds weights for model {name!r}, not {model!r}")
    if scale is not None and as_scale(scale) != kwargs["scale"]:
        raise WeightsError(f"{path.name} was trained for scale {kwargs['scale']}, not {as_scale(scale)}")
    if modality is not None and modality != meta.get("modality"):
        raise WeightsError(f"{path.name} was trained on {meta.get('modality')!r} data, not {modality!r}")
    network = _check_shapes(path, name, kwargs, payload["state_dict"])
    try:
        state = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                 for k, v in payload["state_dict"].items()}  # float32, as copying into a built network made them
        network.load_state_dict(state, strict=True, assign=True)  # the file's tensors, off the meta device
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise WeightsError(f"{path.name} does not fit model {name!r}: {detail[:160]}") from None
    return network.eval(), meta


MAX_SCALE = 8
INT_LIMITS = {"depth": 64, "channels": 256, "growth": 128, "units": 16, "blocks": 16}
"""Largest value of each integer model argument a weights file may ask for (all start at 1)."""


def check_metadata(path: Path, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(model name, kwargs with scale)`` of a weights file, range-checked before anything is built.

    A crafted or damaged file cannot make the loader allocate gigabytes (``scale`` 100) or spin for
    minutes (``depth`` 100000): every value is checked against :data:`INT_LIMITS` / :data:`MAX_SCALE`.
    """
    from ..models import list_models
    from ..models.blocks import list_blocks

    name = meta.get("model")
    if name not in list_models():
        raise WeightsError(f"{path.name} describes an unknown model {name!r}; this version has {', '.join(list_models())}")
    if meta.get("modality") not in MODALITIES:
        raise WeightsError(f"{path.name} is damaged or crafted: its modality {meta.get('modality')!r} is not one of "
                           f"{', '.join(MODALITIES)}")
    kwargs = meta.get("model_kwargs", {})
    if not isinstance(kwargs, dict):
        raise WeightsError(f"{path.name} is damaged: its model arguments are not a mapping")
    try:
        factors = as_scale(meta.get("scale", 2))
    except ModelError:
        raise WeightsError(f"{path.name} is damaged: its scale {meta.get('scale')!r} is not 1 or 3 positive integers") from None
    if max(factors) > MAX_SCALE:
        raise WeightsError(f"{path.name} asks for scale {factors}; at most ×{MAX_SCALE} per axis is supported")
    kwargs = {k: v for k, v in kwargs.items() if k != "scale"}  # the top-level scale is the one used
    for key, value in kwargs.items():
        _check_argument(path, key, value, list_blocks())
    if "fit" in meta:
        check_fit(path, meta["fit"])
    return name, {**kwargs, "scale": factors}


FIT_FIELDS = {"source": str, "modality": str, "factor": int, "axis": int, "profile": dict, "start": str, "kept": str,
              "minutes": (int, float), "steps": int, "self_validation": dict}
"""The ``fit`` entry of weights made by ``volumenet fit`` (:mod:`napari_volumenet.fit`): field → type."""


def check_fit(path: Path, fit: Any) -> None:
    """The ``fit`` metadata of fitted weights well-formed (every field of :data:`FIT_FIELDS`, finite numbers, the
    self-validation's ``cubic`` / ``start`` / ``fitted`` PSNRs), else :class:`WeightsError`."""
    if not isinstance(fit, dict):
        raise WeightsError(f"{path.name} is damaged: its fit metadata is not a mapping")
    for key, kind in FIT_FIELDS.items():
        value = fit.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise WeightsError(f"{path.name} is damaged: fit metadata {key}={value!r} is missing or of the wrong type")
    scores = [fit["self_validation"].get(k) for k in ("cubic", "start", "fitted")]
    numbers = [fit["minutes"], *scores]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        raise WeightsError(f"{path.name} is damaged: its fit metadata has a missing or non-finite number")
    if fit["axis"] not in (0, 1, 2) or not 1 <= fit["factor"] <= MAX_SCALE or fit["steps"] < 0:
        raise WeightsError(f"{path.name} is damaged: fit axis {fit['axis']!r}, factor {fit['factor']!r} or steps "
                           f"{fit['steps']!r} out of range")


def _check_argument(path: Path, key: str, value: Any, blocks: list[str]) -> None:
    """One model argument of a weights file within range, else :class:`WeightsError`."""
    if key in INT_LIMITS:
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT_LIMITS[key]
        expected = f"an integer from 1 to {INT_LIMITS[key]}"
    elif key == "block":
        ok, expected = value in blocks, f"one of {', '.join(blocks)}"
    elif key == "ratio":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
        expected = "a number in (0, 1]"
    else:
        raise WeightsError(f"{path.name} has a model argument {key!r} this version does not know")
    if not ok:
        raise WeightsError(f"{path.name} is damaged or crafted: model argument {key}={value!r} is not {expected}")


class _NoMetaFills(torch.overrides.TorchFunctionMode):
    """Random and constant fills of meta tensors do nothing: they hold no values, and PyTorch runs them through
    ``torch._refs``, whose first use imports ``torch._dynamo`` (about 1.6 CPU seconds of start-up)."""

    FILLS = {"normal_", "uniform_", "zero_", "fill_", "kaiming_uniform_", "kaiming_normal_", "zeros_"}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", "") in self.FILLS and isinstance(tensor, torch.Tensor) and tensor.is_meta:
            return tensor
        return func(*args, **kwargs)


def _check_shapes(path: Path, name: str, kwargs: dict[str, Any], state: dict[str, Any]) -> SuperResolutionNet:
    """Compare the file's tensors with the network built on the meta device (nothing allocated); NaN/Inf refused.
    Returns that network, still on the meta device: assigning the file's tensors makes it real without
    initialising weights the file replaces at once."""
    try:
        with torch.device("meta"), _NoMetaFills():
            network = create_model(name, **kwargs)
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    except ModelError as error:
        raise WeightsError(f"{path.name} describes a model this version cannot build: {error}") from None
    stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if stored != expected:
        missing = sorted(set(expected) - set(stored))
        unexpected = sorted(set(stored) - set(expected))
        wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
        detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
                  else f"{wrong[0]} is {stored[wrong[0]]}, expected {expected[wrong[0]]}")
        raise WeightsError(f"{path.name} does not fit model {name!r}: {detail}")
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path.name} contains NaN or infinite weights ({key}); it is damaged or comes "
                               "from a training run that diverged")
    return network


@dataclass(frozen=True)
class BundledWeights:
    """One weights file shipped inside the package."""

    name: str
    file: str
    model: str
    modality: str
    scale: tuple[int, int, int]
    description: str
    default: bool = False
    licence: str = ""
    data: str = ""
    val_psnr: float | None = None
    tricubic_val_psnr: float | None = None
    use: str = ""
    """Who may use the weights, in a few words (e.g. "non-commercial use only")."""
    comparison: bool = False
    """Trained for the block comparison: every block with the same data, recipe and steps (never a default)."""
    params: int | None = None
    steps: int | None = None
    """Training steps of the weights (the best validation's step)."""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    """The architecture (``depth``, ``channels``, ``block``…), as the file's metadata says (without ``scale``)."""

    @property
    def path(self) -> Path:
        return BUNDLED_DIR / self.file

    @property
    def val_gain(self) -> float | None:
        """Validation PSNR minus tricubic's on the same validation volumes (dB), when both are recorded."""
        if self.val_psnr is None or self.tricubic_val_psnr is None:
            return None
        return float(self.val_psnr) - float(self.tricubic_val_psnr)

    @property
    def beats_tricubic(self) -> bool | None:
        """Whether the weights beat tricubic interpolation on their own validation (None: not recorded)."""
        return None if self.val_gain is None else self.val_gain > 0

    @property
    def training_note(self) -> str:
        """Steps and validation in a few words: ``5,028 steps · val 35.90 dB (+1.59 over tricubic)``."""
        parts = [] if self.steps is None else [f"{self.steps:,} steps"]
        if self.val_psnr is not None:
            gain = "" if self.val_gain is None else f" ({self.val_gain:+.2f} over tricubic)"
            parts.append(f"val {self.val_psnr:.2f} dB{gain}")
        note = " · ".join(parts) or "training not recorded"
        return note + (" · NOT better than tricubic" if self.beats_tricubic is False else "")

    @property
    def terms(self) -> str:
        """One line for users choosing weights: who may use them, and the training data's licences."""
        return "; ".join(part for part in (self.use, self.licence) if part) or "terms of use not recorded"


def list_bundled() -> list[BundledWeights]:
    """Weights shipped with the package, as listed in ``weights/bundled.json``."""
    if not BUNDLED_REGISTRY.is_file():
        return []
    entries = json.loads(BUNDLED_REGISTRY.read_text())
    return [BundledWeights(**{**e, "scale": tuple(e["scale"])}) for e in entries]


def licence_notice(path: str | Path) -> str | None:
    """The terms of use of bundled weights at ``path`` (one line for a label), ``None`` for other files.

    For the napari widget and the CLI: e.g. "volumenet-d9c32-mri-x2: non-commercial use only; training
    data: OASIS CC BY-NC 3.0, ...". Weights a user trained are theirs: ``None``.
    """
    try:
        wanted = Path(path).resolve()
    except (OSError, RuntimeError, TypeError):
        return None
    for weights in list_bundled():
        if weights.path.resolve() == wanted:
            return f"{weights.name}: {weights.terms}"
    return None


def find_bundled(name: str) -> BundledWeights:
    """The bundled weights called ``name``; :class:`WeightsError` listing the choices otherwise."""
    bundled = {w.name: w for w in list_bundled()}
    if name not in bundled:
        choices = ", ".join(bundled) or "none are bundled yet"
        raise WeightsError(f"no bundled weights named {name!r} ({choices})")
    return bundled[name]


def default_weights(modality: str = "mri", scale: int | tuple[int, int, int] = 2, model: str | None = None) -> Path:
    """Path of the bundled weights marked default for ``modality`` and ``scale`` (and ``model`` if given).

    Weights bundled without the default mark (previews) are used only when named explicitly.
    """
    wanted = as_scale(scale)
    matches = [
        w for w in list_bundled()
        if w.modality == modality and w.scale == wanted and (model is None or w.model == model)
    ]
    defaults = [w for w in matches if w.default]
    if not defaults:
        factors = str(wanted[0]) if len(set(wanted)) == 1 else "×".join(map(str, wanted))
        what = f"{model + ' ' if model else ''}{modality.upper()} ×{factors}"
        others = f" (bundled, not default: {', '.join(w.name for w in matches)}; pass --weights NAME)" if matches else ""
        raise WeightsError(
            f"no default weights for {what} yet{others}; pass --weights FILE (train one with volumenet-train)"
        )
    return defaults[0].path
