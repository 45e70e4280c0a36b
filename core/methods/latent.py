"""What the latent-search methods (`slices2d`, `poisson3d`) share: their parameters, the model-space slices of
a slab, and the search that turns them into one generated native slice each."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InpaintError
from ..modelspace import SliceGrid, plane_axes, put_slice, take_slice
from ..search import LAMBDA_MAX, LIMITS, LR_MAX, WINDOW_MAX, WINDOW_MIN, SearchSettings, latent_search
from .base import Parameter, Run, Slab

PARAMETERS = (
    Parameter("lam", SearchSettings.lam, "Lambda", "weight of the prior loss (how much realism counts against "
              "matching the context; 0.003 is the paper's value for a GAN's log(1 - D) prior; a VAE's prior is "
              "lambda |z|^2)", low=0.0, high=LAMBDA_MAX, step=0.001, decimals=4,
              option="lambda"),
    Parameter("iterations", SearchSettings.iterations, "Iterations", "Adam steps on the latent code per restart; "
              "more is slower and usually better", low=LIMITS["iterations"][0], high=LIMITS["iterations"][1], step=10),
    Parameter("restarts", SearchSettings.restarts, "Restarts", "random starting points per slice; the restart "
              "with the lowest final loss wins", low=LIMITS["restarts"][0], high=LIMITS["restarts"][1]),
    Parameter("window", SearchSettings.window, "Window", "context-weight window in model pixels (odd): known pixels "
              "near the hole count more", low=WINDOW_MIN, high=WINDOW_MAX, odd=True, step=2),
    Parameter("lr", SearchSettings.lr, "Learning rate", "Adam learning rate on the latent code", low=0.0,
              high=LR_MAX, above_low=True, app=False),
    Parameter("prior", SearchSettings.prior, "Prior loss", "add the prior loss to the context loss (off: the "
              "ablation with the context loss only)", app=False),
    Parameter("weighting", SearchSettings.weighting, "Context weights", "weight known pixels by their nearness to "
              "the hole (off: the ablation with a binary mask)", app=False),
    Parameter("encoder_start", SearchSettings.encoder_start, "Encoder start", "start one restart of a VAE model at "
              "its encoder's estimate of z (off: every restart at random)", app=False),
)


def search(slab: Slab, run: Run) -> tuple[list[np.ndarray], np.ndarray]:
    """The best generated image of each of `slab.slices` as a native slice in scanner intensities, and its loss."""
    model = run.model
    _, a, b = plane_axes(slab.axis)
    grid = SliceGrid(size=model.arch.size, spacing=float(model.spacing),
                     native_spacing=(float(slab.spacing[a]), float(slab.spacing[b])), center=slab.centre)
    # The model only knows brain-extracted slices: with an explicit brain mask, tissue outside it
    # (skull, scalp) is hidden from the model; blending still uses the true surrounding voxels.
    seen = slab.voided * slab.brain if slab.brain is not None else slab.voided
    _check_context(slab, seen)
    targets = np.empty((len(slab.slices), grid.size, grid.size), dtype=np.float32)
    known = np.empty_like(targets, dtype=bool)
    for i, s in enumerate(slab.slices):
        known[i] = ~grid.hole_to_model(take_slice(slab.hole, slab.axis, s))
        targets[i] = np.where(known[i], slab.scale.to_model(grid.to_model(take_slice(seen, slab.axis, s))), 0.0)
    del seen
    shape = take_slice(slab.voided, slab.axis, slab.slices[0]).shape

    def to_native(images: np.ndarray) -> list[np.ndarray]:
        return [slab.scale.from_model(grid.to_native(img, shape)) for img in images]

    preview = slab.voided.copy() if run.previews else None

    def on_step(step: int, total: int, best: np.ndarray, images: Optional[np.ndarray]) -> None:
        if images is not None and preview is not None:  # only with preview_every
            for s, native in zip(slab.slices, to_native(images)):
                hole2d = take_slice(slab.hole, slab.axis, s)
                put_slice(preview, slab.axis, s, np.where(hole2d, native, take_slice(preview, slab.axis, s)))
        run.report(step, total, best, preview if images is not None else None)

    result = latent_search(model, targets, known, run.settings, device=run.device, on_step=on_step,
                           preview_every=run.settings.preview_every, cancel=run.cancel)
    run.searched()
    return to_native(result.images), result.losses


MIN_SLICE_CONTEXT = 20   # known tissue pixels a slice needs beside its hole for the context loss to bind


def _check_context(slab: Slab, seen: np.ndarray) -> None:
    """InpaintError when a slice's hole leaves (almost) no known tissue in its slice: the 2D search would match
    nothing there and paint an unconstrained slice."""
    blind = []
    for s in slab.slices:
        hole2d = take_slice(slab.hole, slab.axis, s)
        if hole2d.any() and np.count_nonzero((take_slice(seen, slab.axis, s) > 0) & ~hole2d) < MIN_SLICE_CONTEXT:
            blind.append(slab.first_slice + s)
    if blind:
        where = f"{slab.axis} slice {blind[0]}" if len(blind) == 1 else \
            f"{len(blind)} {slab.axis} slices ({blind[0]}-{blind[-1]})"
        raise InpaintError(f"The mask covers all the brain of {where} (fewer than {MIN_SLICE_CONTEXT} known tissue "
                           "voxels left in the slice), so a 2D search has nothing to match there; fill in 3D "
                           "(--method refine3d, the default), choose another --axis, or mask only the lesion.")


def guide_volume(slab: Slab, guides: list[np.ndarray]) -> np.ndarray:
    """The generated slices as one RAS volume (known voxels elsewhere)."""
    volume = slab.voided.copy()
    for s, native in zip(slab.slices, guides):
        put_slice(volume, slab.axis, s, native)
    return volume
