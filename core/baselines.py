"""Classical lesion-filling baselines for `inpaint bench`.

Each takes a float32 3D image and a bool hole of the same shape and returns a float32
volume equal to the image bit for bit outside the hole. Hole voxels of the input are
never read: a baseline sees only the known voxels.

- `border_mean_fill`: every connected hole component gets the mean of its outer border.
- `biharmonic_fill`: scikit-image's biharmonic inpainting, slice by slice in one plane of
  a RAS-ordered volume. Slice-wise rather than 3D so that it is the like-for-like
  classical counterpart of the 2D generative models (same plane, same context); each
  slice is cropped to the hole's bounding box plus a margin.
- `biharmonic_3d_fill`: the same inpainting in 3D, per 26-connected hole component on its
  bounding box plus a margin: it uses the slices above and below the lesion, which makes
  it the strongest classical fill on voxels of equal size (one line of scikit-image per lesion).
- `biharmonic_3d_mm_fill`: biharmonic inpainting in 3D with the Laplacian weighted by the voxel
  size (`core.blend3d`, the solver `refine3d` starts from): scikit-image's treats a 3 mm slice
  step like a 1 mm one, which on thick-slice scans makes this the strongest classical fill.
- `harmonic_3d_fill`: the Laplace fill in 3D (7-point Laplacian, voxel-size weighted,
  Dirichlet boundary from every known neighbour; `core.blend3d`).
- `fsl_style_fill`: in the manner of FSL `lesion_filling` as published (Battaglini et al.,
  Hum Brain Mapp 2012): hole voxels take intensities drawn at random from the normal
  white matter around each lesion, then the fill's inner border is smoothed.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu
from skimage.restoration import inpaint_biharmonic

from .blend3d import biharmonic_fill_3d, poisson_blend_3d
from .modelspace import plane_axes

BIHARMONIC_MARGIN = 4          # voxels of context kept around a slice's hole
FSL_MIN_SAMPLES = 30           # white-matter voxels needed around a lesion before sampling
FSL_SHELL = 3                  # first neighbourhood radius (voxels), doubled until enough samples

_FACE = ndimage.generate_binary_structure(3, 1)
_FULL = ndimage.generate_binary_structure(3, 3)


def _check(image: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float32)
    hole = np.asarray(hole, dtype=bool)
    if image.ndim != 3 or image.shape != hole.shape:
        raise ValueError(f"need a 3D image and a hole of the same shape, got {image.shape} and {hole.shape}")
    if hole.all():
        raise ValueError("the hole covers the whole image: there is no context to fill from")
    return image, hole


def _grown_box(box: tuple[slice, ...], shape: tuple[int, ...], margin: int) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, shape))


def border_mean_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill each 26-connected hole component with the mean of its 6-connected outer border."""
    image, hole = _check(image, hole)
    out = image.copy()
    labels, _ = ndimage.label(hole, structure=_FULL)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        crop = _grown_box(box, hole.shape, 1)
        component = labels[crop] == index
        border = ndimage.binary_dilation(component, structure=_FACE) & ~hole[crop]
        out[crop][component] = np.float32(image[crop][border].mean(dtype=np.float64))
    return out


def biharmonic_fill(image: np.ndarray, hole: np.ndarray, axis: str = "axial") -> np.ndarray:
    """Biharmonic inpainting of each slice of plane `axis` ('axial', 'coronal', 'sagittal') of a RAS volume."""
    image, hole = _check(image, hole)
    k = plane_axes(axis)[0]
    out = image.copy()
    img = np.moveaxis(image, k, 0)
    msk = np.moveaxis(hole, k, 0)
    dst = np.moveaxis(out, k, 0)  # a view: writing it writes `out`
    for i in np.flatnonzero(msk.any(axis=(1, 2))):
        if msk[i].all():
            raise ValueError(f"slice {i} of the {axis} plane is entirely hole: nothing to fill it from")
        rows, cols = np.nonzero(msk[i])
        box = _grown_box((slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)),
                         msk[i].shape, BIHARMONIC_MARGIN)
        mask = msk[i][box]
        known = img[i][box].astype(np.float64)
        known[mask] = known[~mask].mean()  # hole values are unknowns: keep them out of the solver's clip range
        filled = inpaint_biharmonic(known, mask, split_into_regions=True)
        dst[i][box][mask] = filled[mask].astype(np.float32)
    return out


