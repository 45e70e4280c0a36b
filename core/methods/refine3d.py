"""`refine3d`, the default: no latent search; the biharmonic 3D fill of each lesion corrected by a small 3D network
trained on healthy brains (`core.refine3d`), which sees the lesion's whole 3D neighbourhood, plus detail mirrored
from the other hemisphere (`core.mirror`). With a calibrated refiner it also predicts its error per voxel."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..inputs import check_lesion_boxes, hole_box
from ..mirror import WEIGHT, NoReflection, mirrored_box, scan_reflection
from ..modelspace import voxel_sizes
from ..refine3d import MARGIN_MM, Refiner, lesion_crops, refine_fill
from ..uncertainty import FEATURES
from .base import FillMethod, MethodFill, Parameter, Run, Slab


class Refine3D(FillMethod):
    name = "refine3d"
    description = ("3D biharmonic fill corrected by a 3D network trained on healthy brains, plus detail mirrored "
                   "from the other hemisphere (no latent search)")
    needs_refiner = True
    parameters = (
        Parameter("mirror", WEIGHT, "Mirror detail", "share of the other hemisphere's mirrored detail added to the "
                  "fill, 0 to 1 (0 when the hemispheres differ, e.g. a midline shift); a refiner with mirror inputs "
                  "learns its share per voxel, and 0.5 means that share", low=0.0, high=1.0, step=0.05),)

    def check(self, hole: np.ndarray, spacing: np.ndarray, refiner: Optional[Refiner]) -> None:
        check_lesion_boxes(hole, spacing, MARGIN_MM, refiner.config.spacing_mm)

    def box(self, hole: np.ndarray, affine: np.ndarray, axis: str) -> tuple[slice, slice, slice]:
        """Each lesion's box plus MARGIN_MM (and, for the mirror, its reflection) lies in the hole's box plus it."""
        return hole_box(hole, margin=int(np.ceil(MARGIN_MM / float(voxel_sizes(affine).min()))))

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        """Fill lesion by lesion; the progress steps are the lesions (0 of n reported before the mirror's
        registration)."""
        lesions = lesion_crops(slab.hole, slab.spacing)
        run.report(0, len(lesions[1]))
        refiner, weight = run.refiner, float(run.value("mirror"))
        record = {"name": refiner.name, "path": str(refiner.path) if refiner.path else None,
                  "sha256": refiner.checksum}
        mirror = None
        if weight:
            affine = slab.volume_affine
            try:
                reflection = scan_reflection(slab.volume, slab.volume_hole, affine)
            except NoReflection as exc:
                record["mirror"] = f"not used: {exc}"
            else:
                needed = np.zeros(slab.hole.shape, dtype=bool)   # only the lesions' crops read the mirror
                for crop in lesions[1]:
                    needed[crop] = True
                mirror = slab.reo.apply(mirrored_box(slab.volume, slab.volume_hole, reflection, slab.box,
                                                     needed=slab.reo.undo(needed)))
                record["mirror"] = {"reflection": np.round(reflection.matrix, 5).tolist(),
                                    "correlation": round(reflection.correlation, 4),
                                    "share": weight, "learned_share": refiner.config.mirror_inputs}
        features = (np.zeros((len(FEATURES),) + slab.hole.shape, dtype=np.float32)
                    if refiner.uncertainty is not None else None)
        filled = refine_fill(slab.voided, slab.hole, slab.spacing, slab.scale, refiner, run.device, run.cancel,
                             mirror=mirror, mirror_weight=weight,
                             on_lesion=lambda done, total: run.report(done, total, np.zeros(0)), features=features,
                             lesions=lesions)
        return MethodFill(filled=filled, record=record, features=features, uncertainty=refiner.uncertainty)
