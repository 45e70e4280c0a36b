"""Contralateral detail (`core.mirror`): the mid-sagittal reflection, the mirrored crop, the detail it adds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core import mirror
from core.blend3d import biharmonic_fill_3d
from core.mirror import NoReflection, demons_bins, find_reflection, lateral_axis, mirror_detail, mirrored_box

SPACING = (2.0, 2.0, 2.0)


def _symmetric_brain(plane: float, shape=(44, 40, 36), seed: int = 3) -> np.ndarray:
    """A textured ellipsoid mirror-symmetric about x = `plane` (voxels along axis 0)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((64,) + shape[1:]), 2.0)
    x = np.arange(shape[0], dtype=np.float64)
    # the value at x is the field at |x - plane|: mirror-symmetric by construction
    texture = ndimage.map_coordinates(field, np.meshgrid(np.abs(x - plane) * 2.0, np.arange(shape[1]),
                                                         np.arange(shape[2]), indexing="ij"), order=1)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    centre = (plane, shape[1] / 2, shape[2] / 2)
    radius = np.sqrt(sum(((g - c) / (0.42 * n)) ** 2 for g, c, n in zip(grid, centre, shape)))
    return np.where(radius < 1.0, 100 + 300 * texture, 0).astype(np.float32)


@pytest.mark.parametrize("plane", [21.5, 23.0])
def test_the_reflection_maps_each_voxel_to_its_mirror(plane: float) -> None:
    image = _symmetric_brain(plane)
    hole = np.zeros(image.shape, dtype=bool)
    hole[10:16, 16:22, 14:20] = True   # a lesion on one side is left out of the registration
    reflection = find_reflection(np.where(hole, 0, image), hole, SPACING, axis=0)
    box = (slice(8, 18), slice(14, 24), slice(12, 22))
    source = reflection.source_voxels(box)
    expected = np.indices((10, 10, 10)).astype(np.float64) + np.array([8, 14, 12])[:, None, None, None]
    expected[0] = 2 * plane - expected[0]
    assert np.abs(source - expected).max() < 1.0


def test_the_lateral_axis_follows_the_affine() -> None:
    assert lateral_axis(np.diag([-2.0, 2.0, 2.0, 1.0])) == 0
    sagittal_stack = np.array([[0, 0, 1.2, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    assert lateral_axis(sagittal_stack) == 2


def test_the_mirror_is_unknown_where_it_falls_on_a_lesion() -> None:
    image = _symmetric_brain(21.5)
    hole = np.zeros(image.shape, dtype=bool)
    hole[10:16, 16:22, 14:20] = True     # left lesion
    hole[28:34, 16:22, 14:20] = True     # its mirror image on the right (x -> 2 * 21.5 - x)
    reflection = find_reflection(np.where(hole, 0, image), hole, SPACING, axis=0)
    box = (slice(4, 20), slice(10, 28), slice(8, 26))
    mirror = mirrored_box(image, hole, reflection, box)
    assert np.isnan(mirror[6:12, 6:12, 6:12]).all()   # the left lesion's voxels mirror the right one
    assert np.isfinite(mirror[0:2, 0:2, 0:2]).all()


@pytest.mark.parametrize("spacing", [SPACING, (0.9, 0.9, 1.0)])
def test_the_mirrored_detail_brings_a_fill_closer_to_the_truth(spacing, monkeypatch) -> None:
    monkeypatch.setattr(mirror, "BIN_MIN_ML", 0.0)   # at 0.9 x 0.9 x 1 mm this small hole is aligned on 2x2x2 bins
    truth = _symmetric_brain(21.5)
    hole = np.zeros(truth.shape, dtype=bool)
    hole[9:16, 15:22, 13:20] = True
    voided = np.where(hole, 0, truth).astype(np.float32)
    reflection = find_reflection(voided, hole, spacing, axis=0)
    box = (slice(2, 24), slice(8, 30), slice(6, 28))
    smooth = biharmonic_fill_3d(voided[box], hole[box], spacing)
    detail = mirror_detail(smooth, mirrored_box(voided, hole, reflection, box), hole[box], spacing)
    assert np.all(detail[~hole[box]] == 0)
    error_smooth = np.abs(smooth - truth[box])[hole[box]].mean()
    error_mirror = np.abs(smooth + detail - truth[box])[hole[box]].mean()
    assert error_mirror < 0.6 * error_smooth


def test_no_reflection_for_a_volume_too_small_or_hemispheres_that_do_not_match() -> None:
    small = _symmetric_brain(7.5, shape=(16, 14, 12))
    with pytest.raises(NoReflection, match="too little known tissue"):
        find_reflection(small, np.zeros(small.shape, dtype=bool), SPACING, axis=0)
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.standard_normal((44, 40, 36)), 3.0).astype(np.float32) * 100 + 500
    with pytest.raises(NoReflection, match="do not match"):
        find_reflection(noise, np.zeros(noise.shape, dtype=bool), SPACING, axis=0)


def test_a_lesions_own_values_never_reach_the_mirror() -> None:
    image = _symmetric_brain(21.5)
    hole = np.zeros(image.shape, dtype=bool)
    hole[27:33, 16:22, 14:20] = True
    lesioned = np.where(hole, np.float32(1e6), image)          # a bright lesion on the right
    reflection = find_reflection(lesioned, hole, SPACING, axis=0)
    mirror = mirrored_box(lesioned, hole, reflection, (slice(0, 44), slice(0, 40), slice(0, 36)))
    assert np.nanmax(mirror) < 1e5


def test_the_alignment_bins_voxels_finer_than_2_mm_around_lesions_of_a_millilitre_or_more() -> None:
    assert demons_bins((0.868, 0.868, 1.0), 1.0) == [2, 2, 2]
    assert demons_bins((1.0, 1.333, 1.333), 5.0) == [2, 1, 1]
    assert demons_bins((0.868, 0.868, 1.0), 0.9) == [1, 1, 1]   # a small lesion: full resolution
    assert demons_bins((2.0, 2.0, 2.0), 20.0) == [1, 1, 1] == demons_bins((1.5, 3.0, 2.0), 20.0)   # 2 mm: as before
