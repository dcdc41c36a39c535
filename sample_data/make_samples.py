"""Rebuild the MRI sample of napari-volumenet from its source (see sample_data/PROVENANCE.md).

The files are written beside this script (``sample_data/``); the package build installs them, with their licence
notice, as ``napari_volumenet/sample_data/``, so that wheels carry them.

Source: the ICBM 2009a nonlinear symmetric T1 template (1 mm, MNI space) that the ``nilearn``
wheel bundles as ``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``.
The script takes it from a wheel you give it, or downloads the pinned wheel with
``pip download nilearn==0.14.1 --no-deps``, checks the template's SHA-256, then

1. crops the box of ``CROP_SHAPE`` voxels (1 mm) around the centre of the brain;
2. writes it as the HR sample (``mni152_t1_hr.nii.gz``; float32 like every file ``write_volume``
   writes, the values stay the template's integers 0–255), with the template's affine moved to the
   first voxel of the crop;
3. simulates the ×2 LR acquisition with :func:`napari_volumenet.ops.degrade.degrade` and writes it,
   float32, with the LR affine of SPEC §5 (``lr_affine``: the HR grid is exactly ``sr_affine`` of it)
   as ``mni152_t1_lr_x2.nii.gz``.

Usage::

    python sample_data/make_samples.py                   # download the pinned nilearn wheel
    python sample_data/make_samples.py --wheel nilearn-0.14.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
PACKAGE_SAMPLES = HERE
NILEARN_VERSION = "0.14.1"
MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
EXPECTED_SHA256 = "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"
CROP_SHAPE = (128, 128, 112)
CROP_CENTRE_MM = (0.0, -17.0, 18.0)
"""Centre of the crop in MNI (RAS) millimetres: the middle of the cerebrum, ventricles included."""
SCALE = 2
HR_NAME = "mni152_t1_hr.nii.gz"
LR_NAME = "mni152_t1_lr_x2.nii.gz"


def template_bytes(wheel: Path | None) -> tuple[bytes, str]:
    """The gzipped template from ``wheel`` (downloaded when ``None``) and the wheel's file name."""
    if wheel is None:
        tmp = Path(tempfile.mkdtemp(prefix="nilearn-wheel-"))
        subprocess.run([sys.executable, "-m", "pip", "download", f"nilearn=={NILEARN_VERSION}", "--no-deps",
                        "--only-binary", ":all:", "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("nilearn-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(MEMBER), wheel.name


def main(argv: list[str] | None = None) -> int:
    from napari_volumenet.io import lr_affine, read_volume, sr_affine, write_volume
    from napari_volumenet.ops.degrade import degrade

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="a nilearn wheel (default: pip download the pinned one)")
    parser.add_argument("--out", type=Path, default=PACKAGE_SAMPLES,
                        help="output folder (default: this folder, sample_data/)")
    args = parser.parse_args(argv)

    raw, wheel_name = template_bytes(args.wheel)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EXPECTED_SHA256:
        print(f"warning: {MEMBER} in {wheel_name} has SHA-256 {digest}, expected {EXPECTED_SHA256}", file=sys.stderr)
    image = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    data = np.asarray(image.dataobj)
    affine = image.affine

    centre_vox = np.linalg.inv(affine) @ np.array([*CROP_CENTRE_MM, 1.0])
    start = [int(round(c - n / 2)) for c, n in zip(centre_vox[:3], CROP_SHAPE)]
    for axis, (s0, n, size) in enumerate(zip(start, CROP_SHAPE, data.shape)):
        if s0 < 0 or s0 + n > size:
            raise SystemExit(f"crop does not fit along axis {axis}: start {s0}, size {n}, volume {size}")
    box = tuple(slice(s0, s0 + n) for s0, n in zip(start, CROP_SHAPE))
    hr = np.asarray(data[box], dtype=np.int16)
    shift = np.eye(4)
    shift[:3, 3] = start
    hr_affine = affine @ shift

    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    hr_header = header.copy()
    hr_header.set_data_dtype(np.int16)
    hr_header.set_sform(hr_affine, code="aligned")  # MNI space, as the template's sform
    hr_header.set_qform(hr_affine, code="aligned")
    args.out.mkdir(parents=True, exist_ok=True)
    hr_path = args.out / HR_NAME
    write_volume(hr_path, hr, hr_affine, hr_header, overwrite=True,
                 description="MNI ICBM152 2009a sym T1, 1mm crop (napari-volumenet sample)")
    hr_read = read_volume(hr_path)
    lr = degrade(hr_read.data, SCALE)
    lr_aff = lr_affine(hr_read.affine, SCALE)
    assert np.allclose(sr_affine(lr_aff, SCALE), hr_read.affine, atol=1e-6)
    lr_header = hr_header.copy()
    lr_header.set_data_dtype(np.float32)
    lr_path = args.out / LR_NAME
    write_volume(lr_path, lr, lr_aff, lr_header, overwrite=True,
                 description="degrade(mni152_t1_hr, 2) (napari-volumenet sample)")
    print(f"template {MEMBER} from {wheel_name} (sha256 {digest})")
    print(f"crop start (voxels) {start}, shape {CROP_SHAPE}")
    for path in (hr_path, lr_path):
        print(f"wrote {path} ({Path(path).stat().st_size / 1024:.0f} KiB)")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
