"""``volumenet info``: what the tool sees in a volume file or DICOM series, and the weights ``upscale`` would pick."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import VolumeNetError

EPILOG = """\
examples:
  volumenet info scan.nii.gz
  volumenet info dicom/t1_sag/            # a series folder (or one file of it)
  volumenet info dicom/study/ --json      # a folder of several series: each one
  volumenet info dicom/study/ --series 7  # one of them, by SeriesNumber, SeriesInstanceUID or description

Header(s) only, no voxel is read. The affine maps array indices to RAS+ millimetres (nibabel's convention; a
series is read as dcm2niix converts it). The weights line is what `volumenet upscale` would choose and why.
"""


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet info`` to ``p``."""
    p.add_argument("path", metavar="PATH", help="a NIfTI/MGH file, a DICOM series folder or one of its files")
    p.add_argument("--series", default=None, metavar="KEY",
                   help="in a folder of several series, the one to show (SeriesNumber, SeriesInstanceUID or "
                        "description)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _nifti_facts(path: Path) -> dict[str, Any]:
    import nibabel

    from ..io import read_affine
    from ..io.header import quiet_nibabel

    affine = read_affine(path)
    with quiet_nibabel():
        shape = tuple(int(n) for n in nibabel.load(str(path)).shape)
    kind = "MGH" if path.name.lower().endswith((".mgz", ".mgh")) else "NIfTI"
    return {"path": str(path), "format": kind, "shape": list(shape), "affine": affine, "slab": None, "modality": None}


def _series_facts(info: Any) -> dict[str, Any]:
    series, grid = info.series, info.grid
    return {"path": str(grid.instances[0].path.parent), "format": "DICOM series", "files": len(series.instances),
            "series": series.key, "series_uid": series.uid, "description": series.description,
            "modality": series.modality or None, "shape": list(grid.shape), "affine": grid.affine, "slab": grid.slab}


def _add_geometry_and_choice(facts: dict[str, Any]) -> dict[str, Any]:
    """Voxel sizes, orientation letters, slab and the weights choice, from ``facts``' affine and slab."""
    import nibabel

    from ..io import affine_zooms
    from ..slices import choose, slab_record

    affine, slab = facts["affine"], facts.pop("slab")
    facts["voxel_sizes_mm"] = list(affine_zooms(affine))
    facts["orientation"] = "".join(nibabel.aff2axcodes(affine))
    facts["affine"] = [[float(v) for v in row] for row in affine]
    facts["slices"] = None if slab is None else {**slab_record(slab), "text": slab.text()}
    modality = {"CT": "ct", "MR": "mri"}.get(str(facts.get("modality") or "").upper(), "mri")
    try:
        choice = choose(facts["voxel_sizes_mm"], slab=slab, modality=modality)
    except VolumeNetError as error:
        facts["upscale"] = {"error": str(error)}
    else:
        from ..slices import bundled_name

        facts["upscale"] = {"weights": bundled_name(choice.weights), "scale": list(choice.scale),
                            "modality": modality, "why": choice.reason}
    return facts


def describe(path: Path, series: str | None = None) -> list[dict[str, Any]]:
    """One record per volume at ``path``: a file, a series, or every series of a folder (``series``: one of them)."""
    from ..io.dicom import SeriesInfo, is_series_path, list_series, series_grid, series_info

    if not is_series_path(path):
        return [_add_geometry_and_choice(_nifti_facts(path))]
    if series is not None or not path.is_dir():
        return [_add_geometry_and_choice(_series_facts(series_info(path, series)))]
    return [_add_geometry_and_choice(_series_facts(SeriesInfo(s, series_grid(s)))) for s in list_series(path)]


def _text(facts: dict[str, Any]) -> str:
    from ._common import shape_text

    head = facts["format"]
    if "series" in facts:
        head += f" {facts['series']} \"{facts['description']}\" ({facts['files']} files), {facts['modality'] or '?'}"
    affine = [" ".join(f"{v:9.3f}" for v in row) for row in facts["affine"]]
    lines = [f"{facts['path']}: {head}",
             f"  shape        {shape_text(facts['shape'])} voxels",
             "  voxel sizes  " + "×".join(f"{z:.4g}" for z in facts["voxel_sizes_mm"]) + " mm",
             f"  orientation  {facts['orientation']} (RAS+ affine)",
             *[("  affine       " if i == 0 else " " * 15) + row for i, row in enumerate(affine)],
             f"  slices       {facts['slices']['text'] if facts['slices'] else 'thickness not stated (NIfTI)'}"]
    up = facts["upscale"]
    lines.append("  upscale      " + (f"{up['weights']} ({up['why']})" if "weights" in up else up["error"]))
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    records = describe(Path(args.path).expanduser(), args.series)
    if args.json:
        print(json.dumps(records if len(records) > 1 else records[0], indent=2))
    else:
        print("\n\n".join(_text(r) for r in records))
    return 0
