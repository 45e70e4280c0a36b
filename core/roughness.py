"""Through-plane consistency of a fill: roughness (mean absolute second difference) per axis.

A slice-by-slice fill is smooth within its slices and rough across them: stripes that show
in the other two planes. For a fill x of a hole H and an axis a,
    R_a(x) = mean over i in H of |x[i - e_a] - 2 x[i] + x[i + e_a]|
(voxels at the volume's edge along a are left out). The stripe ratio divides the roughness
across the fill's slices by the mean roughness within them, relative to the same ratio of the
truth: 1 means no stripes. The texture ratio is the mean roughness over the three axes
relative to the truth's: a smooth interpolation has 0.2-0.4 of the truth's texture.
"""

from __future__ import annotations

import numpy as np


def roughness(volume: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """R_a for a = 0, 1, 2 over the hole voxels (NaN along an axis where no hole voxel has two neighbours)."""
    volume = np.asarray(volume, dtype=np.float64)
    hole = np.asarray(hole, dtype=bool)
    values = []
    for axis in range(3):
        inner = [slice(None)] * 3
        inner[axis] = slice(1, -1)
        before, after = list(inner), list(inner)
        before[axis], after[axis] = slice(0, -2), slice(2, None)
        second = volume[tuple(before)] - 2.0 * volume[tuple(inner)] + volume[tuple(after)]
        where = hole[tuple(inner)]
        values.append(float(np.abs(second[where]).mean()) if where.any() else float("nan"))
    return np.array(values)


def stripe_metrics(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray, slice_axis: int) -> dict[str, float]:
    """Stripe ratio (1 = as consistent across slices as the truth) and texture ratio (1 = as rough as the truth)."""
    fill_r, true_r = roughness(filled, hole), roughness(truth, hole)
    in_plane = [a for a in range(3) if a != slice_axis]

    def across_within(r: np.ndarray) -> float:
        return float(r[slice_axis] / max(np.mean(r[in_plane]), 1e-12))

    return {"stripe_ratio": across_within(fill_r) / max(across_within(true_r), 1e-12),
            "texture_ratio": float(np.mean(fill_r) / max(np.mean(true_r), 1e-12))}
