"""Downstream test: what a fill does to tissue segmentation (`inpaint bench --downstream`).

As Battaglini et al. (2012) and Valverde et al. (2014) judge lesion fillers: insert
simulated lesions into a healthy brain (`core.bench.lesions`), segment the original, the
lesioned ("no fill") and every filled image with the same segmenter, and compare each with
the original's segmentation. Two segmenters from maintained libraries, none written here,
each run on the skull-stripped brain with its intensities clipped to their own 0.5/99.5
percentiles (no bias correction: the bias field is the same in every image compared):
- `gmm`: scikit-learn's 3-class `GaussianMixture` on brain voxels, EM to convergence
  (tol 1e-6); a first fit of the original starts at its 15/50/85th intensity percentiles,
  then every image, the original included, is fitted starting at that mixture (the same
  local optimum for every image, reached in a few iterations instead of a hundred);
- `hmrf`: dipy's `TissueClassifierHMRF` (Gaussian classes with a Potts/Ising prior, ICM),
  beta 0.1, 10 iterations, on the brain's bounding box; its background noise is seeded.
Classes are ordered by mean intensity: CSF < grey matter < white matter.
Methods: "no fill" (the lesioned image), every classical baseline of `runner.BASELINES`, every
shipped model with the slice pipeline (`<model>/slices2d`, or the app's method when that uses
the model per slice), and the app default (`FillSettings()` with the default model, e.g.
`refine3d`), each through `runner.fill_case` exactly as `inpaint bench` fills.
Per method: % change of the CSF, GM and WM volumes, the fraction of lesion voxels with
the original's label, the share of lesion voxels given each label, and Dice per class
inside the lesions and in a 2-voxel ring around them; plus the BraTS in-hole metrics of
the fill against the original image. With `--registration`, every image is also registered
to the MNI152 template (affine, then demons; `core.bench.registration`) and each map's distance
from the original's is measured in mm, over the brain and near the lesions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InpaintError
from ..fill import FillSettings
from ..metrics import hole_metrics
from ..volume import dilate_mask
from .cohort import cohort_scans
from .lesions import LesionSet, simulate_lesions
from .masks import Case
from .registration import Template, bias, lesion_points, subject_points
from ..paths import SHARED_DATA, shown_path
from .runner import (BASELINES, PIPELINES, BenchData, Method, baseline_methods, default_method_name,
                     fill_case, load_bench_data, model_free, model_free_methods, model_methods)

TISSUES = ("csf", "gm", "wm")  # labels 1, 2, 3; 0 is outside the brain
NO_FILL = "no fill"
RING_VOXELS = 2
HMRF_BETA = 0.1
HMRF_ITERATIONS = 10
GMM_TOL = 1e-6
SHARED = SHARED_DATA
BRAINS = {name: (SHARED / name / "t1_2mm.nii.gz", SHARED / name / "brainmask_2mm.nii.gz")
          for name in ("heldout_subject", "colin27")}
ProgressFn = Callable[[float, str], None]


def _unit(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Brain intensities clipped to their 0.5/99.5 percentiles and scaled to [0, 1]."""
    lo, hi = np.percentile(image[brain].astype(np.float64), [0.5, 99.5])
    return (np.clip(image.astype(np.float64), lo, hi) - lo) / max(hi - lo, 1e-12)


