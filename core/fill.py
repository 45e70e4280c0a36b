"""The whole lesion-filling pipeline on one volume: the shared work around a fill method (`core.methods`).

Voxels outside the hole are never touched: the result starts as an exact copy of the input (float32, or
float64 for float64 and integer types wider than 16 bits, which float32 would round) and only hole voxels are
assigned. The hole's true values are zeroed in the part of the volume the method fills (`Slab.voided`); the
whole volume it may look beyond that part in (`Slab.volume`, read-only like the whole hole) still holds them,
and the methods leave them out (`core.mirror.mirrored_box`).

`fill_volume` checks the arguments, loads what the method needs (the default slice model, the
shipped 3D refiner nearest the voxels), takes the intensity scale and the model grid's centre from
the whole volume, cuts the method's box or slab in closest-RAS order (`core.methods.Slab`), reports
progress, lets the method fill it, and writes the hole's values back. The methods (`METHODS`,
`FillSettings.method`, recorded in the sidecar) are `refine3d` (default), `slices2d` (the original
study), `poisson3d`, `biharmonic3d` and any installed plug-in's (`core.methods.plugins`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Optional

import numpy as np
from nibabel.orientations import io_orientation
from scipy import ndimage

from .checkpoint import Model
from .errors import InpaintError, described
from .job import CancelToken, Cancelled, Progress, ProgressCallback
from .methods import METHODS, PLUGINS, FillMethod, MethodFill, Run, Slab, used_settings
from .mirror import WEIGHT as MIRROR_WEIGHT
from .modelspace import Reorientation, plane_axes, take_slice, voxel_sizes
from .normalize import IntensityScale
from .refine3d import Refiner, default_refiner
from .search import DEFAULT_AXIS, SearchSettings, select_device
from .inputs import (background_value, check_filled, count_nonfinite_known, outside_brain, prepare_fill_inputs,
                     volume_context)


WIDE_TYPES = tuple(np.dtype(t) for t in (np.float64, np.longdouble, np.int32, np.uint32, np.int64, np.uint64))


@dataclass(frozen=True)
class FillSettings(SearchSettings):
    """Every parameter of a fill (the latent search's plus the pipeline's); the sidecar records those the method
    reads (`used`).

    The defaults are the interactive settings for a 2-core CPU (a VAE's encoder start plus one
    random restart, 50 Adam steps); `--iterations 200 --restarts 8` searches harder. Each method reads
    the fields it declares (`core.methods.FillMethod.parameters`); a method's parameter that is no
    field here goes into `extra` as (name, value) pairs.
    """

    method: str = "refine3d"
    mirror: float = MIRROR_WEIGHT
    blend: bool = True
    axis: Optional[str] = None
    device: str = "auto"
    preview_every: int = 0
    extra: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise InpaintError(f"The setting method (--method) must be one of {', '.join(METHODS)}, not "
                               f"{self.method!r}; choose one of those.")
        declared = {p.name: p for p in METHODS[self.method].parameters}
        for name, value in self.extra:
            parameter = declared.get(name)
            if parameter is None or name in _FIELDS:
                raise InpaintError(f"The method {self.method} has no parameter {name!r} of its own; drop it.")
            problem = parameter.problem(value)
            if problem:
                raise InpaintError(f"The setting {name} ({parameter.flag}) {problem}, not {value!r}; choose a value "
                                   "in that range.")

    def value(self, name: str) -> Any:
        """The value of parameter `name`: its field, its `extra` entry, or the method's declared default."""
        if name in _FIELDS:
            return getattr(self, name)
        given = dict(self.extra)
        if name in given:
            return given[name]
        return next(p.default for p in METHODS[self.method].parameters if p.name == name)

    def to_dict(self) -> dict:
        """Every setting: the fields, then the `extra` entries."""
        record = asdict(self)
        del record["extra"]
        return {**record, **dict(self.extra)}

    def used(self) -> dict:
        """The settings the method reads (`FillMethod.reads`), as the sidecar records them and the cohort compares
        them: an unused one never changes a fill."""
        return used_settings(self.to_dict())


