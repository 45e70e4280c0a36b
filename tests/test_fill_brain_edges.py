"""What a fill does at the brain's edges: a mask that spills outside the brain, a background that is not 0,
and intensities the brain does not have (`core.fill.fill_volume`, `core.inputs.outside_brain`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_brain
from core.errors import InpaintError
from core.fill import FillSettings, fill_volume
from core.inputs import background_value, outside_brain
from core.refine3d import Refiner3D, RefinerConfig, load_refiner, save_refiner

AFFINE = np.diag([-2.0, 2.0, 2.0, 1.0])


@pytest.fixture
def refiner(tmp_path: Path):
    torch.manual_seed(0)
    network = Refiner3D(RefinerConfig(width=2, spacing_mm=2.0))
    torch.nn.init.normal_(network.tail.weight, std=0.05)   # a refiner that changes the fill
    return load_refiner(save_refiner(tmp_path / "r", network, {"training": {"steps": 0}}))


def _edge_lesion(image: np.ndarray) -> np.ndarray:
    """A ball centred on the brain's edge along the first axis: about half inside the brain."""
    column = np.nonzero(image[:, 24, 18])[0]
    i, j, k = np.indices(image.shape)
    return (i - column[0]) ** 2 + (j - 24) ** 2 + (k - 18) ** 2 <= 16


@pytest.mark.parametrize("with_brainmask", [False, True])
def test_mask_voxels_outside_the_brain_are_left_as_they_were(refiner, with_brainmask: bool) -> None:
    image = synthetic_brain()
    hole = _edge_lesion(image)
    brain = image > 0
    assert (hole & ~brain).sum() > 20 and (hole & brain).sum() > 20
    result = fill_volume(image, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner,
                         brain=brain if with_brainmask else None)
    assert np.array_equal(result.filled[~(hole & brain)], image[~(hole & brain)])   # background stays 0
    assert not np.array_equal(result.filled[hole & brain], image[hole & brain])     # the brain part is filled
    assert result.outside_brain_voxels == int((hole & ~brain).sum())
    assert np.array_equal(result.hole, hole & brain)


@pytest.mark.parametrize("method", ["refine3d", "biharmonic3d"])
def test_a_nan_on_the_mask_s_background_part_is_background_not_a_broken_fill(refiner, method: str) -> None:
    """It reached the fill as a known value: the 3D refiner's NaN output was blamed on its weights."""
    image = synthetic_brain()
    hole = _edge_lesion(image)
    spot = tuple(np.argwhere(hole & (image == 0))[0])
    image[spot] = np.nan
    result = fill_volume(image, AFFINE, hole, settings=FillSettings(method=method, mirror=0.0), refiner=refiner)
    assert np.isfinite(result.filled[result.hole]).all() and np.isnan(result.filled[spot])   # left as it was
    assert result.nonfinite_voxels == 1


def test_a_dark_cavity_enclosed_by_tissue_is_still_filled_without_a_brainmask() -> None:
    image = synthetic_brain()
    hole = np.zeros(image.shape, dtype=bool)
    hole[17:23, 21:27, 15:21] = True
    image[18:22, 22:26, 16:20] = 0                      # zero-valued voxels inside the lesion, enclosed by tissue
    assert outside_brain(image, hole, None, 0.0) is None
    image[22:25, 23:25, 17:19] = 0   # the cavity pokes two voxels out of an under-drawn mask: still enclosed, filled
    assert outside_brain(image, hole, None, 0.0) is None   # (343 of 1197 voxels were once left at 0, said outside)
    image[24:40, 23:25, 17:19] = 0   # a channel to the background around the brain: the mask spills onto it
    assert outside_brain(image, hole, None, 0.0).sum() == int((hole & (image == 0)).sum()) > 0


