"""Contralateral detail: the subject's own other hemisphere as a guide to what a lesion hides.

Brains are close to mirror-symmetric. The image, flipped left-right, is registered rigidly onto
itself (lesions left out of the metric), which finds the mid-sagittal reflection. Around each lesion
the mirrored image is then aligned locally (symmetric-forces demons) to the lesion's filled
neighbourhood, and its detail - the mirrored tissue minus its own biharmonic fill over the hole -
is what a smooth fill cannot know: where the contralateral side has a sulcus, a ventricle edge or
a grey-white boundary. `refine3d` adds a fixed share of that detail to its fill. Where the mirror
falls on a lesion too (painted lesions are masked on both sides) the mirror is unknown there
and contributes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
from nibabel.orientations import inv_ornt_aff
from scipy import ndimage

from .blend3d import biharmonic_fill_3d
from .inputs import hole_box
from .job import run_interruptibly
from .modelspace import Reorientation, voxel_sizes

COARSE_MM = 4.0          # grid of the global registration
DEMONS_ITERATIONS = 50
DEMONS_SIGMA_VOXELS = 1.5   # smoothing of the local displacement field, in voxels of the demons grid
DEMONS_GRID_MM = 2.0     # lesions of BIN_MIN_ML or more are aligned on voxels binned to about this size
BIN_MIN_ML = 1.0         # (1 mm scans: 2x2x2 bins; smaller lesions lost 0.15 dB binned, on the validation split)
DEMONS_MARGIN_MM = 8.0   # a smaller hole is aligned at full resolution on its box plus this margin only
WEIGHT = 0.5             # share of the mirrored detail added to the fill (chosen on the ROBEX training brain)
MIN_SIDE = 4             # coarse blocks needed along every axis
MIN_BLOCKS = 200         # known coarse blocks needed to register the hemispheres
MAX_BLOCKS = 1 << 18     # largest coarse grid registered (a 256 mm cube of 1 mm voxels in 4 mm blocks)
MIN_CORRELATION = 0.73   # below it the two hemispheres do not match: no mirror (validation split: wrong planes of
                         # rotated heads and cropped fields of view <= 0.67 after the restarts, right ones >= 0.79)
RESTARTS_DEG = ((0.0, 30.0, 0.0), (0.0, -30.0, 0.0), (0.0, 0.0, 30.0), (0.0, 0.0, -30.0))   # about AP, then SI


class NoReflection(Exception):
    """The mid-sagittal reflection cannot be found; the message says why (for the sidecar)."""


@dataclass(frozen=True)
class Reflection:
    """The mid-sagittal reflection as a voxel-to-voxel map: voxel p of the image mirrors voxel matrix @ (p, 1)."""

    matrix: np.ndarray   # 3x4
    correlation: float   # of the image and its registered mirror, on the coarse grid

    def through(self, to_voxels: np.ndarray) -> "Reflection":
        """The same reflection in another voxel order: `to_voxels` (4x4) maps this one's voxels to that order's."""
        forward = np.asarray(to_voxels, dtype=np.float64)
        matrix = forward @ np.vstack([self.matrix, [0.0, 0.0, 0.0, 1.0]]) @ np.linalg.inv(forward)
        return Reflection(matrix=matrix[:3], correlation=self.correlation)

    def source_voxels(self, box: tuple[slice, ...], needed: Optional[np.ndarray] = None) -> np.ndarray:
        """Voxel coordinates (3, *box shape) whose values mirror the voxels of `box`; with `needed` (bool, the
        box's shape) those of its True voxels only, (3, count) in C order."""
        if needed is None:
            grid = np.indices([s.stop - s.start for s in box], dtype=np.float64)
        else:
            grid = np.array(np.nonzero(needed), dtype=np.float64)
        grid += np.array([s.start for s in box], dtype=np.float64).reshape((3,) + (1,) * (grid.ndim - 1))
        offset = self.matrix[:, 3].reshape((3,) + (1,) * (grid.ndim - 1))
        return np.tensordot(self.matrix[:, :3], grid, axes=1) + offset


def lateral_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to the scanner's left-right direction."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    return int(np.argmax(np.abs(columns[0]) / np.linalg.norm(columns, axis=0)))


def _itk(array: np.ndarray, spacing: Sequence[float], origin: Sequence[float] = (0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    return image


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)


def _block_means(image: np.ndarray, hole: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of the known voxels of `step`-sized blocks (hole and non-finite voxels left out; a slab at a
    time), scaled by a power of two to a peak of at most 1, and whether most of each block is known brain."""
    shape = np.array(image.shape) // step
    sa, sb, sc = (int(v) for v in step)
    means = np.zeros(shape, dtype=np.float32)
    known = np.zeros(shape, dtype=bool)
    for i in range(shape[0]):
        rows = (slice(i * sa, (i + 1) * sa), slice(0, shape[1] * sb), slice(0, shape[2] * sc))
        block = np.asarray(image[rows], dtype=np.float32)
        seen = np.isfinite(block) & ~np.asarray(hole[rows], dtype=bool)
        block = np.where(seen, block, np.float32(0)).reshape(sa, shape[1], sb, shape[2], sc)
        count = seen.reshape(sa, shape[1], sb, shape[2], sc).sum(axis=(0, 2, 4))
        means[i] = block.sum(axis=(0, 2, 4), dtype=np.float64) / np.maximum(count, 1)  # no float32 overflow
        known[i] = (count > 0.5 * sa * sb * sc) & (means[i] != 0)
    peak = float(np.abs(means[known]).max()) if known.any() else 0.0
    if peak > 0:  # near 1 for the registration (exactly: a power of two); correlation does not see the scale
        means *= np.float32(2.0 ** -np.ceil(np.log2(peak)))
    return means, known


def scan_reflection(image: np.ndarray, hole: np.ndarray, affine: np.ndarray) -> Reflection:
    """`find_reflection` of a scan in file voxel order, found in its closest-RAS order (so a scan stored in any
    voxel order - LAS, RAS, LPI, ... as converters write it - gets the same mirror) and given in file voxels."""
    reo = Reorientation.of(affine, image.shape)
    found = find_reflection(reo.view(image), reo.view(hole), voxel_sizes(reo.ras_affine),
                            lateral_axis(reo.ras_affine))
    return found.through(inv_ornt_aff(reo.to_ras, image.shape))


def _register(images: list, small: np.ndarray, known: np.ndarray,
              angles: tuple[float, float, float]) -> tuple[sitk.Transform, float]:
    """The rigid registration of the flipped coarse image onto the image, started at the moments' centre and
    `angles` (degrees about the image axes), and the correlation it reaches over the known blocks."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)  # one work split on every machine: the same result at any core count
    reg.SetMetricAsCorrelation()
    reg.SetMetricFixedMask(images[2])
    reg.SetMetricMovingMask(images[3])
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1, 0])
    start = sitk.Euler3DTransform(run_interruptibly(lambda: sitk.CenteredTransformInitializer(
        images[0], images[1], sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)))
    if any(angles):
        start.SetRotation(*(float(np.radians(a)) for a in angles))
    reg.SetInitialTransform(start, inPlace=False)
    try:
        transform = run_interruptibly(lambda: reg.Execute(images[0], images[1]))
    except RuntimeError as exc:
        raise NoReflection(f"the mid-sagittal registration failed ({_itk_reason(exc)})") from None
    moved = _array(sitk.Resample(images[1], images[0], transform, sitk.sitkLinear, 0.0))
    overlap = known & (_array(sitk.Resample(images[3], images[0], transform, sitk.sitkNearestNeighbor, 0)) > 0)
    with np.errstate(divide="ignore", invalid="ignore"):   # a constant image: NaN, counted as no match (0)
        correlation = float(np.corrcoef(small[overlap], moved[overlap])[0, 1]) if overlap.sum() >= MIN_BLOCKS else 0.0
    return transform, correlation if np.isfinite(correlation) else 0.0


def find_reflection(image: np.ndarray, hole: np.ndarray, spacing: Sequence[float], axis: int) -> Reflection:
    """Register `image` flipped along `axis` rigidly onto itself on a coarse grid, hole voxels left out.

    The coarse grid holds block means of about COARSE_MM (coarser when that gives more than MAX_BLOCKS;
    read a slab at a time: no whole-volume copy); non-finite voxels count as 0. The SimpleITK calls
    run interruptibly (`core.job.run_interruptibly`): Ctrl+C stops them. A registration that ends below
    MIN_CORRELATION is started again from RESTARTS_DEG (a strongly rotated head) and the best one kept. Raises
    NoReflection when the volume is too small, a registration fails or the best correlation stays below
    MIN_CORRELATION.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    step = np.maximum(1, np.round(COARSE_MM / spacing)).astype(int)
    blocks = float(np.prod(np.array(image.shape) // step, dtype=np.float64))
    if blocks > MAX_BLOCKS:  # a huge field of view: coarser blocks keep the registration's work bounded
        step *= int(np.ceil(np.cbrt(blocks / MAX_BLOCKS)))
    small, known = _block_means(image, hole, step)
    if known.sum() < MIN_BLOCKS:
        raise NoReflection(f"too little known tissue to find the mid-sagittal plane ({int(known.sum())} blocks "
                           f"of {COARSE_MM:g} mm, {MIN_BLOCKS} needed)")
    if min(small.shape) < MIN_SIDE:   # the registration's smoothing needs that many blocks along every axis
        thin = int(np.argmin(small.shape))
        raise NoReflection(f"the volume is too thin to find the mid-sagittal plane ({image.shape[thin] * spacing[thin]:g} "
                           f"mm along one axis, {MIN_SIDE * step[thin] * spacing[thin]:g} mm needed)")
    flip = [slice(None)] * 3
    flip[axis] = slice(None, None, -1)
    coarse = spacing * step
    origin = (step - 1) / 2.0 * spacing     # block centres in mm from voxel 0 of the image
    images = [_itk(a, coarse, origin) for a in (small, small[tuple(flip)], known.astype(np.uint8),
                                                known[tuple(flip)].astype(np.uint8))]
    transform, correlation = _register(images, small, known, (0.0, 0.0, 0.0))
    if not correlation >= MIN_CORRELATION:   # a head rotated by 20 degrees or more: its mirror turns twice that,
        for angles in RESTARTS_DEG:          # beyond the reach of a registration started at no rotation
            tried = _register(images, small, known, angles)
            if tried[1] > correlation:
                transform, correlation = tried
    if not correlation >= MIN_CORRELATION:
        raise NoReflection(f"the hemispheres do not match (correlation {correlation:.2f} after registration, "
                           f"{MIN_CORRELATION} needed)")
    # point x (mm from voxel 0) -> T(x) in the flipped image -> the same tissue in the image
    extent = (np.array(small.shape) - 1) * coarse
    points = np.vstack([np.zeros(3), np.eye(3)])
    mapped = np.array([transform.TransformPoint(tuple(float(v) for v in p)) for p in points])
    mapped[:, axis] = 2 * origin[axis] + extent[axis] - mapped[:, axis]
    linear = (mapped[1:] - mapped[0]).T          # mm -> mm
    matrix = np.zeros((3, 4))
    matrix[:, :3] = (linear * spacing[None, :]) / spacing[:, None]
    matrix[:, 3] = mapped[0] / spacing
    return Reflection(matrix=matrix, correlation=correlation)


def mirrored_box(image: np.ndarray, hole: np.ndarray, reflection: Reflection, box: tuple[slice, ...],
                 needed: Optional[np.ndarray] = None) -> np.ndarray:
    """The mirrored image on `box` (float32); NaN where the mirror falls on a hole, outside the volume or on a
    non-finite voxel. With `needed` (bool, the box's shape) only those voxels are computed, the others are NaN."""
    coords = reflection.source_voxels(box, needed)
    values = ndimage.map_coordinates(image, coords, order=1, mode="constant", cval=np.nan, output=np.float32)
    # any hole voxel in a value's interpolation footprint: unknown (the lesion's values never enter)
    on_hole = ndimage.map_coordinates(np.asarray(hole, dtype=bool).view(np.uint8), coords, order=1,
                                      mode="constant", cval=1, output=np.float32)
    unknown = (on_hole > 0) | ~np.isfinite(values)
    values[unknown] = np.nan
    if needed is None:
        return values
    result = np.full(needed.shape, np.nan, dtype=np.float32)
    result[needed] = values
    return result


def demons_region(hole: np.ndarray, spacing: Sequence[float], hole_ml: float) -> tuple[slice, ...]:
    """Where a crop's mirror is aligned: on voxels finer than DEMONS_GRID_MM, the hole's box plus DEMONS_MARGIN_MM
    for a hole under BIN_MIN_ML (which is aligned at full resolution); all of the crop otherwise."""
    coarse = all(b == 1 for b in demons_bins(spacing, BIN_MIN_ML))   # 2 mm voxels: the crop is small already
    if coarse or hole_ml >= BIN_MIN_ML or not hole.any():
        return tuple(slice(0, n) for n in hole.shape)
    return hole_box(hole, margin=np.ceil(DEMONS_MARGIN_MM / np.asarray(spacing, dtype=np.float64)).astype(int))


def demons_bins(spacing: Sequence[float], hole_ml: float) -> list[int]:
    """Voxels per bin along each axis for a lesion's alignment: as many as fit in DEMONS_GRID_MM (at least 1)
    for a hole of BIN_MIN_ML or more, none (all 1) for a smaller one."""
    if hole_ml < BIN_MIN_ML:
        return [1, 1, 1]
    return [max(1, int(np.floor(DEMONS_GRID_MM / float(s) + 1e-6))) for s in spacing]


def mirror_detail(filled: np.ndarray, mirror: np.ndarray, hole: np.ndarray, spacing: Sequence[float],
                  lesion: Optional[np.ndarray] = None) -> np.ndarray:
    """What the mirror adds inside `hole` of a crop: the locally aligned mirror minus its biharmonic fill.

    `filled`: the crop with the hole filled smoothly (the alignment target); `mirror`: `mirrored_box`
    of the crop in the same units (NaN: unknown). Unknown mirror voxels are filled smoothly first,
    so they add little detail; zero outside the hole, and everywhere when nothing is known.
    `lesion`: the part of `hole` the crop is filled for (default: all of it; `align_mirror`).
    """
    return align_mirror(filled, mirror, hole, spacing, lesion)[1]


def align_mirror(filled: np.ndarray, mirror: np.ndarray, hole: np.ndarray, spacing: Sequence[float],
                 lesion: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The mirror aligned locally to `filled` (unknown voxels filled smoothly) and its detail (`mirror_detail`).

    The alignment runs on `demons_region` of `lesion` (the part of `hole` the crop is filled for; default: all
    of it, so other lesions in the crop do not widen a small lesion's region); outside it the mirror stays where
    the reflection puts it. With nothing known of the mirror, the aligned mirror is `filled` itself and the
    detail zero.
    """
    unknown = ~np.isfinite(mirror)
    if unknown.all():
        return np.asarray(filled, dtype=np.float32).copy(), np.zeros(hole.shape, dtype=np.float32)
    mirror = np.where(unknown, 0.0, mirror).astype(np.float32)
    if unknown.any():
        mirror = biharmonic_fill_3d(mirror, unknown, spacing)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfThreads(1)
    demons.SetNumberOfIterations(DEMONS_ITERATIONS)
    demons.SetStandardDeviations(DEMONS_SIGMA_VOXELS)
    lesion = hole if lesion is None else lesion
    hole_ml = float(np.count_nonzero(lesion)) * float(np.prod(spacing)) / 1000.0
    region = demons_region(lesion, spacing, hole_ml)
    fixed = _itk(np.asarray(filled[region], dtype=np.float32), spacing)
    moving = _itk(np.ascontiguousarray(mirror[region]), spacing)
    bins = demons_bins(spacing, hole_ml)
    if any(b > 1 for b in bins):   # the field is smooth: found on binned voxels, applied at full resolution
        field = run_interruptibly(lambda: demons.Execute(sitk.BinShrink(fixed, bins), sitk.BinShrink(moving, bins)))
    else:
        field = run_interruptibly(lambda: demons.Execute(fixed, moving))
    warp = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    aligned = mirror.copy()
    aligned[region] = _array(sitk.Resample(moving, fixed, warp, sitk.sitkLinear, 0.0))
    smooth = biharmonic_fill_3d(np.where(hole, 0.0, aligned).astype(np.float32), hole, spacing)
    return aligned, np.where(hole, aligned - smooth, 0.0).astype(np.float32)


def _itk_reason(exc: Exception) -> str:
    """The last line of an ITK exception without its class name and memory address ("ITK ERROR: Filter(0x...): ")."""
    return re.sub(r"^.*ITK ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", str(exc).strip().splitlines()[-1])[:120]
