"""Training of the 3D refiner (`core.refine3d`) on healthy brain-extracted T1 volumes.

Each step cuts random patches (2 mm isotropic grid, 32^3 voxels) from the training brains,
augments them (flips, axis order, gamma, contrast, noise), punches a random lesion-like hole
inside the brain (irregular blob, box or thin slab), fills it with the biharmonic fill that
inference uses as the network's base, and minimises the mean squared error inside the hole
(Adam, gradient norm clipped at 1, learning rate decaying on a cosine over the planned steps).
The error is averaged over all hole voxels of a batch (`voxel`: large holes dominate) or per
hole, then over the batch (`lesion`: every lesion counts the same, as in the benchmark).
A run may start from another run's weights (`--init`) with a fresh optimiser and schedule.
Runs stop cleanly at a wall-clock budget, write `model.safetensors` + `config.json`
(loadable by `core.refine3d.load_refiner`) and resume exactly where they stopped.
"""

from __future__ import annotations

import argparse
import collections
import json
import contextlib
import math
import multiprocessing
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy import ndimage

from ..argtypes import number_range, positive
from ..atomic import write_atomically
from ..blend3d import biharmonic_fill_3d
from ..errors import InpaintError
from ..modelspace import Reorientation, voxel_sizes
from ..normalize import intensity_scale
from ..mirror import NoReflection, Reflection, align_mirror, find_reflection
from ..refine3d import (Refiner, Refiner3D, RefinerConfig, clip_base, load_refiner, resample, save_refiner, widened,
                        with_mirror_inputs)
from ..search import select_device
from ..volume import load_mask, load_volume
from .cohort import find_scans, split, subjects_text
from .cohort import licences as source_licences

PATCH = 32
CLIP_NORM = 1.0


@dataclass
class Brain:
    """One training brain on the 2 mm grid in model range, with its brain mask."""

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
    unit = unit ** float(np.exp(rng.normal(0.0, 0.2))) * rng.uniform(0.85, 1.1)
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
    unit = (mirrored + 1.0) / 2.0 * (1.0 - rng.uniform(0.15, 0.5) * soft)
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


CARD = """# Model card: 3D refiner (`refine3d`, the default fill)

3D U-Net (three levels, {width}/{w2}/{w4} channels, {params:,} parameters) on a {spacing:g} mm grid. Input: the
biharmonic 3D fill of a lesion's neighbourhood and the hole mask{inputs}; output: a correction added inside the hole{gate}.
Its last layer starts at zero, so before training it is exactly the biharmonic fill.

## Intended use
Filling lesion masks in brain-extracted adult T1-weighted MRI with `inpaint fill` (default method). Research
use only; not a medical device. Filled voxels are synthetic.

## Training data
Never the held-out brains. Patches of {patch}^3 voxels at {spacing:g} mm from {data}.{licences}{validation}
Augmentation: random axis order and flips, gamma (log SD 0.2), contrast x0.85-1.1, Gaussian noise in the brain
(SD 0-{noise_sd:g} of the intensity range, drawn per patch).{deform}{remap}{blur}{slabs}{mirror}
Holes: irregular blobs (50%), boxes (30%) and thin slabs 2-8 mm thick (20%) inside the brain, sized in mm on every grid.{centre}

## Training run
{command} {steps} steps of batch {batch}, Adam lr {lr} with cosine decay over the
planned steps, gradient norm clipped at 1, seed {seed}; {minutes:.0f} min on {hardware} (torch {torch}).
Objective: mean squared error inside the hole (model units [-1, 1]),
averaged {averaging}.{history}
The last two logged averages: MSE {mse:.5f} against {base:.5f} for the biharmonic fill alone
(`loss.csv` of the run: step, MSE, biharmonic MSE, seconds).

## Held-out quality
In `docs/results.md`: `inpaint bench` on brains it never saw (the held-out cohort at about 1 mm, the held-out
subject and Colin27 at 2 mm), against every classical fill.

## Limitations
{count} training brains and a few CPU-hours of training: the correction is small, and the fill stays close to
the biharmonic fill, smooth inside large holes (no texture).
"""

