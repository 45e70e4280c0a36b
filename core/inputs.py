"""Checks of what `fill_volume` is given, shared by the command line, the app and the Python API.

`prepare_fill_inputs` runs first in `core.fill.fill_volume`: it refuses malformed arguments with
one sentence (InpaintError) and counts the image's non-finite voxels. Every check and statistic
here treats those as 0, the background value, and the fill zeroes them in the part it works on,
so a NaN or infinity can never reach the model or the blend; the result starts from the input,
so voxels outside the hole keep their values (NaN included) bit for bit. `check_filled` runs
last: no hole voxel may be non-finite. `check_known_brain` says, naming files where the caller
knows them, why no known brain tissue is left. `hole_slab` gives the slab of slices a fill touches
and `hole_box` the box around the hole, so that big volumes can be processed without whole-volume
copies; whole-volume checks go part by part (`core.volume.chunks`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np
from nibabel.orientations import io_orientation
from scipy import ndimage

from .errors import InpaintError
from .normalize import BRAIN_FRACTION, MIN_KNOWN_BRAIN, ROBUST_MAX_PERCENTILE
from .search import DEFAULT_AXIS, PLANE_NAMES, SearchSettings, check_settings
from .volume import chunks

MIN_VOXEL_MM, MAX_VOXEL_MM = 0.05, 20.0  # supported voxel sizes (see `affine_problem`)
MAX_INTENSITY = 1e30  # largest magnitude of a known voxel (see `check_intensities`)
MAX_HOLE_VOXELS = 1 << 20  # voxels one fill may fill (1 l at 1 mm): the solves grow with them
MAX_CROP_VOXELS = 1 << 25  # refine3d: one lesion's box plus margin, native voxels
MAX_GRID_VOXELS = 1 << 21  # refine3d: the same box on the refiner's grid (a 256 mm cube at 2 mm)
MASK_VALUES = 8  # an image of at most this many distinct values looks like a mask (`check_known_brain`)


def affine_problem(matrix: np.ndarray) -> Optional[str]:
    """What makes a 4x4 voxel-to-mm matrix unusable, as the end of a sentence about it (None: usable).

    Voxel sizes (column lengths) must lie within MIN_VOXEL_MM..MAX_VOXEL_MM: beyond them the fill's
    resampling to the refiner's 2 mm grid or the mirror's 4 mm blocks makes unbounded work.
    """
    if not np.isfinite(matrix).all():
        return "contains NaN or infinite values"
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        return f"has the last row {matrix[3].tolist()}, not [0, 0, 0, 1]"
    sizes = np.linalg.norm(matrix[:3, :3], axis=0)
    if not sizes.min() > 0 or not np.linalg.svd(matrix[:3, :3] / sizes, compute_uv=False).min() > 1e-6:
        return "is singular (a voxel axis has zero length or two axes coincide)"
    if not ((sizes >= MIN_VOXEL_MM) & (sizes <= MAX_VOXEL_MM)).all():
        shown = " x ".join(f"{v:.3g}" for v in sizes)
        return (f"gives voxels of {shown} mm, outside the {MIN_VOXEL_MM:g}-{MAX_VOXEL_MM:g} mm this tool supports "
                "(a wrong unit or scale in the header?)")
    return None


def check_affine(affine: Any) -> np.ndarray:
    """The 4x4 voxel-to-mm matrix as float64; InpaintError if it is not 4x4, not finite, singular or its
    voxel sizes lie outside MIN_VOXEL_MM..MAX_VOXEL_MM."""
    try:
        matrix = np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise InpaintError("The affine is not a numeric matrix; pass the image's 4x4 voxel-to-millimetre "
                           "matrix (Volume.affine or nibabel's img.affine).") from None
    if matrix.shape != (4, 4):
        raise InpaintError(f"The affine has shape {'x'.join(map(str, matrix.shape)) or 'scalar'}, not 4x4; pass the "
                           "image's 4x4 voxel-to-millimetre matrix (Volume.affine or nibabel's img.affine).")
    problem = affine_problem(matrix)
    if problem:
        raise InpaintError(f"The affine {problem}; pass the image's 4x4 voxel-to-millimetre matrix as read from "
                           "its file.")
    return matrix


def check_intensities(image: np.ndarray, hole: np.ndarray, name: str = "the image") -> None:
    """InpaintError, naming `name`, when a finite known voxel's magnitude exceeds MAX_INTENSITY (part by part).

    Beyond it float32 sums, ranges and moments overflow (the mirror's registration spun forever on
    values near 1e38); no scanner or normalisation gives such values.
    """
    peak = 0.0
    for part in chunks(image.shape):
        values = np.abs(image[part][~hole[part]])
        finite = values[values < np.inf]
        if finite.size:
            peak = max(peak, float(finite.max()))
    if peak > MAX_INTENSITY:
        raise InpaintError(f"{_sentence(name)} has values up to {peak:.3g}, beyond the {MAX_INTENSITY:g} this tool "
                           "accepts (no MRI scale reaches it: a wrong scale factor?); rescale the image, e.g. divide "
                           "it by a power of ten, and fill again.")


def _sentence(text: str) -> str:
    """`text` with its first letter in upper case (str.capitalize would lower-case file names)."""
    return text[:1].upper() + text[1:]


def _shape(array: np.ndarray) -> str:
    return "x".join(map(str, array.shape)) or "scalar"


def _tissue(values: np.ndarray, above: float = 0.0) -> np.ndarray:
    """Finite voxels above `above` (0, or the constant background of an offset scan): non-finite voxels count as
    background."""
    return (values > above) & (values < np.inf)


def _known_tissue(image: np.ndarray, hole: np.ndarray, part: slice, above: float = 0.0) -> np.ndarray:
    return _tissue(image[part], above) & ~hole[part]


def check_known_brain(image: np.ndarray, hole: np.ndarray, brain: Optional[np.ndarray] = None, *,
                      image_name: str = "the image", mask_name: str = "the hole",
                      brain_name: str = "the brain mask", background: float = 0.0) -> None:
    """InpaintError, naming the file at fault, when fewer than MIN_KNOWN_BRAIN brain voxels lie outside the hole.

    `background`: the scan's constant background (`background_value`; tissue lies above it).

    Non-finite image voxels count as background (0). Without `brain`, tissue is estimated as
    `core.normalize.estimate_brain` does, on the image with the hole set to 0. Works part by part
    (no whole-volume temporaries).
    """
    parts = list(chunks(hole.shape))
    if brain is not None:
        if not any(brain[part].any() for part in parts):
            raise InpaintError(f"{_sentence(brain_name)} contains no brain voxel; pass a mask that is nonzero on "
                               "the brain, or leave the brain mask out to estimate it.")
        known = sum(int(np.count_nonzero(brain[part] & ~hole[part])) for part in parts)
        if known < MIN_KNOWN_BRAIN:
            raise InpaintError(f"{_sentence(brain_name)} lies (almost) entirely inside {mask_name}, so no known "
                               f"brain tissue is left to match the fill to ({known} voxels); pass the brain mask, not "
                               "the lesion mask, or a lesion mask that covers only the lesion.")
        return
    if not any(_tissue(image[part], background).any() for part in parts):
        raise InpaintError(f"{_sentence(image_name)} has no positive voxel (it is empty, all 0 or negative), so "
                           "there is no brain tissue to fill from; choose a brain-extracted T1 image.")
    count = sum(int(np.count_nonzero(_known_tissue(image, hole, part, background))) for part in parts)
    if count >= 2000:  # at least 1% of them lie above the 99th percentile, so the estimate keeps >= 10
        return
    values = np.concatenate([image[part][_known_tissue(image, hole, part, background)] for part in parts]) - background
    enough = values.size > 0 and int(np.count_nonzero(values > BRAIN_FRACTION * np.percentile(values, ROBUST_MAX_PERCENTILE))) \
        >= MIN_KNOWN_BRAIN
    if not enough:
        labels = _few_values(image, MASK_VALUES)
        fix = ("the mask must be nonzero only on the lesion (threshold a probability map first)" if labels is None else
               f"{image_name} holds only the values {', '.join(f'{v:g}' for v in labels)}, like a mask, so the image "
               "and the mask may be swapped: give the image first, then the mask")
        raise InpaintError(f"{_sentence(mask_name)} covers (almost) every nonzero voxel of {image_name}, so no "
                           f"known brain tissue is left to match the fill to ({count} voxels); {fix}.")


def _few_values(image: np.ndarray, most: int) -> Optional[list[float]]:
    """The distinct finite values of `image` when there are at most `most` of them (else None), read part by part."""
    found: set[float] = set()
    for part in chunks(image.shape):
        values = image[part]
        found.update(np.unique(values[np.isfinite(values)]).tolist())
        if len(found) > most:
            return None
    return sorted(found)


def prepare_fill_inputs(image: Any, affine: Any, hole: Any, model: Any, settings: Any, *,
                        brain: Any = None) -> tuple[np.ndarray, int]:
    """Validate `fill_volume`'s arguments (`model` may be None); returns the image as float32 (itself when it
    already is, never cleaned in place) and the number of its non-finite voxels outside the hole, which the
    fill treats as background (0) and leaves unchanged.

    Raises InpaintError with one sentence for: settings out of range, an image that is not a real 3D
    array, an affine that is not an invertible 4x4 matrix with voxels of MIN_VOXEL_MM..MAX_VOXEL_MM, a hole
    or brain of another shape, an empty hole, known values beyond MAX_INTENSITY, and no known brain tissue
    outside the hole.
    """
    if not isinstance(settings, SearchSettings):
        raise InpaintError(f"settings must be a FillSettings, not {type(settings).__name__}; "
                           "pass core.fill.FillSettings(...).")
    check_settings(settings)
    axis = getattr(settings, "axis", None) or getattr(model, "axis", DEFAULT_AXIS)
    if axis not in PLANE_NAMES:
        raise InpaintError(f"The plane {axis!r} is not one of {', '.join(PLANE_NAMES)}; choose one of them.")
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise InpaintError(f"The image holds {array.dtype} values; pass a real-valued (integer or float) 3D array.")
    if array.ndim != 3 or array.size == 0:
        raise InpaintError(f"The image has shape {_shape(array)}; pass a non-empty 3D array in file voxel order.")
    check_affine(affine)
    hole = np.asarray(hole)
    if hole.shape != array.shape:
        raise InpaintError(f"The hole has shape {_shape(hole)} but the image has shape {_shape(array)}; pass a mask "
                           "on the image's voxel grid.")
    if brain is not None:
        brain = np.asarray(brain)
        if brain.shape != array.shape:
            raise InpaintError(f"The brain mask has shape {_shape(brain)} but the image has shape {_shape(array)}; "
                               "pass a brain mask on the image's voxel grid, or None to estimate it.")
        if brain.dtype.kind == "f" and not all(np.array_equal(part, np.round(part)) for part in
                                               (brain[c] for c in chunks(brain.shape))):   # NaN fails too
            raise InpaintError("The brain mask holds values other than whole numbers (a probability map, or NaN); "
                               "pass `probabilities > threshold` (e.g. 0.5) as the brain mask.")
        brain = brain.astype(bool, copy=False)
    if hole.dtype.kind == "f" and not all(np.array_equal(part, np.round(part)) for part in
                                          (hole[c] for c in chunks(hole.shape))):   # NaN fails too
        raise InpaintError("The hole holds values other than whole numbers (a probability map, or NaN); pass "
                           "`probabilities > threshold` (e.g. 0.5), as `inpaint fill --threshold` does.")
    hole = hole.astype(bool, copy=False)
    if not hole.any():
        raise InpaintError("The hole is empty: there is nothing to fill; paint or choose the lesion mask.")
    count = sum(int(np.count_nonzero(hole[part])) for part in chunks(hole.shape))
    if count > MAX_HOLE_VOXELS:
        raise InpaintError(f"The hole has {count:,} voxels, more than the {MAX_HOLE_VOXELS:,} one fill handles in "
                           "bounded time and memory; fill a smaller mask, or the image resampled to larger voxels.")
    array = array.astype(np.float32, copy=False)
    nonfinite = count_nonfinite_known(array, hole)
    check_intensities(array, hole)
    check_known_brain(array, hole, brain, background=background_value(array))
    return array, nonfinite


def check_lesion_boxes(hole: np.ndarray, spacing: Any, margin_mm: float, grid_mm: float) -> None:
    """InpaintError when a lesion (26-connected) with `margin_mm` around it spans more than MAX_CROP_VOXELS
    native voxels or MAX_GRID_VOXELS on a `grid_mm` grid: the work of `core.refine3d.refine_fill` per lesion."""
    spacing = np.asarray(spacing, dtype=np.float64)
    margin = np.ceil(margin_mm / spacing).astype(int)
    labels, _ = ndimage.label(hole, structure=ndimage.generate_binary_structure(3, 3))
    for box in ndimage.find_objects(labels):
        native = [min(n, s.stop + m) - max(0, s.start - m) for s, n, m in zip(box, hole.shape, margin)]
        grid = [int(np.floor((n - 1) * h / grid_mm)) + 1 for n, h in zip(native, spacing)]
        if np.prod(native, dtype=np.float64) > MAX_CROP_VOXELS or np.prod(grid, dtype=np.float64) > MAX_GRID_VOXELS:
            shown = " x ".join(f"{n * h:.0f}" for n, h in zip(native, spacing))
            raise InpaintError(f"A lesion of the hole spans {shown} mm with its {margin_mm:g} mm margin, "
                               f"{np.prod(native, dtype=np.float64):.3g} voxels ({np.prod(grid, dtype=np.float64):.3g} on "
                               f"the refiner's {grid_mm:g} mm grid), more than the {MAX_CROP_VOXELS:.3g} "
                               f"({MAX_GRID_VOXELS:.3g}) refine3d handles in bounded time and memory; split the mask, "
                               "or use --method slices2d.")


def count_nonfinite_known(image: np.ndarray, hole: np.ndarray) -> int:
    """Number of NaN or infinite voxels of `image` outside `hole`, counted part by part."""
    return sum(int(np.count_nonzero(~np.isfinite(image[part]) & ~hole[part])) for part in chunks(image.shape))


def check_filled(filled: np.ndarray, hole: np.ndarray, method: str, model: Any = None,
                 refiner: Optional[dict] = None) -> None:
    """Last step of a fill: InpaintError naming what produced the hole's values (the 3D refiner's record for
    refine3d, the slice model of a method that uses one, else the method) if a hole voxel is not finite."""
    bad = int(np.count_nonzero(~np.isfinite(filled[np.asarray(hole, dtype=bool)])))
    if not bad:
        return
    if method == "refine3d":
        refiner = refiner or {}
        raise InpaintError(f"The 3D refiner {refiner.get('name', '?')} ({refiner.get('path') or 'in memory'}) "
                           f"produced {bad} NaN or infinite values in the hole, so nothing was written; its weights "
                           "are unusable: restore it from the release, or fill with --method slices2d.")
    if model is None:
        raise InpaintError(f"The fill method {method} produced {bad} NaN or infinite values in the hole, so nothing "
                           "was written; choose another method (and report it to whoever wrote this one).")
    name = getattr(model, "name", "?")
    raise InpaintError(f"The model {name} ({getattr(model, 'path', None) or 'in memory'}) produced {bad} NaN or "
                       "infinite values in the hole, so nothing was written; its weights or the settings are "
                       "unusable: choose another model or smaller --lr/--lambda.")


def hole_slab(hole: np.ndarray, affine: np.ndarray, axis: str, margin: int = 0) -> tuple[slice, slice, slice]:
    """Index box, in file voxel order, of the slices of plane `axis` (closest-RAS sense) that touch the hole,
    widened by `margin` slices each side; the in-plane axes keep their full extent.

    `image[box]` is a view, so a caller can process only this slab of a large volume and copy the
    result back with `filled[box] = slab_result`.
    """
    k = {"sagittal": 0, "coronal": 1, "axial": 2}[axis]
    file_axis = int(np.nonzero(io_orientation(affine)[:, 0] == k)[0][0])
    box = [slice(None)] * 3
    box[file_axis] = _extent(np.asarray(hole, dtype=bool), file_axis, margin)
    return tuple(box)  # type: ignore[return-value]


def hole_box(hole: np.ndarray, margin: Union[int, Sequence[int]] = 0) -> tuple[slice, slice, slice]:
    """Index box of the hole's voxels widened by `margin` voxels on every side, or per axis (clipped to the volume)."""
    hole = np.asarray(hole, dtype=bool)
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (3,))
    return tuple(_extent(hole, axis, int(margins[axis])) for axis in range(3))  # type: ignore[return-value]


