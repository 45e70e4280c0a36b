"""Mouse strokes, brush size and undo/redo of the three views turned into edits of the document's mask."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.mask_editor import EditRefused

from .document import Document
from .slice_view import SliceView


class Painter(QObject):
    """Edits the mask from the views' stroke signals; the viewer redraws what changed."""

    message = Signal(str)     # why a stroke or an undo was refused
    maskEdited = Signal()     # a stroke ended, or an undo/redo
    strokeStarted = Signal()  # a stroke began to change the mask
    edited = Signal(object)   # flat RAS indices of the voxels a finished stroke, undo or redo changed
    brushChanged = Signal()

    def __init__(self, views: dict[int, SliceView], document: Callable[[], Optional[Document]],
                 redraw: Callable[[Optional[np.ndarray]], None], activate: Callable[[int], None]) -> None:
        super().__init__()
        self.views, self._document, self._redraw, self._activate = views, document, redraw, activate
        self._erasing = False
        for view in views.values():
            view.strokeBegan.connect(lambda voxel, erase, v=view: self._began(v, voxel, erase))
            view.strokeMoved.connect(lambda voxel, v=view: self._moved(v, voxel))
            view.strokeEnded.connect(self._ended)
            view.brushStepped.connect(self.step_brush)

    def step_brush(self, steps: int) -> None:
        doc = self._document()
        if doc is None:
            return
        editor = doc.editor
        editor.brush_size = editor.brush_size + steps
        for view in self.views.values():
            view.set_brush(editor.brush_size, float(doc.spacing.min()))
        self.brushChanged.emit()

    def _began(self, view: SliceView, voxel: np.ndarray, erase: bool) -> None:
        doc = self._document()
        if doc is None:
            return
        self._activate(view.axis)
        self._erasing = erase
        try:
            changed = doc.editor.begin_stroke(voxel, view.axis, erase=erase)
        except EditRefused as exc:
            self.message.emit(str(exc))
            return
        self.strokeStarted.emit()
        self._redraw(changed)

    def _moved(self, view: SliceView, voxel: np.ndarray) -> None:
        doc = self._document()
        editor = doc.editor if doc else None
        if editor is None or editor.locked:
            return
        try:
            changed = editor.extend_stroke(voxel) if editor.stroke_active else editor.begin_stroke(
                voxel, view.axis, erase=self._erasing)  # a stroke begun outside starts when it enters
        except EditRefused:
            return  # still outside the volume: the reason was shown when the stroke began
        if changed.size:
            self._redraw(changed)

    def _ended(self) -> None:
        doc = self._document()
        edit = doc.editor.end_stroke() if doc is not None else None
        if edit is not None:
            self.maskEdited.emit()
            self.edited.emit(edit.indices)

    def apply_history(self, undo: bool) -> None:
        """Undo or redo one mask edit, whichever slice it was on."""
        doc = self._document()
        if doc is None:
            return
        try:
            edit = doc.editor.undo() if undo else doc.editor.redo()
        except EditRefused as exc:
            self.message.emit(str(exc))
            return
        if edit is None:
            self.message.emit(f"Nothing to {'undo' if undo else 'redo'}.")
            return
        self._redraw(edit.indices)
        self.message.emit(f"{'Undid' if undo else 'Redid'} {edit.label} ({edit.count} voxels)")
        self.maskEdited.emit()
        self.edited.emit(edit.indices)
