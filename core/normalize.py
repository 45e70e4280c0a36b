"""Intensity normalisation shared by training and inference.

Intensities are mapped linearly so that 0 stays 0 (background of a brain-extracted scan)
and the 99.5th percentile of known brain tissue becomes 1; model space is that range
scaled to [-1, 1] (the generator ends in tanh). The percentile ignores the hole, so the
lesion itself never influences the scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import InpaintError

UPPER_PERCENTILE = 99.5
MAX_BRAIN_ML = 2500.0  # more tissue than this is a head with skull and scalp (adult brains: 1.1-2.0 l)
LOWER_PERCENTILE = 0.5
BRAIN_FRACTION, ROBUST_MAX_PERCENTILE = 0.05, 99.0  # tissue lies above 5% of the 99th percentile of positive voxels
MIN_KNOWN_BRAIN = 10  # known brain voxels an intensity scale needs


@dataclass(frozen=True)
class IntensityScale:
    """Linear map between scanner intensities and model space [-1, 1]."""

    lo: float
    hi: float

    def to_model(self, values: np.ndarray) -> np.ndarray:
        unit = (np.asarray(values, dtype=np.float32) - self.lo) / (self.hi - self.lo)
        return (np.clip(unit, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)

    def from_model(self, values: np.ndarray) -> np.ndarray:
        unit = (np.asarray(values, dtype=np.float32) + 1.0) / 2.0
        return (unit * (self.hi - self.lo) + self.lo).astype(np.float32)


def estimate_brain(volume: np.ndarray) -> np.ndarray:
    """Voxels that look like tissue in a brain-extracted scan: above 5% of the robust maximum."""
    finite = np.isfinite(volume)
    positive = volume[finite & (volume > 0)]
    if positive.size == 0:
        return np.zeros(volume.shape, dtype=bool)
    return finite & (volume > BRAIN_FRACTION * float(np.percentile(positive, ROBUST_MAX_PERCENTILE)))


def intensity_scale(volume: np.ndarray, brain: Optional[np.ndarray] = None,
                    hole: Optional[np.ndarray] = None) -> IntensityScale:
    """Robust scale from percentiles of known brain voxels (brain minus hole)."""
    region = estimate_brain(volume) if brain is None else brain.astype(bool)
    if hole is not None:
        region = region & ~hole.astype(bool)
    values = np.asarray(volume, dtype=np.float32)[region]
    values = values[np.isfinite(values)]
    if values.size < MIN_KNOWN_BRAIN:
        raise InpaintError(f"Only {values.size} known brain voxels are left outside the hole (at least 10 are needed "
                           "to scale intensities); use a brain-extracted image with a mask that covers only the "
                           "lesion.")
    lo = min(0.0, float(np.percentile(values, LOWER_PERCENTILE)))
    hi = float(np.percentile(values, UPPER_PERCENTILE))
    if not hi > lo:
        hi = lo + 1.0
    return IntensityScale(lo=lo, hi=hi)
