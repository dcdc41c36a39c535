"""``volumenet convert``: a DICOM series to NIfTI, or a NIfTI volume (with a template series) to a DICOM series."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ._common import PROG, say, shape_text

EPILOG = """\
examples:
  # a series (folder, or one file of it) to NIfTI, on dcm2niix's grid, with a JSON sidecar of its slices
  volumenet convert dicom/t1_sag/ -o t1_sag.nii.gz
  volumenet convert dicom/study/ --series 7 -o t2.nii.gz
  # a NIfTI volume back to DICOM: a new series in the study of the template series
  volumenet convert t1_sag_x4.nii.gz -o t1_sag_x4/ --template dicom/t1_sag/

An output name ending in .nii or .nii.gz is NIfTI; any other is a DICOM series folder (written whole or not at
all). A DICOM output joins the study of --template (or of IN when IN is a series): patient, study and frame of
reference kept, new series and instance UIDs, private tags dropped, ImageType DERIVED\\SECONDARY.
"""


def add_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``volumenet convert`` to ``p``."""
    p.add_argument("input", metavar="IN", help="a DICOM series folder (or one of its files), or a NIfTI/MGH file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="a .nii / .nii.gz file, or a new folder for a DICOM series")
    p.add_argument("--series", default=None, metavar="KEY",
                   help="in a folder of several series, the one to convert (SeriesNumber, UID or description)")
    p.add_argument("--template", default=None, metavar="SERIES",
                   help="the DICOM series whose study a DICOM output joins (default: IN, when it is a series)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def cmd_convert(args: argparse.Namespace) -> int:
    from ..io import check_output_path, is_nifti, read_volume, write_volume
    from ..io.dicom import check_series_output, read_series, series_info, write_series
    from ..slices import slab_record

    src, dst = Path(args.input).expanduser(), Path(args.output).expanduser()
    to_nifti = is_nifti(dst)
    if to_nifti:
        check_output_path(dst, args.overwrite)
    else:
        check_series_output(dst, args.overwrite)
    template = series_info(Path(args.template).expanduser()).series if args.template else None
    volume = read_series(src, args.series) if args.series is not None else read_volume(src)
    if to_nifti:
        sidecar = {"tool": f"{PROG} convert", "version": __version__, "input": str(src), "output": str(dst),
                   "modality": getattr(volume.series, "modality", None), "slab": slab_record(volume.slab)}
        description = getattr(volume.series, "description", None)
        write_volume(dst, volume.data, volume.affine, volume.header, overwrite=args.overwrite,
                     description=description, sidecar=sidecar)
    else:
        template = template or volume.series
        if template is None:
            raise InputError(f"{src} is not a DICOM series: give --template SERIES, the series whose study "
                             f"{dst} joins")
        description = getattr(volume.series, "description", None) or f"{template.description} from {src.name}"
        write_series(dst, volume.data, volume.affine, template, description=description, overwrite=args.overwrite)
    say(args.quiet, f"{src} → {dst}  ({shape_text(volume.shape)})")
    return 0