def _data_text(meta: dict) -> dict[str, str]:
    """The card's training-data fields: scans with their weights, their sources' licences, the validation scans."""
    weights = sorted(set(round(w, 4) for w in meta["weights"]))
    data = subjects_text(meta["data"]) + (f", each scan with sampling weight {weights[0]:.4f}" if len(weights) == 1 else
                                      f", sampling weights {', '.join(f'{x:.2f}' for x in meta['weights'])}")
    licences = "".join(f"\n{text}" for text in source_licences(meta["data"]))
    kept = meta.get("validation") or []
    validation = (f"\nValidation scans, never drawn from and used for every choice: {subjects_text(kept)}." if kept else "")
    return {"data": data, "licences": licences, "validation": validation, "count": str(len(meta["data"]))}


AVERAGING = {"voxel": "over all hole voxels of a batch", "lesion": "per hole, then over the batch",
             "log": "per hole in decibels (10 log10 of its mean), then over the batch"}


def _stage(init: dict) -> str:
    """One earlier run as the card names it: path, checksum and its training settings."""
    before = init.get("training") or {}
    shares = f"{float(before['deform']):.0%} of patches deformed, " if before.get("deform") else ""
    shares += f"{float(before['remap']):.0%} with a random tissue contrast, " if before.get("remap") else ""
    shares += f"{float(before['blur']):.0%} smoothed, " if before.get("blur") else ""
    shares += f"{float(before['slabs']):.0%} in thick slices, " if before.get("slabs") else ""
    shares += f"noise SD 0-{float(before['noise_sd']):g}, " if "noise_sd" in before else ""
    return (f"`{init['path']}` (sha256 {init['sha256'][:12]}...: {before.get('steps', '?')} steps, "
            f"lr {before.get('lr', '?')}, error averaged {AVERAGING.get(before.get('loss', 'voxel'), '?')}, "
            f"{shares}{float(before.get('wall_time_s', 0.0)) / 60:.0f} min)")


def _history(meta: dict) -> str:
    """The card's sentence on the runs this one started from (each from the one before), if any."""
    stages, init = [], meta.get("init")
    while init:
        stages.append(_stage(init))
        init = (init.get("training") or {}).get("init")
    if not stages:
        return ""
    return ("\nIt started from the weights of " + ", which started from ".join(stages)
            + ", each time with a fresh optimiser and schedule.")


