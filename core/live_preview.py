"""Live preview while painting: the lesions a stroke touched, filled by the fast path of the default method.

`touched_lesions` finds the 26-connected parts of the mask around the voxels an edit changed,
in a box grown until it holds them whole (no whole-volume labelling). `preview_fill` fills
them with `PREVIEW_SETTINGS` (refine3d without the mirrored detail, whose alignment costs as
much as the rest). `PreviewLayer` keeps the previewed values sparsely and draws them over slices
of the image. Every array here is in display (RAS) order except the fill's input. No Qt.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from .checkpoint import Model
from .fill import FillSettings, fill_volume
from .job import CancelToken
from .modelspace import Reorientation
from .volume import dilate_mask

PREVIEW_SETTINGS = FillSettings(method="refine3d", mirror=0.0)
GROW = 16  # voxels a box grows by while a lesion reaches its side
_FULL = np.ones((3, 3, 3), dtype=bool)


def touched_lesions(mask: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Flat indices of the mask's 26-connected parts that hold, or touch, a voxel of `changed` (flat indices).

    A voxel that was erased touches the parts next to it, so an erase previews what is left.
    """
    shape = np.array(mask.shape)
    if changed.size == 0:
        return np.zeros(0, dtype=np.int64)
    coords = np.array(np.unravel_index(changed, mask.shape))
    lo = np.maximum(coords.min(axis=1) - 1, 0)
    hi = np.minimum(coords.max(axis=1) + 2, shape)
    while True:
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        labels, _ = ndimage.label(mask[box] != 0, structure=_FULL)
        seeds = np.zeros(labels.shape, dtype=bool)
        seeds[tuple(coords - lo[:, None])] = True
        seeds = ndimage.binary_dilation(seeds, structure=_FULL)
        ids = np.unique(labels[seeds])
        parts = np.isin(labels, ids[ids > 0])
        grow_lo = [lo[a] > 0 and parts.take(0, axis=a).any() for a in range(3)]
        grow_hi = [hi[a] < shape[a] and parts.take(-1, axis=a).any() for a in range(3)]
        if not any(grow_lo) and not any(grow_hi):
            found = np.argwhere(parts) + lo
            return np.ravel_multi_index(tuple(found.T), mask.shape).astype(np.int64)
        lo = np.where(grow_lo, np.maximum(lo - GROW, 0), lo)
        hi = np.where(grow_hi, np.minimum(hi + GROW, shape), hi)


def preview_hole(shape: tuple[int, int, int], lesion: np.ndarray, dilate: int) -> np.ndarray:
    """Flat indices of the hole a preview fills: `lesion` (flat indices) grown by `dilate` voxels in 3D."""
    if not dilate or lesion.size == 0:
        return lesion
    coords = np.array(np.unravel_index(lesion, shape))
    lo = np.maximum(coords.min(axis=1) - dilate, 0)
    hi = np.minimum(coords.max(axis=1) + dilate + 1, shape)
    crop = np.zeros(tuple(hi - lo), dtype=bool)
    crop[tuple(coords - lo[:, None])] = True
    found = np.argwhere(dilate_mask(crop, dilate)) + lo
    return np.ravel_multi_index(tuple(found.T), shape).astype(np.int64)


def preview_fill(image: np.ndarray, affine: np.ndarray, hole: np.ndarray, model: Model, *,
                 brain: Optional[np.ndarray] = None, cancel: Optional[CancelToken] = None) -> np.ndarray:
    """Fill the hole (flat RAS indices of the display order of `image`, a file-order volume) with
    PREVIEW_SETTINGS; returns the filled values in the order of `hole`."""
    reo = Reorientation.of(affine, image.shape)
    ras_shape = reo.apply(image).shape
    hole_ras = np.zeros(ras_shape, dtype=bool)
    hole_ras.reshape(-1)[hole] = True
    result = fill_volume(image, affine, reo.undo(hole_ras), model, PREVIEW_SETTINGS, brain=brain, cancel=cancel)
    return reo.apply(result.filled)[np.unravel_index(hole, ras_shape)]


class PreviewLayer:
    """Previewed values at flat RAS indices, drawn over the image's slices."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.indices = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.indices.size)

    def update(self, replaced: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
        """Drop the values at `replaced` (flat indices), then add `values` at `indices`."""
        keep = ~np.isin(self.indices, np.concatenate([replaced, indices]))
        self.indices = np.concatenate([self.indices[keep], indices])
        self.values = np.concatenate([self.values[keep], values.astype(np.float32)])

    def draw(self, image_slice: np.ndarray, axis: int, index: int) -> np.ndarray:
        """A copy of `image_slice` (slice `index` along `axis`) with the previewed values of that slice."""
        out = np.array(image_slice, dtype=np.float32, copy=True)
        coords = np.unravel_index(self.indices, self.shape)
        here = coords[axis] == index
        if here.any():
            out[tuple(c[here] for a, c in enumerate(coords) if a != axis)] = self.values[here]
        return out

    def value(self, voxel: tuple[int, int, int]) -> Optional[float]:
        found = np.flatnonzero(self.indices == np.ravel_multi_index(voxel, self.shape))
        return float(self.values[found[0]]) if found.size else None
