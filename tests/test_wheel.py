"""A user's install: build the wheel, install it apart from the checkout, use it from elsewhere.

The wheel is built offline from a copy of the sources (``pip wheel --no-build-isolation``) and
installed with ``pip install --target`` into a fresh folder; the checks then run in a new Python
process whose ``PYTHONPATH`` starts with that folder and whose working directory is outside the
checkout, and they assert that the installed copy (not the checkout) was imported. Torch, nibabel
and the other dependencies come from the test environment, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "napari_volumenet", "src_training", "sample_data")

pytestmark = pytest.mark.slow

CHECK_SAMPLES = textwrap.dedent("""
    import importlib, pathlib, sys
    import numpy as np
    import yaml
    import napari_volumenet

    installed = pathlib.Path(sys.argv[1]).resolve()
    package = pathlib.Path(napari_volumenet.__file__).resolve().parent
    assert package.parent == installed, f"imported {package}, not the installed copy under {installed}"
    manifest = yaml.safe_load((package / "napari.yaml").read_text())
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    for sample in manifest["contributions"]["sample_data"]:
        module, name = commands[sample["command"]].split(":")
        layers = getattr(importlib.import_module(module), name)()
        assert len(layers) == 2, sample["key"]
        for data, kwargs, kind in layers:
            assert kind == "image" and np.asarray(data).ndim == 3 and float(np.std(data)) > 0, sample["key"]
        print("sample", sample["key"], "ok")
    from napari_volumenet._sample_data import MRI_LR, sample_path
    print("LR", sample_path(MRI_LR))
""")


def _copy_sources(target: Path) -> Path:
    """The files a wheel is built from, copied without caches or build leftovers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    target.mkdir(parents=True)
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding the package installed from its wheel (and nothing else)."""
    pytest.importorskip("setuptools", minversion="77")
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(work / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work / "dist"), str(source)],
         cwd=work)
    wheels = list((work / "dist").glob("napari_volumenet-*.whl"))
    assert len(wheels) == 1, wheels
    target = work / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheels[0])], cwd=work)
    return target


def _user_env(installed: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(installed)
    return env


def test_wheel_carries_the_samples_weights_and_licences(installed):
    package = installed / "napari_volumenet"
    for name in ("mni152_t1_hr.nii.gz", "mni152_t1_lr_x2.nii.gz", "LICENSE-MNI152.txt", "PROVENANCE.md"):
        assert (package / "sample_data" / name).is_file(), name
    assert list((package / "weights").glob("*.pt")) and (package / "weights" / "bundled.json").is_file()
    licences = next(installed.glob("napari_volumenet-*.dist-info")) / "licenses"
    assert "BSD 3-Clause" in (licences / "LICENSE").read_text()
    assert "McConnell Brain Imaging Centre" in (licences / "sample_data/LICENSE-MNI152.txt").read_text()
    metadata = (licences.parent / "METADATA").read_text()
    assert "License-Expression: BSD-3-Clause" in metadata and "Project-URL:" in metadata
    assert "Requires-Dist: matplotlib" not in metadata.split("Provides-Extra")[0]  # optional, not installed always


def test_installed_copy_opens_every_sample_and_upscales_the_lr_sample(installed, tmp_path):
    env = _user_env(installed)
    result = _run([sys.executable, "-c", CHECK_SAMPLES, str(installed)], cwd=tmp_path, env=env)
    assert "sample mni152_t1 ok" in result.stdout and "sample phantom ok" in result.stdout
    lr = Path(result.stdout.split("LR ", 1)[1].strip())
    assert lr.is_relative_to(installed.resolve())

    out = tmp_path / "mni152_t1_x2.nii.gz"
    _run([sys.executable, "-m", "napari_volumenet", "upscale", str(lr), "-o", str(out), "-q", "--tile", "0"],
         cwd=tmp_path, env=env)
    import nibabel as nib

    image = nib.load(out)
    assert image.shape == (128, 128, 112)
    assert "volumenet" in (tmp_path / "mni152_t1_x2.json").read_text()
