"""Mapping between a volume's slices and the model's fixed square grid.

Every volume is first viewed in the closest RAS orientation (axis flips and permutations
only, no resampling), so that a model sees anatomy the same way up whatever the file's
voxel order (RAS, LAS, LPS, ...). A slice of the chosen plane is then resampled in
physical units: the model grid has `size` x `size` pixels of `spacing` mm, centred on the
centre of the brain's bounding box in that plane. Downsampling is anti-aliased with a
Gaussian. Generated images come back to native voxels by linear interpolation; only hole
voxels ever take those values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform
from scipy import ndimage

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}


@dataclass(frozen=True)
class Reorientation:
    """Flips/permutations taking a file's voxel order to the closest RAS order and back."""

    to_ras: np.ndarray
    from_ras: np.ndarray
    ras_affine: np.ndarray

    @classmethod
    def of(cls, affine: np.ndarray, shape: tuple[int, ...]) -> "Reorientation":
        """The reorientation of a volume of `shape` whose voxel-to-world matrix is `affine`."""
        ornt = io_orientation(affine)
        to_ras = ornt_transform(ornt, axcodes2ornt("RAS"))
        from_ras = ornt_transform(axcodes2ornt("RAS"), ornt)
        ras_affine = affine @ inv_ornt_aff(to_ras, shape)
        return cls(to_ras=to_ras, from_ras=from_ras, ras_affine=ras_affine)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """`data` (file order) in closest-RAS order, a contiguous copy."""
        return np.ascontiguousarray(self.view(data))

    def view(self, data: np.ndarray) -> np.ndarray:
        """`data` in closest-RAS order without a copy (flipped / permuted strides), for reading only."""
        return apply_orientation(data, self.to_ras)

    def undo(self, data: np.ndarray) -> np.ndarray:
        """`data` (closest-RAS order) back in the file's voxel order, a contiguous copy."""
        return np.ascontiguousarray(apply_orientation(data, self.from_ras))


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each voxel axis."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def obliquity_deg(affine: np.ndarray) -> float:
    """The largest angle in degrees between a voxel axis and the scanner axis nearest to it (0: not oblique)."""
    from nibabel.affines import obliquity

    return float(np.degrees(np.max(np.abs(obliquity(np.asarray(affine, dtype=np.float64))))))


def plane_axes(axis: str) -> tuple[int, int, int]:
    """(slice axis, first in-plane axis, second in-plane axis) of a RAS volume."""
    if axis not in PLANES:
        raise ValueError(f"unknown plane {axis!r}; use one of {', '.join(PLANES)}")
    k = PLANES[axis]
    rest = tuple(a for a in range(3) if a != k)
    return k, rest[0], rest[1]


def take_slice(volume: np.ndarray, axis: str, index: int) -> np.ndarray:
    """Slice `index` of plane `axis` ("axial", "coronal", "sagittal") of a RAS volume (a view)."""
    return np.take(volume, index, axis=plane_axes(axis)[0])


def put_slice(volume: np.ndarray, axis: str, index: int, values: np.ndarray) -> None:
    """Write `values` into slice `index` of plane `axis` of a RAS volume, in place."""
    k = plane_axes(axis)[0]
    view = [slice(None)] * 3
    view[k] = index
    volume[tuple(view)] = values


@dataclass(frozen=True)
class SliceGrid:
    """Maps slices of one plane of a RAS volume to a `size` x `size` grid of `spacing` mm."""

    size: int
    spacing: float
    native_spacing: tuple[float, float]
    center: tuple[float, float]

    @classmethod
    def for_volume(cls, brain_ras: np.ndarray, ras_affine: np.ndarray, axis: str,
                   size: int, spacing: float) -> "SliceGrid":
        """Grid centred on the brain's bounding box, in the plane `axis` of a RAS volume."""
        _, a, b = plane_axes(axis)
        vox = voxel_sizes(ras_affine)
        coords = np.nonzero(brain_ras)
        if len(coords[0]) == 0:
            center = ((brain_ras.shape[a] - 1) / 2.0, (brain_ras.shape[b] - 1) / 2.0)
        else:
            center = ((coords[a].min() + coords[a].max()) / 2.0, (coords[b].min() + coords[b].max()) / 2.0)
        return cls(size=size, spacing=float(spacing), native_spacing=(float(vox[a]), float(vox[b])),
                   center=(float(center[0]), float(center[1])))

    def _factors(self) -> np.ndarray:
        return np.array([self.spacing / self.native_spacing[0], self.spacing / self.native_spacing[1]])

    def native_coords(self) -> np.ndarray:
        """Native (row, col) coordinates of every model pixel, shape (2, size, size)."""
        offset = (self.size - 1) / 2.0
        grid = np.mgrid[0:self.size, 0:self.size].astype(np.float64) - offset
        f = self._factors()
        return np.stack([self.center[0] + grid[0] * f[0], self.center[1] + grid[1] * f[1]])

    def model_coords(self, shape: tuple[int, int]) -> np.ndarray:
        """Model-grid coordinates of every native pixel of a slice of `shape`."""
        offset = (self.size - 1) / 2.0
        grid = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
        f = self._factors()
        return np.stack([(grid[0] - self.center[0]) / f[0] + offset, (grid[1] - self.center[1]) / f[1] + offset])

    def _smooth(self, image: np.ndarray) -> np.ndarray:
        sigma = np.maximum(0.0, (self._factors() - 1.0) / 2.0)
        if np.all(sigma == 0):
            return image
        return ndimage.gaussian_filter(image, sigma=sigma, mode="constant", truncate=3.0)

    def to_model(self, image: np.ndarray) -> np.ndarray:
        """Resample a native slice (any float values) onto the model grid, anti-aliased."""
        smooth = self._smooth(np.asarray(image, dtype=np.float32))
        return ndimage.map_coordinates(smooth, self.native_coords(), order=1, mode="constant",
                                       cval=0.0).astype(np.float32)

    def hole_to_model(self, hole: np.ndarray) -> np.ndarray:
        """Model pixels whose value would draw on any hole voxel."""
        footprint = self._smooth(hole.astype(np.float32))
        touched = ndimage.map_coordinates(footprint, self.native_coords(), order=1, mode="constant", cval=0.0)
        return touched > 1e-4

    def to_native(self, model_image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Resample a model-grid image back onto native pixels of a slice of `shape`."""
        return ndimage.map_coordinates(np.asarray(model_image, dtype=np.float32), self.model_coords(shape),
                                       order=1, mode="nearest").astype(np.float32)
