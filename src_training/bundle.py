"""Ship a trained weights file with the package: copy it into ``napari_volumenet/weights/`` and
name it in ``bundled.json`` (the registry ``volumenet models`` and the plugin read).

    python -m src_training.bundle runs/vn9_mri/best.pt --name volumenet-d9c32-mri-x2 --default \\
        --description "VolumeNet D9C32, T1 MRI ×2" --data "OASIS-1 (28) + IXI (52) T1" \\
        --licence "trained on OASIS (CC BY-NC 3.0) and IXI (CC BY-SA 3.0) data" --use "non-commercial use only"

The copy keeps the weights and the metadata but drops machine-specific paths from the training
summary (file names, counts, hashes and settings stay). An entry with the same name is replaced;
``--default`` makes it the default for its model, modality and scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from napari_volumenet.atomic import atomic_path, write_text_atomic
from napari_volumenet.errors import VolumeNetError
from napari_volumenet.weights import BUNDLED_DIR, BUNDLED_REGISTRY, read_weights_file

MACHINE_KEYS = ("data", "val", "init_from")


def portable_payload(payload: dict) -> dict:
    """``payload`` with absolute paths in ``metadata.training`` reduced to folder names."""
    training = dict(payload["metadata"].get("training") or {})
    for key in MACHINE_KEYS:
        value = training.get(key)
        if isinstance(value, list):
            training[key] = [Path(v).name for v in value]
        elif isinstance(value, dict) and "path" in value:
            training[key] = {**value, "path": Path(value["path"]).name}
    return {**payload, "metadata": {**payload["metadata"], "training": training}}


def bundle(source: Path, name: str, description: str, data: str, licence: str, default: bool,
           *, use: str = "", comparison: bool = False) -> dict:
    """Copy ``source`` to ``weights/<name>.pt`` and add (or replace) its ``bundled.json`` entry.

    ``use`` says in a few words who may use the weights (``volumenet models`` and the widget show it);
    ``comparison`` marks weights of the block comparison (the napari *Compare blocks* tab runs them)."""
    if default and comparison:
        raise VolumeNetError("block-comparison weights are never a default; drop --default or --comparison")
    payload = read_weights_file(source)
    meta = payload["metadata"]
    target = BUNDLED_DIR / f"{name}.pt"
    with atomic_path(target) as temp:
        torch.save(portable_payload(payload), temp)
    training = meta.get("training") or {}
    entry = {
        "name": name, "file": target.name, "model": meta["model"], "modality": meta["modality"],
        "scale": list(meta["scale"]), "description": description, "default": default, "licence": licence,
        "data": data, "val_psnr": meta.get("val_psnr"), "tricubic_val_psnr": training.get("tricubic_val_psnr"),
        "use": use, "comparison": comparison, "params": _parameter_count(payload["state_dict"]),
        "steps": training.get("steps"),
        "model_kwargs": {k: v for k, v in meta.get("model_kwargs", {}).items() if k != "scale"},
    }
    entries = json.loads(BUNDLED_REGISTRY.read_text()) if BUNDLED_REGISTRY.is_file() else []
    position = next((i for i, e in enumerate(entries) if e["name"] == name), len(entries))  # a replacement keeps its place
    entries = [e for e in entries if e["name"] != name]
    if default:
        def kind(e: dict) -> tuple:
            return e["model"], e["modality"], tuple(e["scale"])

        for e in entries:
            if kind(e) == kind(entry):
                e["default"] = False
    entries.insert(position, entry)
    write_text_atomic(BUNDLED_REGISTRY, json.dumps(entries, indent=2) + "\n")
    return entry


def _parameter_count(state: dict) -> int:
    """Trainable parameters of a state dict (batch-norm running statistics excluded)."""
    return sum(t.numel() for k, t in state.items() if not k.endswith(("running_mean", "running_var",
                                                                         "num_batches_tracked")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src_training.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path, help="a weights file written by volumenet-train")
    parser.add_argument("--name", required=True, help="bundled name, e.g. volumenet-d9c32-mri-x2")
    parser.add_argument("--description", required=True)
    parser.add_argument("--data", required=True, help="what it was trained on, in a few words")
    parser.add_argument("--licence", required=True, help="the licence terms the training data impose")
    parser.add_argument("--use", default="",
                        help="who may use the weights, in a few words, e.g. 'non-commercial use only'")
    parser.add_argument("--default", action="store_true", help="the default for its model, modality and scale")
    parser.add_argument("--comparison", action="store_true",
                        help="weights of the block comparison (the napari Compare blocks tab runs them)")
    args = parser.parse_args(argv)
    try:
        entry = bundle(args.weights, args.name, args.description, args.data, args.licence, args.default,
                       use=args.use, comparison=args.comparison)
    except VolumeNetError as error:
        print(f"bundle: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
