"""`scripts/make_thick_slices.py`: thick-slice copies of a cohort keep world positions, intensities and layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _scan(folder: Path, name: str, data: np.ndarray, affine: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), folder / f"{name}_T1w.nii.gz")
    nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), affine), folder / f"{name}_brainmask.nii.gz")


def test_thick_slices_average_slabs_of_3_mm_and_keep_each_slabs_world_position(tmp_path: Path) -> None:
    # 0.5 x 0.8 x 1 mm voxels, slices along the third axis (superior); the intensity rises 1 per slice
    shape = (10, 8, 31)
    k = np.broadcast_to(np.arange(shape[2], dtype=np.float64), shape)
    affine = np.diag([-0.5, 0.8, 1.0, 1.0])
    affine[:3, 3] = (20.0, -30.0, -40.0)
    _scan(tmp_path / "cohort" / "ds", "sub-01", 10 + k, affine)
    out = tmp_path / "thick"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_thick_slices.py"), str(tmp_path / "cohort"), str(out),
                    "--thickness", "3"], check=True, capture_output=True)
    image = nib.load(out / "ds" / "sub-01_T1w.nii.gz")
    mask = nib.load(out / "ds" / "sub-01_brainmask.nii.gz")
    assert image.shape == mask.shape == (10, 8, 10) and image.get_data_dtype() == np.uint8
    assert np.allclose(image.header.get_zooms()[:3], (0.5, 0.8, 3.0))
    data = np.asarray(image.dataobj)
    assert np.array_equal(data[0, 0], 11 + 3 * np.arange(10))   # the mean of slices 3j, 3j + 1, 3j + 2
    # slab j's centre is original slice 3j + 1: the same world position
    assert np.allclose(image.affine @ [0, 0, 2, 1], affine @ [0, 0, 7, 1])
    assert np.asarray(mask.dataobj).all()


def test_isotropic_copies_average_boxes_along_every_axis(tmp_path: Path) -> None:
    # 0.5 mm voxels to 1 mm: each output voxel is the mean of a 2 x 2 x 2 block, centred where the block is
    rng = np.random.default_rng(0)
    data = rng.integers(1, 200, (8, 6, 10)).astype(np.float64)
    affine = np.diag([0.5, -0.5, 0.5, 1.0])
    affine[:3, 3] = (-10.0, 12.0, 3.0)
    _scan(tmp_path / "cohort" / "ds", "sub-01", data, affine)
    out = tmp_path / "iso"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_thick_slices.py"), str(tmp_path / "cohort"), str(out),
                    "--thickness", "1", "--isotropic"], check=True, capture_output=True)
    image = nib.load(out / "ds" / "sub-01_T1w.nii.gz")
    assert image.shape == (4, 3, 5) and np.allclose(image.header.get_zooms()[:3], (1.0, 1.0, 1.0))
    blocks = data.reshape(4, 2, 3, 2, 5, 2).mean(axis=(1, 3, 5))
    assert np.array_equal(np.asarray(image.dataobj), np.rint(blocks).astype(np.uint8))
    assert np.allclose(image.affine @ [0, 0, 0, 1], affine @ [0.5, 0.5, 0.5, 1])
