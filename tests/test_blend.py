"""Poisson blending: exact on harmonic fields, never touches known pixels."""

import numpy as np

from core.blend import poisson_blend


def _grid(n=32):
    return np.mgrid[0:n, 0:n].astype(np.float64)


def test_recovers_discrete_harmonic_field_exactly_from_its_boundary() -> None:
    r, c = _grid()
    field = (r - 10.0) ** 2 - (c - 13.0) ** 2 + 3 * r - 2 * c  # 5-point Laplacian is exactly 0
    hole = np.zeros(field.shape, bool)
    hole[8:20, 5:25] = True
    voided = np.where(hole, 0.0, field)
    out = poisson_blend(voided, hole, np.zeros_like(field))
    np.testing.assert_allclose(out[hole], field[hole].astype(np.float32), rtol=1e-5, atol=1e-3)


def test_guide_equal_to_truth_is_reproduced_and_known_pixels_are_kept() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(24, 24))
    hole = np.zeros(truth.shape, bool)
    hole[5:12, 6:18] = True
    hole[15:20, 2:6] = True
    voided = np.where(hole, -99.0, truth)
    out = poisson_blend(voided, hole, truth)
    np.testing.assert_allclose(out[hole], truth[hole], atol=1e-4)
    assert np.array_equal(out[~hole], voided[~hole].astype(np.float32))


def test_constant_offset_of_the_guide_is_removed() -> None:
    r, c = _grid(20)
    truth = 0.1 * r + 0.2 * c
    hole = np.zeros(truth.shape, bool)
    hole[6:14, 6:14] = True
    out = poisson_blend(np.where(hole, 0, truth), hole, truth + 50.0)
    np.testing.assert_allclose(out[hole], truth[hole], atol=1e-4)


def test_hole_at_border_and_fully_masked_image() -> None:
    truth = np.ones((10, 10))
    hole = np.zeros(truth.shape, bool)
    hole[0:4, 0:4] = True
    out = poisson_blend(np.where(hole, 0, truth), hole, np.full(truth.shape, 7.0))
    np.testing.assert_allclose(out[hole], 1.0, atol=1e-6)
    everything = np.ones(truth.shape, bool)
    guide = np.arange(100.0).reshape(10, 10)
    np.testing.assert_allclose(poisson_blend(truth, everything, guide), guide)