def _labels_by_mean(classes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Map class indices 0..n-1 to labels 1..3 ordered by mean intensity (the darkest extra classes join CSF)."""
    means = np.array([values[classes == k].mean() if np.any(classes == k) else -np.inf for k in range(n)])
    rank = np.empty(n, dtype=np.uint8)
    rank[np.argsort(means)] = np.arange(n)
    return np.maximum(rank[classes] - (n - 3), 0).astype(np.uint8) + 1


class GmmSegmenter:
    """3-class Gaussian mixture on brain voxels (scikit-learn).

    The first image (the original) is fitted from its 15/50/85th intensity percentiles; every
    image, the first included, is then fitted by EM starting at that mixture, so identical
    images get identical labels and similar images the same local optimum.
    """

    name = "gmm"

    def __init__(self) -> None:
        self.start = None

    def __call__(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        from sklearn.mixture import GaussianMixture

        x = _unit(image, brain)[brain].reshape(-1, 1)
        if self.start is None:
            self.start = GaussianMixture(3, means_init=np.percentile(x, [15, 50, 85]).reshape(-1, 1),
                                         init_params="k-means++", tol=GMM_TOL, max_iter=1000, random_state=0).fit(x)
        s = self.start
        gmm = GaussianMixture(3, weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_,
                              tol=GMM_TOL, max_iter=1000, random_state=0).fit(x)
        labels = np.zeros(image.shape, dtype=np.uint8)
        labels[brain] = _labels_by_mean(gmm.predict(x), x[:, 0], 3)
        return labels


class HmrfSegmenter:
    """dipy's TissueClassifierHMRF (3 tissue classes plus background) on the brain's bounding box."""

    name = "hmrf"

    def __call__(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        from dipy.segment.tissue import TissueClassifierHMRF

        idx = np.argwhere(brain)
        box = tuple(slice(max(a - 1, 0), b + 2) for a, b in zip(idx.min(0), idx.max(0)))
        inside = brain[box]
        # brain in [0.1, 1], background 0: dipy's extra background class takes the zeros only
        unit = np.where(inside, 0.1 + 0.9 * _unit(image, brain)[box], 0.0)
        state = np.random.get_state()
        np.random.seed(0)  # dipy draws the background's noise from numpy's global generator
        try:
            _, seg, _ = TissueClassifierHMRF(verbose=False).classify(unit, 3, HMRF_BETA, tolerance=0,
                                                                     max_iter=HMRF_ITERATIONS)
        finally:
            np.random.set_state(state)
        seg = seg.astype(np.int64)
        labels = np.zeros(image.shape, dtype=np.uint8)
        labels[box][inside] = _labels_by_mean(seg[inside], unit[inside], 4)
        return labels


def segmenters() -> list:
    return [GmmSegmenter(), HmrfSegmenter()]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return float("nan") if total == 0 else 2.0 * int((a & b).sum()) / total


def compare(seg: np.ndarray, original: np.ndarray, lesion: np.ndarray, ring: np.ndarray) -> dict:
    """Scores of one segmentation against the original's (labels 1..3 = CSF, GM, WM; 0 outside the brain)."""
    out: dict = {"volume_change_pct": {}, "lesion_labels": {}, "dice_lesion": {}, "dice_ring": {}}
    for k, tissue in enumerate(TISSUES, start=1):
        before = int((original == k).sum())
        out["volume_change_pct"][tissue] = 100.0 * (int((seg == k).sum()) - before) / max(before, 1)
        out["lesion_labels"][tissue] = float(np.mean(seg[lesion] == k))
        out["dice_lesion"][tissue] = _dice((seg == k) & lesion, (original == k) & lesion)
        out["dice_ring"][tissue] = _dice((seg == k) & ring, (original == k) & ring)
    out["lesion_agreement"] = float(np.mean(seg[lesion] == original[lesion]))
    out["ring_agreement"] = float(np.mean(seg[ring] == original[ring]))
    return out


def lesion_ring(lesion: np.ndarray, brain: np.ndarray, voxels: int = RING_VOXELS) -> np.ndarray:
    """Brain voxels within `voxels` 6-connected steps of a lesion, the lesion excluded."""
    return dilate_mask(lesion, voxels) & ~lesion & brain


@dataclass
class BrainResult:
    """Everything measured on one brain, plus the volumes the figure shows."""

    name: str
    data: BenchData
    lesions: LesionSet
    images: dict[str, np.ndarray]          # original, no fill and the default method's fill
    segmentations: dict[str, dict[str, np.ndarray]]  # segmenter -> same keys as images
    record: dict


def model_pipeline() -> str:
    """The pipeline every shipped model runs: the app's fill method, or slices2d when that needs no slice model."""
    method = FillSettings().method
    return method if method in PIPELINES and not model_free(method) else "slices2d"


def fill_methods(models: list[str], baselines: list[str], default_model: Optional[str] = None) -> list[Method]:
    """Baselines, every model with its pipeline, then the app default (`FillSettings()`) when it is model-free."""
    methods = baseline_methods(baselines) + [m for name in models for m in model_methods(name, [model_pipeline()])]
    if default_model in models:
        methods += model_free_methods(default_model, [FillSettings().method])
    return methods


def app_default_method(models: list[str], default_model: Optional[str]) -> Optional[str]:
    """Bench name of `FillSettings()` with the default model, when that model runs."""
    return default_method_name(default_model) if default_model in models else None


def run_brain(name: str, data: BenchData, methods: list[Method], models: dict, settings: FillSettings,
              default_method: Optional[str], *, count: int, seed: int,
              progress: Optional[ProgressFn] = None, template: Optional[Template] = None) -> BrainResult:
    """Insert lesions, fill them with every method, segment everything, score against the original; with
    `template`, also register every image to it (`core.bench.registration`)."""
    lesions = simulate_lesions(data.image, data.brain, data.voxel_mm, count=count, seed=seed)
    lesioned = replace(data, image=lesions.image)
    case = Case("lesions", f"{name}-lesions", lesions.mask, 0.5)
    ring = lesion_ring(lesions.mask, data.brain)
    voided = np.where(lesions.mask, np.float32(0), data.image)
    images = {"original": data.image, NO_FILL: lesions.image}
    fills: dict[str, dict] = {}
    steps = len(methods) + (2 + (template is not None)) * (len(methods) + 2)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / steps, f"{name}: {label}")

    fills[NO_FILL] = {"seconds": 0.0, "slices": 0, **hole_metrics(lesions.image, data.image, lesions.mask, voided)}
    for method in methods:
        filled, seconds, slices = fill_case(method, lesioned, case, models.get(method.model), settings)
        if not np.array_equal(filled[~lesions.mask], lesions.image[~lesions.mask]):
            raise RuntimeError(f"{method.name} changed voxels outside the lesions of {name}")
        images[method.name] = filled
        fills[method.name] = {"seconds": seconds, "slices": slices,
                              **hole_metrics(filled, data.image, lesions.mask, voided)}
        tick(method.name)
    seg_records, shown = {}, {}
    keep = {"original", NO_FILL, default_method}
    for segmenter in segmenters():
        start = time.perf_counter()
        labels = {}
        for key, image in images.items():
            labels[key] = segmenter(image, data.brain)
            tick(f"{segmenter.name} {key}")
        original = labels["original"]
        voxel_ml = float(np.prod(data.voxel_mm)) / 1000.0
        seg_records[segmenter.name] = {
            "original_ml": {t: float((original == k).sum()) * voxel_ml for k, t in enumerate(TISSUES, start=1)},
            "original_lesion_labels": {t: float(np.mean(original[lesions.mask] == k))
                                       for k, t in enumerate(TISSUES, start=1)},
            "seconds": time.perf_counter() - start,
            "methods": {key: compare(seg, original, lesions.mask, ring) for key, seg in labels.items()
                        if key != "original"},
        }
        shown[segmenter.name] = {k: v for k, v in labels.items() if k in keep}
    voxel_ml = float(np.prod(data.voxel_mm)) / 1000.0
    registration = None if template is None else register_all(template, images, lesions.mask, data.affine, tick)
    record = {
        "data": {"image": shown_path(data.image_path), "brainmask": shown_path(data.brainmask_path),
                 "shape": list(data.image.shape), "voxel_mm": [round(float(v), 4) for v in data.voxel_mm]},
        "lesions": [les.record() for les in lesions.lesions],
        "lesion_voxels": int(lesions.mask.sum()), "lesion_ml": float(lesions.mask.sum()) * voxel_ml,
        "ring_voxels": int(ring.sum()), "axial_slices": int(lesions.mask.any(axis=(0, 1)).sum()),
        "tissue_means": list(lesions.tissue.means),
        "fill": fills,
        "segmenters": seg_records,
        **({} if registration is None else {"registration": registration}),
    }
    return BrainResult(name=name, data=data, lesions=lesions,
                       images={k: v for k, v in images.items() if k in keep}, segmentations=shown, record=record)