_FIELDS = frozenset(f.name for f in fields(FillSettings)) - {"extra"}


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
    outside_brain_voxels: int = 0  # voxels of the mask outside the brain, left as they were (not in `hole`)
    background: float = 0.0        # a constant background other than 0, subtracted for the fill and added back
    scale: Optional[IntensityScale] = None  # the fill's normalisation (`core.normalize`: lo, hi of the known brain
    #                                         less `background`); hi - lo is the scan's brain intensity range

    @property
    def generated(self) -> np.ndarray:
        """The generator's output in the hole, the input elsewhere: a new whole volume on every call."""
        volume = self.filled.copy()
        volume[self.hole] = self.generated_hole
        return volume


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


def fill_volume(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Optional[Model] = None,
                settings: Optional[FillSettings] = None, *, brain: Optional[np.ndarray] = None,
                progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                refiner: Optional[Refiner] = None) -> FillResult:
    """Fill the voxels of `hole` in `image` (3D, file voxel order) by `settings.method` (default: FillSettings()).

    `hole`: nonzero voxels are filled (bool or whole numbers; a probability map is refused: threshold it first).
    The result is float32, or float64 for a float64 image or integers wider than 16 bits, and equals `image`
    exactly outside the hole.

    A method that needs a slice model uses `model` (default: the default shipped model, loaded only then);
    one that needs a 3D refiner uses `refiner` (default: the shipped refiner nearest the voxel size).
    Memory: the fill works on the part of the volume the method needs (its box or slab); the only
    whole-volume float array it makes is the result (written into the float32 conversion of `image` when
    that conversion already is a copy; a float64 copy too for the wide types); the generated values are kept for
    the hole voxels only.
    """
    start = time.perf_counter()
    settings = FillSettings() if settings is None else settings
    _check_objects(model, refiner, progress, cancel)
    if cancel is not None:
        cancel.raise_if_cancelled()
    source = image = np.asarray(image)   # read once (a nibabel dataobj proxy reads its file)
    image, nonfinite = prepare_fill_inputs(image, affine, hole, model, settings, brain=brain)
    background = background_value(image)
    outside = outside_brain(image, hole, brain, background)
    hole = np.array(hole, dtype=bool)   # the result's own copy: a caller may reuse its mask array
    if outside is not None:
        requested, hole = hole, hole & ~outside
        nonfinite = count_nonfinite_known(image, hole)   # a NaN on the mask's background part is known now
        if not hole.any():
            raise InpaintError(f"All {int(outside.sum())} voxels to fill lie outside the brain ("
                               f"{'outside the brain mask' if brain is not None else 'on the background'}), so "
                               "there is nothing to fill; check that the mask belongs to this image.")
        progress = _previews_over(requested, hole, image, progress)
    work = image if background == 0.0 else image - np.float32(background)   # background 0 for the method
    method = METHODS[settings.method]
    if method.needs_model and model is None:
        from .registry import resolve_model

        model = resolve_model()
    if method.needs_refiner and refiner is None:
        refiner = default_refiner(voxel_sizes(affine))   # the shipped grid nearest the voxels
    axis = settings.axis or getattr(model, "axis", None) or DEFAULT_AXIS
    method.check(hole, voxel_sizes(affine), refiner)   # its work is bounded before any of it starts
    slab = _fill_slab(method, work, affine, hole, model, settings, axis, nonfinite, brain, progress, cancel,
                      refiner, start, np.float32(background))
    del work
    filled = image.copy() if np.may_share_memory(image, source) else image  # outside the hole: the input, NaN kept
    filled[slab.box][slab.hole] = slab.filled  # every hole voxel lies in the box, in the same (C) order
    if source.dtype in WIDE_TYPES:   # float32 rounds such values: the result holds the input exactly
        exact = np.array(source, dtype=np.float64)
        exact[hole] = filled[hole]
        filled = exact
    if cancel is not None:   # cancelled after the method's last check: no result
        cancel.raise_if_cancelled()
    done = time.perf_counter()
    if progress is not None:
        progress(Progress(stage="done", step=1, total=1, elapsed=done - start, slices=slab.slices,
                          best_loss=slab.losses))
    check_filled(filled, hole, settings.method, model if method.needs_model else None, slab.refiner)
    return FillResult(filled=filled, generated_hole=slab.generated, hole=hole, axis=axis, final_loss=slab.final_loss,
                      seconds=done - start, device=slab.device, settings=settings,
                      timings={"prepare": slab.prepared - start, "search": slab.searched - slab.prepared,
                               "blend": done - slab.searched},
                      nonfinite_voxels=nonfinite, slices=slab.searched_slices, refiner=slab.refiner,
                      brain_voxels=slab.brain_voxels, uncertainty=slab.uncertainty,
                      outside_brain_voxels=0 if outside is None else int(outside.sum()), background=background,
                      scale=slab.scale)


