"""The whole lesion-filling pipeline on one volume: model space, latent search, blending, back.

Voxels outside the hole are never touched: the result starts as an exact float32 copy of
the input and only hole voxels are assigned. The hole's true values are never read: they
are zeroed before any resampling, and blending sees only the masked input.

Methods (`FillSettings.method`, recorded in the sidecar):
- `slices2d`: the original study's pipeline, slice by slice: 2D latent search, 2D Poisson
  blending of each generated slice with the known pixels of that slice.
- `refine3d`: no latent search: the biharmonic 3D fill of each lesion corrected by a small 3D
  network trained on healthy brains (`core.refine3d`), which sees the lesion's whole 3D
  neighbourhood.
- `poisson3d`: the same latent search, one slice beyond the hole on each side included, then
  one 3D Poisson blend over the whole lesion (`core.blend3d`): the generated slices give the
  gradients, every known neighbour - in the slices above and below too - the boundary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
from nibabel.orientations import io_orientation

from .blend import poisson_blend
from .blend3d import poisson_blend_3d
from .checkpoint import Model
from .errors import InpaintError
from .job import CancelToken, Progress, ProgressCallback
from .modelspace import Reorientation, SliceGrid, plane_axes, put_slice, take_slice, voxel_sizes
from .normalize import IntensityScale, estimate_brain, intensity_scale
from .mirror import WEIGHT as MIRROR_WEIGHT, NoReflection, find_reflection, lateral_axis, mirrored_box
from .refine3d import MARGIN_MM, Refiner, default_refiner, refine_fill
from .search import SearchSettings, latent_search, select_device
from .uncertainty import FEATURES
from .inputs import (VolumeContext, check_filled, check_lesion_boxes, hole_box, hole_slab, prepare_fill_inputs,
                     volume_context)

METHODS: dict[str, str] = {
    "slices2d": "the original study's pipeline: 2D latent search and 2D Poisson blending slice by slice",
    "poisson3d": "2D latent search, then one 3D Poisson blend over the whole lesion (uses the slices above and below)",
    "refine3d": "3D biharmonic fill corrected by a 3D network trained on healthy brains, plus detail mirrored "
                "from the other hemisphere (no latent search)",
}
MODEL_FREE = ("refine3d",)  # methods that use no slice model (its latent-search settings do not apply)


@dataclass(frozen=True)
class FillSettings(SearchSettings):
    """Every parameter of a fill (the latent search's plus the pipeline's); recorded in the sidecar.

    The defaults are the interactive settings for a 2-core CPU (a VAE's encoder start plus one
    random restart, 50 Adam steps); `--iterations 200 --restarts 8` searches harder.
    """

    method: str = "refine3d"
    mirror: float = MIRROR_WEIGHT
    blend: bool = True
    axis: Optional[str] = None
    device: str = "auto"
    preview_every: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise InpaintError(f"The setting method (--method) must be one of {', '.join(METHODS)}, not "
                               f"{self.method!r}; choose one of those.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FillResult:
    """Filled volume (file voxel order) and what produced it."""

    filled: np.ndarray
    generated_hole: np.ndarray   # the generator's values of the hole voxels, in `filled[hole]` order
    hole: np.ndarray
    axis: str
    final_loss: dict[int, float]
    seconds: float
    device: str
    settings: FillSettings
    timings: dict[str, float] = field(default_factory=dict)
    nonfinite_voxels: int = 0  # NaN/infinite input voxels outside the hole, treated as background (0)
    slices: list[int] = field(default_factory=list)  # slices of the plane `axis` (closest-RAS numbers) with hole
    refiner: Optional[dict] = None  # name, path and SHA-256 of the 3D refiner (refine3d)
    brain_voxels: int = 0  # the brain the fill scaled intensities in (the brain mask, or the estimate) with the hole
    uncertainty: Optional[np.ndarray] = None  # predicted SD of the hole voxels, in `filled[hole]` order (refine3d
    #                                           with a refiner that has an uncertainty.json; `core.uncertainty`)

    @property
    def generated(self) -> np.ndarray:
        """The generator's output in the hole, the input elsewhere: a new whole volume on every call."""
        volume = self.filled.copy()
        volume[self.hole] = self.generated_hole
        return volume