def write_card(out: Path, network: Refiner3D, meta: dict, step: int) -> None:
    """MODEL_CARD.md of a run folder, from its training record and loss log."""
    rows = [line.split(",") for line in (out / "loss.csv").read_text(encoding="utf-8").split()] \
        if (out / "loss.csv").is_file() else []
    last = [r for r in rows[-2:]] or [["0", "nan", "nan", "0"]]
    w = network.config.width
    text = CARD.format(width=w, w2=2 * w, w4=4 * w, params=sum(p.numel() for p in network.parameters()),
                       spacing=network.config.spacing_mm, patch=meta.get("patch", PATCH), **_data_text(meta),
                       noise_sd=float(meta.get("noise_sd", NOISE_SD)),
                       steps=step, centre=(f" Patches and their holes are centred at least {meta['centre_depth_mm']:g} mm "
                                           "inside the brain, where deep white-matter lesions lie."
                                           if meta.get("centre_depth_mm") else ""),
                       batch=meta["batch_size"], lr=meta["lr"], seed=meta["seed"],
                       minutes=meta["wall_time_s"] / 60, torch=meta["torch"],
                       hardware=meta.get("hardware", "one CPU thread"),
                       command=(f"Command: `{meta['command']}`." if meta.get("command") else
                                "Command: not recorded (trained through `core.training.refiner.train`).")
                               + "".join(f" Resumed with `{c}`." for c in meta.get("resumed", [])),
                       mse=float(np.mean([float(r[1]) for r in last])), base=float(np.mean([float(r[2]) for r in last])),
                       averaging=AVERAGING[meta.get("loss", "voxel")], history=_history(meta),
                       inputs=(", and the other hemisphere mirrored and aligned to it (two channels)"
                               if network.config.mirror_inputs else ""),
                       gate=(", plus a learned share (0-1 per voxel) of the mirror's detail (`refine3d --mirror 0.5`: "
                             "that share)" if network.config.mirror_inputs else ""),
                       deform=(f"\n{float(meta['deform']):.0%} of the patches{' without the mirror' if meta.get('mirror') else ''} are also rotated (+/-{DEFORM_MAX_DEGREES:g} deg "
                               f"about each axis), scaled (x{1 - DEFORM_SCALE:g}-{1 + DEFORM_SCALE:g}) and warped "
                               f"(smooth displacements up to {DEFORM_WARP_VOXELS:g} voxels)."
                               if meta.get("deform") else ""),
                       remap=(f"\n{float(meta['remap']):.0%} of the patches get a random tissue contrast: intensities "
                              f"{', '.join(f'{k:g}' for k in REMAP_KNOTS)} (of 0..1) moved by up to {REMAP_SHIFT:g} on an "
                              f"increasing curve." if meta.get("remap") else ""),
                       mirror=(f"\nMirror inputs: {float(meta['mirror']):.0%} of the patches get the mirrored hemisphere as the fill "
                               "gives it (the brain's mid-sagittal reflection, aligned by demons around the hole; two channels: "
                               "the aligned mirror minus the filled patch, and its detail in the hole); the network adds a "
                               "learned share (0-1 per voxel) of that detail."
                               + (f" In {float(meta['mirror_lesions']):.0%} of those the mirror shows a dark lesion (15-50% "
                                  "darker) where it mirrors the hole: an unpainted lesion on the other side, which the "
                                  "fill must not copy." if meta.get("mirror_lesions") else "")
                               if meta.get("mirror") else ""),
                       blur=(f"\n{float(meta['blur']):.0%} of the patches are smoothed by a Gaussian of 0-{BLUR_MAX_SIGMA:g} "
                             f"voxels drawn for each axis." if meta.get("blur") else ""),
                       slabs=(f"\n{float(meta['slabs']):.0%} of the patches are seen through thick slices: averaged along a "
                              f"random axis into slabs of {SLAB_VOXELS[0]}-{SLAB_VOXELS[1]} voxels and interpolated back "
                              "linearly, as the fill resamples a thick-slice scan (the mirror in the same slices)."
                              if meta.get("slabs") else ""))
    write_atomically(out / "MODEL_CARD.md", lambda p: p.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done: a checkpoint is never left half written (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _save(out: Path, network: Refiner3D, optimiser: torch.optim.Optimizer, step: int, meta: dict) -> None:
    opt = optimiser.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in opt["state"].items() for k, v in s.items()
               if isinstance(v, torch.Tensor)}
    save_refiner(out, network, {"training": {**meta, "steps": step}})
    write_card(out, network, meta, step)
    write_atomically(out / "optimizer.safetensors", lambda p: save_file(tensors, str(p)))


RUN_FILES = ("model.safetensors", "config.json", "optimizer.safetensors", "loss.csv")   # what a run writes to --out
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")


def _damaged(out: Path, reason: str) -> InpaintError:
    return InpaintError(f"{out}'s checkpoint is damaged ({reason}); restore it or start a new run elsewhere.")


def training_record(out: Path) -> dict:
    """The training record of the run in `out` (its config.json), to resume; InpaintError when none or damaged."""
    if not (out / "config.json").is_file():
        raise InpaintError(f"{out} holds no training run to resume; run without --resume to start one.")
    try:
        record = json.loads((out / "config.json").read_text(encoding="utf-8"))["training"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(out, "config.json holds no readable training record") from None
    if not isinstance(record, dict) or type(record.get("steps")) is not int or record["steps"] < 0:
        raise _damaged(out, "config.json's training record has no whole number of steps")
    data, weights = record.get("data"), record.get("weights")
    if not (isinstance(data, list) and isinstance(weights, list) and len(data) == len(weights) > 0
            and all(isinstance(d, str) for d in data) and all(type(w) in (int, float) for w in weights)
            and type(record.get("wall_time_s", 0.0)) in (int, float)):
        raise _damaged(out, "config.json's training record lacks its data, weights or wall time")
    return record


def resumed_refiner(out: Path) -> Refiner:
    """The refiner of the run in `out`, to resume; InpaintError when there is none or it is damaged."""
    training_record(out)
    try:
        return load_refiner(out)
    except InpaintError:
        raise _damaged(out, "model.safetensors or config.json does not hold its refiner") from None


def _load_optimiser(out: Path, optimiser: torch.optim.Optimizer, step: int) -> None:
    """Adam's state from `out`'s optimizer.safetensors (none before the first step); InpaintError when damaged."""
    try:
        saved = load_file(str(out / "optimizer.safetensors"))
    except FileNotFoundError:
        raise _damaged(out, "optimizer.safetensors is missing") from None
    except Exception:  # safetensors raises several types for damaged files
        raise _damaged(out, "optimizer.safetensors is not a safetensors file") from None
    params = optimiser.param_groups[0]["params"]
    shapes = {f"{i}.{k}": (() if k == "step" else p.shape) for i, p in enumerate(params) for k in ADAM_STATE}
    if (saved or step) and {k: tuple(v.shape) for k, v in saved.items()} != {k: tuple(v) for k, v in shapes.items()}:
        raise _damaged(out, "optimizer.safetensors does not hold Adam's state for its refiner")
    opt = optimiser.state_dict()
    for key, value in saved.items():
        index, name = key.split(".", 1)
        opt["state"].setdefault(int(index), {})[name] = value
    optimiser.load_state_dict(opt)


LOSSES = ("voxel", "lesion", "log")
LOG_FLOOR = 1e-4  # squared error added before the logarithm of the `log` loss (the holes' error is about 0.02)


def hole_mse(pred: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor, loss: str) -> torch.Tensor:
    """Squared error inside the holes, averaged over all hole voxels (`voxel`) or per hole (`lesion`), or per
    hole in decibels (`log`: 10 log10 of each hole's mean squared error, then the mean - what the bench's
    per-lesion PSNR scores, with the sign turned)."""
    squared = ((pred - truth) ** 2) * hole
    if loss == "voxel":
        return squared.sum() / hole.sum().clamp(min=1.0)
    dims = tuple(range(1, pred.dim()))
    per_hole = squared.sum(dim=dims) / hole.sum(dim=dims).clamp(min=1.0)
    if loss == "log":
        return (10.0 * torch.log10(per_hole + LOG_FLOOR)).mean()
    return per_hole.mean()


def train(data: Sequence[tuple[Path, Optional[Path], float]], out: Path, *, minutes: float, steps: int,
          batch_size: int = 6, lr: float = 5e-4, seed: int = 0, resume: bool = False, loss_kind: str = "voxel",
          init: Optional[Path] = None, config: Optional[RefinerConfig] = None, log_every: int = 50,
          deform: float = 0.0, remap: float = 0.0, blur: float = 0.0, device: str = "cpu",
          workers: int = 0, command: Optional[str] = None, patch: int = PATCH,
          validation: Sequence[Path] = (), centre_depth_mm: Optional[float] = None, mirror: float = 0.0,
          mirror_lesions: float = 0.0, slabs: float = 0.0, noise_sd: Optional[float] = None) -> None:
    """Train (or resume) a refiner on `data` = [(image, brain mask or None, sampling weight)].

    `init`: a run folder whose weights start this run (fresh optimiser and schedule); `deform`: the
    share of patches randomly rotated, scaled and warped (`deformation`); `remap`: the share whose
    tissue contrast is changed (`intensity_remap`); `blur`: the share smoothed (`random_blur`); `slabs`:
    the share seen through thick slices (`thick_slices`); `noise_sd`: the largest SD of the added white noise
    (default NOISE_SD; a resumed run keeps its own). `device`: where the network trains (a torch device
    name); `workers`: processes making the patches ahead (`batch_stream`; the same patches with any number).
    `config`: the architecture (default: the resumed or `init` run's, else `RefinerConfig()`); one that differs from theirs is refused, except
    a larger width than the `init` run's (its weights are `core.refine3d.widened`: the start fills alike).
    `command`: the command line that started the run, for its card (a resumed run keeps its first).
    `patch`: voxels a side of the training patches (holes keep their size in mm on every grid);
    `validation`: scans kept aside for choosing between runs, recorded in the config; `centre_depth_mm`:
    how deep in the brain patches (and so their holes) are centred (default: 3 grid voxels); `mirror`:
    the share of patches with mirror inputs (`sample`), for a refiner with them (an `init` run without
    them is widened: `core.refine3d.with_mirror_inputs`); `mirror_lesions`: the share of those whose
    mirror shows an unpainted lesion (`plant_mirror_lesion`). An `out` that holds a run is refused unless `resume`;
    a damaged one is refused on `resume` (InpaintError).
    """
    if loss_kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss_kind!r}")
    for name, share in (("deform", deform), ("remap", remap), ("blur", blur), ("slabs", slabs)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} is a share of patches, from 0 to 1, not {share}")
    if noise_sd is not None and not 0.0 <= noise_sd <= 1.0:
        raise ValueError(f"noise_sd is an SD of the intensity range, from 0 to 1, not {noise_sd}")
    if out.exists() and not out.is_dir():
        raise InpaintError(f"--out {out} is a file, not a folder; choose a folder for the run.")
    if not resume and any((out / name).exists() for name in RUN_FILES):
        raise InpaintError(f"{out} already holds a training run; pass --resume to continue it or choose another --out.")
    stored = resumed_refiner(out) if resume else None
    earlier = out if resume else init
    if earlier is not None:
        found = (stored or load_refiner(earlier)).config
        if mirror and not resume:
            found = RefinerConfig(found.width, found.spacing_mm, mirror_inputs=True)
        wider = (not resume and config is not None and config.width > found.width
                 and replace(config, width=found.width) == found)
        if config is not None and config != found and not wider:
            raise InpaintError(f"{earlier} holds a refiner of width {found.width} on a {found.spacing_mm:g} mm grid, "
                               f"not width {config.width} on {config.spacing_mm:g} mm; leave out --width and --spacing"
                               f"{'' if resume else ' (or start from it with a larger --width)'}.")
        config = config if wider else found
    config = config or RefinerConfig(mirror_inputs=bool(mirror))
    if bool(mirror) != config.mirror_inputs:
        raise InpaintError("a refiner with mirror inputs trains with --mirror above 0, one without them with --mirror 0; "
                           "pass --mirror to match the run's refiner.")
    torch.manual_seed(seed)
    brains = [load_brain(img, msk, config.spacing_mm, centre_depth_mm, mirror=bool(mirror)) for img, msk, _ in data]
    weights = np.array([w for _, _, w in data], dtype=np.float64)
    weights /= weights.sum()
    target = torch.device(device)
    network = Refiner3D(config).to(target)
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    step = 0
    meta = {"data": [str(p) for p, _, _ in data], "masks": [str(m) if m else None for _, m, _ in data],
            "weights": weights.tolist(), "batch_size": batch_size,
            "lr": lr, "seed": seed, "patch": patch, "loss": loss_kind, "deform": deform, "remap": remap, "blur": blur, "torch": torch.__version__,
            "hardware": _hardware(target, workers), "command": command, "wall_time_s": 0.0,
            "validation": [str(v) for v in validation], "centre_depth_mm": centre_depth_mm, "mirror": mirror,
            **({"mirror_lesions": mirror_lesions} if mirror_lesions else {}), **({"slabs": slabs} if slabs else {}),
            **({"noise_sd": noise_sd} if noise_sd is not None else {})}
    if init is not None and not resume:
        start_from = load_refiner(init)
        state = start_from.network.state_dict()
        if mirror and not start_from.config.mirror_inputs:
            state = with_mirror_inputs(state)
        if config.width > start_from.config.width:
            state = widened(state, replace(config, width=start_from.config.width), config.width, seed)
        network.load_state_dict(state)
        meta["init"] = {"path": str(init), "sha256": start_from.checksum,
                        "training": json.loads((init / "config.json").read_text(encoding="utf-8")).get("training")}
    if stored is not None:
        record = training_record(out)
        network.load_state_dict(stored.network.state_dict())
        step = record["steps"]
        if "init" in record:
            meta["init"] = record["init"]
        meta["wall_time_s"] = float(record.get("wall_time_s", 0.0))
        meta["command"] = record.get("command") or command
        meta["resumed"] = list(record.get("resumed", [])) + ([command] if command else [])
        if not mirror_lesions and record.get("mirror_lesions"):   # a resume keeps the run's augmentation
            mirror_lesions = meta["mirror_lesions"] = float(record["mirror_lesions"])
        if not slabs and record.get("slabs"):
            slabs = meta["slabs"] = float(record["slabs"])
        if noise_sd is None and "noise_sd" in record:
            noise_sd = meta["noise_sd"] = float(record["noise_sd"])
        _load_optimiser(out, optimiser, step)
    start = time.perf_counter()
    spent = meta["wall_time_s"]
    log = (out / "loss.csv")
    out.mkdir(parents=True, exist_ok=True)
    running = []
    stream = batch_stream(brains, weights, batch_size, seed, step, steps, workers, deform=deform, remap=remap,
                          blur=blur, patch=patch, hole_scale=2.0 / config.spacing_mm, mirror=mirror,
                          **({"mirror_lesions": mirror_lesions} if mirror_lesions else {}),
                          **({"slabs": slabs} if slabs else {}),
                          **({"noise_sd": noise_sd} if noise_sd is not None else {}))
    try:
        for tensors in stream:
            if spent + time.perf_counter() - start >= minutes * 60:
                break
            base, hole, truth, *inputs = (t.to(target) for t in tensors)
            pred = network(base, hole, *inputs)
            loss = hole_mse(pred, truth, hole, loss_kind)
            logged = loss if loss_kind != "log" else hole_mse(pred.detach(), truth, hole, "lesion")
            base_loss = hole_mse(base, truth, hole, "lesion" if loss_kind == "log" else loss_kind)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), CLIP_NORM)
            for group in optimiser.param_groups:  # cosine decay over the planned steps
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))
            optimiser.step()
            step += 1
            running.append((logged.item(), base_loss.item()))
            if step % log_every == 0:
                m = np.mean(running, axis=0)
                running = []
                meta["wall_time_s"] = spent + time.perf_counter() - start
                with _uninterrupted():   # the log line and the checkpoint of this step, both or neither
                    with open(log, "a", encoding="utf-8") as f:
                        f.write(f"{step},{m[0]:.6f},{m[1]:.6f},{meta['wall_time_s']:.1f}\n")
                    _save(out, network, optimiser, step, meta)
                print(f"step {step} mse {m[0]:.5f} biharmonic {m[1]:.5f}", flush=True)
    finally:
        stream.close()
    meta["wall_time_s"] = spent + time.perf_counter() - start
    with _uninterrupted():
        _save(out, network, optimiser, step, meta)


