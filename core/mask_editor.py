"""Qt-free model of a painted lesion mask: round brush strokes, eraser, undo/redo.

The mask is a uint8 0/1 volume. A brush stamp covers the voxels whose centres lie within
`size / 2` of the stamp's centre, measured in units of the smallest voxel size so the brush
is round in millimetres on anisotropic grids; the centre snaps to the nearest voxel. A 2D
brush paints a disc in one slice, the 3D brush a ball. Consecutive stamps of a stroke are
joined by the capsule between them, so fast mouse moves leave no gaps.

One stroke (or clear, or import) is one undo step holding only the changed voxels' flat
indices and their old values; the new values are the stroke's target (0 or 1) or, for an
import, the imported values at those indices. Nothing copies the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

MIN_BRUSH = 1.0
MAX_BRUSH = 99.0
HISTORY_LIMIT = 500


class EditRefused(Exception):
    """A mask edit that cannot apply; the message says why in one sentence."""


@dataclass(frozen=True)
class Edit:
    """One undo step: voxels (flat C-order indices) with their values before and after."""

    label: str
    indices: np.ndarray
    old: np.ndarray
    new: Union[np.ndarray, int]
    serial: int

    @property
    def count(self) -> int:
        return int(self.indices.size)


@dataclass
class _Stroke:
    axis: int
    value: int
    last: np.ndarray
    indices: list[np.ndarray] = field(default_factory=list)
    old: list[np.ndarray] = field(default_factory=list)


class MaskEditor:
    """A uint8 mask with brush strokes, clears, imports and an undo/redo history of changed voxels."""

    def __init__(self, shape: Sequence[int], spacing: Optional[Sequence[float]] = None,
                 mask: Optional[np.ndarray] = None) -> None:
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) != 3:
            raise ValueError(f"the mask must be 3D, got shape {self.shape}")
        spacing = np.ones(3) if spacing is None else np.abs(np.asarray(spacing, dtype=float))
        self._weights = spacing / spacing.min()
        self.mask = np.zeros(self.shape, dtype=np.uint8)
        if mask is not None:
            self._check_shape(mask)
            self.mask[...] = np.asarray(mask) != 0
        self.sphere = False
        self._size = 5.0
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []
        self._serial = 0
        self._saved_serial = 0
        self._stroke: Optional[_Stroke] = None
        self._locked: Optional[str] = None
        self._index_dtype = np.int32 if self.mask.size < 2 ** 31 else np.int64

    # brush -----------------------------------------------------------------------------------
    @property
    def brush_size(self) -> float:
        """Brush diameter in voxels (of the smallest voxel size)."""
        return self._size

    @brush_size.setter
    def brush_size(self, value: float) -> None:
        self._size = float(min(MAX_BRUSH, max(MIN_BRUSH, value)))

    # locking -----------------------------------------------------------------------------------
    def lock(self, reason: str) -> None:
        """Refuse every edit with `reason` (e.g. while a fill job reads the mask); a stroke in progress ends."""
        self.end_stroke()
        self._locked = reason

    def unlock(self) -> None:
        self._locked = None

    @property
    def locked(self) -> Optional[str]:
        return self._locked

    def _check_unlocked(self) -> None:
        if self._locked is not None:
            raise EditRefused(self._locked)

    def _start_edit(self) -> None:
        """Before a clear, import, undo or redo: refuse when locked, and close a stroke in progress first."""
        self._check_unlocked()
        self.end_stroke()

    # strokes -----------------------------------------------------------------------------------
    @property
    def stroke_active(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self, point: Sequence[float], axis: int, erase: bool = False) -> np.ndarray:
        """Start a stroke in the slice of `axis` through `point` (voxel coordinates); returns changed indices."""
        self._check_unlocked()
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        centre = np.rint(np.asarray(point, dtype=float))
        if not self._touches_volume(centre, axis):
            raise EditRefused("The brush is outside the volume; move the cursor onto the image.")
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = _Stroke(axis=axis, value=0 if erase else 1, last=centre)
        return self._paint_segment(centre, centre)

    def extend_stroke(self, point: Sequence[float]) -> np.ndarray:
        """Continue the stroke to `point`, filling the capsule from the previous point; returns changed indices."""
        if self._stroke is None:
            raise EditRefused("No stroke is in progress; press the mouse button on the image first.")
        centre = np.rint(np.asarray(point, dtype=float))
        if not self.sphere:
            centre[self._stroke.axis] = self._stroke.last[self._stroke.axis]
        changed = self._paint_segment(self._stroke.last, centre)
        self._stroke.last = centre
        return changed

    def end_stroke(self) -> Optional[Edit]:
        """Finish the stroke; it becomes one undo step (None when it changed nothing)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or not stroke.indices:
            return None
        indices = np.concatenate(stroke.indices)
        old = np.concatenate(stroke.old)
        label = "erase" if stroke.value == 0 else "paint"
        return self._push(label, indices, old, stroke.value)

    def _touches_volume(self, centre: np.ndarray, axis: int) -> bool:
        reach = self._size / 2.0 / self._weights
        for a in range(3):
            r = 0.0 if (a == axis and not self.sphere) else reach[a]
            if centre[a] + r < 0 or centre[a] - r > self.shape[a] - 1:
                return False
        return True

    def _paint_segment(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        stroke = self._stroke
        assert stroke is not None
        flat = self.capsule(start, end, stroke.axis)
        if flat.size == 0:
            return flat
        view = self.mask.reshape(-1)
        current = view[flat]
        changed = flat[current != stroke.value]
        if changed.size:
            stroke.indices.append(changed)
            stroke.old.append(current[current != stroke.value])
            view[changed] = stroke.value
        return changed

    def capsule(self, start: Sequence[float], end: Sequence[float], axis: int) -> np.ndarray:
        """Flat indices of the voxels within the brush radius of the segment start-end (disc or ball)."""
        a = np.rint(np.asarray(start, dtype=float))
        b = np.rint(np.asarray(end, dtype=float))
        radius = self._size / 2.0
        reach = radius / self._weights
        lo = np.minimum(a, b) - reach
        hi = np.maximum(a, b) + reach
        if not self.sphere:
            lo[axis] = hi[axis] = a[axis]
        lo = np.maximum(np.ceil(lo - 1e-9), 0).astype(int)
        hi = np.minimum(np.floor(hi + 1e-9), np.array(self.shape) - 1).astype(int)
        if np.any(hi < lo):
            return np.empty(0, dtype=self._index_dtype)
        axes = [np.arange(lo[k], hi[k] + 1) for k in range(3)]
        grid = np.meshgrid(*axes, indexing="ij")
        delta = (b - a) * self._weights
        rel = [(grid[k] - a[k]) * self._weights[k] for k in range(3)]
        length2 = float(delta @ delta)
        if length2 > 0:
            t = np.clip(sum(rel[k] * delta[k] for k in range(3)) / length2, 0.0, 1.0)
            dist2 = sum((rel[k] - t * delta[k]) ** 2 for k in range(3))
        else:
            dist2 = sum(r ** 2 for r in rel)
        inside = dist2 <= radius * radius + 1e-9
        coords = tuple(g[inside] for g in grid)
        return np.ravel_multi_index(coords, self.shape).astype(self._index_dtype)

    # whole-slice and whole-volume edits ---------------------------------------------------------
    def clear_slice(self, axis: int, index: int) -> Optional[Edit]:
        """Erase every voxel of one slice (one undo step; None when it was empty)."""
        self._start_edit()
        if not 0 <= index < self.shape[axis]:
            raise EditRefused(f"Slice {index} is outside the volume (0 to {self.shape[axis] - 1}).")
        coords = list(np.nonzero(np.take(self.mask, int(index), axis=axis)))
        coords.insert(axis, np.full(coords[0].shape, int(index)))
        flat = np.ravel_multi_index(tuple(coords), self.shape).astype(self._index_dtype)
        return self._apply("clear slice", flat, 0)

    def clear_all(self) -> Optional[Edit]:
        """Erase the whole mask (one undo step; None when it was empty)."""
        self._start_edit()
        return self._apply("clear all", np.flatnonzero(self.mask).astype(self._index_dtype), 0)

    def replace(self, mask: np.ndarray, label: str = "import") -> Optional[Edit]:
        """Replace the mask by `mask` (nonzero = 1) as one undo step (None when nothing changed)."""
        self._start_edit()
        self._check_shape(mask)
        new = (np.asarray(mask) != 0).astype(np.uint8).reshape(-1)
        flat = np.flatnonzero(new != self.mask.reshape(-1)).astype(self._index_dtype)
        return self._apply(label, flat, new[flat])

    def _apply(self, label: str, flat: np.ndarray, new: Union[np.ndarray, int]) -> Optional[Edit]:
        if flat.size == 0:
            return None
        view = self.mask.reshape(-1)
        old = view[flat].copy()
        view[flat] = new
        return self._push(label, flat, old, new)

    def _check_shape(self, mask: np.ndarray) -> None:
        if np.shape(mask) != self.shape:
            raise ValueError(f"mask shape {np.shape(mask)} differs from the editor's shape {self.shape}")

    # history -----------------------------------------------------------------------------------
    def _push(self, label: str, indices: np.ndarray, old: np.ndarray, new: Union[np.ndarray, int]) -> Edit:
        self._serial += 1
        edit = Edit(label=label, indices=indices, old=old, new=new, serial=self._serial)
        self._undo.append(edit)
        del self._undo[:-HISTORY_LIMIT]
        self._redo.clear()
        return edit

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> Optional[Edit]:
        """Restore the old values of the last edit; returns it (None when there is nothing to undo)."""
        self._start_edit()
        if not self._undo:
            return None
        edit = self._undo.pop()
        self.mask.reshape(-1)[edit.indices] = edit.old
        self._redo.append(edit)
        return edit

    def redo(self) -> Optional[Edit]:
        """Apply the last undone edit again; returns it (None when there is nothing to redo)."""
        self._start_edit()
        if not self._redo:
            return None
        edit = self._redo.pop()
        self.mask.reshape(-1)[edit.indices] = edit.new
        self._undo.append(edit)
        return edit

    @property
    def state(self) -> int:
        """Identifies the mask's content by history: equal states mean an equal mask."""
        return self._undo[-1].serial if self._undo else 0

    @property
    def modified(self) -> bool:
        """True when the mask differs (by history) from the last `mark_saved`."""
        return self.state != self._saved_serial

    def mark_saved(self) -> None:
        self._saved_serial = self.state

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.mask))


def lesions(mask: np.ndarray) -> list[tuple[tuple[int, int, int], int]]:
    """The 26-connected parts of `mask`: (the part's voxel nearest its centroid, its voxel count), ordered by
    that voxel's index along the last axis, then the second, then the first (slice by slice)."""
    from scipy import ndimage

    labels, _ = ndimage.label(np.asarray(mask) != 0, structure=np.ones((3, 3, 3), dtype=bool))
    found = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        voxels = np.argwhere(labels[box] == index)
        nearest = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
        found.append((tuple(int(v + s.start) for v, s in zip(nearest, box)), len(voxels)))
    return sorted(found, key=lambda part: part[0][::-1])
