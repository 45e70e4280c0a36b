"""Shared helpers (no tests) for the GUI tests: a main window with scripted dialogs, voxel -> screen mapping."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from core.fill import FillResult, FillSettings  # noqa: E402
from inpaint_gui.document import JobResult  # noqa: E402
from inpaint_gui.main_window import MainWindow  # noqa: E402


class ScriptedWindow(MainWindow):
    """MainWindow whose dialogs record their text and answer from a queue instead of blocking."""

    def __init__(self, settings_path: Path) -> None:
        super().__init__(QSettings(str(settings_path), QSettings.Format.IniFormat))
        self.errors: list[str] = []
        self.questions: list[str] = []
        self.answers: list[QMessageBox.StandardButton] = []

    def show_error(self, text: str) -> None:
        self.errors.append(text)

    def ask(self, text, buttons=None, default=None):
        self.questions.append(text)
        return self.answers.pop(0) if self.answers else QMessageBox.StandardButton.Cancel

    def forget_changes(self) -> None:
        """Let the window close without prompts (test teardown)."""
        self.cancel_fill()
        self.jobs.wait()
        if self.doc is not None:
            self.doc.editor.mark_saved()
            self.doc.result_saved = True


def viewport_point(view, voxel) -> QPoint:
    """Viewport pixel at the centre of a RAS voxel of a slice view."""
    mm = QPointF((voxel[view.col_axis] + 0.5) * view._spacing[view.col_axis],
                 (voxel[view.row_axis] + 0.5) * view._spacing[view.row_axis])
    return view.mapFromScene(view.box.mapViewToScene(mm))


def fake_result(window: MainWindow, value: float = -5.0, model=None) -> np.ndarray:
    """Give the open document a result that sets every hole voxel to `value`; returns the filled volume."""
    doc = window.doc
    hole = doc.mask_in_file_order()
    filled = np.where(hole, np.float32(value), doc.volume.data)
    generated = np.where(hole, np.float32(2 * value), doc.volume.data)
    fill = FillResult(filled=filled, generated=generated, hole=hole, axis="axial", final_loss={0: 1.0},
                      seconds=0.1, device="cpu", settings=FillSettings(iterations=2))
    doc.set_result(JobResult(fill=fill, model=model, scope="all"), doc.editor.state)
    window._update_state()
    return filled
