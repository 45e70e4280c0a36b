"""A wheel built from the repository carries every shipped file and works installed outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = {"resources/refiner3d_1mm/optimizer.safetensors"}   # resume training only; not in the wheel


def _git_files(*args: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=ROOT, check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the working tree as a clone would hold it (ignored files left out)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    for name in _git_files("--cached", "--others", "--exclude-standard"):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp / "dist")], check=True, capture_output=True)
    (found,) = (tmp / "dist").glob("brain_inpaint-*.whl")
    return found


def test_the_wheel_holds_every_shipped_file_and_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name for name in _git_files("resources") if name not in LEFT_OUT}
    assert len(shipped) >= 20
    missing = sorted(n for n in shipped if "inpaint_" + n not in names)
    assert not missing, f"shipped files missing from the wheel: {missing}"
    assert not {"inpaint_" + n for n in LEFT_OUT} & names
    modules = [str(p.relative_to(ROOT)) for top in ("core", "inpaint_gui") for p in (ROOT / top).rglob("*.py")]
    assert not sorted(m for m in modules if m not in names), "modules missing from the wheel"
    licences = {n.split(".dist-info/licenses/")[1] for n in names if ".dist-info/licenses/" in n}
    assert {"LICENSE", "resources/demo/NOTICE.md", "resources/mni152/NOTICE.md"} <= licences   # MIT wants its text


def test_the_installed_wheel_finds_its_models_and_fills_the_demo_brain_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # torch, numpy, Qt ... from this environment; a plain path line does not run its editable-install hooks
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {"OMP_NUM_THREADS": "1"}

    def inpaint(*args: str) -> str:
        done = subprocess.run([str(venv / "bin" / "inpaint"), *args], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = inpaint("models")
    installed = str(site / "inpaint_resources")
    assert f"3D refiner (refine3d) on a 1 mm grid: {installed}/refiner3d_1mm " in listing
    assert listing.count("3D refiner (refine3d)") == 1
    assert "learns the mirror share)" in listing.split("1 mm grid")[1].splitlines()[0]
    assert f"{installed}/models/vae_k3  (default)" in listing
    assert str(ROOT) not in listing

    where = subprocess.run([str(python), "-c", "import core, core.resources as r; print(core.__file__); "
                            "print(r.DEMO_BRAIN)"], cwd=work, env=env, check=True, capture_output=True, text=True)
    module, demo = where.stdout.split()
    assert module.startswith(str(site)) and demo.startswith(installed)
    brain = nib.load(demo)
    hole = np.zeros(brain.shape, np.uint8)
    centre = [n // 2 for n in brain.shape]
    hole[tuple(slice(c - 3, c + 3) for c in centre)] = 1
    nib.save(nib.Nifti1Image(hole, brain.affine), work / "lesion.nii.gz")
    inpaint("fill", demo, "lesion.nii.gz", "-o", "filled.nii.gz", "--quiet")
    filled = nib.load(work / "filled.nii.gz").get_fdata()
    assert np.array_equal(filled[hole == 0], brain.get_fdata()[hole == 0])
    assert np.isfinite(filled).all()


def test_the_shipped_weights_are_at_most_20_mb_in_all() -> None:
    weights = sorted((ROOT / "resources").rglob("model.safetensors"))
    assert {w.parent.name for w in weights} == {"vae_k3", "vae_k7", "gan_k3", "gan_k7", "refiner3d_1mm"}
    assert sum(w.stat().st_size for w in weights) <= 20_000_000
