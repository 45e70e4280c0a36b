"""Augmentation functions and the training slice sampler: shapes, ranges, seeding, inference mapping."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import synthetic_brain
from core.modelspace import Reorientation, SliceGrid, take_slice
from core.normalize import estimate_brain, intensity_scale
from core.training.augment import (AugmentConfig, intensity_augment, random_holes, smooth_field,
                                   synthesize_contrast, tissue_weights, to_model_range, warp_offsets)
from core.training.data import TrainingData

ALL = AugmentConfig()
NONE = AugmentConfig.for_group("none")


def write_brain(folder: Path, with_tissues: bool = True) -> Path:
    """Synthetic LAS 2 mm brain, plus gm/wm maps beside it (core = 'WM', shell = 'GM')."""
    folder.mkdir(parents=True, exist_ok=True)
    image = synthetic_brain()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), folder / "t1.nii.gz")
    if with_tissues:
        wm = (image > 80).astype(np.float32) * 255
        gm = ((image > 0) & (image <= 80)).astype(np.float32) * 200
        nib.save(nib.Nifti1Image(gm, affine), folder / "gm.nii.gz")
        nib.save(nib.Nifti1Image(wm, affine), folder / "wm.nii.gz")
    return folder / "t1.nii.gz"


def test_groups_switch_augmentations():
    assert not NONE.geometric and not NONE.intensity and not NONE.tissue
    geo = AugmentConfig.for_group("geometric")
    assert geo.geometric and not geo.intensity
    assert ALL.geometric and ALL.intensity and ALL.tissue
    with pytest.raises(ValueError):
        AugmentConfig.for_group("everything")


def test_warp_is_identity_without_geometric_and_seeded_with_it():
    size, spacing = 16, 2.0
    plain = warp_offsets(np.random.default_rng(0), size, spacing, NONE)
    expected = (np.mgrid[0:size, 0:size] - (size - 1) / 2.0) * spacing
    np.testing.assert_allclose(plain, expected)
    a = warp_offsets(np.random.default_rng(5), size, spacing, ALL)
    b = warp_offsets(np.random.default_rng(5), size, spacing, ALL)
    c = warp_offsets(np.random.default_rng(6), size, spacing, ALL)
    assert a.shape == (2, size, size)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # a plausible warp (distances from the centre change by scale, shift and elastic only), not garbage
    radius, warped = np.hypot(*expected), np.hypot(*a)
    assert np.abs(warped - radius).max() < 0.35 * radius.max() + ALL.translate_mm * 1.5 + 4 * ALL.elastic_mm


def test_smooth_field_shape_and_smoothness():
    field = smooth_field(np.random.default_rng(1), 4, 32, 1.0, channels=2)
    assert field.shape == (2, 32, 32)
    assert np.abs(np.diff(field, axis=-1)).max() < np.abs(field).max()


def test_intensity_augment_keeps_background_and_shape():
    rng = np.random.default_rng(2)
    unit = np.zeros((24, 24))
    unit[6:18, 6:18] = np.linspace(0.2, 1.0, 144).reshape(12, 12)
    out = intensity_augment(rng, unit, ALL)
    assert out.shape == unit.shape and np.isfinite(out).all()
    assert (out[unit == 0] == 0).all()
    assert not np.allclose(out, unit)
    np.testing.assert_array_equal(intensity_augment(np.random.default_rng(2), unit, ALL), out)
    np.testing.assert_array_equal(intensity_augment(rng, unit, NONE), unit)
    model = to_model_range(out * 3)
    assert model.dtype == np.float32 and model.min() >= -1 and model.max() <= 1


def test_tissue_contrast_is_t1_like():
    rng = np.random.default_rng(3)
    for _ in range(20):
        w = tissue_weights(rng)
        assert w[0] < w[1] < w[2]
    tissues = np.eye(3).reshape(3, 3, 1)
    np.testing.assert_allclose(synthesize_contrast(np.array([0.1, 0.5, 1.0]), tissues)[:, 0], [0.1, 0.5, 1.0])


def test_random_holes_are_binary_seeded_and_varied():
    holes = random_holes(np.random.default_rng(4), 40, 32)
    assert holes.shape == (40, 32, 32)
    assert set(np.unique(holes)) <= {0.0, 1.0}
    missing = (holes == 0).sum(axis=(1, 2))
    assert (missing == 0).any() and (missing > 0).sum() > 20 and len(set(missing[missing > 0])) > 5
    np.testing.assert_array_equal(random_holes(np.random.default_rng(4), 40, 32), holes)
    assert (random_holes(np.random.default_rng(4), 10, 32, empty=0.0) == 0).any(axis=(1, 2)).all()


def test_unaugmented_slices_match_inference_mapping(tmp_path):
    """Without augmentation a training slice is exactly what inference feeds the model."""
    path = write_brain(tmp_path, with_tissues=False)
    size, spacing = 24, 3.0
    data = TrainingData.load([path], "axial", size, spacing)
    rng = np.random.default_rng(7)
    sample = data.sources[0].sample(rng, NONE)
    index = int(np.random.default_rng(7).choice(data.sources[0].slices))
    img = nib.load(path)
    reo = Reorientation.of(img.affine, img.shape)
    ras = reo.apply(img.get_fdata(dtype=np.float32))
    brain = estimate_brain(ras)
    grid = SliceGrid.for_volume(brain, reo.ras_affine, "axial", size, spacing)
    expected = intensity_scale(ras, brain).to_model(grid.to_model(take_slice(ras, "axial", index)))
    np.testing.assert_allclose(sample, expected, atol=1e-5)


def test_training_batches_are_seeded_and_in_range(tmp_path):
    data = TrainingData.load([write_brain(tmp_path)], "axial", 24, 3.0)
    assert any(s.tissues is not None for s in data.sources)
    cfg = AugmentConfig(synth=1.0)
    a = data.batch(np.random.default_rng(9), 6, cfg)
    b = data.batch(np.random.default_rng(9), 6, cfg)
    assert a.shape == (6, 1, 24, 24) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1 and (a > -1).mean() > 0.1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, data.batch(np.random.default_rng(10), 6, cfg))
