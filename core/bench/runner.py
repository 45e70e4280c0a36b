"""Benchmark runner: loads the evaluation brain, fills every case with every method, scores it.

Everything happens in the closest-RAS voxel order of the bench image (so 'axial' is the
third array axis whatever the file's order). Methods:
- `<model>/<pipeline>` for every model and pipeline: `slices2d` (the original study's
  pipeline at the app's search settings), `poisson3d` (the same search, blended in 3D),
  ablations `no-prior`, `no-weighting`, `no-blend`, and `reference` (the original
  authors' search budget: 1000 iterations, 64 restarts, random start) for the speed
  comparison, run only on the speed cases;
- `refine3d`: the learned 3D refiner with the mirrored detail, which needs no slice model, and
  `refine3d-nomirror`, the refiner alone (`--mirror 0`);
- baselines `border-mean`, `biharmonic` (axial slices), `harmonic-3d`, `biharmonic-3d`, `biharmonic-3d-mm`
  (weighted by voxel size), `fsl-style`.
Each fill is timed (after one untimed warm-up fill per model); seconds per slice divides by
the number of slices the method filled (the model's plane for models, axial slices touching
the hole for baselines).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..baselines import (biharmonic_3d_fill, biharmonic_3d_mm_fill, biharmonic_fill, border_mean_fill, fsl_style_fill,
                         harmonic_3d_fill)
from ..checkpoint import Model
from ..errors import InpaintError
from ..fill import FillSettings, fill_volume
from ..job import Progress
from ..methods import METHODS
from ..metrics import hole_metrics, slice_metrics
from ..modelspace import Reorientation, voxel_sizes
from ..normalize import MAX_BRAIN_ML
from ..paths import SHARED_DATA
from ..refine3d import Refiner
from ..resources import MNI152_T1
from ..roughness import stripe_metrics
from ..uncertainty import one_sigma_share
from ..jsonfiles import sha256_file
from ..volume import load_mask, load_volume
from .masks import AXIAL, Case

PIPELINES: dict[str, dict] = {
    "slices2d": {"method": "slices2d"},
    "poisson3d": {"method": "poisson3d"},
    "refine3d": {"method": "refine3d"},
    "refine3d-nomirror": {"method": "refine3d", "mirror": 0.0},   # ablation: the refiner alone
    "no-prior": {"method": "slices2d", "prior": False},
    "no-weighting": {"method": "slices2d", "weighting": False},
    "no-blend": {"method": "slices2d", "blend": False},
    "reference": {"method": "slices2d", "iterations": 1000, "restarts": 64, "encoder_start": False},
}
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {   # (image, hole, voxel mm)
    "border-mean": lambda image, hole, _mm: border_mean_fill(image, hole),
    "biharmonic": lambda image, hole, _mm: biharmonic_fill(image, hole, axis="axial"),
    "harmonic-3d": lambda image, hole, _mm: harmonic_3d_fill(image, hole),
    "biharmonic-3d": lambda image, hole, _mm: biharmonic_3d_fill(image, hole),
    "biharmonic-3d-mm": biharmonic_3d_mm_fill,
    "fsl-style": lambda image, hole, _mm: fsl_style_fill(image, hole),
}
SLICE_AXIS = "axial"
TRAINING_BRAINS = (MNI152_T1, SHARED_DATA / "robex_subject" / "t1_1p5mm.nii.gz")

ProgressFn = Callable[[float, str], None]


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (nested in dicts, lists and tuples) as None: JSON has no infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


@dataclass(frozen=True)
class Method:
    """A way of filling a hole: a model with a pipeline, or a classical baseline."""

    name: str
    model: Optional[str] = None
    pipeline: Optional[str] = None

    @property
    def is_baseline(self) -> bool:
        return self.model is None


def model_free(pipeline: str) -> bool:
    """Whether the pipeline's fill method needs no slice model."""
    return not METHODS[PIPELINES.get(pipeline, {"method": pipeline})["method"]].needs_model


def model_methods(model: str, pipelines) -> list[Method]:
    return [Method(f"{model}/{p}", model=model, pipeline=p) for p in pipelines if not model_free(p)]


def model_free_methods(model: str, pipelines) -> list[Method]:
    """Pipelines that need no slice model (`model` is only passed along to `fill_volume`)."""
    return [Method(p, model=model, pipeline=p) for p in pipelines if model_free(p)]