def _hardware(device: torch.device, workers: int) -> str:
    """What a run trains on, as its card says it."""
    if device.type == "cuda":
        where = f"one {torch.cuda.get_device_name(device)} GPU"
    else:
        threads = torch.get_num_threads()
        where = "one CPU thread" if threads == 1 else f"{threads} CPU threads"
    return where + (f", with {workers} patch-making process{'es' if workers > 1 else ''}" if workers > 0 else "")


def data_item(text: str) -> tuple[Path, Optional[Path], float]:
    """One --data item, IMAGE[:BRAINMASK][@WEIGHT], with a positive finite weight (default 1)."""
    spec, at, weight = text.partition("@")
    image, _, mask = spec.partition(":")
    try:
        value = float(weight) if at else 1.0
    except ValueError:
        value = math.nan
    if not image or not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be IMAGE[:BRAINMASK][@WEIGHT] with a positive number as the weight, "
                                         f"not {text!r}")
    return Path(image), Path(mask) if mask else None, value


# options a resumed run takes from its training record (option's dest: record key); the others may change
STORED = {"batch_size": "batch_size", "lr": "lr", "seed": "seed", "patch": "patch", "loss": "loss", "deform": "deform",
          "remap": "remap", "blur": "blur", "slabs": "slabs", "noise": "noise_sd", "centre_depth": "centre_depth_mm",
          "mirror": "mirror", "mirror_lesions": "mirror_lesions"}


