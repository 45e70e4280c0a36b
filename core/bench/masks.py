"""Seeded test holes for the benchmark, in the RAS voxel order of the bench volume.

Families (every hole lies inside the brain mask):
- `cube8`, `cube16`, `cube32`: cubes of 8, 16, 32 mm edge (edge in voxels = round(mm / voxel
  size) per axis), wholly inside the brain;
- `cube16_wm`: a 16 mm cube at least 80% inside white matter (the densest such place when
  none reaches 80%);
- `blob`: irregular lesion-like blobs of 0.5 to 10 ml (target volume log-uniform): the
  connected component through a seed point (at least 6 mm deep in the brain) of a
  thresholded field, Gaussian-smoothed noise (sigma 3 mm) on a broad bump centred on the
  seed, the threshold set by bisection to reach the target volume;
- `blob6`, `blob10`, `blob16`: the same irregular blobs in deep tissue (centre at least
  15 mm from the brain's edge), with the volume of a sphere of 6, 10 or 16 mm diameter
  (within 35%): lesion-sized holes deep in the brain; `blob12`, `blob20`, `blob32`: the same
  with 12, 20 and 32 mm (lesions of 6, 10 and 16 mm radius); `edge10`: the 10 mm blobs with their centre
  4-8 mm inside the brain's edge (juxtacortical: part of the hole touches the cortex and the CSF around it);
  `peri10`: the 10 mm blobs centred in white matter within 5 mm of a lateral ventricle, grown around it but
  not into it (periventricular, where most MS lesions lie: the hole's edge is the ventricle's wall; its cases spread
  over the ventricles' axial extent, not the brain's);
- `large`: a disc, 6 mm thick, covering at least 30% of the brain in each of its slices.
Cases of a family are spread over axial levels from the lowest brain slice (cerebellum) to
the highest (vertex): case i of n aims at level (i + 0.5) / n of the brain's axial extent
and takes the nearest level where it fits. Every case has its own random generator seeded
by (seed, family, i), so a family's cases do not depend on which other families run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..baselines import estimate_white_matter

FAMILIES = ("cube8", "cube16", "cube32", "cube16_wm", "blob", "blob6", "blob10", "blob16", "large", "blob12", "blob20", "blob32",
            "edge10", "peri10")
CUBE_MM = {"cube8": 8.0, "cube16": 16.0, "cube32": 32.0, "cube16_wm": 16.0}
WM_FRACTION = 0.8
BLOB_ML = (0.5, 10.0)
BLOB_SIGMA_MM = 3.0
BLOB_BOX_MM = 64.0
BLOB_DEPTH_MM = 6.0
BLOB_ROUGHNESS = 0.25
DEEP_BLOB_MM = {"blob6": 6.0, "blob10": 10.0, "blob16": 16.0, "blob12": 12.0, "blob20": 20.0,
                "blob32": 32.0}  # equivalent-sphere diameter
DEEP_DEPTH_MM = 15.0
EDGE_BLOB_MM = {"edge10": 10.0}  # the same blobs at the brain's edge (juxtacortical): equivalent-sphere diameter
EDGE_DEPTH_MM = (4.0, 8.0)       # their centre's distance from the brain's edge
PERI_BLOB_MM = {"peri10": 10.0}  # the same blobs beside a ventricle (periventricular; `core.bench.lesions.periventricular`)
DEEP_TOLERANCE = 0.35  # accepted relative deviation from the sphere's volume
LARGE_COVER = 0.30
LARGE_THICK_MM = 6.0
AXIAL = 2  # RAS voxel order: the third axis runs inferior -> superior


@dataclass(frozen=True)
class Periventricular:
    """Where `peri10` holes go: centres in `zone` (white matter within 5 mm of a ventricle), grown outside `ventricles`."""

    zone: np.ndarray
    ventricles: np.ndarray


@dataclass(frozen=True)
class Case:
    """One test hole: bool volume in RAS voxel order of the bench image."""

    family: str
    id: str
    hole: np.ndarray
    level: float  # axial position of the hole's centre, 0 = lowest brain slice, 1 = highest

    @property
    def voxels(self) -> int:
        return int(self.hole.sum())


def case_rng(seed: int, family: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(family.encode()), index])


def cube_voxels(edge_mm: float, voxel_mm: np.ndarray) -> tuple[int, int, int]:
    """Cube edge in voxels along each axis (at least 1)."""
    return tuple(max(1, int(round(edge_mm / float(v)))) for v in voxel_mm)


def box_sums(mask: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Number of `mask` voxels in every box of `size` voxels, indexed by the box's lowest corner."""
    c = np.pad(np.asarray(mask, dtype=np.int64), ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)
    a, b, d = size
    return (c[a:, b:, d:] - c[:-a, b:, d:] - c[a:, :-b, d:] - c[a:, b:, :-d]
            + c[:-a, :-b, d:] + c[:-a, b:, :-d] + c[a:, :-b, :-d] - c[:-a, :-b, :-d])


