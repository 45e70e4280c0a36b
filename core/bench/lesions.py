"""Simulated white matter lesions inserted into a healthy brain, as the lesion-filling literature does.

Battaglini et al. (2012) and Valverde et al. (2014) judge a lesion filler by inserting
lesions into healthy T1 scans and segmenting the original, lesioned and filled images.
Here, in the RAS voxel order of a skull-stripped brain:
- tissue: three classes of the brain's own intensities (multi-Otsu: CSF, grey matter, white
  matter) and their means; nothing is learnt or tuned on the brain;
- placements: `periventricular` (white matter within 5 mm of a ventricle: CSF deeper than
  20 mm below the brain surface), `juxtacortical` (white matter within 4 mm of grey matter
  that lies less than 20 mm deep, and away from the ventricles) and `deep` (white matter at
  least 4 mm from any grey matter and 10 mm from the ventricles); lesion i takes kind
  i mod 3 in that order;
- shape: diameter log-uniform in 3-20 mm, an irregular blob (smoothed noise on a bump, the
  component through the centre thresholded to the diameter's sphere volume) kept inside
  white matter and at least 3 voxels away from the other lesions;
- intensity: T1-hypointense, between the grey and white matter means: GM + f (WM - GM) with
  f uniform in 0.2-0.6 per lesion, plus Gaussian noise with the white matter class's
  standard deviation per voxel.
Everything comes from one seeded generator: the same seed gives the same lesions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from ..modelspace import voxel_sizes
from .masks import Periventricular, _blob_component
from .ventricles import lateral_ventricle_region

KINDS = ("periventricular", "deep", "juxtacortical")
DIAMETER_MM = (3.0, 20.0)
MIX = (0.2, 0.6)  # lesion mean = GM + f (WM - GM)
VENTRICLE_DEPTH_MM = 20.0
PERIVENTRICULAR_MM = 5.0
VENTRICLE_SHARE = 0.2
VENTRICLE_OPENING_MM = 1.0  # deep CSF thinner than about twice this (sulci, the fissure) is no ventricle
JUXTACORTICAL_MM = 4.0
CORTEX_DEPTH_MM = 20.0
DEEP_FROM_GM_MM = 4.0
DEEP_FROM_VENTRICLES_MM = 10.0
GAP_VOXELS = 3
ROUGHNESS = 0.35


@dataclass(frozen=True)
class Tissue:
    """Three intensity classes of a brain (bool masks) with their means and standard deviations."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    means: tuple[float, float, float]
    stds: tuple[float, float, float]


@dataclass(frozen=True)
class Lesion:
    kind: str
    centre: tuple[int, int, int]
    diameter_mm: float
    voxels: int
    intensity_mix: float  # f: 0 = grey matter mean, 1 = white matter mean
    mean: float

    def record(self) -> dict:
        return {"kind": self.kind, "centre": list(self.centre), "diameter_mm": round(self.diameter_mm, 2),
                "voxels": self.voxels, "intensity_mix": round(self.intensity_mix, 4), "mean": self.mean}


@dataclass
class LesionSet:
    """The lesioned image, the union of lesions and a label volume (lesion i has label i + 1)."""

    image: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    lesions: list[Lesion]
    tissue: Tissue = field(repr=False)


def estimate_tissue(image: np.ndarray, brain: np.ndarray) -> Tissue:
    """CSF / GM / WM as the three multi-Otsu classes of the brain's intensities."""
    brain = np.asarray(brain, dtype=bool)
    values = image[brain]
    low, high = threshold_multiotsu(values, classes=3)
    classes = [brain & (image <= low), brain & (image > low) & (image <= high), brain & (image > high)]
    means = tuple(float(image[c].mean()) for c in classes)
    stds = tuple(float(image[c].std()) for c in classes)
    return Tissue(csf=classes[0], gm=classes[1], wm=classes[2], means=means, stds=stds)