def _check_objects(model: Any, refiner: Any, progress: Any, cancel: Any) -> None:
    """One sentence for an argument of the wrong kind (e.g. a name where a loaded model is needed)."""
    for value, kind, name, hint in ((model, Model, "model", "core.registry.resolve_model(NAME_OR_PATH) loads one"),
                                    (refiner, Refiner, "refiner", "core.refine3d.load_refiner(PATH) loads one"),
                                    (cancel, CancelToken, "cancel", "pass a core.job.CancelToken")):
        if value is not None and not isinstance(value, kind):
            raise InpaintError(f"{name} must be a {kind.__name__} or None, not {type(value).__name__}; {hint}.")
    if progress is not None and not callable(progress):
        raise InpaintError(f"progress must be a function of one core.job.Progress or None, not "
                           f"{type(progress).__name__}.")


def _previews_over(requested: np.ndarray, hole: np.ndarray, image: np.ndarray,
                   progress: Optional[ProgressCallback]) -> Optional[ProgressCallback]:
    """`progress` given previews over every voxel of `requested` (the mask as asked for, in its
    flatnonzero order), the voxels left out of `hole` (outside the brain) at their unchanged values."""
    if progress is None:
        return None
    filled = hole[requested]
    unchanged = image[requested]

    def report(update: Progress) -> None:
        if update.preview is not None:
            preview = unchanged.copy()
            preview[filled] = update.preview
            update = replace(update, preview=preview)
        progress(update)

    return report


@dataclass
class _SlabFill:
    """What `_fill_slab` computed: the hole's values in `image[box][hole]` order, and its record."""

    box: tuple[slice, slice, slice]
    hole: np.ndarray             # hole[box]
    filled: np.ndarray           # fill values of the hole voxels
    generated: np.ndarray        # generated values of the hole voxels (`filled` itself when the method blends none)
    slices: list[int]            # slices of the whole volume (closest-RAS numbers) in the slab
    searched_slices: list[int]   # those with hole voxels
    final_loss: dict[int, float]
    losses: np.ndarray
    device: str
    refiner: Optional[dict]
    brain_voxels: int
    scale: IntensityScale
    prepared: float
    searched: float
    uncertainty: Optional[np.ndarray] = None  # predicted SD of the hole voxels (refine3d)


def _run_method(method: FillMethod, slab: Slab, run: Run) -> MethodFill:
    """`method.fill`; a plug-in's failure or a result of the wrong shape is one sentence naming it (a built-in
    method's bug keeps its traceback, for a report)."""
    origin = PLUGINS.sources.get(method.name)
    try:
        out = method.fill(slab, run)
    except (InpaintError, Cancelled):
        raise
    except Exception as exc:
        if origin is None:
            raise
        raise InpaintError(f"The fill method {method.name} (plug-in from {origin}) failed ({described(exc)}); "
                           "nothing was written: choose another method or report it to its authors.") from None
    shape = getattr(getattr(out, "filled", None), "shape", None)
    if shape != slab.voided.shape:
        raise InpaintError(f"The fill method {method.name}{f' (plug-in from {origin})' if origin else ''} returned "
                           f"a fill of shape {shape} for a part of shape {slab.voided.shape}; nothing was written: "
                           "choose another method.")
    return out


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view a method cannot write through (a write raises): the caller's image stays as it was."""
    view = array.view()
    view.flags.writeable = False
    return view


