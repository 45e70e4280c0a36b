"""Random augmentation of training slices, all driven by an explicit `numpy.random.Generator`.

Geometric augmentation is a warp of the model grid in millimetres (affine + smooth elastic
field + left-right flip) that `core.training.data` composes with `SliceGrid.native_coords()`,
so each training slice is made by ONE interpolation, the way inference maps slices.
Intensity augmentation acts on slices in unit scale (0 = background, 1 = the 99.5th brain
percentile, `core.normalize`): gamma, smooth multiplicative bias field, noise in the brain.
Tissue synthesis makes T1-like contrast from grey/white matter maps with random intensities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

GROUPS = ("none", "geometric", "geometric+intensity", "all")


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of every augmentation; `for_group` switches whole groups off for ablations."""

    rotate_deg: float = 10.0
    log_scale_sd: float = 0.08
    anisotropy: float = 0.05
    shear: float = 0.05
    translate_mm: float = 6.0
    elastic_mm: float = 2.0
    elastic_points: int = 6
    flip: float = 0.5
    log_gamma_sd: float = 0.2
    bias_sd: float = 0.12
    bias_points: int = 4
    noise_max: float = 0.03
    synth: float = 0.4
    geometric: bool = True
    intensity: bool = True
    tissue: bool = True

    @classmethod
    def for_group(cls, group: str) -> "AugmentConfig":
        if group not in GROUPS:
            raise ValueError(f"unknown augmentation group {group!r}; use one of {', '.join(GROUPS)}")
        level = GROUPS.index(group)
        return cls(geometric=level >= 1, intensity=level >= 2, tissue=level >= 3)

    def to_dict(self) -> dict:
        return asdict(self)


def random_affine(rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """2x2 matrix (rotation, scale, anisotropy, shear; flip included) and translation in mm."""
    angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = np.exp(rng.normal(0.0, cfg.log_scale_sd)) * (1.0 + rng.uniform(-cfg.anisotropy, cfg.anisotropy, 2))
    shear = np.array([[1.0, rng.uniform(-cfg.shear, cfg.shear)], [0.0, 1.0]])
    matrix = rot @ shear @ np.diag(scale)
    if rng.random() < cfg.flip:
        matrix = matrix @ np.diag([-1.0, 1.0])  # first in-plane axis is left-right for axial/coronal
    return matrix, rng.uniform(-cfg.translate_mm, cfg.translate_mm, 2)


def smooth_field(rng: np.random.Generator, points: int, size: int, sd: float, channels: int = 1) -> np.ndarray:
    """Random smooth field: Gaussian values on a coarse `points` x `points` grid, cubic upsampled."""
    coarse = rng.normal(0.0, sd, (channels, points, points))
    zoom = size / points
    return np.stack([ndimage.zoom(c, zoom, order=3, mode="nearest", grid_mode=True) for c in coarse])


def warp_offsets(rng: np.random.Generator, size: int, spacing: float, cfg: AugmentConfig) -> np.ndarray:
    """Offsets (2, size, size) in mm from the grid centre of the native point each model pixel samples."""
    offset = (size - 1) / 2.0
    grid = (np.mgrid[0:size, 0:size].astype(np.float64) - offset) * spacing
    if not cfg.geometric:
        return grid
    matrix, shift = random_affine(rng, cfg)
    warped = np.einsum("ij,jrc->irc", matrix, grid) + shift[:, None, None]
    if cfg.elastic_mm > 0:
        warped += smooth_field(rng, cfg.elastic_points, size, cfg.elastic_mm, channels=2)
    return warped


def tissue_weights(rng: np.random.Generator) -> np.ndarray:
    """Random T1-like intensities (CSF < GM < WM) for the CSF/GM/WM maps."""
    return np.array([rng.uniform(0.05, 0.35), rng.uniform(0.45, 0.8), rng.uniform(0.9, 1.0)])


def synthesize_contrast(weights: np.ndarray, tissues: np.ndarray) -> np.ndarray:
    """Image from a (3, ...) CSF/GM/WM probability stack and per-tissue intensities."""
    return np.tensordot(weights, tissues, axes=1)


def intensity_augment(rng: np.random.Generator, unit: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Gamma, bias field and noise on a unit-scale slice (size, size); background stays 0."""
    if not cfg.intensity:
        return unit
    size = unit.shape[-1]
    brain = unit > 0.01
    out = np.clip(unit, 0.0, None) ** np.exp(rng.normal(0.0, cfg.log_gamma_sd))
    out = out * np.exp(smooth_field(rng, cfg.bias_points, size, cfg.bias_sd)[0])
    out = out + brain * rng.normal(0.0, rng.uniform(0.0, cfg.noise_max), unit.shape)
    return np.where(brain, out, 0.0)


def to_model_range(unit: np.ndarray) -> np.ndarray:
    """Unit scale -> model space [-1, 1], clipped as `IntensityScale.to_model` does."""
    return (np.clip(unit, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def random_holes(rng: np.random.Generator, batch: int, size: int, empty: float = 0.2) -> np.ndarray:
    """Known-pixel masks (batch, size, size), 1 = known: boxes or smooth blobs of varied size, some none."""
    known = np.ones((batch, size, size), dtype=np.float32)
    rows, cols = np.mgrid[0:size, 0:size]
    for i in range(batch):
        if rng.random() < empty:
            continue
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.uniform(0.2 * size, 0.8 * size, 2)
            if rng.random() < 0.5:
                hy, hx = rng.uniform(0.03 * size, 0.2 * size, 2)
                hole = (np.abs(rows - cy) <= hy) & (np.abs(cols - cx) <= hx)
            else:
                radius = rng.uniform(0.04 * size, 0.2 * size)
                wobble = smooth_field(rng, 4, size, 0.3)[0]
                hole = np.hypot(rows - cy, cols - cx) <= radius * (1.0 + wobble)
            known[i][hole] = 0.0
    return known
