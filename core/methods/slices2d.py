"""`slices2d`, the original study's pipeline: a 2D latent search per slice, each generated slice Poisson-blended
(2D) into its own slice's known pixels."""

from __future__ import annotations

import numpy as np

from ..blend import poisson_blend
from ..modelspace import put_slice, take_slice
from . import latent
from .base import FillMethod, MethodFill, Parameter, Run, Slab


class Slices2D(FillMethod):
    name = "slices2d"
    description = "the original study's pipeline: 2D latent search and 2D Poisson blending slice by slice"
    needs_model = True
    parameters = latent.PARAMETERS + (
        Parameter("blend", True, "Poisson blending", "blend the generated content into the surrounding tissue "
                  "(gradient-domain; off: paste the generator's output as is)"),)

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        guides, losses = latent.search(slab, run)
        filled = slab.voided.copy()
        for s, native in zip(slab.slices, guides):
            if run.cancel is not None:
                run.cancel.raise_if_cancelled()
            hole2d = take_slice(slab.hole, slab.axis, s)
            if not hole2d.any():
                continue
            known2d = take_slice(slab.voided, slab.axis, s)
            fill2d = poisson_blend(known2d, hole2d, native) if run.value("blend") else np.where(hole2d, native, known2d)
            put_slice(filled, slab.axis, s, fill2d)
        return MethodFill(filled=filled, generated=latent.guide_volume(slab, guides), losses=losses)
