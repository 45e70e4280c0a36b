"""Latent search: the weight formula, per-sample independence, determinism, cancellation."""

import numpy as np
import pytest
import torch

from core.checkpoint import load_model
from core.job import CancelToken, Cancelled
from core.search import SearchSettings, context_weights, latent_search


def test_context_weights_match_a_hand_computed_case() -> None:
    known = np.ones((5, 5), dtype=np.float32)
    known[2, 2] = 0.0  # one unknown pixel in the centre
    w = context_weights(torch.from_numpy(known)[None, None], 3)[0, 0].numpy()
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[1:4, 1:4] = 1.0 / 9.0  # each 3x3 neighbour of the hole sees one unknown of nine
    expected[2, 2] = 0.0  # zero inside the hole
    np.testing.assert_allclose(w, expected, atol=1e-7)


def test_context_weights_are_zero_far_from_the_hole_and_at_known_edge() -> None:
    known = np.ones((1, 1, 20, 20), dtype=np.float32)
    known[..., 8:12, 8:12] = 0
    w = context_weights(torch.from_numpy(known), 7)[0, 0].numpy()
    assert w[0, 0] == 0 and w[10, 10] == 0 and w[10, 7] > w[10, 5] > 0
    assert w[10, 5] == pytest.approx(4 / 49)  # the 7x7 window reaches one hole column of 4 rows
    assert w[10, 4] == 0

def _problem(model, n=3, seed=0):
    rng = np.random.default_rng(seed)
    size = model.arch.size
    with torch.no_grad():
        truth = model.decoder(torch.from_numpy(rng.standard_normal((n, model.arch.latent)).astype(np.float32)))
    known = np.ones((n, size, size), bool)
    known[:, 8:16, 8:16] = False
    return truth[:, 0].numpy(), known


def test_search_fits_the_context_of_an_image_the_generator_can_make(tiny_vae) -> None:
    model = load_model(tiny_vae)
    targets, known = _problem(model)
    first = latent_search(model, targets, known, SearchSettings(iterations=1, restarts=2, encoder_start=False))
    longer = latent_search(model, targets, known, SearchSettings(iterations=60, restarts=2, lr=0.1,
                                                                 encoder_start=False))
    assert np.all(longer.losses < first.losses)


def test_a_slice_result_does_not_depend_on_the_other_slices_in_the_batch(tiny_gan) -> None:
    model = load_model(tiny_gan)
    targets, known = _problem(model, n=3)
    settings = SearchSettings(iterations=5, restarts=2, seed=3)
    together = latent_search(model, targets, known, settings)
    other = targets.copy()
    other[1:] = -other[1:]
    changed = latent_search(model, other, known, settings)
    np.testing.assert_allclose(together.images[0], changed.images[0], atol=CROSS_BATCH_ATOL)
    np.testing.assert_allclose(together.losses[0], changed.losses[0], rtol=CROSS_BATCH_RTOL)


# Float results depend on the CPU's vector kernels and on the batch shape (a batch of 64 and a batch
# of 2 take different matrix-multiply paths: about 1e-5 apart after 4 Adam steps on an AMD EPYC,
# 2e-5 on this project's CI machine). Exact equality is only promised for the same settings
# (batch included) on the same machine; across batch sizes the tolerance leaves ample room for
# any x86-64 CPU while still catching a real change (another seed moves images by ~1e-1).
CROSS_BATCH_ATOL = 2e-3
CROSS_BATCH_RTOL = 1e-3


def test_same_seed_gives_same_result_and_chunking_does_not_change_it(tiny_vae) -> None:
    model = load_model(tiny_vae)
    targets, known = _problem(model, n=4)
    a = latent_search(model, targets, known, SearchSettings(iterations=4, restarts=2, seed=7, batch=64))
    b = latent_search(model, targets, known, SearchSettings(iterations=4, restarts=2, seed=7, batch=64))
    c = latent_search(model, targets, known, SearchSettings(iterations=4, restarts=2, seed=7, batch=2))
    other = latent_search(model, targets, known, SearchSettings(iterations=4, restarts=2, seed=8, batch=64))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.losses, b.losses)  # same batch, same machine
    np.testing.assert_allclose(a.images, c.images, atol=CROSS_BATCH_ATOL)
    np.testing.assert_allclose(a.losses, c.losses, rtol=CROSS_BATCH_RTOL)
    assert np.abs(a.images - other.images).max() > 10 * CROSS_BATCH_ATOL  # the tolerance still sees the seed


def test_best_restart_is_the_lowest_final_loss(tiny_vae) -> None:
    model = load_model(tiny_vae)
    targets, known = _problem(model, n=1)
    best = latent_search(model, targets, known, SearchSettings(iterations=3, restarts=6, seed=1))
    singles = [latent_search(model, targets, known, SearchSettings(iterations=3, restarts=1, seed=1,
                                                                   encoder_start=True)).losses[0]]
    # the encoder start is one of the six (batch 6 against batch 1: cross-batch tolerance)
    assert best.losses[0] <= min(singles) * (1 + CROSS_BATCH_RTOL)


def test_gan_latents_stay_in_the_prior_support(tiny_gan) -> None:
    model = load_model(tiny_gan)
    targets, known = _problem(model, n=2)
    result = latent_search(model, targets, known, SearchSettings(iterations=20, restarts=2, lr=0.5))
    assert np.abs(result.latents).max() <= 1.0


def test_cancellation_is_honoured_within_one_iteration(tiny_vae) -> None:
    model = load_model(tiny_vae)
    targets, known = _problem(model, n=2)
    token = CancelToken()
    steps = []

    def on_step(step, total, best, images):
        steps.append(step)
        if step == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        latent_search(model, targets, known, SearchSettings(iterations=50), on_step=on_step, cancel=token)
    assert steps[-1] == 3


@pytest.mark.parametrize("name", ["cuda:7" if torch.cuda.is_available() else "cuda", "banana"])
def test_unavailable_device_is_a_user_error(name) -> None:
    from core.errors import InpaintError
    from core.search import select_device

    with pytest.raises(InpaintError):
        select_device(name)