@dataclass
class Prepared:
    """A volume in closest-RAS order, ready for the latent search of the slices in `slices`."""

    reo: Reorientation
    voided: np.ndarray        # RAS, hole zeroed
    hole: np.ndarray          # RAS
    axis: str
    scale: IntensityScale
    grid: SliceGrid
    slices: list[int]         # slices (index along the plane's axis) searched
    targets: np.ndarray       # model-space slices, unknown pixels zeroed
    known: np.ndarray         # model-space known pixels

    def to_native(self, images: np.ndarray) -> list[np.ndarray]:
        """Generated model-space images back to native slices in scanner intensities."""
        shape = take_slice(self.voided, self.axis, self.slices[0]).shape
        return [self.scale.from_model(self.grid.to_native(img, shape)) for img in images]


def prepare(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Model, axis: str,
            brain: Optional[np.ndarray], extra_slices: int = 0,
            context: Optional[VolumeContext] = None, search: bool = True) -> Prepared:
    """Reorient, void the hole, scale, and cut the model-space slices touching the hole (+ `extra_slices` each side).

    `context` (intensity scale, grid centre) comes from the whole volume when `image` is a slab of it.
    Without `search` (a method with no latent search) the model-space slices are left empty.
    """
    k = plane_axes(axis)[0]
    reo = Reorientation.of(affine, image.shape)
    voided = reo.apply(np.where(hole, np.float32(0), image))
    hole_r = reo.apply(hole)
    brain_r = reo.apply(np.asarray(brain, dtype=bool)) | hole_r if brain is not None else None
    if context is None:
        region = brain_r if brain_r is not None else estimate_brain(voided) | hole_r
        scale = intensity_scale(voided, region, hole_r)
        grid = SliceGrid.for_volume(region, reo.ras_affine, axis, model.arch.size, model.spacing)
    else:
        scale, centre = context.scale, context.centre
        _, a, b = plane_axes(axis)
        vox = voxel_sizes(reo.ras_affine)
        grid = SliceGrid(size=model.arch.size, spacing=float(model.spacing),
                         native_spacing=(float(vox[a]), float(vox[b])), center=centre)
    touched = np.nonzero(hole_r.any(axis=tuple(a for a in range(3) if a != k)))[0]
    lo, hi = max(0, int(touched.min()) - extra_slices), min(hole_r.shape[k] - 1, int(touched.max()) + extra_slices)
    slices = list(range(lo, hi + 1))
    # The model only knows brain-extracted slices: with an explicit brain mask, tissue outside it
    # (skull, scalp) is hidden from the model; blending still uses the true surrounding voxels.
    seen = voided * brain_r if brain_r is not None else voided
    targets = np.empty((len(slices) if search else 0, grid.size, grid.size), dtype=np.float32)
    known = np.empty_like(targets, dtype=bool)
    for i, s in enumerate(slices[:len(targets)]):
        known[i] = ~grid.hole_to_model(take_slice(hole_r, axis, s))
        targets[i] = np.where(known[i], scale.to_model(grid.to_model(take_slice(seen, axis, s))), 0.0)
    return Prepared(reo=reo, voided=voided, hole=hole_r, axis=axis, scale=scale, grid=grid, slices=slices,
                    targets=targets, known=known)


def _slab_offset(affine: np.ndarray, shape: tuple[int, ...], box: tuple[slice, ...], axis: str) -> int:
    """Closest-RAS slice number, in the whole volume, of the slab's first closest-RAS slice."""
    k = plane_axes(axis)[0]
    ornt = io_orientation(affine)
    f = int(np.nonzero(ornt[:, 0] == k)[0][0])
    start, stop = box[f].indices(shape[f])[:2]
    return start if ornt[f, 1] > 0 else shape[f] - stop


def _translation(offset: list[int]) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = offset
    return shift


def blend_slices(prep: Prepared, guides: list[np.ndarray], blend: bool = True,
                 cancel: Optional[CancelToken] = None) -> np.ndarray:
    """`slices2d`: each generated slice Poisson-blended (2D) into its own slice's known pixels."""
    filled = prep.voided.copy()
    for s, native in zip(prep.slices, guides):
        if cancel is not None:
            cancel.raise_if_cancelled()
        hole2d = take_slice(prep.hole, prep.axis, s)
        if not hole2d.any():
            continue
        known2d = take_slice(prep.voided, prep.axis, s)
        fill2d = poisson_blend(known2d, hole2d, native) if blend else np.where(hole2d, native, known2d)
        put_slice(filled, prep.axis, s, fill2d)
    return filled