def register_all(template: Template, images: dict[str, np.ndarray], lesion: np.ndarray, affine: np.ndarray,
                 tick: Callable[[str], None]) -> dict:
    """Every image registered to the template; each one's distance from the original's map (mm)."""
    start = time.perf_counter()
    maps, similarity = {}, {}
    for key, image in images.items():
        maps[key], similarity[key] = subject_points(template, image, affine)
        tick(f"registration {key}")
    near = lesion_points(maps["original"], lesion, affine)
    return {"seconds": time.perf_counter() - start, "points": int(len(near)), "near_points": int(near.sum()),
            "original_correlation": similarity["original"],
            "methods": {key: {**bias(points, maps["original"], near), "correlation": similarity[key]}
                        for key, points in maps.items() if key != "original"}}


def load_brains(image: Optional[Path], brainmask: Optional[Path], cohort: Optional[Path] = None,
                which: str = "all") -> dict[str, BenchData]:
    """The two held-out brains, the one given on the command line, or every scan of a cohort folder
    (`core.bench.cohort.cohort_scans`: split `which`), named `dataset/subject`."""
    if image is not None:
        return {Path(image).name.split(".")[0]: load_bench_data(image, brainmask)}
    if cohort is not None:
        return {f"{scan.dataset}/{scan.image.name.split('_T1w')[0]}": load_bench_data(scan.image, scan.brainmask)
                for scan in cohort_scans(cohort, which)}
    missing = [str(p) for pair in BRAINS.values() for p in pair if not p.is_file()]
    if missing:
        raise InpaintError(f"the held-out brains are missing ({', '.join(missing)}); pass --image and --brainmask.")
    return {name: load_bench_data(*paths) for name, paths in BRAINS.items()}


def baseline_names(chosen: Optional[list[str]]) -> list[str]:
    """The baselines among `--methods` (all when None); `default` selects the models; anything else is an error."""
    if chosen is None:
        return list(BASELINES)
    unknown = [n for n in chosen if n not in BASELINES and n != "default"]
    if unknown:
        raise InpaintError(f"--downstream runs the methods default, {', '.join(BASELINES)}; not {', '.join(unknown)}.")
    return [n for n in chosen if n in BASELINES]
