"""Sample data for napari's File > Open Sample: HR/LR pairs ready for the super-resolution widget.

- **MNI152 T1** (real MRI): a 1 mm crop of the ICBM 2009a nonlinear symmetric T1 template and its
  ×2 LR simulation (:func:`napari_volumenet.ops.degrade.degrade`), kept in the repository's
  ``sample_data/`` with their licence notice, provenance and the script that makes them, and installed
  with the package as ``napari_volumenet/sample_data/``.
- **Phantom** (synthetic, generated when opened): nested ellipsoids with bright dots and bars whose
  period runs from 8 down to 2.5 voxels, so that part of it is finer than what the LR grid can hold.

Each sample gives two layers, the HR volume (ground truth) and the LR volume on top of it; the
LR layer is the widget's input and the HR layer its ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._reader import LayerData, volume_layer_data
from .errors import InputError

SAMPLE_DIRS = (Path(__file__).resolve().parent / "sample_data", Path(__file__).resolve().parents[1] / "sample_data")
"""Where the MRI sample files are looked for: inside an installed package (a wheel puts the repository's
``sample_data/`` there), then in the source checkout (an editable install)."""
MRI_HR = "mni152_t1_hr.nii.gz"
MRI_LR = "mni152_t1_lr_x2.nii.gz"
SAMPLE_SCALE = (2, 2, 2)


def sample_path(name: str) -> Path:
    """Path of the installed sample file ``name``; :class:`InputError` if the installation lacks it."""
    for folder in SAMPLE_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise InputError(
        f"The sample file {name} is missing from this installation (looked in "
        f"{', '.join(str(d) for d in SAMPLE_DIRS)}); reinstall napari-volumenet, or in a source checkout "
        "rebuild it with sample_data/make_samples.py."
    )


def _pair(hr: LayerData, lr: LayerData, pair: str) -> list[LayerData]:
    for layer, role in ((hr, "hr"), (lr, "lr")):
        entry = layer[1]["metadata"]["volumenet"]
        entry.update(role=role, pair=pair)
    lr[1]["metadata"]["volumenet"]["scale"] = SAMPLE_SCALE
    lr[1]["contrast_limits"] = hr[1]["contrast_limits"]  # same window, so they look alike
    return [hr, lr]


def mri_sample() -> list[LayerData]:
    """The MNI152 T1 crop (HR, ground truth) and its ×2 LR simulation.

    A missing or unreadable file raises :class:`~napari_volumenet.errors.InputError`, which napari
    shows as a notification.
    """
    from .io import read_volume

    hr = read_volume(sample_path(MRI_HR))
    lr = read_volume(sample_path(MRI_LR))
    return _pair(
        volume_layer_data(hr.data, hr.affine, hr.header, name="MNI152 GT (1 mm)", path=str(hr.path)),
        volume_layer_data(lr.data, lr.affine, lr.header, name="MNI152 LR (2 mm)", path=str(lr.path)),
        "mni152-t1",
    )


def make_phantom(shape: tuple[int, int, int] = (96, 96, 80)) -> np.ndarray:
    """A head-like HR phantom (float32, 0–1000); array axes i, j, k run toward right, anterior, superior.

    Nested ellipsoids (scalp, skull, brain, two ventricles), a row of bright dots of 1–3 voxels,
    and bars along the first axis in six bands along the second axis, with periods from 8 down to
    2.5 voxels.
    """
    n0, n1, n2 = shape
    i, j, k = np.meshgrid(
        (np.arange(n0) - (n0 - 1) / 2) / (n0 / 2),
        (np.arange(n1) - (n1 - 1) / 2) / (n1 / 2),
        (np.arange(n2) - (n2 - 1) / 2) / (n2 / 2),
        indexing="ij",
    )

    def ellipsoid(a: float, b: float, c: float, x0: float = 0.0, y0: float = 0.0, z0: float = 0.0) -> np.ndarray:
        return ((i - x0) / a) ** 2 + ((j - y0) / b) ** 2 + ((k - z0) / c) ** 2 <= 1.0

    vol = np.zeros(shape, dtype=np.float32)
    vol[ellipsoid(0.86, 0.94, 0.9)] = 550.0  # scalp
    vol[ellipsoid(0.8, 0.88, 0.84)] = 120.0  # skull
    vol[ellipsoid(0.74, 0.82, 0.78)] = 420.0  # grey matter
    vol[ellipsoid(0.6, 0.68, 0.62)] = 640.0  # white matter
    for x0 in (-0.13, 0.13):  # ventricles
        vol[ellipsoid(0.07, 0.32, 0.16, x0=x0, y0=-0.05, z0=0.12)] = 180.0
    # bar pattern in the lower white matter: six bands along axis 1 with periods 8 … 2.5 voxels
    # (periods under 4 HR voxels are finer than the ×2 LR grid can hold)
    idx0 = np.arange(n0)[:, None, None]
    periods = np.array([8.0, 6.0, 5.0, 4.0, 3.0, 2.5])
    band = np.minimum((np.arange(n1) * len(periods)) // n1, len(periods) - 1)
    period = periods[band][None, :, None]
    bars = np.cos(2 * np.pi * (idx0 - n0 / 2) / period) > 0
    slab = (np.abs(k + 0.22) < 0.14) & ellipsoid(0.45, 0.5, 0.9)
    vol[slab & bars] = 900.0
    vol[slab & ~bars] = 300.0
    # bright dots of 1, 2 and 3 voxels in the upper white matter
    c2 = int(n2 * 0.62)
    for m, size in enumerate((1, 2, 3, 1, 2, 3)):
        c0 = int(n0 * (0.3 + 0.08 * m))
        c1 = int(n1 * (0.42 if m < 3 else 0.58))
        vol[c0:c0 + size, c1:c1 + size, c2:c2 + size] = 1000.0
    return vol


PHANTOM_AFFINE = np.array([
    [1.0, 0.0, 0.0, -47.5],
    [0.0, 1.0, 0.0, -47.5],
    [0.0, 0.0, 1.0, -39.5],
    [0.0, 0.0, 0.0, 1.0],
])


def phantom_sample() -> list[LayerData]:
    """The synthetic phantom (HR, ground truth) and its ×2 LR simulation, generated now."""
    from .io import lr_affine
    from .ops.degrade import degrade

    hr = make_phantom()
    lr = degrade(hr, SAMPLE_SCALE)
    return _pair(
        volume_layer_data(hr, PHANTOM_AFFINE, None, name="Phantom (HR, ground truth)"),
        volume_layer_data(lr, lr_affine(PHANTOM_AFFINE, SAMPLE_SCALE), None, name="Phantom (LR ×2)"),
        "phantom",
    )