def guide_volume(prep: Prepared, guides: list[np.ndarray]) -> np.ndarray:
    """The generated slices as one RAS volume (known voxels elsewhere)."""
    volume = prep.voided.copy()
    for s, native in zip(prep.slices, guides):
        put_slice(volume, prep.axis, s, native)
    return volume


def blend_3d(prep: Prepared, guides: list[np.ndarray], spacing: np.ndarray) -> np.ndarray:
    """`poisson3d`: one 3D Poisson blend of the generated slices over the whole lesion."""
    return poisson_blend_3d(prep.voided, prep.hole, guide_volume(prep, guides), spacing)


def fill_volume(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Model, settings: FillSettings,
                *, brain: Optional[np.ndarray] = None, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelToken] = None, refiner: Optional[Refiner] = None) -> FillResult:
    """Fill the voxels of `hole` in `image` (float 3D, file voxel order) with `model`.

    `refine3d` uses `refiner` (default: the shipped 3D refiner) instead of the latent search.
    Memory: the fill works on the slab of slices it needs (refine3d: the box around the hole); the only
    whole-volume float array it makes is the result (written into the float32 conversion of `image` when
    that conversion already is a copy); the generator's output is kept for the hole voxels only.
    """
    start = time.perf_counter()
    source = image
    image, nonfinite = prepare_fill_inputs(image, affine, hole, model, settings, brain=brain)
    hole = np.asarray(hole, dtype=bool)
    axis = settings.axis or model.axis
    slab = _fill_slab(image, affine, hole, model, settings, axis, nonfinite, brain, progress, cancel, refiner, start)
    filled = image.copy() if np.may_share_memory(image, source) else image  # outside the hole: the input, NaN kept
    filled[slab.box][slab.hole] = slab.filled  # every hole voxel lies in the box, in the same (C) order
    done = time.perf_counter()
    if progress is not None:
        progress(Progress(stage="done", step=1, total=1, elapsed=done - start, slices=slab.slices,
                          best_loss=slab.losses))
    check_filled(filled, hole, model, settings.method, slab.refiner)
    return FillResult(filled=filled, generated_hole=slab.generated, hole=hole, axis=axis, final_loss=slab.final_loss,
                      seconds=done - start, device=slab.device, settings=settings,
                      timings={"prepare": slab.prepared - start, "search": slab.searched - slab.prepared,
                               "blend": done - slab.searched},
                      nonfinite_voxels=nonfinite, slices=slab.searched_slices, refiner=slab.refiner,
                      brain_voxels=slab.brain_voxels, uncertainty=slab.uncertainty)


@dataclass
class _SlabFill:
    """What `_fill_slab` computed: the hole's values in `image[box][hole]` order, and its record."""

    box: tuple[slice, slice, slice]
    hole: np.ndarray             # hole[box]
    filled: np.ndarray           # fill values of the hole voxels
    generated: np.ndarray        # generated values of the hole voxels (`filled` itself for refine3d)
    slices: list[int]            # slices of the whole volume (closest-RAS numbers) in the slab
    searched_slices: list[int]   # those with hole voxels
    final_loss: dict[int, float]
    losses: np.ndarray
    device: str
    refiner: Optional[dict]
    brain_voxels: int
    prepared: float
    searched: float
    uncertainty: Optional[np.ndarray] = None  # predicted SD of the hole voxels (refine3d)


