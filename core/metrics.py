"""Fill quality metrics: the BraTS 2023/24 inpainting metric and whole-slice PSNR/SSIM.

BraTS metric (`hole_metrics`), as the challenge's package (`inpainting`,
`challenge_metrics_2023.generate_metrics`) scores it: prediction and reference are
multiplied by the hole mask, both are clipped to the 0.5/99.5 percentiles of the voided
input (the image the method saw, hole voxels set to 0, all voxels counted; lower bound at
least 0) and scaled to [0, 1]. Then, with the challenge's names:
- `ssim`: torchmetrics' 2D SSIM over the (1, X, Y, Z) tensor, i.e. every slice along the
  first array axis is a channel and the SSIM map is 2D in the other two axes (Gaussian
  window sigma 1.5, 11 taps, reflect padding, population covariance, data range the larger
  of the two normalised images' max - min), averaged over hole voxels;
- `psnr_brats`: the challenge's headline `psnr`: data range from the reference's min and max
  inside the hole, the prediction clamped to that range;
- `psnr_01` (also under its old name `psnr`): data range fixed to 1;
- `mse`, `mae`: over hole voxels.
`ssim_3d` is our earlier variant: the 3D Wang et al. SSIM map (skimage) averaged over hole
voxels; it reads 0.001-0.02 higher than the challenge's `ssim`.

Whole-slice metrics (`slice_metrics`), as 2D inpainting studies report them: for every
slice that touches the hole, PSNR and mean SSIM of the whole slice (no mask), intensities
scaled by the same percentile normalisation; averaged over those slices.

A perfect fill has MSE 0 and PSNR `inf` (not capped), so a perfect result is never
confused with a finite score; aggregators must expect `inf`. `psnr_brats` is `nan` when the
reference is constant inside the hole (no data range), as in the challenge's code.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from .modelspace import PLANES

LOWER_PERCENTILE = 0.5
UPPER_PERCENTILE = 99.5
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # skimage's Gaussian window: 11 taps at sigma 1.5
SSIM_WINDOW = 2 * SSIM_RADIUS + 1
SSIM_K1, SSIM_K2 = 0.01, 0.03
METRIC_SLICES = 24   # slices of the hole's box measured at a time by `hole_metrics` (its memory: a chunk's)


def ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    """SSIM of two [0, 1] images with the Wang et al. settings; (mean, map) when `full`."""
    return structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                 use_sample_covariance=False, full=full)


def percentile_range(voided: np.ndarray, overwrite: bool = False) -> tuple[float, float]:
    """(lo, hi) of the normalisation: 0.5/99.5 percentiles of the voided input, lo >= 0.

    The same values as `np.percentile` of the input as float64 (its linear method), from one
    partitioned copy in the input's own type instead of a float64 copy of the whole volume;
    with `overwrite`, the input itself is partitioned (its values reordered) instead.
    """
    flat = np.asarray(voided).ravel()
    positions = (flat.size - 1) * (np.array([LOWER_PERCENTILE, UPPER_PERCENTILE], dtype=np.float64) / 100)
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, flat.size - 1)
    kth = np.unique(np.concatenate([below, above]))
    if overwrite or not np.may_share_memory(flat, voided):   # the input may be reordered, or ravel copied it
        flat.partition(kth)
        ordered = flat
    else:
        ordered = np.partition(flat, kth)
    if np.isnan(ordered[above.max():]).any():   # NaN sorts last; np.percentile gives NaN then
        raise ValueError("the voided image holds NaN voxels; it has no intensity range to normalise by")
    a, b = ordered[below].astype(np.float64), ordered[above].astype(np.float64)
    t = positions - below
    # numpy's linear interpolation, exactly: from the lower value below t = 0.5, from the upper one above
    values = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)
    lo, hi = max(float(values[0]), 0.0), float(values[1])
    if not hi > lo:
        raise ValueError("the voided image has no intensity range to normalise by (its 99.5th percentile is <= 0)")
    return lo, hi


def voided_range(image: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """`percentile_range` of `image` with the `hole` voided (0), from one copy partitioned in place."""
    return percentile_range(np.where(hole, np.zeros((), dtype=image.dtype), image), overwrite=True)


def _range(voided: Optional[np.ndarray], value_range: Optional[tuple[float, float]]) -> tuple[float, float]:
    if (voided is None) == (value_range is None):
        raise ValueError("give either the voided image or its value range (voided_range), not both or neither")
    return percentile_range(voided) if value_range is None else value_range


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip(np.asarray(values, dtype=np.float64), lo, hi) - lo) / (hi - lo)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for data range 1; `inf` for a perfect match."""
    return math.inf if mse <= 0.0 else 10.0 * math.log10(1.0 / mse)