def test_skull_stripped_counts_tissue_not_a_nan_or_shifted_background() -> None:
    """BIDS SkullStripped: a skull-stripped scan with a NaN or -1000 background, or a scaled integer one whose
    background is -2.2e-6, was said to be skull-on (every voxel counted as tissue)."""
    from core.fill_file import skull_stripped

    image = synthetic_brain(shape=(80, 96, 72))        # about 1.2 l of "brain" at 2 mm
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for background in (0.0, np.nan, -1000.0, -2.2351741790771484e-06):
        assert skull_stripped(np.where(image > 0, image, np.float32(background)), affine), background
    noisy = np.where(image > 0, image, np.random.default_rng(0).uniform(0, 0.02 * image.max(), image.shape))
    assert skull_stripped(noisy.astype(np.float32), affine)   # faint noise around the brain is not tissue (was: False)
    head = np.zeros(image.shape, np.float32)
    head[5:-5, 5:-5, 5:-5] = 50.0                      # 3.0 l of tissue with air around it: a head, skull on
    assert not skull_stripped(head, affine)


def test_a_mask_wholly_outside_the_brain_is_one_sentence(refiner) -> None:
    image = synthetic_brain()
    hole = np.zeros(image.shape, dtype=bool)
    hole[0:3, 0:3, 0:3] = True
    with pytest.raises(InpaintError, match="outside the brain"):
        fill_volume(image, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner)


def test_a_z_scored_scan_is_filled_as_the_same_scan_with_background_0(refiner) -> None:
    image = synthetic_brain()
    hole = np.zeros(image.shape, dtype=bool)
    hole[16:22, 20:26, 15:19] = True
    tissue = image[image > 0]
    mean, sd = float(tissue.mean()), float(tissue.std())
    z = ((image - mean) / sd).astype(np.float32)       # background -mean/sd, tissue on both sides of 0
    assert background_value(z) == pytest.approx(-mean / sd)
    plain = fill_volume(image, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner)
    scored = fill_volume(z, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner)
    assert np.array_equal(scored.filled[~hole], z[~hole])
    assert np.allclose(scored.filled[hole] * sd + mean, plain.filled[hole], atol=1e-2 * sd)
    assert scored.background == pytest.approx(-mean / sd)


def test_a_scan_offset_below_zero_is_filled_as_the_same_scan(tmp_path: Path, refiner) -> None:
    """An offset scan wholly at or below 0 (T1 - 1000) was refused as having 'no positive voxel'."""
    import nibabel as nib

    from core.fill_file import fill_file

    image = synthetic_brain()
    hole = np.zeros(image.shape, bool)
    hole[16:22, 20:26, 15:19] = True
    shifted = image - np.float32(1000.0 + image.max())
    nib.save(nib.Nifti1Image(shifted, AFFINE), tmp_path / "shifted.nii.gz")
    nib.save(nib.Nifti1Image(hole.astype(np.uint8), AFFINE), tmp_path / "lesion.nii.gz")
    fill_file(tmp_path / "shifted.nii.gz", tmp_path / "lesion.nii.gz", tmp_path / "out.nii.gz",
              FillSettings(mirror=0.0), refiner=refiner)
    plain = fill_volume(image, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner)
    out = nib.load(tmp_path / "out.nii.gz").get_fdata(dtype=np.float32)
    assert np.array_equal(out[~hole], shifted[~hole])
    assert np.allclose(out[hole] - shifted.max() + image.max(), plain.filled[hole], atol=0.05)


def test_background_value_is_0_for_a_background_of_0_or_a_noisy_one() -> None:
    image = synthetic_brain()
    assert background_value(image) == 0.0
    noisy = image + np.random.default_rng(0).normal(0, 1, image.shape).astype(np.float32)
    assert background_value(noisy) == 0.0


def test_the_fill_stays_within_the_known_brain_intensities(refiner) -> None:
    image = synthetic_brain()
    hole = np.zeros(image.shape, dtype=bool)
    hole[12:28, 16:32, 10:26] = True
    brain = image > 0
    network = refiner.network
    with torch.no_grad():
        network.tail.bias.fill_(-5.0)                  # a correction far below any tissue
    result = fill_volume(image, AFFINE, hole, settings=FillSettings(mirror=0.0), refiner=refiner, brain=brain)
    known = image[brain & ~hole]
    assert result.filled[hole].min() >= known.min() and result.filled[hole].max() <= known.max()
    assert (result.filled[hole] == known.min()).any()  # the network's values were clipped there