def default_method_name(model: str) -> str:
    """Bench name of the app's default fill (`FillSettings()`) with the default slice model `model`."""
    method = FillSettings().method
    return method if model_free(method) else f"{model}/{method}"


def baseline_methods(names=tuple(BASELINES)) -> list[Method]:
    return [Method(n) for n in names]


@dataclass
class BenchData:
    """The skull-stripped evaluation brain in RAS voxel order."""

    image: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    image_path: Path
    brainmask_path: Optional[Path]

    @property
    def voxel_mm(self) -> np.ndarray:
        return voxel_sizes(self.affine)


def load_bench_data(image_path: Path, brainmask_path: Optional[Path]) -> BenchData:
    """Read the evaluation image, skull-strip it with the mask (default: its nonzero voxels), reorient to RAS."""
    image_path = Path(image_path)
    for training in TRAINING_BRAINS:
        if training.is_file() and image_path.is_file() and sha256_file(image_path) == sha256_file(training):
            raise InpaintError(f"{image_path} is one of the training brains; benchmark on a brain the models "
                               f"were not trained on (the default is the held-out subject).")
    return read_brain(image_path, brainmask_path)


def read_brain(image_path: Path, brainmask_path: Optional[Path]) -> BenchData:
    """`load_bench_data` without the training-brain check (validation scripts use training brains)."""
    volume = load_volume(image_path)
    brain = load_mask(brainmask_path, volume, kind="brain") if brainmask_path else volume.data != 0
    if brain.sum() < 1000:
        raise InpaintError(f"{brainmask_path or image_path} gives only {int(brain.sum())} brain voxels; pass a "
                           f"brain-extracted image or its --brainmask.")
    litres = float(brain.sum()) * float(np.prod(voxel_sizes(volume.affine))) / 1e6
    if brainmask_path is None and litres * 1000 > MAX_BRAIN_ML:   # the holes would fall on skull and scalp
        raise InpaintError(f"{image_path} holds {litres:.1f} l of nonzero voxels, more than a brain: it looks "
                           "skull-on, and the bench cuts its holes in the brain; pass its --brainmask or a "
                           "skull-stripped image.")
    reo = Reorientation.of(volume.affine, volume.data.shape)
    image = reo.apply(np.where(brain, volume.data, 0).astype(np.float32))
    return BenchData(image=image, brain=reo.apply(brain), affine=reo.ras_affine, image_path=image_path,
                     brainmask_path=Path(brainmask_path) if brainmask_path else None)


@dataclass
class CaseResult:
    """Scores of one method on one case, plus the axial slice shown in the figures."""

    method: str
    family: str
    case: str
    metrics: dict[str, float]
    seconds: float
    slices: int
    preview: Optional[np.ndarray] = field(repr=False, default=None)
    ortho: Optional[tuple[np.ndarray, ...]] = field(repr=False, default=None)  # sagittal, coronal, axial at the hole

    def record(self) -> dict:
        return {"method": self.method, "family": self.family, "case": self.case, **self.metrics,
                "seconds": self.seconds, "slices": self.slices, "seconds_per_slice": self.seconds / self.slices}


def hole_centre(hole: np.ndarray) -> tuple[int, int, int]:
    """Voxel of the hole nearest its centroid (where the three orthogonal views cross)."""
    points = np.argwhere(hole)
    centre = points.mean(axis=0)
    return tuple(int(v) for v in points[np.argmin(((points - centre) ** 2).sum(axis=1))])


