"""Live preview while painting: when a stroke ends, the lesions it touched are filled on a worker thread
(`core.live_preview`) and shown blended in the views as the layer "live".

Painting never waits: the lesions are found on a box around the stroke, the fill runs on its own
thread, one at a time. A stroke that begins cancels the preview in flight (its result is dropped
by its generation number); the voxels of every stroke since the last preview shown are filled
together by the next one.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from PySide6.QtCore import QObject, QThread, Signal

from core.checkpoint import Model
from core.errors import InpaintError, described
from core.job import CancelToken, Cancelled
from core.live_preview import preview_fill, preview_hole, touched_lesions
from core.refine3d import run_network, shipped_refiners
from core.threads import AUTO, resolve_threads

from .document import Document
from .ortho_viewer import OrthoViewer


@dataclass
class PreviewJob:
    """One preview: the hole (flat RAS indices) of a document, and what the fill reads (file order)."""

    doc: Document
    generation: int
    hole: np.ndarray
    replaced: np.ndarray   # flat RAS indices whose old preview values the result replaces
    image: np.ndarray
    affine: np.ndarray
    brain: Optional[np.ndarray]
    load_model: Callable[[], Model]
    threads: int
    requested: float       # time.perf_counter() when the stroke ended


class PreviewWorker(QThread):
    """Fills one preview; `done` carries (job, values), `failed` one sentence."""

    done = Signal(object, object)
    failed = Signal(str)

    def __init__(self, job: PreviewJob) -> None:
        super().__init__()
        self.job = job
        self.token = CancelToken()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        job = self.job
        torch.set_num_threads(job.threads)
        try:
            model = job.load_model()
            self.token.raise_if_cancelled()
            values = preview_fill(job.image, job.affine, job.hole, model, brain=job.brain, cancel=self.token)
            self.token.raise_if_cancelled()
            self.done.emit(job, values)
        except Cancelled:
            return
        except InpaintError as exc:   # the fill's own sentence (e.g. every painted voxel outside the brain)
            self.failed.emit(f"No live preview: {exc}")
        except Exception as exc:  # a preview must never take the app down; Run reports errors properly
            traceback.print_exc()
            self.failed.emit(f"No live preview ({described(exc)})")


class RefinerWarmUp(QThread):
    """Loads the shipped 3D refiners and runs each once, so that the first preview does not pay torch's start-up."""

    def run(self) -> None:  # noqa: D401 - QThread entry point
        torch.set_num_threads(1)
        try:
            for refiner in shipped_refiners():   # one per grid (one today): the preview's scan may take any
                run_network(refiner, np.zeros((8, 8, 8), np.float32), np.zeros((8, 8, 8), bool), torch.device("cpu"))
        except Exception:  # noqa: BLE001 - a refiner that cannot run is reported by the fill that uses it
            return