def parser(exit_on_error: bool = True) -> argparse.ArgumentParser:
    """The command line of `python -m core.training.refiner`."""
    p = argparse.ArgumentParser(description="Train the 3D refiner on healthy brain-extracted T1 volumes.",
                                exit_on_error=exit_on_error)
    p.add_argument("--data", type=data_item, nargs="+", default=[],
                   help="IMAGE[:BRAINMASK][@WEIGHT] for each training brain (mask default: nonzero voxels)")
    p.add_argument("--cohort", type=Path, nargs="+", default=[],
                   help="cohort folders of *_T1w scans with their *_brainmask (core.training.cohort): their training "
                        "split is added to --data, each scan with weight 1; the validation split is never drawn from")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=2000, help="planned steps (the learning rate decays over them)")
    p.add_argument("--batch-size", type=number_range(1, 4096, "a number of patches "), default=6)
    p.add_argument("--width", type=number_range(1, 64), default=None,
                   help=f"channels of the U-Net's first level, the others 2x and 4x (default: the --init or resumed "
                        f"run's, else {RefinerConfig.width}; larger than the --init run's: its network widened, "
                        f"filling alike at the start)")
    p.add_argument("--spacing", type=number_range(0.25, 8.0, "a grid spacing in mm "), default=None,   # RefinerConfig's
                   help=f"grid of a new refiner in mm (default: the --init or resumed run's, else "
                        f"{RefinerConfig.spacing_mm:g})")
    p.add_argument("--patch", type=number_range(16, 128), default=PATCH,
                   help=f"voxels a side of the training patches (default {PATCH}; holes keep their size in mm)")
    p.add_argument("--centre-depth", type=float, default=None, metavar="MM",
                   help="centre patches and their holes at least MM inside the brain (default: 3 grid voxels; "
                        "15 places holes like deep white-matter lesions)")
    p.add_argument("--lr", type=positive, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto",
                   help="torch device to train on: auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--workers", type=number_range(0, 64, "a number of processes "), default=0,
                   help="processes making the patches ahead of the network (default 0: the training process)")
    p.add_argument("--log-every", type=number_range(1, 100000), default=50,
                   help="steps between loss log lines and checkpoints (default 50)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--loss", choices=LOSSES, default="voxel",
                   help="average the hole error over all hole voxels of a batch, per lesion, or per lesion in decibels "
                        "(log; the log records per-lesion errors) (default voxel)")
    p.add_argument("--init", type=Path, default=None, help="start from this run folder's weights (fresh optimiser)")
    p.add_argument("--deform", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches randomly rotated (+/-{DEFORM_MAX_DEGREES:g} deg), scaled "
                        f"(+/-{DEFORM_SCALE * 100:g}%%) and warped (default 0)")
    p.add_argument("--remap", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches whose tissue contrast changes: intensities {REMAP_KNOTS} move by up to "
                        f"{REMAP_SHIFT:g} on a random increasing curve (default 0)")
    p.add_argument("--blur", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches smoothed by a Gaussian of 0-{BLUR_MAX_SIGMA:g} voxels drawn for each axis "
                        f"(default 0)")
    p.add_argument("--slabs", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches seen through thick slices: averaged along a random axis into slabs of "
                        f"{SLAB_VOXELS[0]}-{SLAB_VOXELS[1]} voxels and interpolated back, as the fill resamples a "
                        f"thick-slice scan (default 0)")
    p.add_argument("--noise", type=number_range(0.0, 1.0, "an SD of the intensity range "), default=None, metavar="SD",
                   help=f"largest SD of the white noise added in the brain, each patch drawing its own from 0 to it "
                        f"(of the intensity range; default {NOISE_SD:g}, or the resumed run's)")
    p.add_argument("--mirror", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help="share of patches given the mirrored hemisphere as the fill gives it, for a refiner with mirror "
                        "inputs that learns the mirror's share (default 0: a refiner without them; with --init from one "
                        "without them, it is widened to start from the same fill)")
    p.add_argument("--mirror-lesions", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help="share of the mirrored patches whose mirror shows a dark lesion where it mirrors the hole (an "
                        "unpainted lesion on the other side, not to be copied) (default 0)")
    return p


