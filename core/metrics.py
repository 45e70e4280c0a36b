"""Fill quality metrics: the BraTS 2023/24 inpainting metric and whole-slice PSNR/SSIM.

BraTS metric (`hole_metrics`): prediction and reference are multiplied by the hole mask,
both are clipped to the 0.5/99.5 percentiles of the voided input (the image the method
saw, hole voxels set to 0, all voxels counted as in the challenge's reference code; lower
bound at least 0) and scaled to [0, 1]. SSIM is the Wang et al. map (Gaussian window,
sigma 1.5, 11 taps, population covariance, data range 1) over the whole image - 3D for a
volume - averaged over hole voxels; MSE, MAE and PSNR (data range 1) use hole voxels only.

Whole-slice metrics (`slice_metrics`), as 2D inpainting studies report them: for every
slice that touches the hole, PSNR and mean SSIM of the whole slice (no mask), intensities
scaled by the same percentile normalisation; averaged over those slices.

A perfect fill has MSE 0 and PSNR `inf` (not capped), so a perfect result is never
confused with a finite score; aggregators must expect `inf`.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
from skimage.metrics import structural_similarity

from .modelspace import PLANES

LOWER_PERCENTILE = 0.5
UPPER_PERCENTILE = 99.5
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # skimage's Gaussian window: 11 taps at sigma 1.5
SSIM_WINDOW = 2 * SSIM_RADIUS + 1


def ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    """SSIM of two [0, 1] images with the Wang et al. settings; (mean, map) when `full`."""
    return structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                 use_sample_covariance=False, full=full)


def percentile_range(voided: np.ndarray) -> tuple[float, float]:
    """(lo, hi) of the normalisation: 0.5/99.5 percentiles of the voided input, lo >= 0."""
    lo, hi = np.percentile(np.asarray(voided, dtype=np.float64), [LOWER_PERCENTILE, UPPER_PERCENTILE])
    lo = max(float(lo), 0.0)
    hi = float(hi)
    if not hi > lo:
        raise ValueError("the voided image has no intensity range to normalise by (its 99.5th percentile is <= 0)")
    return lo, hi


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip(np.asarray(values, dtype=np.float64), lo, hi) - lo) / (hi - lo)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for data range 1; `inf` for a perfect match."""
    return math.inf if mse <= 0.0 else 10.0 * math.log10(1.0 / mse)


def _check(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray, voided: np.ndarray) -> np.ndarray:
    hole = np.asarray(hole, dtype=bool)
    for name, array in (("prediction", prediction), ("reference", reference), ("voided", voided)):
        if np.shape(array) != hole.shape:
            raise ValueError(f"{name} has shape {np.shape(array)}, the hole has {hole.shape}")
    if not hole.any():
        raise ValueError("the hole is empty: there is nothing to measure")
    if min(hole.shape) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW} voxels along every axis for SSIM, got {hole.shape}")
    return hole


def _ssim_box(hole: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the hole plus the SSIM window radius (the map inside it is exact)."""
    box = []
    for axis, n in enumerate(hole.shape):
        idx = np.flatnonzero(hole.any(axis=tuple(a for a in range(hole.ndim) if a != axis)))
        lo, hi = max(0, idx[0] - SSIM_RADIUS), min(n, idx[-1] + 1 + SSIM_RADIUS)
        if hi - lo < SSIM_WINDOW:
            lo = max(0, min(lo, n - SSIM_WINDOW))
            hi = lo + SSIM_WINDOW
        box.append(slice(lo, hi))
    return tuple(box)


def hole_metrics(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray,
                 voided: np.ndarray) -> dict[str, float]:
    """BraTS in-hole metrics: dict(ssim=, psnr=, mse=, mae=)."""
    hole = _check(prediction, reference, hole, voided)
    lo, hi = percentile_range(voided)
    pred = _scale(np.where(hole, prediction, 0.0), lo, hi)
    ref = _scale(np.where(hole, reference, 0.0), lo, hi)
    # Outside the hole both images hold the same constant, so the SSIM map of a box reaching
    # one window radius beyond the hole equals the whole image's map at every hole voxel.
    box = _ssim_box(hole)
    _, ssim_map = ssim(pred[box], ref[box], full=True)
    diff = pred[hole] - ref[hole]
    mse = float(np.mean(diff ** 2))
    return {"ssim": float(ssim_map[hole[box]].mean()), "psnr": psnr_from_mse(mse), "mse": mse,
            "mae": float(np.mean(np.abs(diff)))}


def slice_metrics(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray, voided: np.ndarray,
                  axis: Union[int, str]) -> dict[str, float]:
    """Whole-slice PSNR/SSIM averaged over the slices along `axis` that touch the hole.

    `axis` is an array axis, or a plane name ('axial', 'coronal', 'sagittal') of a volume in
    RAS voxel order.
    """
    if hole.ndim != 3:
        raise ValueError("slice metrics need 3D volumes")
    hole = np.asarray(hole, dtype=bool)
    k = PLANES[axis] if isinstance(axis, str) else int(axis)
    if np.shape(prediction) != hole.shape or np.shape(reference) != hole.shape or np.shape(voided) != hole.shape:
        raise ValueError("prediction, reference, voided and hole must have the same shape")
    lo, hi = percentile_range(voided)
    indices = np.flatnonzero(hole.any(axis=tuple(a for a in range(3) if a != k)))
    if indices.size == 0:
        raise ValueError("the hole is empty: there is nothing to measure")
    psnrs, ssims = [], []
    for i in indices:
        pred = _scale(np.take(prediction, i, axis=k), lo, hi)
        ref = _scale(np.take(reference, i, axis=k), lo, hi)
        psnrs.append(psnr_from_mse(float(np.mean((pred - ref) ** 2))))
        ssims.append(float(ssim(pred, ref)))
    return {"psnr_slice": float(np.mean(psnrs)), "ssim_slice": float(np.mean(ssims))}
