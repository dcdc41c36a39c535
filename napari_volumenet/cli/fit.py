"""``volumenet fit``: self-supervised weights for one thick-slice scan, learnt from its own sharp plane; and the
``--fit`` of ``volumenet upscale``, which fits and applies in one go."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ._args import positive_int
from ._common import PROG, say
from ._files import check_report_path, collect_inputs, resolve_weights

EPILOG = """\
examples:
  # 5 minutes on the scan's own in-plane data; the weights serve every scan of the same protocol
  volumenet fit t2_axial_5mm.nii.gz -o t2_fit.pt --minutes 5
  volumenet upscale t2_scans/ -o t2_1mm/ --weights t2_fit.pt
  # 3 mm slices every 4 mm (a 1 mm gap), CT
  volumenet fit ct_4mm.nii.gz -o ct_fit.pt --slice-thickness 3 --modality ct
  # start from an earlier fit to a scan of the same protocol
  volumenet fit ct_patient2.nii.gz -o ct2_fit.pt --modality ct --init-from ct_fit.pt
  # fit and apply in one go
  volumenet upscale t1_4mm.nii.gz -o t1_1mm.nii.gz --fit 10

The scan's in-plane axes are sharp: each is made as thick as the slices (a box of the slice thickness, the gap
left out) and a network that looks at 2D planes holding the slice axis learns to undo it, then runs along the
slice axis in the two planes that hold it. It starts from the bundled through-plane weights for the nearest
factor (MRI ×2, ×3, ×4; or from --init-from), else from the least-squares linear upsampler. Held-back planes
self-validate; where the fit does not beat the weights it started from on them, those are kept and the command
says so.
See docs/fit.md.
"""


def add_fit_options(p: argparse.ArgumentParser) -> None:
    """``--slice-thickness`` (shared by ``fit`` and ``upscale --fit``)."""
    p.add_argument("--slice-thickness", type=float, default=None, metavar="MM",
                   help="slice thickness in mm where it is less than the spacing (a gap); default: the series' "
                        "SliceThickness (DICOM), else the spacing")


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of ``volumenet fit``."""
    p.add_argument("scan", metavar="SCAN", help="a thick-slice scan: NIfTI/MGH file or DICOM series folder")
    p.add_argument("-o", "--output", required=True, metavar="WEIGHTS.pt", help="the fitted weights file")
    p.add_argument("--minutes", type=float, default=5.0, metavar="M",
                   help="wall-clock minutes of fitting, self-validation included (default 5)")
    p.add_argument("--max-steps", type=positive_int, default=None, metavar="N", help="stop after N steps")
    p.add_argument("--modality", choices=["mri", "ct"], default="mri", help="modality of the scan (default mri)")
    add_fit_options(p)
    p.add_argument("--factor", type=positive_int, default=None, metavar="F",
                   help="HR slices per slice (the output grid); default: the factor upscale chooses (the series' "
                        "slice thickness, else the spacing, over the in-plane pixel, rounded)")
    p.add_argument("--init-from", default=None, metavar="WEIGHTS.pt",
                   help="start from these weights (an earlier fit, or a through-plane network, for the same factor) "
                        "instead of the bundled ones or least squares")
    p.add_argument("--lr", type=float, default=None, metavar="RATE",
                   help="Adam learning rate (default: 2e-4 from weights, 3e-3 from least squares)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patches and of a network started from scratch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")


def cmd_fit(args: argparse.Namespace) -> int:
    scans = collect_inputs([args.scan], f"{PROG} fit", args.quiet)
    if len(scans) != 1:
        raise InputError(f"{args.scan} holds {len(scans)} volumes; a fit learns from one scan")
    out = _weights_path(args.output, args.overwrite)
    fitted = fit_file(scans[0], minutes=args.minutes, max_steps=args.max_steps, modality=args.modality,
                      thickness_mm=args.slice_thickness, factor=args.factor, seed=args.seed, lr=args.lr,
                      init_from=args.init_from, quiet=args.quiet)
    fitted.save(out)
    say(args.quiet, f"{scans[0]} → {out}  ({fitted.summary()}; peak memory {peak_memory_gib():.2f} GiB)")
    return 0


