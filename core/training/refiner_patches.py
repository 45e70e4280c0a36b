"""Training patches of the 3D refiner: the brains on its grid, lesion-like holes, augmentations, the mirrored
hemisphere's patch, and the stream of batches a run draws (in worker processes with `--workers`)."""

from __future__ import annotations

import collections
import math
import multiprocessing
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..blend3d import biharmonic_fill_3d
from ..modelspace import Reorientation, voxel_sizes
from ..normalize import intensity_scale
from ..mirror import NoReflection, Reflection, align_mirror, find_reflection
from ..refine3d import clip_base, resample
from ..volume import load_mask, load_volume


PATCH = 32


@dataclass
class Brain:
    """One training brain on the refiner's grid in model range, with its brain mask."""

    image: np.ndarray
    brain: np.ndarray
    centres: np.ndarray   # voxels deep enough in the brain to centre a patch on
    reflection: Optional[Reflection] = None   # its mid-sagittal reflection, for mirror inputs


def load_brain(image_path: Path, mask_path: Optional[Path], spacing_mm: float,
               centre_depth_mm: Optional[float] = None, mirror: bool = False) -> Brain:
    """Skull-strip with the mask (default: nonzero voxels), reorient to RAS, resample to the model grid.

    Patches are centred at least `centre_depth_mm` inside the brain (default: 3 grid voxels). With
    `mirror`, the brain's mid-sagittal reflection is found as the fill finds it (`core.mirror`).
    """
    volume = load_volume(image_path)
    brain = load_mask(mask_path, volume, kind="brain") if mask_path else volume.data > 0
    reo = Reorientation.of(volume.affine, volume.data.shape)
    data = reo.apply(np.where(brain, volume.data, 0).astype(np.float32))
    brain = reo.apply(brain)
    factors = spacing_mm / voxel_sizes(reo.ras_affine)
    shape = [int(math.floor((n - 1) / f)) + 1 for n, f in zip(data.shape, factors)]
    small = resample(data, factors, shape)
    small_brain = resample(brain.astype(np.float32), factors, shape) > 0.5
    scale = intensity_scale(small, small_brain)
    image = np.where(small_brain, scale.to_model(small), -1.0).astype(np.float32)
    depth = 3 if centre_depth_mm is None else max(1, round(centre_depth_mm / spacing_mm))
    deep = ndimage.binary_erosion(small_brain, iterations=depth)
    reflection = None
    if mirror:
        try:
            unit = np.where(small_brain, (image + 1.0) / 2.0, 0.0).astype(np.float32)
            reflection = find_reflection(unit, np.zeros(unit.shape, dtype=bool), (spacing_mm,) * 3, 0)
        except NoReflection:
            pass   # this brain's patches get no mirror
    return Brain(image=image, brain=small_brain, centres=np.argwhere(deep).astype(np.int16), reflection=reflection)


HOLE_KINDS = {"blob": 0.5, "box": 0.3, "slab": 0.2}   # kind: share of the training holes
GAMMA_LOG_SD = 0.2                # each patch's intensities are raised to exp(N(0, this))...
CONTRAST_RANGE = (0.85, 1.1)      # ...and multiplied by a factor drawn from this range
LESION_DARKENING = (0.15, 0.5)    # an unpainted lesion planted in the mirror is this much darker at its core


