import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from core.metrics import (LOWER_PERCENTILE, UPPER_PERCENTILE, brats_ssim, hole_metrics, percentile_range,
                          psnr_reference_range, slice_metrics)


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


def test_ssim_3d_matches_skimage_on_the_whole_image_when_clipping_is_a_no_op():
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
    assert got["ssim_3d"] == pytest.approx(full[hole].mean(), abs=1e-9)
    assert got["ssim_3d"] < 0.9


def test_identical_images_give_zero_error_and_infinite_psnr():
    _, reference, hole, voided = _case()
    got = hole_metrics(reference.copy(), reference, hole, voided)
    assert got["mse"] == 0.0 and got["mae"] == 0.0
    assert math.isinf(got["psnr"]) and math.isinf(got["psnr_01"]) and math.isinf(got["psnr_brats"])
    assert got["ssim"] == pytest.approx(1.0) and got["ssim_3d"] == pytest.approx(1.0)
    sl = slice_metrics(reference.copy(), reference, hole, voided, axis=2)
    assert math.isinf(sl["psnr_slice"]) and sl["ssim_slice"] == pytest.approx(1.0)


def test_voxels_outside_the_hole_do_not_change_hole_metrics():
    prediction, reference, hole, voided = _case()
    before = hole_metrics(prediction, reference, hole, voided)
    changed = prediction.copy()
    changed[~hole] = np.random.default_rng(5).uniform(-500, 500, int((~hole).sum()))
    after = hole_metrics(changed, reference, hole, voided)
    for key in ("mse", "mae", "psnr", "psnr_01", "psnr_brats", "ssim", "ssim_3d"):
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


def _scaled(prediction, reference, hole, voided):
    lo, hi = np.percentile(voided.astype(np.float64), [0.5, 99.5])
    lo = max(lo, 0.0)

    def scale(x):
        return (np.clip(np.where(hole, x, 0.0).astype(np.float64), lo, hi) - lo) / (hi - lo)

    return scale(prediction), scale(reference)


def test_brats_ssim_is_a_2d_ssim_per_first_axis_slice_averaged_over_hole_voxels():
    prediction, reference, hole, voided = _case()
    p, r = _scaled(prediction, reference, hole, voided)
    data_range = max(np.ptp(p), np.ptp(r))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(x):  # 11-tap Gaussian (sigma 1.5) in the last two axes only, mirrored edges = torch 'reflect'
        return ndimage.gaussian_filter(x, sigma=(0, 1.5, 1.5), truncate=3.5, mode="mirror")

    mp, mr = mean(p), mean(r)
    vp, vr, cov = np.maximum(mean(p * p) - mp ** 2, 0), np.maximum(mean(r * r) - mr ** 2, 0), mean(p * r) - mp * mr
    ssim_map = (2 * mp * mr + c1) * (2 * cov + c2) / ((mp ** 2 + mr ** 2 + c1) * (vp + vr + c2))
    got = hole_metrics(prediction, reference, hole, voided)
    assert got["ssim"] == pytest.approx(ssim_map[hole].mean(), abs=1e-9)
    assert brats_ssim(p, r, hole) == got["ssim"]
    assert got["ssim"] != pytest.approx(got["ssim_3d"], abs=1e-3)  # the 3D variant is a different number