def _weights_path(output: str, overwrite: bool) -> Path:
    """``-o``: a ``.pt`` file whose folder exists, not there yet unless ``overwrite`` (checked before any work)."""
    out = Path(output).expanduser()
    if out.suffix != ".pt":
        raise OutputError(f"{out}: a weights file ends in .pt")
    checked = check_report_path(str(out), overwrite)
    assert checked is not None
    return checked


def fit_file(src: Path, *, minutes: float, max_steps: int | None = None, modality: str = "mri",
             thickness_mm: float | None = None, factor: int | None = None, seed: int = 0, lr: float | None = None,
             init_from: str | None = None, quiet: bool = False) -> Any:
    """Fit to the scan at ``src`` with a progress bar (time, steps, self-validation PSNR); the
    :class:`~napari_volumenet.fit.Fitted` weights. Ctrl-C stops it with nothing written."""
    from ..fit import FitSettings, prepare, run
    from ..io import read_volume
    from ..io.paths import volume_stem

    if not minutes > 0:
        raise InputError(f"--minutes must be positive, got {minutes:g}")
    if lr is not None and not 0 < lr < 1:
        raise InputError(f"--lr must be between 0 and 1, got {lr:g}")
    start = None if init_from is None else resolve_weights(init_from)
    volume = read_volume(src)
    try:
        job = prepare(volume.data, volume.zooms, source=volume_stem(src), modality=modality,
                      slab=volume.slab, thickness_mm=thickness_mm, factor=factor, seed=seed, weights=start)
    except InputError as error:
        raise InputError(f"{src}: {error}") from None
    say(quiet, f"{src}: {job.profile.text()}; starting from {job.start.label}")
    return _drive(run(job, FitSettings(minutes=minutes, max_steps=max_steps, lr=lr, seed=seed)), quiet)


def _drive(steps: Any, quiet: bool) -> Any:
    """Run a fit generator to its end under a tqdm bar (percent of the run, steps, PSNR); its return value."""
    from tqdm import tqdm

    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"
    with tqdm(total=100, desc="fit", file=sys.stderr, leave=False, disable=quiet, dynamic_ncols=True,
              bar_format=bar_format) as bar:
        while True:
            try:
                update = next(steps)
            except StopIteration as finished:
                return finished.value
            bar.update(round(100 * update.fraction) - bar.n)
            bar.set_postfix_str(f"step {update.step:,} · self-val {update.psnr:.2f} dB "
                                f"(cubic {update.cubic_psnr:.2f}, start {update.start_psnr:.2f})", refresh=False)


def peak_memory_gib() -> float:
    """The peak resident memory of this process so far (GiB; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def upscale_fitted(args: argparse.Namespace, upscale: Callable[[argparse.Namespace], int]) -> int:
    """``volumenet upscale SCAN --fit MINUTES``: fit to the one scan, then ``upscale`` it with those weights."""
    if args.weights or args.scale is not None:
        raise InputError("--fit makes the weights for the scan; leave out --weights and --scale")
    scans = collect_inputs(args.inputs, f"{PROG} upscale", args.quiet)
    if len(scans) != 1:
        raise InputError(f"--fit fits one scan, got {len(scans)}; fit one with `volumenet fit SCAN -o W.pt` and "
                         "pass --weights W.pt for the others")
    out = Path(args.output).expanduser()
    if out.exists() and not out.is_dir() and not args.overwrite:
        raise OutputError(f"{out} already exists; pass --overwrite to replace it")
    fitted = fit_file(scans[0], minutes=args.fit, modality=args.modality or "mri", thickness_mm=args.slice_thickness,
                      quiet=args.quiet)
    say(args.quiet, f"fit: {fitted.summary()}")
    with tempfile.TemporaryDirectory(prefix="volumenet-fit-") as folder:
        weights = fitted.save(Path(folder) / f"{fitted.fit['source']}-fit.pt")
        return upscale(argparse.Namespace(**{**vars(args), "weights": str(weights), "fit": None}))
