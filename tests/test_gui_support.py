"""Shared helpers for the GUI tests: Qt's static dialogs answered from queues, voxel -> screen mapping."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QSettings  # noqa: E402
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox  # noqa: E402

from core.fill import FillResult, FillSettings  # noqa: E402
from inpaint_gui.document import JobResult  # noqa: E402
from inpaint_gui.main_window import MainWindow  # noqa: E402


class ScriptedDialogs:
    """Replaces the static methods of QMessageBox, QFileDialog and QInputDialog: records what the app says and
    answers from queues (`answers` for questions, `paths` for file dialogs, `numbers` for QInputDialog; an empty
    queue cancels)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.errors: list[str] = []
        self.questions: list[str] = []
        self.infos: list[str] = []
        self.answers: list[QMessageBox.StandardButton] = []
        self.paths: list[Optional[Path]] = []
        self.numbers: list[Optional[float]] = []
        self.texts: list[Optional[str]] = []
        self.starts: list[str] = []  # folder or file each file dialog started at
        for name in ("warning", "critical"):
            monkeypatch.setattr(QMessageBox, name, lambda parent, title, text, *a: self.errors.append(text))
        for name in ("information", "about"):
            monkeypatch.setattr(QMessageBox, name, lambda parent, title, text, *a: self.infos.append(text))
        monkeypatch.setattr(QMessageBox, "question", self._question)
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda parent, title, start, *a: (self._path(start), ""))
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, start, *a: (self._path(start), ""))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, title, start, *a: self._path(start))
        monkeypatch.setattr(QInputDialog, "getDouble", self._number)
        monkeypatch.setattr(QInputDialog, "getText", self._text)

    def _question(self, parent, title, text, buttons=None, default=None) -> QMessageBox.StandardButton:
        self.questions.append(text)
        return self.answers.pop(0) if self.answers else QMessageBox.StandardButton.Cancel

    def _path(self, start: str) -> str:
        self.starts.append(start)
        path = self.paths.pop(0) if self.paths else None
        return "" if path is None else str(path)

    def _number(self, parent, title, label, value, lo, hi, decimals, *a) -> tuple[float, bool]:
        self.questions.append(label)
        number = self.numbers.pop(0) if self.numbers else None
        return (value, False) if number is None else (number, True)

    def _text(self, parent, title, label, mode, value, *a) -> tuple[str, bool]:
        self.questions.append(label)
        text = self.texts.pop(0) if self.texts else None
        return (value, False) if text is None else (text, True)

    def unexpected(self) -> list[str]:
        return [text for text in self.errors if text.startswith("Unexpected error")]


class ScriptedWindow(MainWindow):
    """MainWindow with its own settings file, unexpected errors shown as dialogs (as the app does), and the
    scripted dialogs' records at hand."""

    def __init__(self, settings_path: Path, dialogs: ScriptedDialogs) -> None:
        super().__init__(QSettings(str(settings_path), QSettings.Format.IniFormat), warm_up=False)
        self.script = dialogs

    @property
    def errors(self) -> list[str]:
        return self.script.errors

    @property
    def questions(self) -> list[str]:
        return self.script.questions

    @property
    def answers(self) -> list[QMessageBox.StandardButton]:
        return self.script.answers

    def forget_changes(self) -> None:
        """Let the window close without prompts (test teardown)."""
        self.session.cancel()
        self.preview.reset()
        self.jobs.wait()
        self.preview.wait()
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
    generated_hole = np.full(int(hole.sum()), 2 * value, np.float32)
    fill = FillResult(filled=filled, generated_hole=generated_hole, hole=hole, axis="axial", final_loss={0: 1.0},
                      seconds=0.1, device="cpu", settings=FillSettings(iterations=2))
    doc.set_result(JobResult(fill=fill, model=model, scope="all"), doc.editor.state)
    window._update_state()
    return filled