def _check(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray,
           voided: Optional[np.ndarray]) -> np.ndarray:
    hole = np.asarray(hole, dtype=bool)
    for name, array in (("prediction", prediction), ("reference", reference), ("voided", voided)):
        if array is not None and np.shape(array) != hole.shape:
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


def _gaussian_window_1d() -> torch.Tensor:
    """torchmetrics' Gaussian taps (11, sigma 1.5), float64; its 2D window is their outer product."""
    d = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-((d / SSIM_SIGMA) ** 2) / 2)
    return g / g.sum()


def brats_ssim(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray) -> float:
    """The challenge's SSIM of two normalised, hole-masked volumes, averaged over hole voxels.

    torchmetrics' `StructuralSimilarityIndexMeasure` on the (1, X, Y, Z) tensor: slices along
    the first axis are channels, each gets the 2D SSIM map over the other two axes with
    reflect padding; data range max(ptp(prediction), ptp(reference)). Only slices that hold
    hole voxels are computed (channels are independent).
    """
    if np.ndim(hole) == 2:  # one slice: a single channel
        prediction, reference, hole = prediction[None], reference[None], hole[None]
    data_range = max(float(np.ptp(prediction)), float(np.ptp(reference)))
    return float(_brats_ssim_values(prediction, reference, hole, data_range).mean())


def _brats_ssim_values(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray,
                       data_range: float) -> np.ndarray:
    """`brats_ssim`'s map at the hole voxels (C order), for a given data range: slices along the first axis are
    independent, so a volume may be measured a few slices at a time."""
    pred = torch.as_tensor(np.asarray(prediction, dtype=np.float64))
    ref = torch.as_tensor(np.asarray(reference, dtype=np.float64))
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    channels = np.flatnonzero(hole.any(axis=tuple(range(1, hole.ndim))))
    index = torch.as_tensor(channels)
    pad = (SSIM_RADIUS,) * 4
    p = F.pad(pred[index][None], pad, mode="reflect")[0]
    t = F.pad(ref[index][None], pad, mode="reflect")[0]
    g = _gaussian_window_1d()
    stack = torch.stack([p, t, p * p, t * t, p * t])  # (5, channels, Y + 10, Z + 10)
    n = stack.shape[1]
    out = stack.reshape(5 * n, 1, *stack.shape[2:])
    out = F.conv2d(F.conv2d(out, g[None, None, :, None]), g[None, None, None, :])  # separable 2D window
    out = out.reshape(5, n, *pred.shape[1:])
    mu_p, mu_t, e_pp, e_tt, e_pt = out
    var_p = torch.clamp(e_pp - mu_p ** 2, min=0.0)
    var_t = torch.clamp(e_tt - mu_t ** 2, min=0.0)
    cov = e_pt - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim_map.numpy()[hole[channels]]


def psnr_reference_range(prediction: np.ndarray, reference: np.ndarray) -> float:
    """The challenge's headline PSNR of hole values: data range = reference max - min, prediction clamped to it."""
    lo, hi = float(reference.min()), float(reference.max())
    mse = float(np.mean((np.clip(prediction, lo, hi) - reference) ** 2))
    if mse <= 0.0:
        return math.inf if hi > lo else math.nan
    if not hi > lo:
        return -math.inf
    return 10.0 * math.log10((hi - lo) ** 2 / mse)


