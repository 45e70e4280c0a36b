"""One fill from files to files: check every input and target, fill, write the volume and its sidecar together.

This is what `inpaint fill` runs, and what `inpaint bids` runs for every scan of a cohort, so a
scan filled either way with the same settings and seed gives the same volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from .checkpoint import Model
from .errors import InpaintError
from .fill import FillResult, FillSettings, fill_volume
from .inputs import count_lesions
from .job import CancelToken, ProgressCallback
from .methods import METHODS
from .normalize import MAX_BRAIN_ML
from .refine3d import Refiner
from .uncertainty import MAP_DESCRIPTION

PathLike = Union[str, os.PathLike]

Describe = Callable[[FillResult], dict[str, Any]]


@dataclass(frozen=True)
class FileFill:
    """What one fill wrote and what it filled (enough for a summary line or a table row)."""

    output: Path
    sidecar: Path
    hole_voxels: int
    hole_ml: float
    lesions: int     # 26-connected parts of the filled region
    slices: int
    axis: str
    seconds: float
    device: str
    nonfinite_voxels: int
    outside_brain_voxels: int  # voxels of the mask outside the brain, left unchanged
    metrics: Optional[dict[str, Optional[float]]]
    record: dict[str, Any]
    brain_ml: float  # the brain mask's volume, or the estimate's (with the hole)
    skull_on: bool   # no brain mask, and more tissue than a brain holds: the skull was not removed
    uncertainty: Optional[Path] = None         # the predicted-error map written, if asked for
    uncertainty_mean: Optional[float] = None   # its mean over the filled voxels (image intensity units, one SD)
    uncertainty_share: Optional[float] = None  # that mean as a share of the fill's intensity range (`FillResult.scale`)


def voxel_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in millilitres."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0


def fill_file(image_path: PathLike, mask_path: PathLike, output_path: PathLike, settings: Optional[FillSettings] = None,
              *, model: Union[Model, PathLike, None] = None, brainmask: Optional[PathLike] = None, dilate: int = 0,
              threshold: Optional[float] = None,
              reference: Optional[PathLike] = None, keep_dtype: bool = False, force: bool = False,
              refiner: Optional[Refiner] = None, progress: Optional[ProgressCallback] = None,
              describe: Optional[Describe] = None, uncertainty: Optional[PathLike] = None,
              uncertainty_sidecar: Optional[dict[str, Any]] = None,
              cancel: Optional[CancelToken] = None) -> FileFill:
    """Fill `mask_path`'s voxels of `image_path` and write `output_path` plus its sidecar (both or neither).

    `model` is a loaded slice model, or a shipped name / checkpoint path (None: the default), loaded after
    the inputs are checked, for a method that needs one (`FillMethod.needs_model`; others ignore it).
    `describe(result)` adds entries to the sidecar. `uncertainty`: where
    to write the fill's predicted error (`core.uncertainty`: one SD per voxel in the image's units, float32,
    zero outside the hole), checked with the other targets and written in full before the volume and its sidecar
    are placed, and placed right after them (`uncertainty_sidecar`: a JSON record written with it, its
    `SkullStripped` added); the sidecar's `uncertainty` gives its mean (`mean_sd`) and that mean as a share of the
    intensity range the fill normalised with (`mean_sd_share`: hi - lo of `FillResult.scale`, comparable across scans).
    Paths may be `str` or `os.PathLike`; `settings` None means FillSettings(). `cancel` (a `CancelToken`, e.g.
    cancelled from another thread) stops the fill with `Cancelled` before anything is written. Inputs are never
    written; every user error is an InpaintError of one sentence.
    """
    from .registry import resolve_model
    from .sidecar import build_sidecar
    from .targets import check_outputs, sidecar_path
    from .volume import check_grid, dilate_mask, load_mask, load_volume, save_volume, stage_volume

    image_path, mask_path, output_path = Path(image_path), Path(mask_path), Path(output_path)
    brainmask, reference, uncertainty = (None if p is None else Path(p) for p in (brainmask, reference, uncertainty))
    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    settings = FillSettings() if settings is None else settings
    if isinstance(dilate, (bool, np.bool_)) or not isinstance(dilate, (int, np.integer)) or dilate < 0:
        raise InpaintError(f"dilate must be a whole number of voxels, 0 or more, not {dilate!r}.")
    if not isinstance(keep_dtype, (bool, np.bool_)):
        raise InpaintError(f"keep_dtype must be True or False, not {keep_dtype!r}.")
    inputs = [image_path, mask_path, brainmask, reference]
    for path in inputs:
        if path is not None and not path.exists():
            raise InpaintError(f"{path} does not exist; check the path.")
    if isinstance(model, str) and Path(model).is_dir():  # a checkpoint folder: protected from the first check
        inputs.append(Path(model))
    check_outputs(output_path, inputs=inputs, force=force)  # before reading anything large
    if uncertainty is not None:
        _check_uncertainty_target(uncertainty, output_path, inputs, settings, refiner, force)
    image = load_volume(image_path)
    check_outputs(output_path, inputs=inputs, force=force, like=image, keep_dtype=keep_dtype)
    hole = load_mask(mask_path, image, threshold=threshold)
    if dilate:
        hole = dilate_mask(hole, dilate)
    brain = load_mask(brainmask, image, kind="brain") if brainmask else None
    if reference:
        check_grid(reference, image, "reference")   # from its header: a wrong grid is refused before the fill
    if not METHODS[settings.method].needs_model:
        model = None
    elif not isinstance(model, Model):
        model = resolve_model(model)
    inputs += _network_folders(model, refiner, settings)  # their files are read too: never written
    check_outputs(output_path, inputs=inputs, force=force, like=image, keep_dtype=keep_dtype)
    nonfinite = _check_image_content(image.data, hole, brain, image_path, mask_path, brainmask, dilate)
    result = fill_volume(image.data, image.affine, hole, model, settings, brain=brain, progress=progress,
                         refiner=refiner, cancel=cancel)
    metrics = _metrics(result, reference, image) if reference else None
    brain_ml = result.brain_voxels * voxel_ml(image.affine)
    extra = {"brain_ml": round(brain_ml, 1), "SkullStripped": skull_stripped(image.data, image.affine),
             **(describe(result) if describe else {})}
    sd_mean = sd_share = None
    if uncertainty is not None:
        extra["uncertainty"] = uncertainty_record(result, uncertainty)
        sd_mean, sd_share = extra["uncertainty"]["mean_sd"], extra["uncertainty"]["mean_sd_share"]
    record = build_sidecar(result, model, image_path=image_path, mask_path=mask_path, output_path=output_path,
                           dilate=dilate, threshold=threshold, brainmask_path=brainmask, keep_dtype=keep_dtype,
                           metrics=metrics, reference_path=reference, extra=extra)
    if cancel is not None:   # the last moment before anything is written
        cancel.raise_if_cancelled()
    # the map is written in full before anything is placed: a disk that cannot hold it leaves no volume whose
    # sidecar names a map that is not there (nor, with --force, an old map beside a new volume)
    side = None if uncertainty_sidecar is None else {**uncertainty_sidecar, "SkullStripped": extra["SkullStripped"]}
    staged = None if uncertainty is None else stage_volume(uncertainty, uncertainty_map(result), image, force=force,
                                                           sidecar=side, inputs=inputs, derived=MAP_DESCRIPTION)
    out = save_volume(output_path, result.filled, image, keep_dtype=keep_dtype, force=force, changed=result.hole,
                      sidecar=record, inputs=inputs, companion=staged)
    voxels = int(result.hole.sum())
    return FileFill(output=out, sidecar=sidecar_path(out), hole_voxels=voxels,
                    hole_ml=voxels * voxel_ml(image.affine), lesions=count_lesions(result.hole),
                    slices=len(result.slices), axis=result.axis,
                    seconds=result.seconds, device=result.device, nonfinite_voxels=nonfinite,
                    outside_brain_voxels=result.outside_brain_voxels, metrics=metrics,
                    record=record, brain_ml=brain_ml, skull_on=brainmask is None and brain_ml > MAX_BRAIN_ML,
                    uncertainty=uncertainty, uncertainty_mean=sd_mean, uncertainty_share=sd_share)


def uncertainty_map(result: FillResult) -> np.ndarray:
    """The fill's predicted error on the image's grid: one SD per filled voxel (float32), zero elsewhere."""
    sd = np.zeros(result.filled.shape, dtype=np.float32)
    sd[result.hole] = result.uncertainty
    return sd


def uncertainty_record(result: FillResult, path: PathLike) -> dict[str, Any]:
    """The sidecar's `uncertainty`: where the map is, its mean SD over the filled voxels (the image's units) and that
    mean as a share of the intensity range the fill normalised by."""
    mean = float(np.mean(result.uncertainty, dtype=np.float64))
    share = mean / (result.scale.hi - result.scale.lo)
    return {"path": str(path), "mean_sd": float(f"{mean:.6g}"), "mean_sd_share": float(f"{share:.6g}")}


def skull_stripped(data: np.ndarray, affine: np.ndarray) -> bool:
    """BIDS `SkullStripped`: the image holds no more tissue than a brain (MAX_BRAIN_ML); with skull and scalp it
    holds two to four times as much. Tissue is what `core.normalize.estimate_brain` takes for it, above the
    background (`core.inputs.background_value`): voxels brighter than BRAIN_FRACTION of the robust maximum, so a
    faint noise around a stripped brain is not tissue."""
    from .inputs import background_value
    from .normalize import BRAIN_FRACTION, ROBUST_MAX_PERCENTILE
    from .volume import chunks

    background = background_value(data)
    sample = np.asarray(data[::2, ::2, ::2], dtype=np.float64) - background   # the percentile from every 8th voxel
    positive = sample[np.isfinite(sample) & (sample > 0)]
    if not positive.size:
        return True
    threshold = background + BRAIN_FRACTION * float(np.percentile(positive, ROBUST_MAX_PERCENTILE))
    tissue = 0
    for part in chunks(data.shape):
        values = data[part]
        tissue += int(np.count_nonzero(np.isfinite(values) & (values > threshold)))
    return tissue * voxel_ml(affine) <= MAX_BRAIN_ML


def _check_uncertainty_target(path: Path, output_path: Path, inputs: list, settings: FillSettings,
                              refiner: Optional[Refiner], force: bool) -> None:
    """Refuse an uncertainty map the fill cannot give, or a target that may not be written, before any work."""
    from .refine3d import shipped_refiners
    from .targets import check_outputs, output_files, same_path, sidecar_path

    if settings.method != "refine3d":
        raise InpaintError(f"Only the refine3d method predicts its error, not {settings.method}; drop --uncertainty "
                           "or use --method refine3d.")
    for refiner in [refiner] if refiner is not None else shipped_refiners():   # the fill picks one by voxel size
        if refiner.uncertainty is None:
            raise InpaintError(f"The 3D refiner {refiner.path} has no uncertainty.json fitted for its weights; "
                               "run scripts/calibrate_uncertainty.py for it, or drop --uncertainty.")
    if any(same_path(Path(path), target) for target in output_files(output_path) + [sidecar_path(output_path)]):
        raise InpaintError(f"The uncertainty map {path} would overwrite the filled output or its sidecar; choose "
                           "another name.")
    check_outputs(path, inputs=inputs, force=force, sidecar=False)


def _network_folders(model: Optional[Model], refiner: Optional[Refiner], settings: FillSettings) -> list[Path]:
    """The folders of the networks a fill reads: the slice model's and (a method with a refiner) the 3D refiner's."""
    from .resources import REFINERS

    folders = [model.path] if model is not None and model.path is not None else []
    if METHODS[settings.method].needs_refiner:
        folders += [refiner.path] if refiner is not None else list(REFINERS)
    return [Path(folder) for folder in folders if folder is not None]


def _check_image_content(data: np.ndarray, hole: np.ndarray, brain: Optional[np.ndarray], image_path: Path,
                         mask_path: Path, brainmask: Optional[Path], dilate: int) -> int:
    """Count the image's non-finite known voxels, refuse absurd values and make sure known brain tissue is left,
    naming the files.

    Works part by part (no whole-volume copy); non-finite voxels count as background.
    """
    from .inputs import background_value, check_intensities, check_known_brain, count_nonfinite_known

    nonfinite = count_nonfinite_known(data, hole)
    check_intensities(data, hole, f"the image {image_path}")
    dilated = f" (dilated by {dilate} voxels)" if dilate else ""
    check_known_brain(data, hole, brain, image_name=f"the image {image_path}",
                      mask_name=f"the mask {mask_path}{dilated}", brain_name=f"the brain mask {brainmask}",
                      background=background_value(data))
    return nonfinite


def _metrics(result: FillResult, reference_path: Path, image) -> dict[str, Optional[float]]:
    """In-hole and slice metrics of the fill against the reference, read only now (after the fill)."""
    from .metrics import hole_metrics, slice_metrics, voided_range
    from .modelspace import Reorientation
    from .volume import load_volume, on_image_grid

    value_range = voided_range(image.data, result.hole)   # its transient copy is gone before the reference comes
    reference = on_image_grid(load_volume(reference_path), image, "reference")
    values = dict(hole_metrics(result.filled, reference, result.hole, value_range=value_range))
    reo = Reorientation.of(image.affine, image.data.shape)
    values.update(slice_metrics(reo.view(result.filled), reo.view(reference), reo.view(result.hole), None,
                                result.axis, value_range=value_range))  # views: no whole-volume copies
    return {k: float(v) if np.isfinite(v) else None for k, v in values.items()}