def placement_zones(tissue: Tissue, brain: np.ndarray, voxel_mm) -> dict[str, np.ndarray]:
    """White matter voxels where a lesion of each kind may be centred (see the module docstring)."""
    voxel_mm = np.asarray(voxel_mm, dtype=float)
    depth = ndimage.distance_transform_edt(brain, sampling=voxel_mm)
    ventricles = _ventricles(tissue, depth)
    cortex = tissue.gm & (depth < CORTEX_DEPTH_MM)

    def distance_to(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(mask.shape, np.inf)
        return ndimage.distance_transform_edt(~mask, sampling=voxel_mm)

    to_ventricles, to_gm, to_cortex = distance_to(ventricles), distance_to(tissue.gm), distance_to(cortex)
    wm = tissue.wm
    return {
        "periventricular": wm & (to_ventricles <= PERIVENTRICULAR_MM),
        "deep": wm & (to_gm >= DEEP_FROM_GM_MM) & (to_ventricles >= DEEP_FROM_VENTRICLES_MM),
        "juxtacortical": wm & (to_cortex <= JUXTACORTICAL_MM) & (to_ventricles > DEEP_FROM_VENTRICLES_MM),
    }


def _ventricles(tissue: Tissue, depth: np.ndarray) -> np.ndarray:
    """CSF deeper than VENTRICLE_DEPTH_MM in the brain (`depth`: mm from its edge): the ventricles."""
    return tissue.csf & (depth > VENTRICLE_DEPTH_MM)


def periventricular(image: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> Periventricular:
    """Where the bench's `peri10` holes go in this brain (RAS voxel order, RAS `affine`): white matter within
    PERIVENTRICULAR_MM of the lateral ventricles, found as the deep CSF opened by a ball of VENTRICLE_OPENING_MM
    (thin sulci and the fissure go) inside the template's lateral ventricles moved onto the scan
    (`core.bench.ventricles`: the third ventricle and the cisterns around the midbrain left out), its largest
    connected parts (each at least VENTRICLE_SHARE of the largest: the two sides where they are apart)."""
    brain = np.asarray(brain, dtype=bool)
    voxel_mm = voxel_sizes(affine)
    try:
        tissue = estimate_tissue(image, brain)
    except ValueError:  # multi-Otsu: fewer than three distinct intensities
        raise ValueError("its brain has too few distinct intensities to tell CSF from tissue") from None
    deep_csf = _ventricles(tissue, ndimage.distance_transform_edt(brain, sampling=voxel_mm))
    radius = np.maximum(np.round(VENTRICLE_OPENING_MM / voxel_mm).astype(int), 1)  # thin sulci go, ventricles stay
    grid = np.meshgrid(*[np.arange(-r, r + 1) / r for r in radius], indexing="ij")
    ball = sum(axis ** 2 for axis in grid) <= 1.0
    where = lateral_ventricle_region(np.where(brain, image, 0), affine)
    labels, count = ndimage.label(ndimage.binary_opening(deep_csf, structure=ball) & where,
                                  structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return Periventricular(zone=np.zeros(brain.shape, dtype=bool), ventricles=np.zeros(brain.shape, dtype=bool))
    sizes = np.bincount(labels.ravel())[1:]
    ventricles = np.isin(labels, 1 + np.flatnonzero(sizes >= VENTRICLE_SHARE * sizes.max()))  # both sides
    near = ndimage.distance_transform_edt(~ventricles, sampling=voxel_mm) <= PERIVENTRICULAR_MM
    return Periventricular(zone=tissue.wm & near, ventricles=ventricles)


def _grow(centre: np.ndarray, diameter_mm: float, allowed: np.ndarray, voxel_mm: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Irregular blob of about the sphere volume of `diameter_mm` through `centre`, inside `allowed`."""
    radius_mm = diameter_mm / 2.0
    half = np.ceil((radius_mm * 2.0 + 2.0 * voxel_mm) / voxel_mm).astype(int)
    lo, hi = np.maximum(centre - half, 0), np.minimum(centre + half + 1, allowed.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    seed_point = tuple(centre - lo)
    sigma = np.maximum(radius_mm / 2.0 / voxel_mm, 0.5)
    noise = ndimage.gaussian_filter(rng.standard_normal(hi - lo), sigma)
    offsets = np.stack(np.meshgrid(*[(np.arange(a, b) - c) * v for a, b, c, v in zip(lo, hi, centre, voxel_mm)],
                                   indexing="ij"))
    field_ = np.exp(-(offsets ** 2).sum(0) / (2.0 * radius_mm ** 2)) + ROUGHNESS * noise / max(noise.std(), 1e-12)
    field_ = np.where(allowed[box], field_, field_.min() - 1.0)
    field_[seed_point] = field_.max() + 1e-6
    target = max(1, int(round(np.pi / 6.0 * diameter_mm ** 3 / float(np.prod(voxel_mm)))))
    blob = _blob_component(field_, seed_point, target) & allowed[box]
    out = np.zeros(allowed.shape, dtype=bool)
    out[box] = blob
    return out


def simulate_lesions(image: np.ndarray, brain: np.ndarray, voxel_mm, *, count: int = 6, seed: int = 0,
                     kinds: tuple[str, ...] = KINDS) -> LesionSet:
    """Insert `count` seeded hypointense white matter lesions into a skull-stripped brain (RAS order)."""
    image = np.asarray(image, dtype=np.float32)
    brain = np.asarray(brain, dtype=bool)
    voxel_mm = np.asarray(voxel_mm, dtype=float)
    rng = np.random.default_rng([seed, 11])
    tissue = estimate_tissue(image, brain)
    zones = placement_zones(tissue, brain, voxel_mm)
    gm_mean, wm_mean, wm_std = tissue.means[1], tissue.means[2], tissue.stds[2]
    labels = np.zeros(image.shape, dtype=np.int16)
    out = image.copy()
    lesions: list[Lesion] = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        for _ in range(200):
            diameter = float(np.exp(rng.uniform(*np.log(DIAMETER_MM))))
            taken = labels > 0
            free = ~ndimage.binary_dilation(taken, iterations=GAP_VOXELS + int(np.ceil(diameter / 2 / voxel_mm.min())))
            candidates = np.argwhere(zones[kind] & free)
            if len(candidates):
                break
        else:
            raise ValueError(f"no room left for a {kind} lesion in the white matter of this brain")
        centre = candidates[rng.integers(len(candidates))]
        allowed = tissue.wm & ~ndimage.binary_dilation(taken, iterations=GAP_VOXELS)
        blob = _grow(centre, diameter, allowed, voxel_mm, rng)
        mix = float(rng.uniform(*MIX))
        mean = gm_mean + mix * (wm_mean - gm_mean)
        out[blob] = (mean + rng.normal(0.0, wm_std, int(blob.sum()))).astype(np.float32)
        labels[blob] = i + 1
        lesions.append(Lesion(kind=kind, centre=tuple(int(c) for c in centre), diameter_mm=diameter,
                              voxels=int(blob.sum()), intensity_mix=mix, mean=float(mean)))
    return LesionSet(image=out, mask=labels > 0, labels=labels, lesions=lesions, tissue=tissue)
