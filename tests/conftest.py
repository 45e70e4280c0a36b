"""Shared fixtures: tiny random-weight models and small synthetic brains (fast on 2 CPU cores)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import nibabel as nib
import numpy as np
import pytest
import torch

from core.checkpoint import save_model
from core.networks import Architecture, build_networks

torch.set_num_threads(1)

SKIPS_ALLOWED = ("this machine has a GPU",)  # reasons a test may skip; CI machines have no GPU, so none skips there


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip for any other reason fails: a test that cannot run here (a missing package or data) must say so."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in SKIPS_ALLOWED):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid} was skipped ({reason}); every test must run: install or provide it."


def load_script(name: str) -> ModuleType:
    """`scripts/<name>.py` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_model(directory: Path, kind: str = "vae", kernel: int = 3, seed: int = 0) -> Path:
    """A random-weight model small enough for tests: 24x24 pixels of 8 mm."""
    torch.manual_seed(seed)
    arch = Architecture(kind=kind, kernel=kernel, latent=8, width=2, size=24, base=6)
    return save_model(directory, arch, build_networks(arch), spacing=8.0, axis="axial",
                      extra={"latent_prior": "uniform" if kind == "gan" else "normal"})


@pytest.fixture
def tiny_vae(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "tiny_vae", "vae")


@pytest.fixture
def tiny_gan(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "tiny_gan", "gan")


def synthetic_brain(shape=(40, 48, 36), seed: int = 0) -> np.ndarray:
    """An ellipsoidal 'brain' with a bright core and texture, zero background (float32)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid ** 2).sum(0))
    brain = radius < 0.85
    image = np.where(brain, 60 + 40 * (radius < 0.5) + 5 * rng.standard_normal(shape), 0)
    return image.astype(np.float32)


@pytest.fixture
def brain_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A synthetic brain (LAS, 2 mm, codes 4) and a cube lesion mask, written as NIfTI."""
    image = synthetic_brain()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [40, -48, -36]
    img = nib.Nifti1Image(image, affine)
    img.set_qform(affine, code=4)
    img.set_sform(affine, code=4)
    mask = np.zeros(image.shape, dtype=np.uint8)
    mask[16:22, 20:26, 15:19] = 1
    m = nib.Nifti1Image(mask, affine)
    m.set_qform(affine, code=4)
    m.set_sform(affine, code=4)
    image_path, mask_path = tmp_path / "sub-01_T1w.nii.gz", tmp_path / "lesion.nii.gz"
    nib.save(img, image_path)
    nib.save(m, mask_path)
    return image_path, mask_path, mask.astype(bool)


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch):
    """The app's message boxes and file dialogs, scripted (`test_gui_support.ScriptedDialogs`)."""
    from test_gui_support import ScriptedDialogs

    return ScriptedDialogs(monkeypatch)
