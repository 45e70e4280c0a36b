"""Poisson blending of a generated patch into the known voxels of a slice.

Solves x = argmin ||grad x - grad g||^2 over the hole with x = y on known pixels, using the
5-point Laplacian: for every hole pixel i with in-image 4-neighbours N(i),
    |N(i)| x_i - sum_{j in N(i), j in hole} x_j = sum_{j in N(i)} (g_i - g_j) + sum_{j in N(i), j known} y_j.
Pixels at the image border simply have fewer neighbours (zero-flux there). Each connected
part of the hole that touches a known pixel has a unique solution; a part with no known
neighbour at all (e.g. a fully masked slice) keeps the guide g unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve

_OFFSETS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def poisson_blend(known: np.ndarray, hole: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Blend `guide` into `known` (2D) inside `hole`; pixels outside the hole are returned unchanged."""
    known = np.asarray(known, dtype=np.float64)
    guide = np.asarray(guide, dtype=np.float64)
    hole = np.asarray(hole, dtype=bool)
    result = known.copy()
    if not hole.any():
        return result.astype(np.float32)
    labels, count = ndimage.label(hole)
    anchored = np.zeros(count + 1, dtype=bool)
    touching_known = ndimage.binary_dilation(~hole) & hole
    anchored[np.unique(labels[touching_known])] = True
    anchored[0] = False
    solve_mask = anchored[labels]
    free = hole & ~solve_mask
    result[free] = guide[free]
    if solve_mask.any():
        result[solve_mask] = _solve(known, solve_mask, guide)
    return result.astype(np.float32)


def _solve(known: np.ndarray, hole: np.ndarray, guide: np.ndarray) -> np.ndarray:
    h, w = hole.shape
    rows, cols = np.nonzero(hole)
    n = rows.size
    index = -np.ones(hole.shape, dtype=np.int64)
    index[rows, cols] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    off_i, off_j = [], []
    for dr, dc in _OFFSETS:
        nr, nc = rows + dr, cols + dc
        inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        src = np.nonzero(inside)[0]
        nr, nc = nr[inside], nc[inside]
        diag[src] += 1.0
        rhs[src] += guide[rows[src], cols[src]] - guide[nr, nc]
        neighbour = index[nr, nc]
        in_hole = neighbour >= 0
        off_i.append(src[in_hole])
        off_j.append(neighbour[in_hole])
        rhs[src[~in_hole]] += known[nr[~in_hole], nc[~in_hole]]
    off_i_all = np.concatenate(off_i)
    off_j_all = np.concatenate(off_j)
    matrix = sparse.csr_matrix(
        (np.concatenate([diag, -np.ones(off_i_all.size)]),
         (np.concatenate([np.arange(n), off_i_all]), np.concatenate([np.arange(n), off_j_all]))),
        shape=(n, n))
    return spsolve(matrix, rhs)
