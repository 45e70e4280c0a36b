"""The whole lesion-filling pipeline on one volume: model space, latent search, blending, back.

Voxels outside the hole are never touched: the result starts as an exact float32 copy of
the input and only hole voxels are assigned. The hole's true values are never read: they
are zeroed before any resampling, and blending sees only the masked input.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .blend import poisson_blend
from .checkpoint import Model
from .job import CancelToken, Progress, ProgressCallback
from .modelspace import Reorientation, SliceGrid, plane_axes, put_slice, take_slice
from .normalize import estimate_brain, intensity_scale
from .search import SearchSettings, latent_search, select_device


@dataclass(frozen=True)
class FillSettings(SearchSettings):
    """Every parameter of a fill (the latent search's plus the pipeline's); recorded in the sidecar.

    The defaults are the interactive settings for a 2-core CPU (a VAE's encoder start plus one
    random restart, 50 Adam steps); `--iterations 200 --restarts 8` searches harder.
    """

    blend: bool = True
    axis: Optional[str] = None
    device: str = "auto"
    preview_every: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FillResult:
    """Filled volume (file voxel order) and what produced it."""

    filled: np.ndarray
    generated: np.ndarray
    hole: np.ndarray
    axis: str
    final_loss: dict[int, float]
    seconds: float
    device: str
    settings: FillSettings
    timings: dict[str, float] = field(default_factory=dict)


def fill_volume(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Model, settings: FillSettings,
                *, brain: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None) -> FillResult:
    """Fill the voxels of `hole` in `image` (float 3D, file voxel order) with `model`."""
    start = time.perf_counter()
    image = np.asarray(image, dtype=np.float32)
    hole = np.asarray(hole, dtype=bool)
    if image.ndim != 3 or hole.shape != image.shape:
        raise ValueError(f"image {image.shape} and hole {hole.shape} must be 3D arrays of one shape")
    if not hole.any():
        raise ValueError("the hole is empty: there is nothing to fill")
    axis = settings.axis or model.axis
    k = plane_axes(axis)[0]
    device = select_device(settings.device)

    reo = Reorientation.of(affine, image.shape)
    voided = reo.apply(np.where(hole, np.float32(0), image))
    hole_r = reo.apply(hole)
    brain_r = (reo.apply(np.asarray(brain, dtype=bool)) if brain is not None else estimate_brain(voided)) | hole_r
    scale = intensity_scale(voided, brain_r, hole_r)
    grid = SliceGrid.for_volume(brain_r, reo.ras_affine, axis, model.arch.size, model.spacing)
    slices = [int(s) for s in np.nonzero(hole_r.any(axis=tuple(a for a in range(3) if a != k)))[0]]

    # The model only knows brain-extracted slices: with an explicit brain mask, tissue outside it
    # (skull, scalp) is hidden from the model; blending still uses the true surrounding voxels.
    seen = voided * brain_r if brain is not None else voided
    targets = np.empty((len(slices), grid.size, grid.size), dtype=np.float32)
    known = np.empty_like(targets, dtype=bool)
    for i, s in enumerate(slices):
        known[i] = ~grid.hole_to_model(take_slice(hole_r, axis, s))
        targets[i] = np.where(known[i], scale.to_model(grid.to_model(take_slice(seen, axis, s))), 0.0)
    prepared = time.perf_counter()

    flat_hole = np.flatnonzero(hole)
    preview_r = voided.copy()

    def to_native(images: np.ndarray) -> list[np.ndarray]:
        shape = take_slice(voided, axis, slices[0]).shape
        return [scale.from_model(grid.to_native(img, shape)) for img in images]

    def report(step: int, total: int, best: np.ndarray, images: Optional[np.ndarray]) -> None:
        if progress is None:
            return
        preview = None
        if images is not None:
            for s, native in zip(slices, to_native(images)):
                hole2d = take_slice(hole_r, axis, s)
                current = take_slice(preview_r, axis, s)
                put_slice(preview_r, axis, s, np.where(hole2d, native, current))
            preview = reo.undo(preview_r).reshape(-1)[flat_hole]
        progress(Progress(stage="search", step=step, total=total, elapsed=time.perf_counter() - start,
                          slices=slices, best_loss=best, preview=preview))

    result = latent_search(model, targets, known, settings, device=device, on_step=report,
                           preview_every=settings.preview_every, cancel=cancel)
    searched = time.perf_counter()

    filled_r = voided.copy()
    generated_r = voided.copy()
    for s, native in zip(slices, to_native(result.images)):
        if cancel is not None:
            cancel.raise_if_cancelled()
        hole2d = take_slice(hole_r, axis, s)
        known2d = take_slice(voided, axis, s)
        put_slice(generated_r, axis, s, np.where(hole2d, native, known2d))
        fill2d = poisson_blend(known2d, hole2d, native) if settings.blend else np.where(hole2d, native, known2d)
        put_slice(filled_r, axis, s, fill2d)

    filled = image.copy()
    filled[hole] = reo.undo(filled_r)[hole]
    generated = image.copy()
    generated[hole] = reo.undo(generated_r)[hole]
    done = time.perf_counter()
    if progress is not None:
        progress(Progress(stage="done", step=1, total=1, elapsed=done - start, slices=slices, best_loss=result.losses))
    return FillResult(filled=filled, generated=generated, hole=hole, axis=axis,
                      final_loss={s: float(v) for s, v in zip(slices, result.losses)}, seconds=done - start,
                      device=str(device), settings=settings,
                      timings={"prepare": prepared - start, "search": searched - prepared, "blend": done - searched})
