import numpy as np
import pytest

from core.baselines import biharmonic_fill, border_mean_fill, estimate_white_matter, fsl_style_fill


def _tissue_volume(seed=0):
    """Background 0, a CSF-like, a GM-like and a WM-like block with noisy intensities."""
    rng = np.random.default_rng(seed)
    image = np.zeros((32, 30, 28), dtype=np.float32)
    image[2:30, 2:28, 2:26] = rng.uniform(20, 30, (28, 26, 24))
    image[4:28, 4:26, 4:24] = rng.uniform(60, 70, (24, 22, 20))
    image[8:24, 8:22, 8:20] = rng.uniform(100, 120, (16, 14, 12))
    hole = np.zeros(image.shape, dtype=bool)
    hole[13:19, 12:18, 11:17] = True
    return image, hole


@pytest.mark.parametrize("fill", [border_mean_fill, biharmonic_fill, fsl_style_fill])
def test_outside_the_hole_is_bit_identical_and_hole_values_are_never_read(fill):
    image, hole = _tissue_volume()
    given = image.copy()
    given[hole] = np.nan
    out = fill(given, hole)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.array_equal(out[~hole].view(np.uint32), image[~hole].view(np.uint32))
    assert np.isfinite(out[hole]).all()


def test_border_mean_fills_each_component_with_its_own_border_mean():
    image = np.zeros((20, 20, 20), dtype=np.float32)
    image[:10] = 10.0
    image[10:] = 50.0
    hole = np.zeros(image.shape, dtype=bool)
    hole[3:6, 8:12, 8:12] = True
    hole[14:17, 8:12, 8:12] = True
    out = border_mean_fill(image, hole)
    assert np.all(out[3:6, 8:12, 8:12] == 10.0)
    assert np.all(out[14:17, 8:12, 8:12] == 50.0)


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_biharmonic_reproduces_a_linear_ramp(axis):
    x, y, z = np.mgrid[0:24, 0:26, 0:22].astype(np.float32)
    image = 3.0 * x - 2.0 * y + 1.5 * z + 100.0
    hole = np.zeros(image.shape, dtype=bool)
    hole[8:15, 9:17, 7:14] = True
    out = biharmonic_fill(np.where(hole, 0.0, image).astype(np.float32), hole, axis=axis)
    np.testing.assert_allclose(out[hole], image[hole], atol=1e-3)


def test_biharmonic_refuses_an_unknown_plane():
    image, hole = _tissue_volume()
    with pytest.raises(ValueError):
        biharmonic_fill(image, hole, axis="oblique")


def test_fsl_style_values_lie_in_the_white_matter_range():
    image, hole = _tissue_volume()
    wm_estimate = estimate_white_matter(image, hole)
    assert wm_estimate[8:24, 8:22, 8:20][~hole[8:24, 8:22, 8:20]].all() and not wm_estimate[image < 65].any()
    for wm in (None, np.pad(np.ones((16, 14, 12), bool), ((8, 8), (8, 8), (8, 8)))):
        out = fsl_style_fill(image, hole, wm=wm, rng=3)
        assert out[hole].min() >= 100.0 and out[hole].max() <= 120.0
        assert out[hole].std() > 1.0  # random samples, not a constant


def test_fsl_style_draws_from_the_white_matter_next_to_each_lesion():
    image = np.zeros((30, 24, 24), dtype=np.float32)
    image[2:28, 2:22, 2:22] = 30.0
    image[3:14, 4:20, 4:20] = 100.0  # white matter of one region
    image[16:27, 4:20, 4:20] = 140.0  # brighter white matter of another
    hole = np.zeros(image.shape, dtype=bool)
    hole[6:10, 9:14, 9:14] = True
    hole[20:24, 9:14, 9:14] = True
    out = fsl_style_fill(image, hole, wm=image > 50, rng=0)
    assert np.all(out[6:10, 9:14, 9:14] == 100.0)
    assert np.all(out[20:24, 9:14, 9:14] == 140.0)


def test_fsl_style_seeds_reproduce():
    image, hole = _tissue_volume()
    a = fsl_style_fill(image, hole, rng=7)
    assert np.array_equal(a, fsl_style_fill(image, hole, rng=7))
    assert not np.array_equal(a, fsl_style_fill(image, hole, rng=8))