class PreviewController(QObject):
    """Requests previews from finished strokes, runs one at a time and shows only the newest."""

    message = Signal(str)
    timing = Signal(str)   # how long a preview took: said briefly, the cursor's readout gives way to it meanwhile
    shown = Signal(float)  # seconds from the end of the stroke to the preview in the views

    def __init__(self, viewer: OrthoViewer, document: Callable[[], Optional[Document]],
                 model: Callable[[], Optional[Callable[[], Model]]], dilate: Callable[[], int],
                 blocked: Callable[[], bool]) -> None:
        """`model()`: a loader of the selected model (None: none installed); `blocked()`: True while a fill runs."""
        super().__init__()
        self.viewer, self._document, self._model, self._dilate, self._blocked = \
            viewer, document, model, dilate, blocked
        self.enabled = True
        self.generation = 0
        self._pending = np.zeros(0, dtype=np.int64)  # voxels changed since the last preview shown
        self._requested = 0.0
        self._worker: Optional[PreviewWorker] = None
        self._threads: list[PreviewWorker] = []
        self._warm: Optional[RefinerWarmUp] = None

    def warm_up(self) -> None:
        """Prepare the refiner in the background (once)."""
        if self._warm is None:
            self._warm = RefinerWarmUp()
            self._warm.start()

    # requests ------------------------------------------------------------------------------------
    def request(self, changed: np.ndarray) -> None:
        """A stroke, undo or redo changed these voxels (flat RAS indices): preview the lesions they touch."""
        doc = self._document()
        if not self.enabled or doc is None or doc.reviewed or self._blocked():
            return
        self._requested = time.perf_counter()
        self._pending = np.union1d(self._pending, np.asarray(changed, dtype=np.int64))
        self.cancel()
        if not self._threads:  # else the thread in flight starts it when it ends
            self._start()

    def cancel(self) -> None:
        """Drop the preview in flight (a stroke began, a fill starts); the changed voxels stay pending."""
        self.generation += 1
        if self._worker is not None:
            self._worker.token.cancel()
            self._worker = None

    def reset(self) -> None:
        """Forget every preview (another document, the mask cleared or replaced, preview switched off)."""
        self.cancel()
        self._pending = np.zeros(0, dtype=np.int64)
        doc = self._document()
        if doc is not None:
            doc.live = None
            if self.viewer.layer == "live":
                self.viewer.set_layer("original")

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            self.reset()

    def wait(self, milliseconds: int = 10000) -> None:
        for worker in list(self._threads) + ([self._warm] if self._warm is not None else []):
            worker.wait(milliseconds)

    # the worker ----------------------------------------------------------------------------------
    def _start(self) -> None:
        doc = self._document()
        loader = self._model()
        if doc is None or loader is None or not self._pending.size:
            return
        lesions = touched_lesions(doc.editor.mask, self._pending)
        dilate = self._dilate()
        replaced = np.union1d(preview_hole(doc.shape, self._pending, dilate), self._pending)
        if not lesions.size:  # only erased: nothing left to fill there
            doc.live_layer().update(replaced, lesions, np.zeros(0, np.float32))
            self._pending = np.zeros(0, dtype=np.int64)
            self.viewer.refresh_all()
            return
        hole = preview_hole(doc.shape, lesions, dilate)
        job = PreviewJob(doc=doc, generation=self.generation, hole=hole, replaced=np.union1d(replaced, hole),
                         image=doc.volume.data, affine=doc.volume.affine, brain=doc.brain, load_model=loader,
                         threads=resolve_threads(AUTO), requested=self._requested)
        worker = PreviewWorker(job)
        worker.done.connect(self._done)
        worker.failed.connect(self._failed)
        worker.finished.connect(lambda w=worker: self._ended(w))
        self._worker = worker
        self._threads.append(worker)
        worker.start()

    def _done(self, job: PreviewJob, values: np.ndarray) -> None:
        doc = self._document()
        if job.generation != self.generation or doc is not job.doc or not self.enabled or self._blocked():
            return  # stale: a newer stroke, another document, preview off or a fill running
        self._worker = None
        self._pending = np.zeros(0, dtype=np.int64)
        doc.live_layer().update(job.replaced, job.hole, values)
        self.viewer.set_layer("live")
        seconds = time.perf_counter() - job.requested
        self.shown.emit(seconds)
        self.timing.emit(f"Live preview of {doc.lesion_text(int(job.hole.size))} in {1000 * seconds:.0f} ms "
                          "(refine3d without mirrored detail); Run (Ctrl+R) makes the full fill.")

    def _failed(self, text: str) -> None:
        self._pending = np.zeros(0, dtype=np.int64)  # not retried: the next stroke asks again
        self.message.emit(text)

    def _ended(self, worker: PreviewWorker) -> None:
        if worker in self._threads:
            self._threads.remove(worker)
        worker.deleteLater()
        if self._worker is worker:
            self._worker = None
        if not self._threads and self._pending.size and self._worker is None and self.enabled \
                and not self._blocked() and not self._stroking():
            self._start()

    def _stroking(self) -> bool:
        doc = self._document()
        return doc is not None and doc.editor.stroke_active