def hole_metrics(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray,
                 voided: Optional[np.ndarray] = None, *,
                 value_range: Optional[tuple[float, float]] = None) -> dict[str, float]:
    """BraTS in-hole metrics: dict(ssim=, psnr_brats=, psnr_01=, psnr= (same as psnr_01), mse=, mae=, ssim_3d=).

    Intensities are normalised by the percentiles of `voided` (the input with the hole set to 0),
    or by its `value_range` computed once before (`voided_range`).
    """
    hole = _check(prediction, reference, hole, voided)
    lo, hi = _range(voided, value_range)
    # Outside the hole both images hold the same constant (0), so every metric can be computed on
    # the box reaching one SSIM window radius beyond the hole: the SSIM maps at hole voxels equal
    # the whole image's, and the box holds a voxel outside the hole (the data range's 0) unless it
    # is the whole image. Prediction and reference are never copied whole; the percentiles partition one
    # copy of `voided` in its own type. The box is measured METRIC_SLICES slices of its first axis at a time
    # (lesions spread over a fine brain make it nearly the whole volume, and the SSIM maps several float64 copies):
    # the 3D SSIM with one window radius more on each side, so every value equals the whole box's.
    box = _ssim_box(hole)
    inside = hole[box]
    n = inside.shape[0]

    def scaled(image: np.ndarray, rows: slice) -> np.ndarray:   # rows of the box: hole-masked, normalised
        part = (slice(box[0].start + rows.start, box[0].start + rows.stop),) + box[1:]
        return _scale(np.where(inside[rows], image[part], 0.0), lo, hi)

    def extent(image: np.ndarray) -> float:   # max - min of the normalised, hole-masked box (the scaling is monotone)
        values = image[box][inside]
        ends = _scale(np.array([values.min(), values.max()] + ([0.0] if not inside.all() else [])), lo, hi)
        return float(ends.max() - ends.min())

    chunks = [slice(a, min(n, a + METRIC_SLICES)) for a in range(0, n, METRIC_SLICES)]
    data_range = max(extent(prediction), extent(reference))   # the BraTS SSIM's: the whole box's
    pred_in, ref_in, ssim_2d, ssim_3d = [], [], [], []
    for rows in chunks:
        if not inside[rows].any():
            continue
        start, stop = max(0, rows.start - SSIM_RADIUS), min(n, rows.stop + SSIM_RADIUS)
        if stop - start < SSIM_WINDOW:   # skimage's window must fit
            start, stop = max(0, min(start, n - SSIM_WINDOW)), max(stop, min(n, start + SSIM_WINDOW))
        pred, ref = scaled(prediction, slice(start, stop)), scaled(reference, slice(start, stop))
        keep, here = slice(rows.start - start, rows.stop - start), inside[rows]
        pred_in.append(pred[keep][here])
        ref_in.append(ref[keep][here])
        ssim_2d.append(_brats_ssim_values(pred[keep], ref[keep], here, data_range))
        ssim_3d.append(ssim(pred, ref, full=True)[1][keep][here])
    pred_values, ref_values = np.concatenate(pred_in), np.concatenate(ref_in)
    diff = pred_values - ref_values
    mse = float(np.mean(diff ** 2))
    psnr_01 = psnr_from_mse(mse)
    return {"ssim": float(np.concatenate(ssim_2d).mean()), "psnr_brats": psnr_reference_range(pred_values, ref_values),
            "psnr_01": psnr_01, "psnr": psnr_01, "mse": mse, "mae": float(np.mean(np.abs(diff))),
            "ssim_3d": float(np.concatenate(ssim_3d).mean())}


def slice_metrics(prediction: np.ndarray, reference: np.ndarray, hole: np.ndarray,
                  voided: Optional[np.ndarray], axis: Union[int, str], *,
                  value_range: Optional[tuple[float, float]] = None) -> dict[str, float]:
    """Whole-slice PSNR/SSIM averaged over the slices along `axis` that touch the hole.

    `axis` is an array axis, or a plane name ('axial', 'coronal', 'sagittal') of a volume in
    RAS voxel order. Normalised as `hole_metrics` (`voided` or its `value_range`).
    """
    if hole.ndim != 3:
        raise ValueError("slice metrics need 3D volumes")
    hole = np.asarray(hole, dtype=bool)
    k = PLANES[axis] if isinstance(axis, str) else int(axis)
    if np.shape(prediction) != hole.shape or np.shape(reference) != hole.shape or (
            voided is not None and np.shape(voided) != hole.shape):
        raise ValueError("prediction, reference, voided and hole must have the same shape")
    lo, hi = _range(voided, value_range)
    indices = np.flatnonzero(hole.any(axis=tuple(a for a in range(3) if a != k)))
    if indices.size == 0:
        raise ValueError("the hole is empty: there is nothing to measure")
    psnrs, ssims = [], []
    for i in indices:
        plane = tuple(int(i) if a == k else slice(None) for a in range(3))   # a view: np.take would copy a
        pred = _scale(prediction[plane], lo, hi)                           # strided volume whole, per slice
        ref = _scale(reference[plane], lo, hi)
        psnrs.append(psnr_from_mse(float(np.mean((pred - ref) ** 2))))
        ssims.append(float(ssim(pred, ref)))
    return {"psnr_slice": float(np.mean(psnrs)), "ssim_slice": float(np.mean(ssims))}
