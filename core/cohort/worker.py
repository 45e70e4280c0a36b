"""Filling one scan of a cohort inside a worker process (local pool, Dask worker or the main process).

The slice model is loaded once per process and kept (the 3D refiner is cached by
`core.refine3d.shipped_refiners`); the torch thread count is set once per process. A scan's
failure never escapes: it comes back as a `failed` row with a one-sentence message. A fill that predicts
no error removes the uncertainty map an earlier fill of the scan left. A scan whose lesion mask marks no
voxel is not filled but copied unchanged (`unfilled`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checkpoint import Model
from ..errors import InpaintError
from ..fill import FillResult, FillSettings
from ..methods import METHODS
from ..targets import sidecar_path
from .derivatives import FAILED, FILLED, Row, uncertainty_name
from .unfilled import copy_unfilled, marks_nothing

_MODELS: dict[Optional[str], Model] = {}
_THREADS: list[int] = []  # the torch thread count this process was set to
PR_SET_PDEATHSIG = 1      # prctl(2): the signal this process gets when its parent dies


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to fill one scan (picklable)."""

    image: Path
    mask: Path
    brainmask: Optional[Path]
    output: Path
    settings: FillSettings
    model: Optional[str]
    dilate: int
    threshold: Optional[float]
    keep_dtype: bool
    force: bool
    sources: tuple[str, ...]
    threads: int
    row: Row


def end_with_parent(parent: int) -> None:
    """The pool's initializer: on Linux, this worker process is killed when `parent` (the process that started it)
    dies (a `kill -9` of `inpaint bids` left its workers filling scans nobody records, then waiting for ever); and
    SIGTERM ends it, also where the process that started `inpaint bids` ignored it (an ignored signal is inherited,
    and the pool's terminate would then wait for ever)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):   # another C library: no such request
            return
        if os.getppid() != parent:   # it died before the request: nobody is left to collect the results
            os._exit(1)


def set_threads(threads: int) -> None:
    """Set this process's torch thread count (a no-op once set to the same count)."""
    import torch

    if _THREADS != [threads]:
        torch.set_num_threads(max(1, threads))
        _THREADS[:] = [threads]


def load_model(name: Optional[str]) -> Model:
    """The slice model `name` (None: the default), loaded once per process."""
    from ..registry import resolve_model

    if name not in _MODELS:
        _MODELS[name] = resolve_model(name)
    return _MODELS[name]


def one_sentence(exc: BaseException) -> str:
    """An error as one line: the InpaintError's own sentence, or the exception's type and first line."""
    if isinstance(exc, InpaintError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"Unexpected {type(exc).__name__}" + (f": {lines[0]}" if lines else "") + "; please report it."


def fill_scan(task: Task) -> Row:
    """Fill one scan and return its table row (status filled, no_lesion or failed); never raises for a scan's
    problem."""
    from ..fill_file import fill_file
    from ..refine3d import shipped_refiners

    set_threads(task.threads)
    row = task.row

    def describe(result: FillResult) -> dict:
        return {"Description": "The T1w image with its lesion mask's voxels filled with healthy-looking tissue "
                               "(brain-inpaint); every other voxel is the source's.",
                "Sources": list(task.sources), "filled_slices": len(result.slices)}

    try:
        if marks_nothing(task.mask, task.threshold):
            return copy_unfilled(task)
        predicts = task.settings.method == "refine3d" and all(r.uncertainty is not None for r in shipped_refiners())
        sd_map = Path(uncertainty_name(str(task.output)))
        model = load_model(task.model) if METHODS[task.settings.method].needs_model else None
        done = fill_file(task.image, task.mask, task.output, task.settings, model=model,
                         brainmask=task.brainmask, dilate=task.dilate, threshold=task.threshold,
                         keep_dtype=task.keep_dtype, force=task.force, describe=describe,
                         uncertainty=sd_map if predicts else None,
                         uncertainty_sidecar={   # BIDS: every derivative image has a sidecar (written with the map)
                             "Description": "Predicted error of the lesion fill: one standard deviation per filled "
                                            "voxel, in the image's intensity units; 0 outside the lesion mask "
                                            "(brain-inpaint refine3d).",
                             "Sources": list(task.sources)})
        if not predicts:  # an earlier fill's map would be taken for this fill's (e.g. by cohort review)
            sd_map.unlink(missing_ok=True)
            sidecar_path(sd_map).unlink(missing_ok=True)
    except Exception as exc:  # one scan's failure is recorded and the cohort goes on
        return dataclasses.replace(row, status=FAILED, message=one_sentence(exc))
    return dataclasses.replace(row, status=FILLED, image_sha256=done.record["input"]["sha256"],
                               mask_sha256=done.record["mask"]["sha256"], lesion_voxels=str(done.hole_voxels),
                               lesion_ml=f"{done.hole_ml:.3f}", slices=str(done.slices),
                               seconds=f"{float(done.record['seconds']):.2f}",  # as a rebuilt table reads it
                               uncertainty="" if done.uncertainty_mean is None else f"{done.uncertainty_mean:.4g}",
                               uncertainty_share="" if done.uncertainty_share is None
                               else f"{done.uncertainty_share:.4g}")