def ortho_slices(volume: np.ndarray, centre: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Sagittal, coronal and axial slices of a RAS volume through `centre`."""
    return tuple(np.take(volume, centre[a], axis=a).copy() for a in range(3))


def preview_index(hole: np.ndarray) -> int:
    """Axial slice with the most hole voxels (the one the figures show)."""
    return int(np.argmax(hole.sum(axis=tuple(a for a in range(3) if a != AXIAL))))


def score(filled: np.ndarray, data: BenchData, hole: np.ndarray) -> dict[str, float]:
    voided = np.where(hole, np.float32(0), data.image)
    brats = hole_metrics(filled, data.image, hole, voided)
    whole = slice_metrics(filled, data.image, hole, voided, SLICE_AXIS)
    return {"psnr_hole": brats["psnr"], "psnr_brats_hole": brats["psnr_brats"], "ssim_hole": brats["ssim"], "mse_hole": brats["mse"],
            "mae_hole": brats["mae"], **whole, **stripe_metrics(filled, data.image, hole, AXIAL)}


def fill_case(method: Method, data: BenchData, case: Case, model: Optional[Model], settings: FillSettings,
              progress: Optional[Callable[[Progress], None]] = None,
              refiner: Optional[Refiner] = None) -> tuple[np.ndarray, float, int]:
    """(filled volume, seconds, slices filled) of one method on one case; the hole's truth is never shown.

    `refiner`: the 3D refiner of `refine3d` (default: the shipped one).
    """
    return _fill(method, data, case, model, settings, progress, refiner)[:3]


def _fill(method: Method, data: BenchData, case: Case, model: Optional[Model], settings: FillSettings,
          progress: Optional[Callable[[Progress], None]], refiner: Optional[Refiner]
          ) -> tuple[np.ndarray, float, int, Optional[np.ndarray]]:
    """`fill_case` plus the fill's predicted SD of the hole voxels (None when the method predicts none)."""
    voided = np.where(case.hole, np.float32(0), data.image)
    if method.is_baseline:
        start = time.perf_counter()
        filled = BASELINES[method.name](voided, case.hole, data.voxel_mm)
        slices = int(case.hole.any(axis=(0, 1)).sum())
        return filled, time.perf_counter() - start, slices, None
    run = dataclasses.replace(settings, **PIPELINES[method.pipeline])
    result = fill_volume(voided, data.affine, case.hole, model, run, brain=data.brain, progress=progress,
                         refiner=refiner)
    return result.filled, result.seconds, len(result.slices), result.uncertainty


def uncertainty_scores(filled: np.ndarray, data: BenchData, hole: np.ndarray, sd: np.ndarray) -> dict[str, float]:
    """The predicted error against the actual one in the hole: RMS of each and the one-sigma share."""
    error = filled[hole] - data.image[hole]
    return {"sd_rms": float(np.sqrt(np.mean(np.square(sd, dtype=np.float64)))),
            "error_rms": float(np.sqrt(np.mean(np.square(error, dtype=np.float64)))),
            "one_sigma_share": one_sigma_share(sd, error)}


def warm_up(data: BenchData, case: Case, models: list[Model], settings: FillSettings) -> None:
    """One untimed two-step fill of one slice per model, so that no timed fill pays torch's start-up costs."""
    one_slice = np.zeros_like(case.hole)
    z = preview_index(case.hole)
    one_slice[:, :, z] = case.hole[:, :, z]
    for model in models:
        fill_volume(np.where(one_slice, np.float32(0), data.image), data.affine, one_slice, model,
                    dataclasses.replace(settings, iterations=2, restarts=1), brain=data.brain)


def run_bench(data: BenchData, cases: list[Case], methods: list[Method], models: dict[str, Model],
              settings: FillSettings, speed_cases: set[str], progress: Optional[ProgressFn] = None,
              refiner: Optional[Refiner] = None) -> list[CaseResult]:
    """Fill and score every (case, method); `reference` pipelines run only on `speed_cases`."""
    jobs = [(case, m) for case in cases for m in methods if m.pipeline != "reference" or case.id in speed_cases]
    if cases:
        warm_up(data, cases[0], [models[n] for n in dict.fromkeys(m.model for m in methods if not m.is_baseline)],
                settings)
    results = []
    for done, (case, method) in enumerate(jobs):
        label = f"{method.name} {case.id}"

        def inner(p: Progress, done=done, label=label) -> None:
            if progress is not None:
                progress((done + p.fraction) / len(jobs), label)

        inner(Progress(stage="start", step=0, total=1, elapsed=0.0))
        filled, seconds, slices, sd = _fill(method, data, case, models.get(method.model), settings, inner, refiner)
        if not np.array_equal(filled[~case.hole], data.image[~case.hole]):
            raise RuntimeError(f"{method.name} changed voxels outside the hole of {case.id}")
        metrics = score(filled, data, case.hole)
        if sd is not None:
            metrics.update(uncertainty_scores(filled, data, case.hole, sd))
        results.append(CaseResult(method=method.name, family=case.family, case=case.id,
                                  metrics=metrics, seconds=seconds, slices=slices,
                                  preview=filled[:, :, preview_index(case.hole)].copy(),
                                  ortho=ortho_slices(filled, hole_centre(case.hole))))
    if progress is not None:
        progress(1.0, "done")
    return results
