"""The interface of a fill method: what it declares (`FillMethod`, `Parameter`) and what it gets and gives
(`Slab`, `Run`, `MethodFill`).

`core.fill.fill_volume` does the shared work - checks, the slice model or refiner the method needs,
the whole-volume intensity scale, the box or slab around the hole in closest-RAS order, progress,
cancellation, writing the hole's values back - and calls `FillMethod.fill` on that part of the volume.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from ..argtypes import real, whole
from ..inputs import hole_slab

if TYPE_CHECKING:
    import torch

    from ..checkpoint import Model
    from ..job import CancelToken
    from ..modelspace import Reorientation
    from ..normalize import IntensityScale
    from ..refine3d import Refiner


# what a method with a slice model also reads: the model, its plane, the latent search's seed, batch and preview rate
SLICE_SETTINGS = ("model", "axis", "seed", "batch", "preview_every")


@dataclass(frozen=True)
class Parameter:
    """One setting a method reads: a `FillSettings` field (or, for a new method, an entry of its `extra`).

    The command line (`--name`, or `--no-name` for a switch that is on by default), the app's settings
    form (a spin box or check box labelled `label`) and the settings' checks all read it.
    """

    name: str
    default: Any                   # bool, int or float: the kind of the value
    label: str                     # the app's row label (a switch's check box text)
    help: str                      # the command line's help and the app's tooltip
    low: Optional[float] = None    # smallest value (numbers)
    high: Optional[float] = None   # largest value (numbers)
    above_low: bool = False        # the value must exceed `low` (not equal it)
    odd: bool = False              # whole numbers: odd only
    step: float = 1                # the app's spin box step
    decimals: int = 2              # the app's spin box decimals (real numbers)
    option: Optional[str] = None   # the command-line name without dashes (default: `name` with dashes)
    app: bool = True               # shown in the app's settings form (ablations are command-line only)

    @property
    def flag(self) -> str:
        """The command-line option: `--option`, or `--no-option` for a switch that is on by default."""
        option = self.option or self.name.replace("_", "-")
        return f"--no-{option}" if self.default is True else f"--{option}"

    def problem(self, value: Any) -> Optional[str]:
        """What is wrong with `value` (None when fine), as the end of a sentence."""
        if isinstance(self.default, bool):
            return None if isinstance(value, (bool, np.bool_)) else "must be True or False"
        whole_kind = isinstance(self.default, int)
        kind_ok = (isinstance(value, (int, np.integer)) if whole_kind else isinstance(value, (int, float, np.integer,
                                                                                             np.floating)))
        if not kind_ok or isinstance(value, (bool, np.bool_)) or not math.isfinite(value):
            return "must be a whole number" if whole_kind else "must be a finite number"
        if self.low is not None and (value <= self.low if self.above_low else value < self.low):
            return f"must be {'greater than' if self.above_low else 'at least'} {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}"
        if self.odd and value % 2 == 0:
            return "must be odd, such as 3 or 7"
        return None

    def parse(self, text: str) -> Any:
        """An argparse type for this parameter (numbers only): one-sentence refusals."""
        value = whole(text) if isinstance(self.default, int) else real(text)
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, not {text}")
        return value


@dataclass
class Slab:
    """The part of the volume a method fills, in closest-RAS voxel order (the box or slab `FillMethod.box` chose)."""

    reo: Reorientation            # the part's file voxel order <-> closest RAS
    voided: np.ndarray            # float32, the hole zeroed, non-finite known voxels 0
    hole: np.ndarray              # bool
    brain: Optional[np.ndarray]   # the brain mask with the hole (None: no mask was given)
    axis: str                     # plane of the slices
    slices: list[int]             # the part's slices of plane `axis` the method works on (hole plus extra_slices)
    scale: IntensityScale         # the whole volume's intensity scale
    centre: tuple[float, float]   # the whole volume's model-grid centre (closest-RAS in-plane voxel indices)
    spacing: np.ndarray           # voxel sizes in mm, closest-RAS axes
    volume: np.ndarray            # the whole image (file voxel order, read-only, hole values included), for
                                  # methods that look beyond the part
    volume_hole: np.ndarray       # the whole hole (file voxel order, read-only)
    volume_affine: np.ndarray     # the whole image's voxel-to-mm matrix
    box: tuple[slice, slice, slice]   # the part's place in the whole volume (file voxel order)
    first_slice: int = 0          # the whole volume's number (closest-RAS order) of the part's slice 0 of `axis`


@dataclass
class Run:
    """How a method runs: its settings, the networks it asked for, the device, progress and cancellation."""

    settings: Any                      # core.fill.FillSettings
    device: torch.device
    model: Optional[Model]             # the slice model (methods with needs_model)
    refiner: Optional[Refiner]         # the 3D refiner (methods with needs_refiner)
    cancel: Optional[CancelToken]
    previews: bool                     # whether `report` wants previews
    report: Callable[..., None]        # report(step, total, best_loss=None, preview=None): preview is a RAS part
    searched_at: Optional[float] = None  # set by `searched()`: when the method's search ended (timings)

    def value(self, name: str) -> Any:
        """The value of the method's parameter `name` (`FillSettings.value`)."""
        return self.settings.value(name)

    def searched(self) -> None:
        """Mark the end of the method's search (the rest of its work counts as blending in the timings)."""
        self.searched_at = time.perf_counter()


@dataclass
class MethodFill:
    """What a method gives back, on the `Slab`'s closest-RAS grid."""

    filled: np.ndarray                        # the part with its hole filled
    generated: Optional[np.ndarray] = None    # the method's raw output before blending (None: `filled`)
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))  # best final loss of each of `Slab.slices`
    record: Optional[dict] = None             # the network used, recorded as `FillResult.refiner`
    features: Optional[np.ndarray] = None     # per-voxel error features, (F,) + the part's shape
    uncertainty: Any = None                   # predicts one SD per voxel from rows of `features`


class FillMethod:
    """A fill method: subclass, set the class attributes, implement `fill`; register it in `core.methods`."""

    name: str = ""
    description: str = ""                     # one line: the command line's help, the app's tooltip, the sidecar
    needs_model: bool = False                 # a slice model (loaded for it when the caller passes none)
    needs_refiner: bool = False               # a 3D refiner (the shipped one nearest the voxels when none is passed)
    parameters: tuple[Parameter, ...] = ()
    extra_slices: int = 0                     # slices of plane `axis` beyond the hole on each side

    @property
    def reads(self) -> frozenset[str]:
        """The settings this method reads (all the sidecar records and the cohort compares): `method`, `device`,
        its parameters and, when it needs a slice model, SLICE_SETTINGS."""
        return frozenset(("method", "device", *(p.name for p in self.parameters),
                          *(SLICE_SETTINGS if self.needs_model else ())))

    def check(self, hole: np.ndarray, spacing: np.ndarray, refiner: Optional[Refiner]) -> None:
        """Refuse work that would be unbounded, before any of it starts (InpaintError)."""

    def box(self, hole: np.ndarray, affine: np.ndarray, axis: str) -> tuple[slice, slice, slice]:
        """The part of the volume the method needs (file voxel order): by default the slab of whole slices of
        plane `axis` that touch the hole, `extra_slices` wider on each side."""
        return hole_slab(hole, affine, axis, margin=self.extra_slices)

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        """Fill `slab.hole` in `slab.voided`; never read the hole's true values (zeroed in `voided`, still in the
        read-only `slab.volume`: leave `slab.volume_hole` out of what you read there)."""
        raise NotImplementedError
