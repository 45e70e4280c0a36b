"""3D Poisson blending and harmonic filling over a whole lesion.

Solves x = argmin ||grad x - grad g||^2 over the hole with x = y on every known voxel,
using the 7-point Laplacian: for every hole voxel i with in-volume 6-neighbours N(i),
    sum_{j in N(i)} w_ij (x_i - x_j) = sum_{j in N(i)} w_ij (g_i - g_j),
with x_j = y_j for known neighbours and w_ij = 1 / h_ij^2 (h: voxel size along the axis of
the pair, so anisotropic voxels are handled). The Dirichlet boundary comes from every known
neighbour, including those in the slices above and below. With g = 0 this is the harmonic
(Laplace) fill. A hole component with no known neighbour keeps the guide unchanged.
Each 6-connected component is solved on its own bounding box (a direct sparse solve, conjugate
gradients for large holes).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import cg, spsolve

_FACE = ndimage.generate_binary_structure(3, 1)
DIRECT_LIMIT = 1000  # hole voxels up to which the biharmonic system is solved directly (CG is faster above)
HARMONIC_DIRECT_LIMIT = 20000  # the same for the 7-point system: its direct solve fills in too much memory above


def _checked(known: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = np.asarray(known, dtype=np.float32)
    hole = np.asarray(hole, dtype=bool)
    if known.ndim != 3 or hole.shape != known.shape:
        raise ValueError(f"need a 3D volume and a hole of the same shape, got {known.shape} and {hole.shape}")
    return known, hole


def _by_component(known: np.ndarray, hole: np.ndarray, margin: int,
                  solve: Callable[[np.ndarray, np.ndarray, tuple[slice, ...]], np.ndarray]) -> np.ndarray:
    """`known` with each 6-connected hole component set to `solve(known box, component, box)` on its box + `margin`."""
    result = known.copy()
    labels, _ = ndimage.label(hole, structure=_FACE)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        crop = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, hole.shape))
        component = labels[crop] == index
        result[crop][component] = solve(known[crop].astype(np.float64), component, crop).astype(np.float32)
    return result


def poisson_blend_3d(known: np.ndarray, hole: np.ndarray, guide: Optional[np.ndarray] = None,
                     spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Blend `guide` (default 0: harmonic fill) into `known` inside `hole`; other voxels are returned as given."""
    known, hole = _checked(known, hole)
    guide = np.zeros(known.shape, dtype=np.float64) if guide is None else np.asarray(guide, dtype=np.float64)
    weights = 1.0 / np.asarray(spacing, dtype=np.float64) ** 2
    return _by_component(known, hole, 1, lambda box, part, crop: _solve(box, part, guide[crop], weights))


def _solve(known: np.ndarray, hole: np.ndarray, guide: np.ndarray, weights: np.ndarray,
           rtol: float = 0.0) -> np.ndarray:
    """The 7-point system: a direct solve up to HARMONIC_DIRECT_LIMIT hole voxels with `rtol` 0, else
    conjugate gradients to `rtol` (1e-10 for 0) from the mean of the box's known voxels."""
    coords = np.nonzero(hole)
    n = coords[0].size
    index = -np.ones(hole.shape, dtype=np.int64)
    index[coords] = np.arange(n)
    diag = np.zeros(n)
    rhs = np.zeros(n)
    rows, cols, vals = [], [], []
    anchored = False
    for axis in range(3):
        for step in (-1, 1):
            neighbour = [c.copy() for c in coords]
            neighbour[axis] += step
            inside = (neighbour[axis] >= 0) & (neighbour[axis] < hole.shape[axis])
            src = np.nonzero(inside)[0]
            nb = tuple(c[inside] for c in neighbour)
            w = weights[axis]
            diag[src] += w
            rhs[src] += w * (guide[tuple(c[src] for c in coords)] - guide[nb])
            j = index[nb]
            in_hole = j >= 0
            rows.append(src[in_hole])
            cols.append(j[in_hole])
            vals.append(np.full(int(in_hole.sum()), -w))
            rhs[src[~in_hole]] += w * known[tuple(c[~in_hole] for c in nb)]
            anchored = anchored or bool((~in_hole).any())
    if not anchored:
        return guide[coords]
    matrix = sparse.csc_matrix((np.concatenate([diag, *vals]),
                                (np.concatenate([np.arange(n), *rows]), np.concatenate([np.arange(n), *cols]))),
                               shape=(n, n))
    if rtol == 0.0 and n <= HARMONIC_DIRECT_LIMIT:
        return spsolve(matrix, rhs)
    # symmetric positive definite (every component has a known neighbour)
    start = np.full(n, float(known[~hole].mean()) + float(guide[coords].mean()))
    values, _ = cg(matrix.tocsr(), rhs, x0=start, rtol=rtol or 1e-10, maxiter=5000)
    return values


def biharmonic_fill_3d(known: np.ndarray, hole: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Biharmonic fill in 3D: L(L x) = 0 on hole voxels (L: the voxel-size weighted 7-point Laplacian of
    the hole's box plus two voxels, zero flux at the box faces), known voxels fixed. Smooth up to the
    gradient at the hole's edge, unlike the harmonic fill; other voxels are returned as given."""
    known, hole = _checked(known, hole)
    weights = 1.0 / np.asarray(spacing, dtype=np.float64) ** 2
    return _by_component(known, hole, 2, lambda box, part, _crop: box[part] if part.all()
                         else _solve_biharmonic(box, part, weights))


def _laplacian(shape: tuple[int, ...], weights: np.ndarray) -> sparse.csr_matrix:
    """Weighted 7-point Laplacian (negative semidefinite) of a box with zero flux at its faces."""
    n = int(np.prod(shape))
    index = np.arange(n).reshape(shape)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    for axis in range(3):
        a = np.take(index, np.arange(shape[axis] - 1), axis=axis).ravel()
        b = np.take(index, np.arange(1, shape[axis]), axis=axis).ravel()
        w = weights[axis]
        rows += [a, b]
        cols += [b, a]
        vals += [np.full(a.size, w), np.full(a.size, w)]
        np.add.at(diag, a, -w)
        np.add.at(diag, b, -w)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _solve_biharmonic(known: np.ndarray, hole: np.ndarray, weights: np.ndarray) -> np.ndarray:
    lap = _laplacian(hole.shape, weights)
    flat = hole.ravel()
    rows = lap[flat]                               # Laplacian rows of the hole voxels
    involved = np.asarray(abs(rows).sum(axis=0)).ravel() > 0
    bilap = (lap[involved].T @ lap[involved]).tocsr()  # symmetric: L^T L restricted to what touches the hole
    system = bilap[flat][:, flat]
    rhs = -bilap[flat][:, ~flat] @ known.ravel()[~flat]
    if flat.sum() <= DIRECT_LIMIT:
        return spsolve(system.tocsc(), rhs)
    # large holes: conjugate gradients (the system is symmetric positive definite), started at the
    # harmonic fill; a direct solve of the 25-point stencil would fill in far too much memory
    start = _solve(known, hole, np.zeros(hole.shape), weights, rtol=1e-6)
    scale = max(float(np.abs(rhs).max()), 1e-12)
    values, _ = cg(system, rhs / scale, x0=start / scale, rtol=1e-8, maxiter=5000)
    return values * scale