def test_psnr_variants_on_known_values():
    reference = np.array([0.2, 0.4, 0.6])
    prediction = np.array([0.3, 0.4, 0.9])  # 0.9 is clamped to the reference's max 0.6 for the headline PSNR
    assert psnr_reference_range(prediction, reference) == pytest.approx(10 * np.log10(0.4 ** 2 / (0.01 / 3)))
    assert psnr_reference_range(reference, reference) == math.inf
    assert math.isnan(psnr_reference_range(np.full(3, 0.5), np.full(3, 0.5)))
    prediction, reference, hole, voided = _case()
    got = hole_metrics(prediction, reference, hole, voided)
    p, r = _scaled(prediction, reference, hole, voided)
    ref = r[hole]
    span = ref.max() - ref.min()
    mse = np.mean((np.clip(p[hole], ref.min(), ref.max()) - ref) ** 2)
    assert got["psnr_brats"] == pytest.approx(10 * np.log10(span ** 2 / mse), rel=1e-9)
    assert got["psnr_01"] == got["psnr"] == pytest.approx(10 * np.log10(1 / got["mse"]), rel=1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # raised inside torchmetrics
def test_agrees_with_the_official_brats_package():
    import torch
    from inpainting import challenge_metrics_2023 as official  # AGPL-3.0: a test dependency, never shipped

    rng = np.random.default_rng(3)
    shape = (40, 44, 36)
    reference = ndimage.gaussian_filter(rng.uniform(0, 300, shape), 1.5).astype(np.float32)
    reference[:, :, :4] = 0
    hole = np.zeros(shape, dtype=bool)
    hole[12:25, 14:30, 10:20] = ndimage.gaussian_filter(rng.standard_normal((13, 16, 10)), 2) > -0.05
    voided = np.where(hole, 0, reference).astype(np.float32)
    for prediction in (reference + rng.normal(0, 20, shape).astype(np.float32),
                       np.where(hole, reference.mean(), reference).astype(np.float32)):
        def t(a):
            return torch.tensor(a).unsqueeze(0).contiguous()

        theirs = official.generate_metrics(t(prediction), t(reference), t(voided), t(hole))
        ours = hole_metrics(prediction, reference, hole, voided)
        for mine, name in (("ssim", "ssim"), ("psnr_brats", "psnr"), ("psnr_01", "psnr_01"), ("mse", "mse"),
                           ("mae", "mae")):
            assert ours[mine] == pytest.approx(theirs[name], abs=1e-4), name


def test_the_product_never_imports_the_official_brats_package():
    """It is AGPL-3.0 and a test dependency only: core and the app compute the metrics themselves."""
    root = Path(__file__).resolve().parents[1]
    for path in [*(root / "core").rglob("*.py"), *(root / "inpaint_gui").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "import inpainting" not in text and "from inpainting" not in text, path


def test_the_box_computation_equals_the_whole_volume_at_the_volume_edge():
    # hole_metrics works on the hole's box plus one SSIM radius; a hole in a corner clips that box
    rng = np.random.default_rng(5)
    shape = (20, 24, 18)
    reference = ndimage.gaussian_filter(rng.uniform(0, 300, shape), 1.5).astype(np.float32)
    hole = np.zeros(shape, dtype=bool)
    hole[:6, -7:, :5] = True
    prediction = (reference + rng.normal(0, 25, shape)).astype(np.float32)
    voided = np.where(hole, 0, reference).astype(np.float32)
    lo, hi = np.percentile(voided.astype(np.float64), [0.5, 99.5])
    lo = max(lo, 0.0)

    def whole(a):
        return (np.clip(np.where(hole, a, 0.0).astype(np.float64), lo, hi) - lo) / (hi - lo)

    got = hole_metrics(prediction, reference, hole, voided)
    assert got["ssim"] == pytest.approx(brats_ssim(whole(prediction), whole(reference), hole), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
def test_the_normalisation_range_equals_numpy_percentiles_of_a_float64_copy(dtype):
    # the range is taken from one partitioned copy in the input's own type; the figures must not move
    rng = np.random.default_rng(5)
    for n in [1, 2, 3, 199, 200, 201, 1000, 4097]:
        values = rng.gamma(2.0, 300.0, size=n)
        values[: n // 3] = 0
        image = values.astype(dtype).reshape(-1, 1, 1)
        lo, hi = np.percentile(image.astype(np.float64), [LOWER_PERCENTILE, UPPER_PERCENTILE])
        if not hi > max(lo, 0.0):
            with pytest.raises(ValueError):
                percentile_range(image)
            continue
        assert percentile_range(image) == (max(float(lo), 0.0), float(hi))


def test_a_voided_image_with_nan_has_no_normalisation_range():
    image = np.linspace(0.0, 1.0, 1000, dtype=np.float32)
    image[10] = np.nan
    with pytest.raises(ValueError):
        percentile_range(image)


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_the_range_of_the_image_with_its_hole_voided_needs_no_voided_volume(dtype):
    from core.metrics import voided_range

    rng = np.random.default_rng(8)
    image = rng.gamma(2.0, 300.0, size=(20, 18, 16)).astype(dtype)
    hole = np.zeros(image.shape, dtype=bool)
    hole[5:12, 4:9, 6:10] = True
    kept = image.copy()
    voided = np.where(hole, 0, image).astype(dtype)
    assert voided_range(image, hole) == percentile_range(voided)
    assert np.array_equal(image, kept)                                  # the image is never reordered
    assert percentile_range(voided[:, ::2]) == percentile_range(np.ascontiguousarray(voided[:, ::2]))
    before = voided.copy()
    percentile_range(voided)
    assert np.array_equal(voided, before)                               # nor is the voided input, unless told
    prediction = image.astype(np.float64) + hole * 40.0
    by_range = hole_metrics(prediction, image, hole, value_range=voided_range(image, hole))
    assert by_range == hole_metrics(prediction, image, hole, voided)
    assert (slice_metrics(prediction, image, hole, None, 2, value_range=voided_range(image, hole))
            == slice_metrics(prediction, image, hole, voided, 2))
    with pytest.raises(ValueError, match="either the voided image or its value range"):
        hole_metrics(prediction, image, hole)


@pytest.mark.parametrize("lesions", [[(slice(8, 14), slice(10, 18), slice(8, 14))],                # one box: one chunk
                                     [(slice(3, 8), slice(10, 16), slice(6, 12)),                 # spread along the
                                      (slice(40, 44), slice(20, 26), slice(14, 20)),              # first axis: the
                                      (slice(88, 95), slice(5, 12), slice(20, 26))]])             # box in chunks
def test_measured_a_few_slices_at_a_time_the_metrics_equal_the_whole_box_s(lesions):
    """The whole box in float64 peaked at 5 GB for 40 lesions spread over a 0.5 mm brain (the app measures twice)."""
    from core.metrics import METRIC_SLICES, _ssim_box, ssim

    rng = np.random.default_rng(3)
    shape = (100, 32, 30)
    reference = ndimage.gaussian_filter(rng.uniform(0, 300, shape), 1.2).astype(np.float32)
    hole = np.zeros(shape, dtype=bool)
    for box in lesions:
        hole[box] = True
    prediction = (reference + rng.normal(0, 20, shape)).astype(np.float32)
    voided = np.where(hole, 0, reference).astype(np.float32)
    lo, hi = percentile_range(voided)
    box = _ssim_box(hole)
    inside = hole[box]
    pred, ref = ((np.clip(np.where(inside, a[box], 0.0).astype(np.float64), lo, hi) - lo) / (hi - lo)
                 for a in (prediction, reference))
    diff = pred[inside] - ref[inside]
    whole = {"ssim": brats_ssim(pred, ref, inside), "ssim_3d": float(ssim(pred, ref, full=True)[1][inside].mean()),
             "mse": float(np.mean(diff ** 2)), "mae": float(np.mean(np.abs(diff))),
             "psnr_brats": psnr_reference_range(pred[inside], ref[inside])}
    got = hole_metrics(prediction, reference, hole, voided)
    assert inside.shape[0] > METRIC_SLICES or len(lesions) == 1
    for key, value in whole.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_metrics_memory_follows_a_chunk_of_slices_not_the_hole_s_box():
    import tracemalloc

    shape = (240, 48, 48)
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 300, shape).astype(np.float32)
    hole = np.zeros(shape, dtype=bool)
    hole[2:6, 20:26, 20:26] = hole[234:238, 20:26, 20:26] = True   # two lesions: a box of the whole volume
    prediction = reference + np.float32(5)
    voided = np.where(hole, 0, reference).astype(np.float32)
    tracemalloc.start()
    try:
        hole_metrics(prediction, reference, hole, voided)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the normalisation's one float32 copy of `voided` (half of this bound) and chunks; the whole box took 1.8
    # times this bound in numpy arrays alone (torch's SSIM stack of five float64 copies comes on top, untraced)
    assert peak < reference.size * 8
