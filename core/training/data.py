"""Training slices mapped to model space exactly as inference maps them.

Each volume is viewed in closest-RAS order, normalised with `core.normalize.intensity_scale`
(brain from `estimate_brain`), and sliced along the model's plane. The model grid is the
inference `SliceGrid` (centred on the brain bounding box); the random augmentation warp is
composed with its native coordinates so that each training slice is ONE linear
interpolation of the in-plane anti-aliased native slice, like `SliceGrid.to_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..errors import InpaintError
from ..modelspace import Reorientation, SliceGrid, plane_axes
from ..normalize import estimate_brain, intensity_scale
from ..resources import MNI152_T1
from ..volume import load_mask, load_volume
from .augment import (AugmentConfig, intensity_augment, synthesize_contrast, tissue_weights,
                      to_model_range, warp_offsets)
from .cohort import find_scans, split

TEMPLATE = MNI152_T1
TISSUE_FILES = ("gm.nii.gz", "wm.nii.gz")
MIN_BRAIN_FRACTION = 0.15  # a slice is used when its brain area is >= this share of the largest slice's


@dataclass
class SliceSource:
    """One training volume: anti-aliased unit-scale slices (slice axis first) and optional tissue maps."""

    path: Path
    unit: np.ndarray                 # (n, A, B) float32, 0 = background, 1 = 99.5th brain percentile
    tissues: np.ndarray | None       # (3, n, A, B) CSF/GM/WM probabilities, anti-aliased
    tissue_sample: np.ndarray | None  # (3, m) raw tissue values at random brain voxels (for the scale)
    grid: SliceGrid
    slices: np.ndarray               # indices of slices with enough brain
    brainmask: Path | None = None    # the mask it was skull-stripped with, if any
    brain_ml: float = 0.0            # the brain's volume (mask or estimate); more than MAX_BRAIN_ML: skull-on

    def sample(self, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
        """One augmented slice in model space [-1, 1], shape (size, size)."""
        index = int(rng.choice(self.slices))
        offsets = warp_offsets(rng, self.grid.size, self.grid.spacing, cfg)
        coords = np.stack([self.grid.center[0] + offsets[0] / self.grid.native_spacing[0],
                           self.grid.center[1] + offsets[1] / self.grid.native_spacing[1]])
        image = self.unit[index]
        if cfg.tissue and self.tissues is not None and rng.random() < cfg.synth:
            weights = tissue_weights(rng)
            top = float(np.percentile(synthesize_contrast(weights, self.tissue_sample), 99.5))
            image = synthesize_contrast(weights, self.tissues[:, index]) / max(top, 1e-6)
        unit = ndimage.map_coordinates(image, coords, order=1, mode="constant", cval=0.0)
        return to_model_range(intensity_augment(rng, unit, cfg))


def _smooth_in_plane(volume: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """The anti-aliasing of `SliceGrid.to_model`, applied to every slice at once (slice axis first)."""
    factors = np.array([grid.spacing / grid.native_spacing[0], grid.spacing / grid.native_spacing[1]])
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    if np.all(sigma == 0):
        return volume.astype(np.float32)
    return ndimage.gaussian_filter(volume.astype(np.float32), sigma=(0.0, *sigma), mode="constant",
                                   truncate=3.0).astype(np.float32)


def _tissue_maps(path: Path, shape: tuple[int, ...], reo: Reorientation) -> np.ndarray | None:
    """CSF/GM/WM probabilities from gm/wm maps beside `path` (CSF = brain - GM - WM), or None."""
    files = [path.parent / name for name in TISSUE_FILES]
    if path.name in TISSUE_FILES or not all(f.is_file() for f in files):
        return None
    maps = []
    for f in files:
        data = load_volume(f).data
        if data.shape != shape:
            return None
        maps.append(reo.apply(data / max(float(data.max()), 1e-6)))
    return np.stack(maps)


def load_source(path: Path, axis: str, size: int, spacing: float, brainmask: Path | None = None) -> SliceSource:
    """Prepare one T1 volume for slice sampling: brain-extracted, or skull-stripped with `brainmask`."""
    volume = load_volume(path)
    reo = Reorientation.of(volume.affine, volume.data.shape)
    data = reo.apply(np.nan_to_num(volume.data.astype(np.float32)))
    if brainmask is not None:
        brain = reo.apply(load_mask(brainmask, volume, kind="brain"))
        data = np.where(brain, data, 0.0).astype(np.float32)
    else:
        brain = estimate_brain(data)
    if brain.sum() < 1000:
        raise InpaintError(f"{path} has almost no brain voxels: training needs brain-extracted T1 images.")
    scale = intensity_scale(data, brain)
    grid = SliceGrid.for_volume(brain, reo.ras_affine, axis, size, spacing)
    k, a, b = plane_axes(axis)
    order = (k, a, b)
    unit = _smooth_in_plane((np.transpose(data, order) - scale.lo) / (scale.hi - scale.lo), grid)
    area = np.transpose(brain, order).sum(axis=(1, 2))
    slices = np.nonzero(area >= MIN_BRAIN_FRACTION * area.max())[0]
    tissues = sample = None
    maps = _tissue_maps(path, volume.data.shape, reo)
    if maps is not None:
        gm, wm = maps
        csf = np.clip(brain.astype(np.float32) - gm - wm, 0.0, 1.0)
        stack = np.stack([csf, gm, wm])
        pick = np.random.default_rng(0).choice(np.flatnonzero(brain), size=min(20000, int(brain.sum())), replace=False)
        sample = stack.reshape(3, -1)[:, pick]
        tissues = np.stack([_smooth_in_plane(np.transpose(m, order), grid) for m in stack])
    voxel_ml = abs(float(np.linalg.det(np.asarray(volume.affine, dtype=np.float64)[:3, :3]))) / 1000.0
    return SliceSource(path=path, unit=unit, tissues=tissues, tissue_sample=sample, grid=grid, slices=slices,
                       brainmask=brainmask, brain_ml=float(brain.sum()) * voxel_ml)


MASK_SUFFIXES = ("brainmask", "mask", "roi", "seg", "dseg", "probseg", "label", "labels", "lesion", "lesions")


def is_mask_name(path: Path) -> bool:
    """Whether a NIfTI file is named as a mask or label map, not an image: its name ends in `_brainmask`, `_mask`,
    `_roi`, `_seg`, `_dseg`, `_probseg`, `_label(s)` or `_lesion(s)` (or is one of those), or has a `_label-`
    entity; the tissue maps of TISSUE_FILES too."""
    stem = path.name.lower().removesuffix(".gz").removesuffix(".nii")
    return path.name in TISSUE_FILES or stem.rsplit("_", 1)[-1] in MASK_SUFFIXES or "_label-" in stem


def brainmask_beside(image: Path) -> Path | None:
    """The `*_brainmask` beside a `*_T1w` scan (the cohort convention, `core.training.cohort.find_scans`), or None."""
    if "_T1w" not in image.name:
        return None
    return next(iter(sorted(image.parent.glob(f"{image.name.split('_T1w')[0]}_brainmask.nii*"))), None)


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """The training images among `paths` (files, or NIfTI files in folders), each with the `*_brainmask` that
    skull-strips a `*_T1w` scan (or None), and the files of the folders left out as masks or label maps."""
    found: list[Path] = []
    skipped: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if f.name.endswith((".nii", ".nii.gz")))
            images = [f for f in inside if not is_mask_name(f)]
            if not images:
                raise InpaintError(f"{p} holds no T1 image (.nii or .nii.gz files other than masks, label maps and "
                                   "tissue maps): give brain-extracted T1 images or folders of them, or --cohort for "
                                   "folders of *_T1w scans with their *_brainmask.")
            found += images
            skipped += [f for f in inside if is_mask_name(f) and f.name not in TISSUE_FILES]
        elif p.is_file():
            if is_mask_name(p):
                raise InpaintError(f"{p} is named as a mask or label map, not a T1 image: give the T1 image (a "
                                   "*_T1w scan is skull-stripped with the *_brainmask beside it), or --cohort for "
                                   "folders of *_T1w scans with their *_brainmask.")
            found.append(p)
        else:
            raise InpaintError(f"{p} does not exist: give brain-extracted T1 NIfTI files or folders of them.")
    return [(f, brainmask_beside(f)) for f in found], skipped


class TrainingData:
    """Slice sampler over several volumes, weighted by their number of usable slices."""

    def __init__(self, sources: list[SliceSource]) -> None:
        self.sources = sources
        self.skipped: list[Path] = []   # files of --data folders left out as masks or label maps
        counts = np.array([len(s.slices) for s in sources], dtype=np.float64)
        self.weights = counts / counts.sum()

    @classmethod
    def load(cls, paths: Sequence[str | Path] | None, axis: str, size: int, spacing: float,
             cohorts: Sequence[str | Path] = ()) -> "TrainingData":
        """`paths` (files or folders, masks and label maps left out, `*_T1w` scans skull-stripped with the
        `*_brainmask` beside them; the bundled template when neither they nor `cohorts` are given) and the training
        split of each cohort folder (`core.training.cohort`), skull-stripped with their brain masks."""
        scans = [s for folder in cohorts for s in split(find_scans(Path(folder)))[0]]
        files, skipped = expand_paths(paths) if paths else ([] if scans else [(TEMPLATE, None)], [])
        data = cls([load_source(f, axis, size, spacing, mask) for f, mask in files]
                   + [load_source(s.image, axis, size, spacing, s.brainmask) for s in scans])
        data.skipped = skipped
        return data

    def batch(self, rng: np.random.Generator, batch: int, cfg: AugmentConfig) -> np.ndarray:
        """(batch, 1, size, size) float32 slices in model space."""
        picks = rng.choice(len(self.sources), size=batch, p=self.weights)
        return np.stack([self.sources[i].sample(rng, cfg) for i in picks])[:, None]
