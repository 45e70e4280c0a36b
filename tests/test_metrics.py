import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from core.metrics import hole_metrics, slice_metrics


def _case(seed=0, shape=(24, 26, 22)):
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0.0, 200.0, shape).astype(np.float32)
    reference[:3] = 0.0  # background
    hole = np.zeros(shape, dtype=bool)
    hole[8:15, 9:17, 7:13] = True
    prediction = reference + rng.normal(0.0, 25.0, shape).astype(np.float32)
    voided = np.where(hole, 0.0, reference).astype(np.float32)
    return prediction, reference, hole, voided


def test_psnr_mse_mae_match_a_hand_computation():
    prediction, reference, hole, voided = _case()
    lo, hi = np.percentile(voided.astype(np.float64), [0.5, 99.5])
    lo = max(lo, 0.0)
    p = (np.clip(prediction[hole].astype(np.float64), lo, hi) - lo) / (hi - lo)
    r = (np.clip(reference[hole].astype(np.float64), lo, hi) - lo) / (hi - lo)
    mse = np.mean((p - r) ** 2)
    got = hole_metrics(prediction, reference, hole, voided)
    assert got["mse"] == pytest.approx(mse, rel=1e-9)
    assert got["mae"] == pytest.approx(np.mean(np.abs(p - r)), rel=1e-9)
    assert got["psnr"] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-9)


def test_ssim_matches_skimage_on_the_whole_image_when_clipping_is_a_no_op():
    rng = np.random.default_rng(1)
    shape = (30, 28, 26)
    reference = np.zeros(shape)
    reference[5:25, 5:23, 4:22] = rng.uniform(0.0, 1.0, (20, 18, 18))
    reference[26:29] = 1.0  # >0.5% of voxels at 1 and at 0: percentiles are exactly 0 and 1
    hole = np.zeros(shape, dtype=bool)
    hole[10:18, 9:16, 8:17] = True
    prediction = np.where(hole, rng.uniform(0.0, 1.0, shape), reference)
    voided = np.where(hole, 0.0, reference)
    _, full = structural_similarity(prediction * hole, reference * hole, data_range=1.0, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, full=True)
    got = hole_metrics(prediction, reference, hole, voided)
    assert got["ssim"] == pytest.approx(full[hole].mean(), abs=1e-9)
    assert got["ssim"] < 0.9


def test_identical_images_give_zero_error_and_infinite_psnr():
    _, reference, hole, voided = _case()
    got = hole_metrics(reference.copy(), reference, hole, voided)
    assert got["mse"] == 0.0 and got["mae"] == 0.0
    assert math.isinf(got["psnr"])
    assert got["ssim"] == pytest.approx(1.0)
    sl = slice_metrics(reference.copy(), reference, hole, voided, axis=2)
    assert math.isinf(sl["psnr_slice"]) and sl["ssim_slice"] == pytest.approx(1.0)


def test_voxels_outside_the_hole_do_not_change_hole_metrics():
    prediction, reference, hole, voided = _case()
    before = hole_metrics(prediction, reference, hole, voided)
    changed = prediction.copy()
    changed[~hole] = np.random.default_rng(5).uniform(-500, 500, int((~hole).sum()))
    after = hole_metrics(changed, reference, hole, voided)
    for key in ("mse", "mae", "psnr", "ssim"):
        assert after[key] == pytest.approx(before[key], rel=1e-12)
    inside = prediction.copy()
    inside[hole] += 40.0
    assert hole_metrics(inside, reference, hole, voided)["mse"] > before["mse"]


def test_negative_values_are_clipped_at_zero():
    _, reference, hole, voided = _case()
    reference = reference.copy()
    reference[hole] = 0.0
    prediction = np.where(hole, -50.0, reference).astype(np.float32)
    assert hole_metrics(prediction, reference, hole, np.where(hole, 0.0, reference))["mse"] == 0.0


def test_slice_metrics_match_a_hand_computation_over_touched_slices_only():
    prediction, reference, hole, voided = _case()
    lo, hi = np.percentile(voided.astype(np.float64), [0.5, 99.5])
    lo = max(lo, 0.0)

    def scale(x):
        return (np.clip(x.astype(np.float64), lo, hi) - lo) / (hi - lo)

    touched = [k for k in range(hole.shape[2]) if hole[:, :, k].any()]
    psnr = np.mean([10 * np.log10(1.0 / np.mean((scale(prediction[:, :, k]) - scale(reference[:, :, k])) ** 2))
                    for k in touched])
    ssim = np.mean([structural_similarity(scale(prediction[:, :, k]), scale(reference[:, :, k]), data_range=1.0,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                    for k in touched])
    got = slice_metrics(prediction, reference, hole, voided, axis="axial")
    assert got["psnr_slice"] == pytest.approx(psnr, rel=1e-9)
    assert got["ssim_slice"] == pytest.approx(ssim, rel=1e-9)
    untouched = prediction.copy()
    untouched[:, :, 0] += 100.0  # slice 0 does not touch the hole
    assert slice_metrics(untouched, reference, hole, voided, axis=2) == got


def test_shape_mismatch_and_empty_hole_are_refused():
    prediction, reference, hole, voided = _case()
    with pytest.raises(ValueError):
        hole_metrics(prediction[:-1], reference, hole, voided)
    with pytest.raises(ValueError):
        hole_metrics(prediction, reference, np.zeros_like(hole), voided)
