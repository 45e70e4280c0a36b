"""`biharmonic3d`: the classical fill alone - biharmonic in 3D, weighted by voxel size in mm: the base that
`refine3d` corrects, without its network or the mirrored hemisphere. For images the networks never learned
(T2-weighted, FLAIR, other contrasts), where a T1-trained correction makes the fill worse."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from ..blend3d import biharmonic_fill_3d
from ..errors import InpaintError
from ..inputs import MAX_CROP_VOXELS, hole_box
from ..refine3d import Refiner
from .base import FillMethod, MethodFill, Run, Slab

MARGIN = 2   # voxels around each lesion the biharmonic system reads


class Biharmonic3D(FillMethod):
    name = "biharmonic3d"
    description = ("the classical fill alone: biharmonic in 3D weighted by voxel size, no network (for T2w, FLAIR "
                   "or other images than T1w)")

    def check(self, hole: np.ndarray, spacing: np.ndarray, refiner: Optional[Refiner]) -> None:
        labels, _ = ndimage.label(hole, structure=np.ones((3, 3, 3), dtype=bool))
        for box in ndimage.find_objects(labels):
            voxels = np.prod([s.stop - s.start + 2 * MARGIN for s in box], dtype=np.float64)
            if voxels > MAX_CROP_VOXELS:
                shown = " x ".join(f"{(s.stop - s.start) * h:.0f}" for s, h in zip(box, spacing))
                raise InpaintError(f"A lesion of the hole spans {shown} mm, more than biharmonic3d solves in bounded "
                                   "time and memory; split the mask.")

    def box(self, hole: np.ndarray, affine: np.ndarray, axis: str) -> tuple[slice, slice, slice]:
        return hole_box(hole, margin=MARGIN)

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        run.report(0, 1)
        filled = biharmonic_fill_3d(slab.voided, slab.hole, slab.spacing)
        run.report(1, 1)
        return MethodFill(filled=filled)