def _resume_options(args: argparse.Namespace, given: set[str]) -> list[Path]:
    """Set `args` to the stored run's options for --resume, refusing given ones that differ; its validation scans."""
    out, record = args.out, training_record(args.out)
    try:
        stored = parser(exit_on_error=False).parse_args(
            ["--out", str(out)] + [f"--{dest.replace('_', '-')}={record[key]}" for dest, key in STORED.items()
                                   if record.get(key) is not None])
    except argparse.ArgumentError as exc:
        raise _damaged(out, f"config.json's training record: {exc}") from None
    stored.noise = NOISE_SD if stored.noise is None else stored.noise
    for dest in STORED:
        if dest in given and getattr(args, dest) != getattr(stored, dest):
            option = "--" + dest.replace("_", "-")
            raise InpaintError(f"{out}'s run was trained with {option} {getattr(stored, dest)}, not "
                               f"{getattr(args, dest)}; leave out {option} to resume it, or start a new run elsewhere.")
        setattr(args, dest, getattr(stored, dest))
    init = (record.get("init") or {}).get("path")
    if args.init is not None and str(args.init) != init:
        raise InpaintError(f"{out}'s run started from {init or 'no --init run'}, not {args.init}; "
                           "leave out --init to resume it.")
    if not args.data and not args.cohort:
        if not isinstance(record.get("masks"), list) or len(record["masks"]) != len(record["data"]):
            raise InpaintError(f"{out}'s run does not record its brain masks; pass its --data or --cohort again.")
        args.data = [(Path(i), Path(m) if m else None, w) for i, m, w in zip(record["data"], record["masks"],
                                                                           record["weights"])]
    return [Path(v) for v in record.get("validation", [])]


