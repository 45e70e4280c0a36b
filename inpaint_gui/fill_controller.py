"""Starts, tracks and cancels fill workers; keeps loaded models; forwards only the current job's signals."""

from __future__ import annotations

import threading
from typing import Optional

from PySide6.QtCore import QObject, Signal

from core.checkpoint import Model
from core.registry import resolve_model

from .worker import FillJob, FillWorker, WarmUpWorker


class FillController(QObject):
    """One job at a time. A cancelled job is forgotten at once; its thread is kept until it ends."""

    progressed = Signal(object)  # core.job.Progress of the current job
    succeeded = Signal(object)   # JobResult (metrics still empty)
    measured = Signal(object, object)  # (JobResult, metrics) of a job that succeeded (is it still shown? ask)
    failed = Signal(str)
    idleChanged = Signal()       # a job started, or the last thread ended

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.worker: Optional[FillWorker] = None
        self._threads: list[FillWorker] = []
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()  # the worker and the warm-up may load a model at the same time
        self._warm: dict[str, WarmUpWorker] = {}

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def idle(self) -> bool:
        """No job and no thread left over from a cancelled one: a new job may start."""
        return self.worker is None and not self._threads

    def add_model(self, key: str, model: Model) -> None:
        self._models[key] = model

    def model(self, key: str) -> Model:
        """The model for a shipped name or checkpoint path, loaded once (called on worker threads)."""
        with self._lock:
            if key not in self._models:
                self._models[key] = resolve_model(key)
            return self._models[key]

    def warm_up(self, key: str) -> None:
        """Load a model and run one search step in the background, once per model: the first step of a
        process's first fill otherwise takes seconds (torch's lazy set-up) and the first fill with it."""
        if key not in self._warm:
            worker = WarmUpWorker(lambda: self.model(key))
            self._warm[key] = worker
            worker.start()

    def start(self, job: FillJob) -> None:
        if not self.idle:
            raise RuntimeError("a fill job is still running")
        worker = FillWorker(job)
        worker.progressed.connect(lambda p, w=worker: self._forward(w, self.progressed, p))
        worker.succeeded.connect(lambda r, w=worker: self._finish(w, self.succeeded, r))
        worker.failed.connect(lambda text, w=worker: self._finish(w, self.failed, text))
        worker.measured.connect(self.measured)
        worker.finished.connect(lambda w=worker: self._thread_ended(w))
        self.worker = worker
        self._threads.append(worker)
        self.idleChanged.emit()
        worker.start()

    def cancel(self) -> bool:
        """Ask the job to stop and forget it now; False when nothing was running."""
        if self.worker is None:
            return False
        self.worker.cancel()
        self.worker = None
        return True

    def wait(self, milliseconds: int = 10000) -> None:
        """Block until every thread has ended (before the application quits)."""
        for worker in list(self._threads) + list(self._warm.values()):
            worker.wait(milliseconds)

    def _forward(self, worker: FillWorker, signal, value) -> None:
        if worker is self.worker:
            signal.emit(value)

    def _finish(self, worker: FillWorker, signal, value) -> None:
        if worker is self.worker:
            self.worker = None
            signal.emit(value)

    def _thread_ended(self, worker: FillWorker) -> None:
        if worker in self._threads:
            self._threads.remove(worker)
        worker.deleteLater()
        self.idleChanged.emit()