def random_hole(rng: np.random.Generator, brain: np.ndarray, kind: Optional[str] = None,
                scale: float = 1.0) -> np.ndarray:
    """A lesion-like hole inside the patch's brain: irregular blob, box or thin slab (default: drawn).

    Sizes are drawn in 2 mm voxels and multiplied by `scale` (2.0 / the grid's spacing), so a hole
    has the same size in millimetres on every grid.
    """
    n = brain.shape[0]
    jitter = max(1, round(3 * scale))
    centre = np.array([n // 2] * 3) + rng.integers(-jitter, jitter + 1, size=3)
    grid = np.indices(brain.shape).astype(np.float32)
    if kind is None:
        kind = rng.choice(list(HOLE_KINDS), p=list(HOLE_KINDS.values()))
    if kind == "blob":
        radius = rng.uniform(1.5, 8.0, size=3) * scale
        dist = sum(((grid[a] - centre[a]) / radius[a]) ** 2 for a in range(3))
        noise = ndimage.gaussian_filter(rng.standard_normal(brain.shape).astype(np.float32), 1.5 * scale)
        noise *= scale ** 1.5   # white noise smoothed over `scale` times more voxels: the 2 mm field's spread
        hole = dist + noise * rng.uniform(0.5, 2.5) < 1.0
    elif kind == "box":
        half = np.round(rng.integers(1, 9, size=3) * scale)
        hole = np.all([np.abs(grid[a] - centre[a]) < half[a] for a in range(3)], axis=0)
    else:
        axis = int(rng.integers(3))
        thick = max(1, round(int(rng.integers(1, 5)) * scale))
        extent = rng.integers(round(6 * scale), n // 2, size=3)
        extent[axis] = thick
        lo = centre - extent // 2
        hole = np.all([(grid[a] >= lo[a]) & (grid[a] < lo[a] + extent[a]) for a in range(3)], axis=0)
    hole &= brain
    if not hole.any():
        hole[tuple(centre)] = brain[tuple(centre)]
    return hole


DEFORM_MAX_DEGREES = 15.0   # random rotation about each axis
DEFORM_SCALE = 0.1          # random scale 1 +/- this per axis
DEFORM_WARP_VOXELS = 1.5    # amplitude of the smooth random displacement field
DEFORM_WARP_SMOOTH = 4.0    # its Gaussian smoothing, in voxels


def deformation(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sampling coordinates (3, size, size, size) around the patch centre: a random rotation, scale and smooth warp.

    Two training brains hold little anatomical variety; deformed patches show the network brains
    shaped and oriented a little differently (the held-out brains are).
    """
    angles = np.deg2rad(rng.uniform(-DEFORM_MAX_DEGREES, DEFORM_MAX_DEGREES, size=3))
    matrix = np.diag(rng.uniform(1 - DEFORM_SCALE, 1 + DEFORM_SCALE, size=3))
    for axis, angle in enumerate(angles):
        a, b = [i for i in range(3) if i != axis]
        turn = np.eye(3)
        turn[a, a] = turn[b, b] = np.cos(angle)
        turn[a, b], turn[b, a] = -np.sin(angle), np.sin(angle)
        matrix = turn @ matrix
    grid = np.indices((size,) * 3, dtype=np.float64).reshape(3, -1) - (size - 1) / 2.0
    coords = (matrix @ grid).reshape(3, size, size, size)
    for axis in range(3):
        noise = ndimage.gaussian_filter(rng.standard_normal((size,) * 3), DEFORM_WARP_SMOOTH)
        coords[axis] += noise / max(float(np.abs(noise).max()), 1e-6) * DEFORM_WARP_VOXELS
    return coords


REMAP_KNOTS = (0.2, 0.4, 0.6, 0.8)   # intensities (unit range) whose image is moved by a random remap
REMAP_SHIFT = 0.08                   # largest move of a knot


def intensity_remap(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """`unit` (0..1) through a random increasing piecewise-linear curve that keeps 0 and 1.

    Each knot of REMAP_KNOTS moves by up to REMAP_SHIFT, so the contrast between tissues (CSF, grey
    and white matter) changes differently from one patch to the next, as it does between scanners.
    """
    knots = np.array(REMAP_KNOTS)
    moved = np.clip(np.sort(knots + rng.uniform(-REMAP_SHIFT, REMAP_SHIFT, size=knots.size)), 0.0, 1.0)
    return np.interp(unit, np.r_[0.0, knots, 1.0], np.r_[0.0, moved, 1.0]).astype(unit.dtype)


BLUR_MAX_SIGMA = 1.0   # voxels: the largest Gaussian smoothing along an axis


def random_blur(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """`unit` smoothed by a Gaussian of 0..BLUR_MAX_SIGMA voxels drawn for each axis.

    Scans differ in sharpness: thick slices, resampling into a template space, smoothing by the
    scanner. Blurred patches show the network neighbourhoods as smooth along some axes as those.
    """
    sigma = rng.uniform(0.0, BLUR_MAX_SIGMA, size=3)
    return ndimage.gaussian_filter(unit, sigma, mode="nearest", truncate=3.0).astype(unit.dtype)


SLAB_VOXELS = (2, 5)   # thickest and thinnest slabs of `thick_slices`, in voxels of the refiner's grid


def thick_slices(rng: np.random.Generator, unit: np.ndarray) -> np.ndarray:
    """`unit` as a thick-slice scan shows it after the fill resamples it to the refiner's grid.

    Along a random axis the voxels are averaged into slabs of SLAB_VOXELS (at a random phase; the end
    slabs may be partial), and each voxel is interpolated linearly between the slab centres, as
    `core.refine3d` resamples a crop of a 1 x 1 x 3 mm scan to its 1 mm grid.
    """
    axis = int(rng.integers(3))
    thick = int(rng.integers(SLAB_VOXELS[0], SLAB_VOXELS[1] + 1))
    moved = np.moveaxis(unit, axis, 0)
    n = moved.shape[0]
    edges = np.unique(np.clip(np.arange(-int(rng.integers(thick)), n + thick, thick), 0, n))
    means = np.stack([moved[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:])])
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    position = np.arange(n, dtype=np.float64)
    upper = np.clip(np.searchsorted(centres, position, side="right"), 1, len(centres) - 1) if len(centres) > 1 else None
    if upper is None:
        out = np.broadcast_to(means[0], moved.shape)
    else:
        lower = upper - 1
        w = np.clip((position - centres[lower]) / (centres[upper] - centres[lower]), 0.0, 1.0)
        w = w.reshape((n,) + (1,) * (moved.ndim - 1))
        out = (1.0 - w) * means[lower] + w * means[upper]
    return np.moveaxis(out, 0, axis).astype(unit.dtype)


NOISE_SD = 0.03   # largest SD of the white noise added in the brain (unit range), unless a run sets its own


def _contrast(rng: np.random.Generator, unit: np.ndarray, brain: np.ndarray, blur: float, remap: float,
              noise: Optional[np.random.Generator] = None, slabs: float = 0.0,
              noise_sd: float = NOISE_SD) -> np.ndarray:
    """`unit` (0..1) blurred, in thick slices, remapped, gamma-corrected, rescaled and with white noise of SD
    0..`noise_sd` in the brain (drawn from `noise`, default `rng`): `sample`'s intensity augmentation."""
    if blur and rng.random() < blur:
        unit = random_blur(rng, unit)
    if slabs and rng.random() < slabs:
        unit = thick_slices(rng, unit)
    if remap and rng.random() < remap:
        unit = intensity_remap(rng, np.clip(unit, 0.0, 1.0))
    unit = unit ** float(np.exp(rng.normal(0.0, GAMMA_LOG_SD))) * rng.uniform(*CONTRAST_RANGE)
    spread = rng.uniform(0.0, noise_sd)
    return unit + brain * (noise or rng).normal(0.0, spread, size=unit.shape)


def sample(rng: np.random.Generator, brains: Sequence[Brain], weights: np.ndarray,
           hole_kind: Optional[str] = None, deform: float = 0.0, remap: float = 0.0,
           blur: float = 0.0, patch: int = PATCH, hole_scale: float = 1.0,
           mirror: float = 0.0, mirror_lesions: float = 0.0, slabs: float = 0.0,
           noise_sd: float = NOISE_SD) -> tuple[np.ndarray, ...]:
    """One augmented (base, hole, truth) patch triple in model range, `patch` voxels a side.

    `deform`: share of deformed patches (`deformation`); `remap`: share of patches whose tissue
    contrast is changed (`intensity_remap`); `blur`: share of smoothed patches (`random_blur`);
    `slabs`: share of patches seen through thick slices (`thick_slices`; the mirror in the same slices); `noise_sd`:
    the largest SD of the white noise added in the brain (unit range; each patch draws its own from 0 to it);
    `hole_scale`: hole sizes in voxels relative to the 2 mm grid (`random_hole`). With `mirror` > 0 a fourth
    array holds the mirror inputs of `core.refine3d.Refiner3D` ((2,) + patch shape), made as the fill makes them
    for that share of the patches (the brain's reflection, the hole left out of the mirror, the same geometry and
    contrast, noise of its own, no deformation) and zero for the rest.
    `mirror_lesions`: the share of mirrored patches whose mirror gets a dark lesion where it mirrors the hole
    (`plant_mirror_lesion`): an unpainted lesion on the other side, whose detail the fill must not copy.
    """
    source = brains[int(rng.choice(len(brains), p=weights))]
    shape = np.array(source.image.shape)
    while True:
        c = source.centres[int(rng.integers(len(source.centres)))]
        lo = c.astype(np.int64) - patch // 2
        if np.all(lo >= 0) and np.all(lo + patch <= shape):
            break
    mirrored = None
    if mirror and rng.random() < mirror and source.reflection is not None:
        box = tuple(slice(int(a), int(a) + patch) for a in lo)
        mirror_coords = source.reflection.source_voxels(box)
        mirrored = ndimage.map_coordinates(source.image, mirror_coords, order=1, mode="constant", cval=-1.0,
                                           output=np.float32)
    if mirrored is None and deform and rng.random() < deform:
        coords = deformation(rng, patch) + (lo + (patch - 1) / 2.0)[:, None, None, None]
        truth = ndimage.map_coordinates(source.image, coords, order=1, mode="constant", cval=-1.0).astype(np.float32)
        brain = ndimage.map_coordinates(source.brain.astype(np.float32), coords, order=1, mode="constant") > 0.5
    else:
        box = tuple(slice(int(a), int(a) + patch) for a in lo)
        truth, brain = source.image[box].copy(), source.brain[box].copy()
    order = rng.permutation(3)
    flips = tuple(axis for axis in range(3) if rng.random() < 0.5)

    def orient(a: np.ndarray) -> np.ndarray:
        return np.flip(a.transpose(order), flips) if flips else a.transpose(order)

    truth, brain = orient(truth), orient(brain)
    state = rng.bit_generator.state
    unit = _contrast(rng, np.clip((truth + 1.0) / 2.0, 0.0, None), brain, blur, remap, slabs=slabs, noise_sd=noise_sd)
    truth = np.where(brain, np.clip(unit, 0.0, 1.0) * 2.0 - 1.0, -1.0).astype(np.float32)
    if mirrored is not None:   # the same contrast (the state replayed), its own noise
        noise = np.random.default_rng(int(rng.integers(1 << 62)))
        after = rng.bit_generator.state
        rng.bit_generator.state = state
        mirrored = orient(mirrored)
        unit = _contrast(rng, np.clip((mirrored + 1.0) / 2.0, 0.0, None), mirrored > -1.0, blur, remap, noise, slabs,
                         noise_sd)
        rng.bit_generator.state = after
        mirrored = np.where(mirrored > -1.0, np.clip(unit, 0.0, 1.0) * 2.0 - 1.0, -1.0).astype(np.float32)
    hole = random_hole(rng, brain, hole_kind, hole_scale)
    base = clip_base(biharmonic_fill_3d(np.where(hole, 0.0, truth).astype(np.float32), hole))
    if not mirror:
        return base, hole.astype(np.float32), truth
    inputs = np.zeros((2,) + hole.shape, dtype=np.float32)
    if mirrored is not None:
        # where the mirror samples the hole itself (a hole at the midline) it is unknown, as in the fill
        unoriented = np.flip(hole, flips).transpose(np.argsort(order)) if flips else hole.transpose(np.argsort(order))
        on_hole = ndimage.map_coordinates(unoriented.astype(np.float32), mirror_coords - lo[:, None, None, None], order=1,
                                          mode="constant", cval=0.0) > 0
        mirrored[orient(on_hole)] = np.nan
        if mirror_lesions and rng.random() < mirror_lesions:
            mirrored = plant_mirror_lesion(rng, mirrored, hole)
        aligned, detail = align_mirror(base, mirrored, hole, (2.0 / hole_scale,) * 3)
        inputs = np.stack([aligned - base, detail])
    return base, hole.astype(np.float32), truth, inputs


def plant_mirror_lesion(rng: np.random.Generator, mirrored: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`mirrored` (model range; -1 outside the brain, NaN unknown) darkened where it mirrors part of the hole.

    The lesion is the hole's deepest 30-100% (by distance to its edge), softened by a Gaussian of one
    voxel, its tissue made 15-50% darker (a T1-hypointense lesion): what the mirror shows of a lesion
    on the other side that the user did not paint.
    """
    depth = ndimage.distance_transform_edt(hole)
    inside = depth[hole]
    if inside.size == 0:
        return mirrored
    core = depth >= np.quantile(inside, 1.0 - rng.uniform(0.3, 1.0))
    soft = ndimage.gaussian_filter(core.astype(np.float32), 1.0)
    unit = (mirrored + 1.0) / 2.0 * (1.0 - rng.uniform(*LESION_DARKENING) * soft)
    return np.where(mirrored > -1.0, unit * 2.0 - 1.0, mirrored).astype(np.float32)


def batch(rng: np.random.Generator, brains, weights, size: int,
          hole_kind: Optional[str] = None, deform: float = 0.0, remap: float = 0.0,
          blur: float = 0.0, patch: int = PATCH, hole_scale: float = 1.0, mirror: float = 0.0,
          mirror_lesions: float = 0.0, slabs: float = 0.0, noise_sd: float = NOISE_SD) -> tuple[torch.Tensor, ...]:
    """`size` patch triples stacked as (base, hole, truth) tensors of shape (size, 1, patch, patch, patch),
    with `mirror` > 0 and the mirror inputs (size, 2, patch, patch, patch) as a fourth."""
    parts = [sample(rng, brains, weights, hole_kind, deform, remap, blur, patch, hole_scale, mirror, mirror_lesions,
                    slabs, noise_sd) for _ in range(size)]
    stacked = tuple(torch.from_numpy(np.stack([p[i] for p in parts])[:, None].copy()) for i in range(3))
    return stacked + ((torch.from_numpy(np.stack([p[3] for p in parts])),) if mirror else ())


_WORKER: dict = {}   # what each worker process of `batch_stream` draws batches from


def _worker_setup(brains: Sequence[Brain], weights: np.ndarray, size: int, options: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the training process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool ends its workers so, even if the trainer ignores it
    _WORKER.update(brains=brains, weights=weights, size=size, options=options)


def _worker_batch(key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    return _step_batch(key, **_WORKER)


def _step_batch(key: tuple[int, int], brains: Sequence[Brain], weights: np.ndarray, size: int,
                options: dict) -> tuple[torch.Tensor, ...]:
    """The batch of step `key` = (seed, step): drawn from that seed alone."""
    return batch(np.random.default_rng(list(key)), brains, weights, size, **options)


def batch_stream(brains: Sequence[Brain], weights: np.ndarray, size: int, seed: int, first: int, last: int,
                 workers: int = 0, **options: float) -> Iterator[tuple[torch.Tensor, ...]]:
    """The batches of steps `first`..`last - 1` in order, each drawn from its own seed [seed, step].

    With `workers` > 0 they are made ahead in that many processes (patch making is the cost on a
    GPU); the batches are the same with any number of workers. `options`: `batch`'s keywords.
    """
    keys = ((seed, step) for step in range(first, last))
    if workers <= 0:
        for key in keys:
            yield _step_batch(key, brains, weights, size, options)
        return
    context = multiprocessing.get_context("spawn")   # no fork of a process that may hold a GPU
    with context.Pool(workers, _worker_setup, (brains, weights, size, options)) as pool:
        ahead: collections.deque = collections.deque()   # at most 2 batches a worker wait in memory
        for key in keys:
            ahead.append(pool.apply_async(_worker_batch, (key,)))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().get()
        while ahead:
            yield ahead.popleft().get()
        pool.close()   # every batch made: the workers end on their own (the exit's terminate is for an early stop)
        pool.join()
