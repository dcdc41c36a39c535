"""``volumenet evaluate``: the paper's Table III on degraded HR volumes (tricubic and each network)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..atomic import write_json_atomic, write_text_atomic
from ..errors import OutputError, VolumeNetError
from ._args import add_run_options, check_device, degradation_arg, names_arg, run_options, scale_arg, thick_slices_arg
from ._common import TileBars, say, scale_suffix
from ._files import check_report_path, run_batch, same_file

if TYPE_CHECKING:
    from ..evaluation import Degradation

EPILOG = """\
examples:
  volumenet evaluate hr_folder/ --models runs/volumenet.pt
  volumenet evaluate a.nii.gz b.nii.gz --models runs/volumenet.pt,runs/parallelnet.pt \\
      --json results.json --csv results.csv
  volumenet evaluate test/ --models srcnn3d,volumenet --markdown table.md --plot fig5.png
  volumenet evaluate ct_folder/ --modality ct --models runs/volumenet_ct.pt --device cuda
  volumenet evaluate hr_folder/ --thick-slices 2,4     # 4 mm slices: cubic vs the through-plane x4 weights

Each HR volume is cropped to a multiple of the scale and degraded; tricubic interpolation and
each model upscale it back. A model is a weights file, a bundled weights name, or a model name
(its bundled default weights). Metrics on the 0–255 scale of the HR volume (paper's protocol).
"""


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet evaluate`` to ``p``."""
    p.add_argument("inputs", nargs="+", metavar="HR_FILES_OR_DIRS", help="HR NIfTI file(s) or folder(s)")
    p.add_argument("--models", type=names_arg, action="extend", default=[], metavar="A,B,...",
                   help="weights files, bundled weights names or model names (comma-separated); "
                        "default: all bundled weights for the modality")
    p.add_argument("--scale", type=scale_arg, default=None, metavar="S", help="2 (default) or e.g. 1,1,2")
    p.add_argument("--thick-slices", type=thick_slices_arg, default=None, metavar="AXIS,FACTOR[,GAP]",
                   help="instead of --scale: simulate thick slices along array AXIS (each the mean of FACTOR HR "
                        "slices, GAP HR slices apart) and compare cubic interpolation along that axis with the "
                        "through-plane networks (default: the bundled ones for FACTOR)")
    p.add_argument("--modality", choices=["mri", "ct"], default="mri", help="mri (default) or ct")
    add_run_options(p)
    p.add_argument("--json", default=None, metavar="PATH", help="write per-volume rows and the summary as JSON")
    p.add_argument("--csv", default=None, metavar="PATH", help="write the summary table as CSV")
    p.add_argument("--markdown", default=None, metavar="PATH", help="write the summary table as Markdown")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="write the paper's Fig. 5 as PNG: PSNR against #params, marker area ∝ time")
    p.add_argument("--overwrite", action="store_true", help="replace existing --json / --csv / --markdown / --plot")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _evaluation_reports(args: argparse.Namespace) -> dict[str, Path | None]:
    reports = {key: check_report_path(getattr(args, key), args.overwrite) for key in ("json", "csv", "markdown", "plot")}
    paths = [p for p in reports.values() if p is not None]
    if any(same_file(a, b) for i, a in enumerate(paths) for b in paths[i + 1:]):
        raise OutputError("--json, --csv, --markdown and --plot must name different files")
    return reports


def _score_volumes(args: argparse.Namespace, specs: list[str], degradation: Degradation
                   ) -> tuple[list[dict[str, Any]], VolumeNetError | None]:
    """The rows of every volume that could be scored, and the error listing those that could not (``None``: all
    could); a bad volume is one line as it happens and does not stop the others. Nothing scored: that error."""
    from ..evaluation import evaluate_volume, resolve_methods
    from ..io import find_volumes

    check_device(args)
    methods = resolve_methods(specs, degradation=degradation, modality=args.modality)
    volumes = find_volumes([Path(p).expanduser() for p in args.inputs])
    rows: list[dict[str, Any]] = []
    bars = TileBars(disable=args.quiet)

    def score(path: Path, _: Path) -> None:
        try:
            rows.extend(evaluate_volume(path, methods, degradation=degradation, modality=args.modality,
                                        options=run_options(args), progress=bars))
        finally:
            bars.close()  # before any message about the volume

    try:
        run_batch([(path, path) for path in volumes], score, done="scored (see the table)")
    except VolumeNetError as error:
        if not rows:
            raise
        return rows, error
    return rows, None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import SUMMARY_COLUMNS, default_methods, format_table, summarize, to_json

    degradation = degradation_arg(args)
    reports = _evaluation_reports(args)
    factors = scale_suffix(degradation.network_scale)
    specs = list(args.models) if args.models else default_methods(args.modality, degradation.network_scale)
    rows, failure = _score_volumes(args, specs, degradation)
    summary = summarize(rows)
    volumes = len({row["volume"] for row in rows})
    print(f"{volumes} volume(s), {degradation.describe()}, modality {args.modality}; "
          "means over volumes, metrics on the 0–255 scale of each HR volume's min/max")
    print(format_table(summary))
    if not specs:
        print(f"(no bundled weights yet for {args.modality} {factors}; pass --models path/to/weights.pt)")
    if reports["json"] is not None:
        write_json_atomic(reports["json"], to_json(rows, summary, scale=list(degradation.scale),
                                                   degradation=degradation.describe(), modality=args.modality,
                                                   models=["tricubic", *specs], version=__version__))
        say(args.quiet, f"wrote {reports['json']}")
    if reports["csv"] is not None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(SUMMARY_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in summary:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        write_text_atomic(reports["csv"], buffer.getvalue())
        say(args.quiet, f"wrote {reports['csv']}")
    if reports["markdown"] is not None:
        write_text_atomic(reports["markdown"], format_table(summary) + "\n")
        say(args.quiet, f"wrote {reports['markdown']}")
    if reports["plot"] is not None:
        from ..plots import plot_psnr_vs_params

        if plot_psnr_vs_params(summary, reports["plot"], title=f"{args.modality.upper()} "
                               f"{scale_suffix(degradation.scale)}, {volumes} volume(s)") is None:
            raise OutputError("--plot needs matplotlib (pip install matplotlib)")
        say(args.quiet, f"wrote {reports['plot']}")
    if failure is not None:
        raise failure
    return 0