def count_lesions(hole: np.ndarray) -> int:
    """The number of lesions (26-connected parts) of `hole`, labelled on its bounding box."""
    return int(ndimage.label(hole[hole_box(hole)], structure=np.ones((3, 3, 3), dtype=bool))[1])


def _extent(hole: np.ndarray, axis: int, margin: int) -> slice:
    """The indices along `axis` that hold hole voxels, widened by `margin` (clipped; all of it for an empty hole)."""
    touched = np.nonzero(hole.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    if not touched.size:
        return slice(None)
    return slice(max(0, int(touched[0]) - margin), min(hole.shape[axis], int(touched[-1]) + 1 + margin))


BACKGROUND_SHARE = 0.9  # `background_value`: the share of the volume's border voxels one value must hold


def background_value(image: np.ndarray) -> float:
    """The image's background when it is a constant other than 0 (a z-scored or offset brain-extracted scan):
    the one finite value at least BACKGROUND_SHARE of the volume's border voxels hold; 0 otherwise.

    The fill subtracts it first and adds it back, so such a scan is filled as the same scan with background 0.
    """
    faces = np.concatenate([np.take(image, index, axis=axis).ravel() for axis in range(3) for index in (0, -1)])
    finite = faces[np.isfinite(faces)]
    if not finite.size:
        return 0.0
    values, counts = np.unique(finite, return_counts=True)
    top = int(np.argmax(counts))
    return float(values[top]) + 0.0 if counts[top] >= BACKGROUND_SHARE * faces.size else 0.0   # + 0.0: no -0.0


OTHER_CONTRASTS = {"t2w": "T2-weighted", "t2": "T2-weighted", "flair": "FLAIR", "t2starw": "T2*-weighted",
                   "t2star": "T2*-weighted", "pdw": "proton-density", "dwi": "diffusion",
                   "bold": "BOLD"}


def other_contrast(path: Union[str, os.PathLike]) -> Optional[str]:
    """The contrast a file's name says it holds when that is not T1-weighted (a BIDS suffix such as `_FLAIR`, or a
    word of the name such as `t2`), else None; the networks learned T1-weighted brains only."""
    words = re.split(r"[^a-z0-9*]+", Path(path).name.lower().replace("t2*", "t2star"))
    found = [OTHER_CONTRASTS[w] for w in words if w in OTHER_CONTRASTS]
    return found[-1] if found and not {"t1w", "t1"} & set(words) else None


OUTSIDE_REACH = 10   # voxels beyond the hole's box a background region must reach to count as outside the brain


def outside_brain(image: np.ndarray, hole: np.ndarray, brain: Optional[np.ndarray],
                  background: float) -> Optional[np.ndarray]:
    """Hole voxels outside the brain, which a fill leaves as they are (None when there are none): outside `brain`
    when it is given; without it, hole voxels holding the background (`background`, or not finite) that connect
    through such voxels to the edge of the hole's box widened by OUTSIDE_REACH voxels (a mask spilling over the
    brain's edge onto the background around it). A dark cavity enclosed by tissue within that reach is filled,
    even where it pokes out of the mask. Works on that box: no whole-volume temporaries."""
    hole = np.asarray(hole, dtype=bool)
    if brain is not None:
        box = hole_box(hole)
        found = hole[box] & ~np.asarray(brain[box], dtype=bool)
    else:
        box = hole_box(hole, margin=OUTSIDE_REACH)
        inside = hole[box]
        part = image[box]
        empty = ~np.isfinite(part) | (part == background)
        if not (empty & inside).any():
            return None
        labels, _ = ndimage.label(empty, structure=np.ones((3, 3, 3), dtype=bool))
        edges = np.concatenate([np.take(labels, index, axis=axis).ravel() for axis in range(3) for index in (0, -1)])
        found = np.isin(labels, np.unique(edges[edges > 0])) & inside
    if not found.any():
        return None
    outside = np.zeros(hole.shape, dtype=bool)
    outside[box] = found
    return outside


class VolumeContext(NamedTuple):
    """What a fill of part of a volume needs from the whole of it."""

    scale: Any                      # core.normalize.IntensityScale
    centre: tuple[float, float]     # the model grid's centre (closest-RAS in-plane voxel indices)
    brain_voxels: int               # the brain (the brain mask, or the estimate) with the hole
    known_range: tuple[float, float]  # the lowest and highest known brain intensity (a fill stays within them)


def volume_context(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, axis: str,
                   brain: Optional[np.ndarray] = None) -> VolumeContext:
    """What a fill needs from the whole volume, without whole-volume float copies: the intensity scale,
    the model grid's centre (closest-RAS in-plane voxel indices of the brain's bounding box) and the
    brain's size.

    Equal to `core.normalize.intensity_scale(image, brain or estimate_brain(image with the hole at 0), hole)` and
    `SliceGrid.for_volume(brain | hole, ...).center`, so a fill run on `image[hole_slab(...)]` with these
    two values gives the same result as on the whole volume (the slab keeps the in-plane extent).
    Non-finite image voxels count as background (0); whole-volume work goes part by part.
    """
    from .modelspace import Reorientation, plane_axes
    from .normalize import LOWER_PERCENTILE, UPPER_PERCENTILE, IntensityScale

    hole = np.asarray(hole, dtype=bool)
    parts = list(chunks(image.shape))
    if brain is None:  # estimate_brain on the image with the hole set to 0
        positive = np.concatenate([image[part][_known_tissue(image, hole, part)] for part in parts])
        threshold = BRAIN_FRACTION * float(np.percentile(positive, ROBUST_MAX_PERCENTILE)) if positive.size else np.inf
        del positive
        region = np.empty(image.shape, dtype=bool)
        for part in parts:
            region[part] = _known_tissue(image, hole, part, threshold)
    else:
        region = np.asarray(brain, dtype=bool) & ~hole
    values = image[region]
    if values.size < MIN_KNOWN_BRAIN:
        raise InpaintError(f"Only {values.size} known brain voxels are left outside the hole; use a brain-extracted "
                           "image with a mask that covers only the lesion.")
    values[~np.isfinite(values)] = 0  # background, as everywhere in the fill
    known_range = (float(values.min()), float(values.max()))
    lo = min(0.0, float(np.percentile(values, LOWER_PERCENTILE, overwrite_input=True)))  # no copy of `values`
    hi = float(np.percentile(values, UPPER_PERCENTILE, overwrite_input=True))
    del values
    scale = IntensityScale(lo=lo, hi=hi if hi > lo else lo + 1.0)
    region |= hole  # brain_r = brain | hole
    brain_voxels = int(np.count_nonzero(region))
    reo = Reorientation.of(affine, image.shape)
    _, a, b = plane_axes(axis)
    ras = reo.apply(region)
    extent = []
    for ax in (a, b):
        present = np.nonzero(ras.any(axis=tuple(x for x in range(3) if x != ax)))[0]
        extent.append((present.min() + present.max()) / 2.0)
    return VolumeContext(scale, (float(extent[0]), float(extent[1])), brain_voxels, known_range)