def _fill_slab(method: FillMethod, image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Optional[Model],
               settings: FillSettings, axis: str, nonfinite: int, brain: Optional[np.ndarray],
               progress: Optional[ProgressCallback], cancel: Optional[CancelToken], refiner: Optional[Refiner],
               start: float, background: np.float32) -> _SlabFill:
    """`method`'s fill on the part of the volume it needs (`image` less `background`, which every value it returns
    has back); every part-sized array is freed on return."""
    device = select_device(settings.device)
    # the intensity scale and the model grid's centre come from the whole volume
    context = volume_context(image, affine, hole, axis, brain)
    box = method.box(hole, affine, axis)
    slab_affine = np.array(affine, dtype=np.float64) @ _translation([b.start or 0 for b in box])
    part = image[box]
    if nonfinite:  # non-finite known voxels are background (0) for the fill
        part = np.where(np.isfinite(part), part, np.float32(0))
    slab_hole = hole[box]
    reo = Reorientation.of(slab_affine, part.shape)
    voided = reo.apply(np.where(slab_hole, np.float32(0), part))
    del part
    hole_r = reo.apply(slab_hole)
    brain_r = None if brain is None else reo.apply(np.asarray(brain[box], dtype=bool)) | hole_r
    k = plane_axes(axis)[0]
    touched = hole_r.any(axis=tuple(a for a in range(3) if a != k))
    near = ndimage.binary_dilation(touched, iterations=method.extra_slices) if method.extra_slices else touched
    part_slices = [int(s) for s in np.nonzero(near)[0]]   # not the slices between two lesions
    first = _slab_offset(affine, image.shape, box, axis)
    slab = Slab(reo=reo, voided=voided, hole=hole_r, brain=brain_r, axis=axis, slices=part_slices,
                scale=context.scale, centre=context.centre, spacing=voxel_sizes(reo.ras_affine), volume=_read_only(image),
                volume_hole=_read_only(hole), volume_affine=np.asarray(affine, dtype=np.float64), box=box, first_slice=first)
    slices = [first + s for s in part_slices]  # slice numbers of the whole volume (closest-RAS order)
    prepared = time.perf_counter()

    def report(step: int, total: int, best_loss: Optional[np.ndarray] = None,
               preview: Optional[np.ndarray] = None) -> None:
        if progress is not None:
            progress(Progress(stage="search", step=step, total=total, elapsed=time.perf_counter() - start,
                              slices=slices, best_loss=best_loss,
                              preview=None if preview is None else reo.undo(preview)[slab_hole] + background))

    run = Run(settings=settings, device=device, model=model, refiner=refiner, cancel=cancel,
              previews=progress is not None and bool(settings.preview_every), report=report)
    out = _run_method(method, slab, run)
    searched = run.searched_at or time.perf_counter()
    filled = np.clip(reo.undo(out.filled)[slab_hole], *context.known_range) + background  # intensities the brain has
    generated = filled if out.generated is None else reo.undo(out.generated)[slab_hole] + background
    uncertainty = None if out.features is None else out.uncertainty.predict(
        np.stack([reo.undo(f)[slab_hole] for f in out.features], axis=1))
    searched_slices = [s for s in part_slices if take_slice(hole_r, axis, s).any()]
    return _SlabFill(box=box, hole=slab_hole, filled=filled, generated=generated, slices=slices,
                     searched_slices=[first + s for s in searched_slices],
                     final_loss={first + s: float(v) for s, v in zip(part_slices, out.losses) if s in searched_slices},
                     losses=out.losses, device=str(device), refiner=out.record,
                     brain_voxels=context.brain_voxels, scale=context.scale, prepared=prepared, searched=searched,
                     uncertainty=uncertainty)
