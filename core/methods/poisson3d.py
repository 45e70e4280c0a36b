"""`poisson3d`: the latent search of `slices2d` with one slice beyond the hole on each side, then one 3D Poisson
blend over the whole lesion (`core.blend3d`): the generated slices give the gradients, every known neighbour -
in the slices above and below too - the boundary."""

from __future__ import annotations

from ..blend3d import poisson_blend_3d
from . import latent
from .base import FillMethod, MethodFill, Run, Slab


class Poisson3D(FillMethod):
    name = "poisson3d"
    description = "2D latent search, then one 3D Poisson blend over the whole lesion (uses the slices above and below)"
    needs_model = True
    parameters = latent.PARAMETERS
    extra_slices = 1

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        guides, losses = latent.search(slab, run)
        guide = latent.guide_volume(slab, guides)
        return MethodFill(filled=poisson_blend_3d(slab.voided, slab.hole, guide, slab.spacing), generated=guide,
                          losses=losses)