def _same_data(record: dict, data: Sequence[tuple[Path, Optional[Path], float]]) -> bool:
    """Whether `data` is the stored run's: its scans, brain masks (where recorded) and sampling weights."""
    weights = np.array([w for _, _, w in data], dtype=np.float64)
    return ([str(p) for p, _, _ in data] == record["data"]
            and record.get("masks", [str(m) if m else None for _, m, _ in data])
            == [str(m) if m else None for _, m, _ in data]
            and np.allclose(weights / weights.sum(), record["weights"], rtol=1e-12, atol=0.0))


def _kept(out: Path) -> str:
    """What an interrupted run leaves in `out`, as a clause."""
    try:
        return f"{out} keeps its checkpoint of step {training_record(out)['steps']} (--resume continues it)"
    except InpaintError:
        return f"no checkpoint was written to {out}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p, unset = parser(), object()
    defaults = vars(p.parse_args(["--out", "."]))
    args = p.parse_args(argv, argparse.Namespace(**dict.fromkeys(defaults, unset)))
    given = {name for name, value in vars(args).items() if value is not unset}   # options the command line names
    for name in defaults.keys() - given:
        setattr(args, name, defaults[name])
    torch.set_num_threads(args.threads)
    try:
        validation = _resume_options(args, given) if args.resume else []
        data = list(args.data)
        for folder in args.cohort:
            training, kept = split(find_scans(folder))
            data += [(s.image, s.brainmask, 1.0) for s in training]
            validation += [] if args.resume else [s.image for s in kept]
        if args.resume and not _same_data(training_record(args.out), data):
            raise InpaintError(f"{args.out}'s run was trained on other --data/--cohort scans, masks or weights; leave "
                               "them out to resume it, or start a new run elsewhere.")
        config = None
        if args.width or args.spacing:   # what is not given comes from the run this one continues
            earlier = args.out if args.resume else args.init
            found = (resumed_refiner(earlier) if args.resume else load_refiner(earlier)).config \
                if earlier is not None else RefinerConfig()
            config = RefinerConfig(width=args.width or found.width, spacing_mm=args.spacing or found.spacing_mm,
                                   mirror_inputs=bool(args.mirror))
        if not data:
            raise InpaintError("no training data; pass --data IMAGE[:BRAINMASK] or --cohort FOLDER.")
        if config is not None:
            config.validate("--width/--spacing")
        device = str(select_device(args.device))
        train(data, args.out, minutes=args.minutes, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
              seed=args.seed, resume=args.resume, loss_kind=args.loss, init=args.init, deform=args.deform,
              remap=args.remap, blur=args.blur, device=device, workers=args.workers,
              config=config, patch=args.patch, validation=validation, log_every=args.log_every,
              centre_depth_mm=args.centre_depth, mirror=args.mirror, mirror_lesions=args.mirror_lesions,
              slabs=args.slabs, noise_sd=args.noise,
              command=shlex.join(["python", "-m", "core.training.refiner",
                                  *(sys.argv[1:] if argv is None else argv)]))
    except InpaintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {_kept(args.out)}.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
