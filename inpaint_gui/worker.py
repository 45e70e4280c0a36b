"""Runs one fill job on a worker thread: progress, result and errors travel back as Qt signals."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from PySide6.QtCore import QThread, Signal

from core.checkpoint import Model
from core.errors import InpaintError, described
from core.fill import FillSettings, fill_volume
from core.job import CancelToken, Cancelled, Progress
from core.methods import METHODS
from core.modelspace import Reorientation, voxel_sizes
from core.search import SearchSettings, latent_search

from .document import JobResult, compare_metrics

PROGRESS_INTERVAL = 0.1  # seconds between progress signals without a preview (or a stage's end)


@dataclass
class FillJob:
    """Everything a job reads, copied from the document when it starts (file voxel order)."""

    image: np.ndarray
    affine: np.ndarray
    hole: np.ndarray
    settings: FillSettings
    load_model: Callable[[], Model]
    scope: str
    threads: int = 1
    dilate: int = 0
    brain: Optional[np.ndarray] = None
    brain_path: Optional[Path] = None   # the file `brain` came from (recorded by an export of the result)


class FillWorker(QThread):
    """Loads the model, fills, then measures the result it has already handed over; the engine checks the cancel
    token between steps."""

    progressed = Signal(object)   # core.job.Progress
    succeeded = Signal(object)    # JobResult, its metrics still empty
    measured = Signal(object, object)  # (that JobResult, its metrics) a moment later
    failed = Signal(str)          # one sentence for a dialog

    def __init__(self, job: FillJob) -> None:
        super().__init__()
        self.job = job
        self.token = CancelToken()
        self._last = 0.0

    def cancel(self) -> None:
        self.token.cancel()

    def _report(self, progress: Progress) -> None:
        now = time.monotonic()
        finished = progress.stage == "done" or progress.step >= progress.total   # a stage's last step always shows
        if progress.preview is not None or finished or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.progressed.emit(progress)

    def run(self) -> None:  # noqa: D401 - QThread entry point
        job = self.job
        torch.set_num_threads(job.threads)  # set on the thread that runs the fill
        try:
            model = job.load_model() if METHODS[job.settings.method].needs_model else None
            self.token.raise_if_cancelled()
            fill = fill_volume(job.image, job.affine, job.hole, model, job.settings, brain=job.brain,
                               progress=self._report, cancel=self.token)
            self.token.raise_if_cancelled()
            result = JobResult(fill=fill, model=model, scope=job.scope, dilate=job.dilate, threads=job.threads,
                               brain_path=job.brain_path)
            self.succeeded.emit(result)  # shown now: the metrics take as long as a small fill
            reo = Reorientation.of(job.affine, job.image.shape)
            metrics = compare_metrics(reo.apply(job.image), reo.apply(fill.filled), reo.apply(fill.hole),
                                      voxel_sizes(reo.ras_affine))
            self.measured.emit(result, metrics)
        except Cancelled:
            return  # whoever cancelled has already restored the view; nothing to report
        except InpaintError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a failed job must never take the app down
            traceback.print_exc()
            self.failed.emit(f"The fill failed ({described(exc)}); the details were printed to the terminal.")


class WarmUpWorker(QThread):
    """Loads a model and runs one latent-search step on a blank slice; errors are left to the real fill."""

    def __init__(self, load_model: Callable[[], Model]) -> None:
        super().__init__()
        self.load_model = load_model

    def run(self) -> None:  # noqa: D401 - QThread entry point
        torch.set_num_threads(1)
        try:
            model = self.load_model()
            size = model.arch.size
            blank = np.zeros((1, size, size), dtype=np.float32)
            latent_search(model, blank, blank == 0, SearchSettings(iterations=1, restarts=1), on_step=lambda *a: None)
        except Exception:  # noqa: BLE001 - a model that cannot run is reported when a fill uses it
            return


def preview_interval(iterations: int) -> int:
    """Preview about ten times per run (each preview costs the fill's CPU a redraw), at most every iteration."""
    return max(1, iterations // 10)


def finite_mean(values: Optional[np.ndarray]) -> Optional[float]:
    if values is None:
        return None
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None