def biharmonic_3d_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Biharmonic inpainting in 3D of each 26-connected hole component, cropped to its box plus a margin."""
    image, hole = _check(image, hole)
    out = image.copy()
    labels, _ = ndimage.label(hole, structure=_FULL)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        crop = _grown_box(box, hole.shape, BIHARMONIC_MARGIN)
        mask = hole[crop]
        known = image[crop].astype(np.float64)
        known[mask] = known[~mask].mean()  # hole values are unknowns: keep them out of the solver's clip range
        filled = inpaint_biharmonic(known, mask)
        component = labels[crop] == index
        out[crop][component] = filled[component].astype(np.float32)
    return out


def biharmonic_3d_mm_fill(image: np.ndarray, hole: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Biharmonic fill in 3D with the Laplacian weighted by the voxel size `spacing` (mm)."""
    image, hole = _check(image, hole)
    return biharmonic_fill_3d(np.where(hole, np.float32(0), image), hole, spacing).astype(np.float32)


def harmonic_3d_fill(image: np.ndarray, hole: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Laplace (harmonic) fill of the hole in 3D from every known neighbour."""
    image, hole = _check(image, hole)
    return poisson_blend_3d(image, hole, None, spacing)


def estimate_white_matter(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Bright tissue class of a skull-stripped T1: known voxels above the upper 3-class Otsu threshold."""
    known = ~hole & (image > 0)
    values = image[known]
    if np.unique(values).size < 3:
        raise ValueError("too few distinct known intensities to estimate white matter; pass a white matter mask")
    upper = threshold_multiotsu(values, classes=3)[-1]
    return known & (image > upper)


def fsl_style_fill(image: np.ndarray, hole: np.ndarray, wm: Optional[np.ndarray] = None,
                   rng: Union[int, np.random.Generator] = 0) -> np.ndarray:
    """Fill lesions with random normal-appearing white matter intensities from around them.

    For each 26-connected lesion, the white matter voxels (from `wm`, or the bright tissue
    class when `wm` is None) outside the hole within a shell of 3 voxels - doubled until it
    holds at least 30 of them - form the intensity distribution; every lesion voxel takes a
    value drawn from it at random. The fill's inner border (lesion voxels touching known
    ones) is then replaced by its 3x3x3 neighbourhood mean to soften the edge.
    """
    image, hole = _check(image, hole)
    generator = np.random.default_rng(rng)
    source = estimate_white_matter(image, hole) if wm is None else np.asarray(wm, dtype=bool) & ~hole
    if not source.any():
        raise ValueError("no white matter voxels outside the hole to draw intensities from")
    out = image.copy()
    labels, _ = ndimage.label(hole, structure=_FULL)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        radius = FSL_SHELL
        while True:
            crop = _grown_box(box, hole.shape, radius)
            component = labels[crop] == index
            shell = ndimage.binary_dilation(component, structure=_FULL, iterations=radius) & source[crop]
            covers_all = all(s.start == 0 and s.stop == n for s, n in zip(crop, hole.shape))
            if shell.sum() >= FSL_MIN_SAMPLES or covers_all:
                break
            radius *= 2
        samples = image[crop][shell] if shell.any() else image[source]
        out[crop][component] = generator.choice(samples, size=int(component.sum()), replace=True)
    inner = hole & ndimage.binary_dilation(~hole, structure=_FACE)
    smooth = ndimage.uniform_filter(out.astype(np.float64), size=3, mode="nearest")
    out[inner] = smooth[inner].astype(np.float32)
    return out
