"""Runs fills for the window: builds the job from the document and the panel, shows progress, result or failure."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal

from core.errors import InpaintError
from core.job import Progress
from core.threads import resolve_threads

from .dialogs import Dialogs
from .document import Document, JobResult, PreviewMap
from .fill_controller import FillController
from .inpaint_panel import InpaintPanel
from .ortho_viewer import OrthoViewer
from .worker import FillJob, preview_interval

LOCKED = "A fill is running: mask editing is locked until it finishes or you cancel it (Esc)."


class FillSession(QObject):
    """One fill at a time over the current document; the views show its preview, then its result."""

    message = Signal(str)
    changed = Signal()         # started, finished or stopped: update actions and titles

    def __init__(self, jobs: FillController, viewer: OrthoViewer, panel: InpaintPanel, dialogs: Dialogs,
                 document: Callable[[], Optional[Document]]) -> None:
        super().__init__()
        self.jobs, self.viewer, self.panel, self.dialogs, self._document = jobs, viewer, panel, dialogs, document
        self._preview: Optional[PreviewMap] = None
        self.layer_before = "original"
        self._state = 0
        self._left = 0  # mask voxels (after dilation) the job leaves unfilled (scope: current slice)
        self._dilate = 0
        jobs.progressed.connect(self._progressed)
        jobs.succeeded.connect(self._succeeded)
        jobs.measured.connect(self._measured)
        jobs.failed.connect(self._failed)

    def run(self) -> None:
        """Start a fill of the mask (or its current slice) with the panel's model and settings."""
        doc = self._document()
        if doc is None or doc.reviewed or not self.jobs.idle:  # a reviewed scan shows the cohort's fill, read-only
            return
        form = self.panel.form
        choice = form.model_choice()
        if choice is None:
            self.dialogs.error("No model is selected; choose a shipped model or Load checkpoint... in the "
                               "Inpainting panel.")
            return
        key, axis = choice
        scope, dilate = form.scope.currentData(), form.dilate.value()
        doc.editor.end_stroke()  # Ctrl+R in mid-stroke: the stroke is part of the job's mask and state
        try:
            hole = doc.job_hole(scope, axis, self.viewer.point, dilate)
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return
        self._left = 0 if scope == "all" else int((doc.job_hole("all", axis, self.viewer.point, dilate)
                                                   & ~hole).sum())
        self._dilate = dilate
        self._state = doc.editor.state
        self.layer_before = self.viewer.layer
        self._preview = doc.start_preview(hole)
        self.viewer.set_layer("preview")
        doc.editor.lock(LOCKED)
        self.panel.set_running(True)
        settings = form.fill_settings(preview_interval(form.iterations.value()))
        threads = resolve_threads(form.threads.value())
        self.jobs.start(FillJob(image=doc.volume.data, affine=doc.volume.affine, hole=hole, settings=settings,
                                load_model=lambda: self.jobs.model(key), scope=scope, threads=threads,
                                dilate=dilate, brain=doc.brain, brain_path=doc.brain_path))
        self.changed.emit()
        self.message.emit(f"Filling {doc.lesion_text(int(hole.sum()))} with {threads} torch "
                          f"thread{'s' if threads > 1 else ''}...")

    def cancel(self) -> bool:
        """Stop the job now: the view, mask and result are as they were before Run."""
        if not self.jobs.cancel():
            return False
        self._restore("Cancelled; nothing was changed.")
        self.message.emit("Fill cancelled.")
        return True

    def _progressed(self, progress: Progress) -> None:
        self.panel.show_progress(progress)
        doc = self._document()
        if progress.preview is not None and self._preview is not None and doc is not None and doc.preview is not None:
            self._preview.place(progress.preview, doc.preview)
            self.viewer.refresh_all()

    def _succeeded(self, result: JobResult) -> None:
        doc = self._document()
        assert doc is not None
        self._preview = None
        doc.editor.unlock()
        doc.set_result(result, self._state)
        fill = result.fill
        slices = doc.filled_slices(fill.hole, fill.axis)
        self.viewer.show_point(doc.result_point(fill.hole, fill.axis, self.viewer.point), fill.axis)  # all three views
        self.viewer.set_layer("blended")
        mask = f"of the mask dilated by {self._dilate} vox" if self._dilate else "painted"
        note = f" {doc.lesion_text(self._left)} {mask} on other slices were left (scope: current slice)." \
            if self._left else ""
        mirror = (fill.refiner or {}).get("mirror")
        note += f" Other hemisphere {mirror}." if isinstance(mirror, str) else ""  # why the mirror was skipped
        note += (f" {fill.outside_brain_voxels} painted voxels outside the brain were left as they were."
                 if fill.outside_brain_voxels else "")
        self.panel.show_result(result, len(slices), doc.lesion_text(int(fill.hole.sum())), note)
        self.changed.emit()
        self.message.emit(f"Fill done in {fill.seconds:.1f} s; T toggles before/after, X shows the difference."
                          + note)

    def _measured(self, result: JobResult, metrics: dict) -> None:
        doc = self._document()
        if doc is not None and doc.result is result:
            result.metrics = result.metrics or metrics  # an export may have measured it first
            self.panel.show_metrics(result.metrics)

    def _failed(self, text: str) -> None:
        self._restore("The fill failed; nothing was changed.")
        self.dialogs.error(text)

    def _restore(self, text: str) -> None:
        self._preview = None
        doc = self._document()
        if doc is not None:
            doc.editor.unlock()
            doc.end_preview()
            layer = self.layer_before if self.layer_before in doc.available_layers() else "original"
            self.viewer.set_layer(layer)
        self.panel.job_stopped(text)
        self.changed.emit()
