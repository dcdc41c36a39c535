"""Inputs, outputs and reports of the batch commands: found, paired and checked before any work."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import Cancelled, InputError, OutputError, VolumeNetError, WeightsError
from ._common import fail, say


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


class Jobs(list[tuple[Path, Path]]):
    """``(input, output)`` pairs, and the folders made for the outputs (:func:`run_batch` removes them if empty)."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]] = (), created: Sequence[Path] = ()) -> None:
        super().__init__(pairs)
        self.created = list(created)


def remove_empty_folders(folders: Sequence[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that is empty; a folder with anything in it stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def plan_outputs(
    raw_inputs: Sequence[str], inputs: Sequence[Path], output: str, suffix: str | Callable[[Path], str],
    overwrite: bool, *, dicom: bool = False,
) -> Jobs:
    """Pair every input volume with its output path and check all outputs before any work starts.

    One file (or DICOM series folder) in → ``output`` is that file (or, if ``output`` is an existing folder, the
    file ``<stem><suffix>.nii.gz`` inside it). Several files or a folder of them in → ``output`` is a folder
    (created if needed, and removed by :func:`run_batch` if it stays empty) holding ``<stem><suffix>.nii.gz``
    for each input. ``dicom``: the outputs are DICOM series folders ``<stem><suffix>`` (one input: ``output``).
    """
    from ..io import check_output_path, volume_stem
    from ..io.dicom import check_series_output

    out = Path(output).expanduser()
    raw = Path(raw_inputs[0]).expanduser() if len(raw_inputs) == 1 else None
    single = raw is not None and len(inputs) == 1 and (not raw.is_dir() or same_file(raw, inputs[0]))
    created: list[Path] = []
    if single and (dicom or not out.is_dir()):
        pairs = [(inputs[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} is a file, but with several inputs or a folder -o must be a folder")
        if not out.exists():
            missing = [p for p in [out, *out.parents] if not p.exists()]
            try:
                out.mkdir(parents=True, exist_ok=True)  # exist_ok: array jobs of a cluster start together
            except OSError as error:
                raise OutputError(f"cannot create the output folder {out}: {error.strerror or error}") from None
            created = missing
        extension = "" if dicom else ".nii.gz"
        pairs = [(src, out / f"{volume_stem(src)}{suffix if isinstance(suffix, str) else suffix(src)}{extension}")
                 for src in inputs]
    try:
        seen: dict[Path, Path] = {}
        for src, dst in pairs:
            if same_file(src, dst):
                raise OutputError(f"the output {dst} would replace its input; choose another -o")
            key = dst.resolve()
            if key in seen:
                raise OutputError(
                    f"{seen[key]} and {src} would both be written to {dst}; give them different names"
                )
            seen[key] = src
        check = check_series_output if dicom else check_output_path
        return Jobs([(src, check(dst, overwrite)) for src, dst in pairs], created)
    except VolumeNetError:
        remove_empty_folders(created)  # leave nothing behind when we refuse to run
        raise


def require_series(inputs: Sequence[Path]) -> None:
    """``--format dicom``: every input must be a DICOM series, whose study the new series joins."""
    from ..io.dicom import is_series_path

    others = [p for p in inputs if not is_series_path(p)]
    if others:
        raise InputError(f"{others[0]} is not a DICOM series: --format dicom writes a new series into the study of "
                         "a DICOM input (for a NIfTI file: volumenet convert IN -o OUT_DIR --template SERIES)")


def collect_inputs(raw_inputs: Sequence[str], tool: str, quiet: bool) -> list[Path]:
    """The volumes named by ``raw_inputs`` (``.txt`` files: the inputs they list), less what ``tool`` wrote earlier
    into the folders given.

    ``upscale D -o D`` run twice must not upscale its own outputs: a file found in a folder whose
    JSON sidecar says ``tool`` wrote it is skipped (a file named on its own is always taken).
    """
    from ..io import find_volumes, written_by
    from ._batch import expand_lists

    raw_inputs = expand_lists(raw_inputs)
    found = find_volumes([Path(p).expanduser() for p in raw_inputs])
    named = {Path(p).expanduser().resolve() for p in raw_inputs}  # a folder found as itself is a DICOM series
    inputs = [p for p in found if p.resolve() in named or not written_by(p, tool)]
    skipped = len(found) - len(inputs)
    if skipped and not inputs:
        raise InputError(f"every volume found ({skipped}) is an output of an earlier `{tool}`; nothing to do")
    if skipped:
        say(quiet, f"skipping {skipped} output(s) of an earlier `{tool}` found in the input folder(s)")
    return inputs


def resolve_weights(spec: str) -> Path:
    """``--weights``: a weights file, or the name of bundled weights."""
    from ..weights import find_bundled, list_bundled

    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if spec in {w.name for w in list_bundled()}:
        return find_bundled(spec).path
    if path.exists():
        raise WeightsError(f"{path} is not a weights file")
    bundled = ", ".join(w.name for w in list_bundled()) or "none are bundled yet"
    raise WeightsError(f"weights file not found: {spec} (nor bundled weights of that name: {bundled})")


def check_report_path(path: str | None, overwrite: bool) -> Path | None:
    """Check a JSON/CSV report path before any work: its folder exists, it does not exist unless ``overwrite``."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise OutputError(f"{p} is a folder; give a file name for the report")
    if p.exists() and not overwrite:
        raise OutputError(f"{p} already exists; pass --overwrite to replace it")
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {p}: the folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise OutputError(f"cannot write {p}: the folder {p.parent} is not writable")
    return p


def naming(src: Path, error: BaseException) -> str:
    """The error's message, prefixed with the file it is about unless it already names it."""
    message = str(error) if isinstance(error, VolumeNetError) else "out of memory; pass a smaller --tile"
    return message if str(src) in message or src.name in message else f"{src}: {message}"


def run_batch(jobs: Sequence[tuple[Path, Path]], process: Callable[[Path, Path], None],
              refused: Mapping[Path, VolumeNetError] | None = None, done: str = "written") -> None:
    """``process(src, dst)`` for every job; a bad volume does not stop the others.

    ``refused``: volumes already found unusable (their header, no weights fit), reported first. Each failure
    is one ``volumenet: error:`` line naming its file as it happens; at the end, a :class:`VolumeNetError`
    lists the files that failed (exit 2) and says how many others were ``done``. Every good output is kept;
    output folders :func:`plan_outputs` made and nothing was written into are removed. With a single volume
    its error is raised as it is. Cancelling (Ctrl-C, SIGTERM) stops the batch.
    """
    refused = dict(refused or {})
    total = len(jobs) + len(refused)
    failed: list[Path] = []

    def failure(src: Path, error: BaseException) -> None:
        if total == 1:
            raise VolumeNetError(naming(src, error)) from None
        fail(f"error: {naming(src, error)}")
        failed.append(src)

    try:
        for src, error in refused.items():
            failure(src, error)
        for src, dst in jobs:
            try:
                process(src, dst)
            except (VolumeNetError, MemoryError) as error:
                if isinstance(error, Cancelled):
                    raise
                failure(src, error)
    finally:
        remove_empty_folders(getattr(jobs, "created", []))
    if failed:
        names = ", ".join(str(p) for p in failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        ok = total - len(failed)
        rest = (f"the other {ok} volumes were {done}" if ok > 1 else f"the other volume was {done}" if ok
                else f"no volume was {done}")
        raise VolumeNetError(f"{len(failed)} of {total} volumes failed (see above): {names}; {rest}")