def _fill_slab(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Model, settings: FillSettings,
               axis: str, nonfinite: int, brain: Optional[np.ndarray], progress: Optional[ProgressCallback],
               cancel: Optional[CancelToken], refiner: Optional[Refiner], start: float) -> _SlabFill:
    """The fill of `fill_volume` on the part of the volume it needs; every part-sized array is freed on return."""
    device = select_device(settings.device)
    in_3d = settings.method == "poisson3d"
    if settings.method == "refine3d":  # its work per lesion is bounded before any of it starts
        refiner = refiner or default_refiner(voxel_sizes(affine))   # the shipped grid nearest the voxels
        check_lesion_boxes(hole, voxel_sizes(affine), MARGIN_MM, refiner.config.spacing_mm)
    # the intensity scale and the model grid's centre come from the whole volume
    context = volume_context(image, affine, hole, axis, brain)
    if settings.method == "refine3d":  # each lesion's box plus MARGIN_MM (and, for the mirror, its reflection)
        box = hole_box(hole, margin=int(np.ceil(MARGIN_MM / float(voxel_sizes(affine).min()))))
    else:  # the model sees whole slices
        box = hole_slab(hole, affine, axis, margin=1 if in_3d else 0)
    slab_affine = np.array(affine, dtype=np.float64) @ _translation([b.start or 0 for b in box])
    part = image[box]
    if nonfinite:  # non-finite known voxels are background (0) for the fill
        part = np.where(np.isfinite(part), part, np.float32(0))
    prep = prepare(part, slab_affine, hole[box], model, axis, None if brain is None else brain[box],
                   extra_slices=1 if in_3d else 0, context=context,
                   search=settings.method not in MODEL_FREE)
    del part
    first = _slab_offset(affine, image.shape, box, axis)
    slices = [first + s for s in prep.slices]  # slice numbers of the whole volume (closest-RAS order)
    prepared = time.perf_counter()

    preview_r = prep.voided.copy() if progress is not None and settings.preview_every else None

    def report(step: int, total: int, best: np.ndarray, images: Optional[np.ndarray]) -> None:
        if progress is None:
            return
        preview = None
        if images is not None:  # only with preview_every, so preview_r exists
            for s, native in zip(prep.slices, prep.to_native(images)):
                hole2d = take_slice(prep.hole, axis, s)
                put_slice(preview_r, axis, s, np.where(hole2d, native, take_slice(preview_r, axis, s)))
            preview = prep.reo.undo(preview_r)[hole[box]]
        progress(Progress(stage="search", step=step, total=total, elapsed=time.perf_counter() - start,
                          slices=slices, best_loss=best, preview=preview))

    spacing = voxel_sizes(prep.reo.ras_affine)
    refiner_record = features_r = None
    if settings.method == "refine3d":
        if progress is not None:
            progress(Progress(stage="search", step=0, total=1, elapsed=time.perf_counter() - start,
                              slices=slices))
        losses = np.zeros(0)
        refiner_record = {"name": refiner.name, "path": str(refiner.path) if refiner.path else None,
                          "sha256": refiner.checksum}
        mirror_r = None
        if settings.mirror:
            try:
                reflection = find_reflection(image, hole, voxel_sizes(affine), lateral_axis(affine))
            except NoReflection as exc:
                refiner_record["mirror"] = f"not used: {exc}"
            else:
                mirror_r = prep.reo.apply(mirrored_box(image, hole, reflection, box))
                refiner_record["mirror"] = {"reflection": np.round(reflection.matrix, 5).tolist(),
                                            "correlation": round(reflection.correlation, 4)}
        features_r = (np.zeros((len(FEATURES),) + prep.hole.shape, dtype=np.float32)
                      if refiner.uncertainty is not None else None)
        filled_r = refine_fill(prep.voided, prep.hole, spacing, prep.scale, refiner, device, cancel,
                               mirror=mirror_r, mirror_weight=float(settings.mirror),
                               on_lesion=lambda done, total: report(done, total, losses, None), features=features_r)
        generated_r = filled_r
        searched = time.perf_counter()
    else:
        result = latent_search(model, prep.targets, prep.known, settings, device=device, on_step=report,
                               preview_every=settings.preview_every, cancel=cancel)
        searched = time.perf_counter()
        losses = result.losses
        guides = prep.to_native(result.images)
        if in_3d:
            filled_r = blend_3d(prep, guides, spacing)
        else:
            filled_r = blend_slices(prep, guides, settings.blend, cancel)
        generated_r = guide_volume(prep, guides)

    slab_hole = hole[box]
    filled = prep.reo.undo(filled_r)[slab_hole]
    generated = filled if generated_r is filled_r else prep.reo.undo(generated_r)[slab_hole]
    uncertainty = None if features_r is None else refiner.uncertainty.predict(
        np.stack([prep.reo.undo(f)[slab_hole] for f in features_r], axis=1))
    searched_slices = [s for s in prep.slices if take_slice(prep.hole, axis, s).any()]
    return _SlabFill(box=box, hole=slab_hole, filled=filled, generated=generated, slices=slices,
                     searched_slices=[first + s for s in searched_slices],
                     final_loss={first + s: float(v) for s, v in zip(prep.slices, losses) if s in searched_slices},
                     losses=losses, device=str(device), refiner=refiner_record,
                     brain_voxels=context.brain_voxels, prepared=prepared, searched=searched,
                     uncertainty=uncertainty)