def _axial_range(brain: np.ndarray) -> tuple[int, int]:
    levels = np.flatnonzero(brain.any(axis=(0, 1)))
    return int(levels[0]), int(levels[-1])


def _target_level(brain: np.ndarray, index: int, count: int) -> float:
    lo, hi = _axial_range(brain)
    return lo + (index + 0.5) / count * (hi - lo)


def _level_fraction(brain: np.ndarray, z: float) -> float:
    lo, hi = _axial_range(brain)
    return float((z - lo) / max(1, hi - lo))


def _pick_near_level(candidates: np.ndarray, z_offset: float, target: float, rng: np.random.Generator) -> np.ndarray:
    """A random candidate position (rows of indices) among those closest to the target axial level."""
    distance = np.abs(candidates[:, AXIAL] + z_offset - target)
    near = candidates[distance <= distance.min() + 0.5]
    return near[rng.integers(len(near))]


def _cube_case(family: str, index: int, count: int, brain: np.ndarray, voxel_mm: np.ndarray, seed: int,
               wm: np.ndarray | None) -> Case:
    size = cube_voxels(CUBE_MM[family], voxel_mm)
    inside = box_sums(brain, size) == int(np.prod(size))
    if wm is not None and inside.any():
        wm_sum = box_sums(wm & brain, size)
        inside &= wm_sum >= min(WM_FRACTION * np.prod(size), wm_sum[inside].max())
    candidates = np.argwhere(inside)
    if len(candidates) == 0:
        raise ValueError(f"no {CUBE_MM[family]:g} mm cube fits inside the brain mask")
    rng = case_rng(seed, family, index)
    corner = _pick_near_level(candidates, (size[AXIAL] - 1) / 2, _target_level(brain, index, count), rng)
    hole = np.zeros(brain.shape, dtype=bool)
    hole[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
    return Case(family, f"{family}-{index:02d}", hole, _level_fraction(brain, corner[AXIAL] + (size[AXIAL] - 1) / 2))


def _blob_component(field: np.ndarray, centre: tuple[int, ...], voxels: int) -> np.ndarray:
    """Component through `centre` of {field > t}, with t chosen (bisection) to hold about `voxels` voxels."""
    lo, hi = float(field.min()), float(field[centre])
    component = field >= hi
    for _ in range(40):
        t = (lo + hi) / 2
        labels, _ = ndimage.label(field > t)
        component = labels == labels[centre]
        n = int(component.sum())
        if abs(n - voxels) <= 0.02 * voxels:
            break
        if n > voxels:
            lo = t
        else:
            hi = t
    return component


def _blob_case(index: int, count: int, brain: np.ndarray, voxel_mm: np.ndarray, seed: int,
               family: str = "blob", peri: Periventricular | None = None) -> Case:
    rng = case_rng(seed, family, index)
    voxel_ml = float(np.prod(voxel_mm)) / 1000.0
    sized = {**DEEP_BLOB_MM, **EDGE_BLOB_MM, **PERI_BLOB_MM}
    if family in sized:
        sphere_ml = np.pi / 6.0 * sized[family] ** 3 / 1000.0
        limits = (sphere_ml * (1 - DEEP_TOLERANCE), sphere_ml * (1 + DEEP_TOLERANCE))
    else:
        limits = BLOB_ML
    half = np.array([max(2, int(round(BLOB_BOX_MM / 2 / v))) for v in voxel_mm])
    allowed = brain
    if family in PERI_BLOB_MM:
        candidates = np.argwhere(peri.zone & brain)
        allowed = brain & ~peri.ventricles
        if len(candidates) == 0:
            raise ValueError("no white matter lies within 5 mm of a ventricle to grow a periventricular blob around")
    else:
        depth = EDGE_DEPTH_MM if family in EDGE_BLOB_MM else (
            DEEP_DEPTH_MM if family in DEEP_BLOB_MM else BLOB_DEPTH_MM, np.inf)  # the centre's distance from the edge
        distance = ndimage.distance_transform_edt(brain, sampling=voxel_mm)
        candidates = np.argwhere((distance > depth[0]) & (distance <= depth[1]))
        if len(candidates) == 0:
            raise ValueError(f"the brain mask has no voxel {depth[0]:g} mm from its edge to grow a blob around")
    target = _target_level(peri.zone if family in PERI_BLOB_MM else brain, index, count)  # over the ventricles' extent
    for _ in range(50):
        centre = _pick_near_level(candidates, 0.0, target, rng)
        if family in sized:
            ml = sphere_ml
        else:
            ml = float(np.exp(rng.uniform(np.log(limits[0] * 1.2), np.log(limits[1] * 0.8))))
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, brain.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        seed_point = tuple(centre - lo)
        # smoothed noise on a bump the size of the target volume: irregular but in one piece
        noise = ndimage.gaussian_filter(rng.standard_normal(hi - lo), BLOB_SIGMA_MM / voxel_mm)
        radius_mm = (3.0 * ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        offsets = np.stack(np.meshgrid(*[(np.arange(a, b) - c) * v for a, b, c, v in zip(lo, hi, centre, voxel_mm)],
                                       indexing="ij"))
        bump = np.exp(-(offsets ** 2).sum(0) / (2.0 * radius_mm ** 2))
        field = bump + BLOB_ROUGHNESS * noise / noise.std()
        field[seed_point] = field.max() + 1e-6
        if family in PERI_BLOB_MM:  # grown around the ventricle, not into it (other families: clipped afterwards)
            field = np.where(allowed[box], field, field.min() - 1.0)
        component = _blob_component(field, seed_point, max(1, int(round(ml / voxel_ml)))) & allowed[box]
        labels, _ = ndimage.label(component)
        component = labels == labels[seed_point]
        volume = component.sum() * voxel_ml
        if limits[0] <= volume <= limits[1]:
            hole = np.zeros(brain.shape, dtype=bool)
            hole[box] = component
            return Case(family, f"{family}-{index:02d}", hole, _level_fraction(brain, float(centre[AXIAL])))
    raise ValueError(f"could not grow a {limits[0]:.2g}-{limits[1]:.2g} ml blob inside the brain mask")


def _large_case(index: int, count: int, brain: np.ndarray, voxel_mm: np.ndarray, seed: int) -> Case:
    rng = case_rng(seed, "large", index)
    thick = max(1, int(round(LARGE_THICK_MM / voxel_mm[AXIAL])))
    area = brain.sum(axis=(0, 1))
    lo, hi = _axial_range(brain)
    # slabs whose thinnest slice still holds a fair share of the largest slice's brain
    starts = [z for z in range(lo, hi - thick + 2) if area[z:z + thick].min() >= 0.15 * area.max()]
    if not starts:
        raise ValueError("the brain mask is too thin for a large hole")
    target = _target_level(brain, index, count)
    start = min(starts, key=lambda z: (abs(z + (thick - 1) / 2 - target), z))
    slab = brain[:, :, start:start + thick]
    points = np.argwhere(slab[:, :, thick // 2])
    centre = points[rng.integers(len(points))]
    x, y = np.mgrid[0:brain.shape[0], 0:brain.shape[1]]
    distance = np.hypot((x - centre[0]) * voxel_mm[0], (y - centre[1]) * voxel_mm[1])
    needed = LARGE_COVER * slab.sum(axis=(0, 1))
    radius = next(r for r in np.arange(voxel_mm[0], distance.max() + voxel_mm[0], 0.5)
                  if np.all((slab & (distance <= r)[:, :, None]).sum(axis=(0, 1)) >= needed))
    hole = np.zeros(brain.shape, dtype=bool)
    hole[:, :, start:start + thick] = slab & (distance <= radius)[:, :, None]
    return Case("large", f"large-{index:02d}", hole, _level_fraction(brain, start + (thick - 1) / 2))


def make_cases(brain: np.ndarray, voxel_mm, families=FAMILIES, per_family: int = 4, seed: int = 0,
               wm: np.ndarray | None = None, peri: Periventricular | None = None) -> list[Case]:
    """`per_family` seeded cases of each family; `wm` (white matter mask) is needed for `cube16_wm`, `peri`
    (`core.bench.lesions.periventricular`) for `peri10`."""
    brain = np.asarray(brain, dtype=bool)
    voxel_mm = np.asarray(voxel_mm, dtype=float)
    cases = []
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"unknown mask family {family!r}; use {', '.join(FAMILIES)}")
        for i in range(per_family):
            if family in CUBE_MM:
                if family == "cube16_wm" and wm is None:
                    raise ValueError("the cube16_wm family needs a white matter mask")
                cases.append(_cube_case(family, i, per_family, brain, voxel_mm, seed,
                                        np.asarray(wm, dtype=bool) if family == "cube16_wm" else None))
            elif family in PERI_BLOB_MM:
                if peri is None:
                    raise ValueError("the peri10 family needs the ventricles (core.bench.lesions.periventricular)")
                cases.append(_blob_case(i, per_family, brain, voxel_mm, seed, family, peri))
            elif family == "blob" or family in DEEP_BLOB_MM or family in EDGE_BLOB_MM:
                cases.append(_blob_case(i, per_family, brain, voxel_mm, seed, family))
            else:
                cases.append(_large_case(i, per_family, brain, voxel_mm, seed))
    return cases


def six_deep_blobs(brain: np.ndarray, voxel_mm) -> np.ndarray:
    """One mask of six deep blobs - three of 6 mm, two of 10 mm and one of 16 mm radius (the `blob12`, `blob20`
    and `blob32` cases 0-2, 0-1 and 0) - as the speed target and `scripts/lesion_mask_check.py` draw it."""
    cases = [case for family, count in (("blob12", 3), ("blob20", 2), ("blob32", 1))
             for case in make_cases(brain, voxel_mm, families=(family,), per_family=count)]
    return np.any([case.hole for case in cases], axis=0)


SMALL_BALLS = 40
SMALL_RADIUS_MM = (1.5, 4.0)
SMALL_DEPTH_MM = 8.0


def small_balls(brain: np.ndarray, voxel_mm, wm: np.ndarray, count: int = SMALL_BALLS, seed: int = 0) -> np.ndarray:
    """A mask like an MS lesion map's: `count` balls of 1.5-4 mm radius centred in white matter `wm` at least
    8 mm inside the brain (seeded; balls may touch and merge): `--lesions small40` of `scripts/measure_fill.py`
    and `scripts/lesion_mask_check.py`."""
    voxel_mm = np.asarray(voxel_mm, dtype=np.float64)
    depth = ndimage.distance_transform_edt(brain, sampling=voxel_mm)
    centres = np.argwhere(wm & brain & (depth >= SMALL_DEPTH_MM))
    rng = np.random.default_rng(seed)
    hole = np.zeros(brain.shape, dtype=bool)
    for centre in centres[rng.choice(len(centres), size=min(count, len(centres)), replace=False)]:
        radius = rng.uniform(*SMALL_RADIUS_MM)
        reach = np.ceil(radius / voxel_mm).astype(int)
        box = tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in zip(centre, reach, brain.shape))
        grid = np.ogrid[box]
        distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, voxel_mm))
        hole[box] |= distance <= radius ** 2
    return hole & brain


CHECK_MASKS = ("cube16_wm", "six", "small40")


def check_mask(name: str, image: np.ndarray, brain: np.ndarray, voxel_mm) -> np.ndarray:
    """The one-mask checks of `scripts/measure_fill.py` and `scripts/lesion_mask_check.py` by name: a 16 mm
    white-matter cube (`cube16_wm`), `six_deep_blobs` (`six`) or `small_balls` (`small40`)."""
    if name == "six":
        return six_deep_blobs(brain, voxel_mm)
    wm = estimate_white_matter(image, ~brain)
    if name == "small40":
        return small_balls(brain, voxel_mm, wm)
    return make_cases(brain, voxel_mm, families=("cube16_wm",), per_family=1, wm=wm)[0].hole
