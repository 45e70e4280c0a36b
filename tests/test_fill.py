"""The fill pipeline: outside-hole identity, no ground-truth leak, orientation invariance, progress."""

import numpy as np
import pytest

from conftest import synthetic_brain
from core.checkpoint import load_model
from core.fill import FillSettings, fill_volume
from core.job import CancelToken, Cancelled

LAS = np.array([[-2.0, 0, 0, 40], [0, 2, 0, -48], [0, 0, 2, -36], [0, 0, 0, 1]])
FAST = FillSettings(method="slices2d", iterations=5, restarts=2)


def _hole(shape):
    hole = np.zeros(shape, bool)
    hole[14:22, 18:26, 15:19] = True
    return hole


def test_voxels_outside_the_hole_are_bit_identical(tiny_vae) -> None:
    image = synthetic_brain()
    image[0, 0, 0] = np.float32(1e-7)  # values that a round trip through other dtypes would alter
    hole = _hole(image.shape)
    result = fill_volume(image, LAS, hole, load_model(tiny_vae), FAST)
    assert result.filled.dtype == np.float32
    assert np.array_equal(result.filled[~hole], image[~hole])
    assert not np.array_equal(result.filled[hole], image[hole])
    assert sorted(result.final_loss) == [15, 16, 17, 18]


def test_the_true_content_of_the_hole_is_never_used(tiny_gan) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    other = image.copy()
    other[hole] = 1000.0
    model = load_model(tiny_gan)
    a = fill_volume(image, LAS, hole, model, FAST)
    b = fill_volume(other, LAS, hole, model, FAST)
    assert np.array_equal(a.filled[hole], b.filled[hole])


def test_result_does_not_depend_on_the_voxel_order_of_the_file(tiny_vae) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    model = load_model(tiny_vae)
    las = fill_volume(image, LAS, hole, model, FAST)
    ras_affine = LAS.copy()
    ras_affine[0] = [2.0, 0, 0, 40 - 2.0 * (image.shape[0] - 1)]
    ras = fill_volume(image[::-1].copy(), ras_affine, hole[::-1].copy(), model, FAST)
    np.testing.assert_allclose(ras.filled[::-1], las.filled, atol=1e-4)


def test_blending_matches_the_border_and_ablation_pastes_the_generator(tiny_vae) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    model = load_model(tiny_vae)
    blended = fill_volume(image, LAS, hole, model, FAST)
    pasted = fill_volume(image, LAS, hole, model, FillSettings(method="slices2d", iterations=5, restarts=2, blend=False))
    assert np.array_equal(pasted.filled[hole], pasted.generated[hole])
    assert np.array_equal(blended.generated[hole], pasted.generated[hole])
    assert not np.allclose(blended.filled[hole], pasted.filled[hole])


def test_progress_reports_previews_of_the_hole_and_cancel_stops(tiny_vae) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    reports = []
    fill_volume(image, LAS, hole, load_model(tiny_vae), FillSettings(method="slices2d", iterations=6, restarts=2, preview_every=3),
                progress=reports.append)
    previews = [r.preview for r in reports if r.preview is not None]
    assert len(previews) == 2 and all(p.shape == (int(hole.sum()),) for p in previews)
    assert reports[-1].stage == "done" and reports[-2].step == reports[-2].total

    edge = np.zeros(image.shape, bool)   # a mask that reaches from the brain onto the background
    edge[18:23, 20:25, 0:6] = True
    outside = edge & (image == 0)
    assert outside.any() and (edge & ~outside).any()
    reports.clear()
    result = fill_volume(image, LAS, edge, load_model(tiny_vae),
                         FillSettings(method="slices2d", iterations=6, restarts=2, preview_every=3), progress=reports.append)
    previews = [r.preview for r in reports if r.preview is not None]
    assert previews and all(p.shape == (int(edge.sum()),) for p in previews)   # over the mask as given
    assert all(np.array_equal(p[outside[edge]], image[outside]) for p in previews)  # the background left as it is
    assert result.outside_brain_voxels == int(outside.sum())

    token = CancelToken()

    def cancel_at_two(progress):
        if progress.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        fill_volume(image, LAS, hole, load_model(tiny_vae), FillSettings(method="slices2d", iterations=50),
                    progress=cancel_at_two, cancel=token)


def test_same_seed_on_cpu_gives_the_same_volume(tiny_gan) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    model = load_model(tiny_gan)
    a = fill_volume(image, LAS, hole, model, FillSettings(method="slices2d", iterations=4, restarts=3, seed=5, device="cpu"))
    b = fill_volume(image, LAS, hole, model, FillSettings(method="slices2d", iterations=4, restarts=3, seed=5, device="cpu"))
    c = fill_volume(image, LAS, hole, model, FillSettings(method="slices2d", iterations=4, restarts=3, seed=6, device="cpu"))
    assert np.array_equal(a.filled, b.filled)
    assert not np.array_equal(a.filled, c.filled)


def test_two_lesions_far_apart_search_only_their_slices(tiny_vae) -> None:
    """The latent search covers the slices a lesion touches, not every slice between two lesions (poisson3d: one
    more on each side, for its 3D blending)."""
    image = synthetic_brain()
    hole = np.zeros(image.shape, bool)
    hole[18:22, 20:24, 8:10] = True
    hole[18:22, 20:24, 26:28] = True
    model = load_model(tiny_vae)
    for method, searched in (("slices2d", [8, 9, 26, 27]), ("poisson3d", [7, 8, 9, 10, 25, 26, 27, 28])):
        reports = []
        result = fill_volume(image, LAS, hole, model, FillSettings(method=method, iterations=2, restarts=1),
                             progress=reports.append)
        assert reports[-1].slices == searched and sorted(result.final_loss) == [8, 9, 26, 27], method
        assert np.array_equal(result.filled[~hole], image[~hole])


def test_a_mask_over_all_the_brain_of_a_slice_is_refused_by_the_2d_search(tiny_vae) -> None:
    """With no known tissue beside the hole in its slice the context loss matches nothing: one sentence, not an
    unconstrained slice."""
    from core.errors import InpaintError

    image = synthetic_brain()
    hole = np.zeros(image.shape, bool)
    hole[..., 17] = image[..., 17] > 0
    hole[..., 18] = image[..., 18] > 0
    model = load_model(tiny_vae)
    for method in ("slices2d", "poisson3d"):
        with pytest.raises(InpaintError, match=r"covers all the brain of 2 axial slices \(17-18\).*--method refine3d"):
            fill_volume(image, LAS, hole, model, FillSettings(method=method, iterations=2, restarts=1))
    hole[10:30, 10:38, 17:19] = False   # a large lesion that leaves tissue around it in the slice is filled
    result = fill_volume(image, LAS, hole, model, FillSettings(method="slices2d", iterations=2, restarts=1))
    assert np.array_equal(result.filled[~hole], image[~hole])
    assert fill_volume(image, LAS, hole, None, FillSettings(method="refine3d")).filled[hole].std() > 0
