"""Every question the app asks the user, through Qt's static dialogs; file dialogs start in the last folder used.

Also the shortcuts' window, and the size rule of the app's windows: no larger than their screen's free area.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSettings, QSize, Qt, SignalInstance
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFrame, QInputDialog, QLabel, QLineEdit,
                               QMessageBox, QScrollArea, QStyle, QVBoxLayout, QWidget)

from core.resources import ROOT as RESOURCES

TITLE = "inpaint-gui"
Button = QMessageBox.StandardButton
FRAME = QSize(16, 48)  # room left for a window manager's borders and title bar, unknown until a window is shown


def fit_to_screen(window: QWidget, size: QSize) -> None:
    """Resize `window` to `size`, or less so that it and its frame fit its screen's free area, and move it into it."""
    area = (window.screen() or QGuiApplication.primaryScreen()).availableGeometry()
    frame = window.frameGeometry().size() - window.geometry().size()  # known once the window is shown
    frame = frame if window.isVisible() and not frame.isEmpty() else FRAME
    width = min(size.width(), area.width() - frame.width())
    height = min(size.height(), area.height() - frame.height())
    window.resize(width, height)
    window.move(area.left() + (area.width() - width - frame.width()) // 2,
                area.top() + (area.height() - height - frame.height()) // 2)


def _in_resources(folder: Path) -> bool:
    """A folder of the app's own files (demo brain, models): no place to start a file dialog or to write."""
    return folder.resolve().is_relative_to(RESOURCES.resolve())


class TableWindow(QDialog):
    """A list of (what, keys) rows with an OK button; scrolls when it is taller than the screen's free area."""

    def __init__(self, parent: QWidget, title: str, rows: list[tuple[str, str]]) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        body = "".join(f"<tr><td>{html.escape(a)}</td><td><b>{html.escape(b)}</b></td></tr>" for a, b in rows)
        self.table = QLabel(f"<table cellspacing='4'>{body}</table>")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.table)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.buttons)

    def show_fitted(self) -> None:
        """Show (or raise) the window at the size of its rows, no taller than the screen's free area."""
        margins = self.layout().contentsMargins()
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        rows = self.table.sizeHint()
        fit_to_screen(self, QSize(rows.width() + scrollbar + margins.left() + margins.right(),
                                  rows.height() + self.buttons.sizeHint().height() + self.layout().spacing()
                                  + margins.top() + margins.bottom()))
        self.show()
        self.raise_()
        self.activateWindow()


class Dialogs:
    """Modal dialogs over one parent window; remembers the last folder in the settings (`lastDir`)."""

    def __init__(self, parent: QWidget, settings: QSettings) -> None:
        self.parent = parent
        self.settings = settings

    # messages ----------------------------------------------------------------------------------
    def error(self, text: str) -> None:
        QMessageBox.warning(self.parent, TITLE, text)

    def ask(self, text: str, buttons: Button = Button.Yes | Button.No, default: Button = Button.No) -> Button:
        return QMessageBox.question(self.parent, TITLE, text, buttons, default)

    def ask_until(self, text: str, ended: SignalInstance) -> Optional[Button]:
        """Ask Yes / No; None when `ended` (the end of what the question is about) came first and closed it."""
        closed: list[bool] = []

        def close() -> None:
            closed.append(True)
            for box in self.parent.findChildren(QMessageBox):
                if box.isVisible() and box.text() == text:
                    box.done(QMessageBox.StandardButton.Cancel)

        ended.connect(close)
        try:
            answer = self.ask(text)
        finally:
            ended.disconnect(close)
        return None if closed else answer

    def about(self, title: str, text: str) -> None:
        QMessageBox.about(self.parent, title, text)

    def number(self, title: str, label: str, value: float, lo: float, hi: float, decimals: int) -> Optional[float]:
        """A number from the user, or None when cancelled."""
        number, ok = QInputDialog.getDouble(self.parent, title, label, value, lo, hi, decimals)
        return float(number) if ok else None

    def text(self, title: str, label: str, value: str) -> Optional[str]:
        """A line of text from the user, or None when cancelled."""
        text, ok = QInputDialog.getText(self.parent, title, label, QLineEdit.EchoMode.Normal, value)
        return str(text) if ok else None

    # files -------------------------------------------------------------------------------------
    @property
    def last_dir(self) -> str:
        """The folder last used, or the home folder (never the app's own resources, where the demo brain lies)."""
        folder = str(self.settings.value("lastDir", ""))
        return folder if folder and Path(folder).is_dir() and not _in_resources(Path(folder)) else str(Path.home())

    def remember(self, path: Path) -> None:
        """Make the folder `path` lies in where the next file dialog starts (for a folder chosen as an input, a DICOM
        series or a cohort, the one beside it: outputs cannot go inside an input), unless it is one of the app's
        resources (the demo brain's folder): the user's own folder is kept then."""
        folder = path.parent
        if not _in_resources(folder):
            self.settings.setValue("lastDir", str(folder.resolve()))

    def open_file(self, title: str, filters: str) -> Optional[Path]:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, self.last_dir, filters)
        return self._chosen(path)

    def save_file(self, title: str, name: str, filters: str) -> Optional[Path]:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, str(Path(self.last_dir) / name), filters)
        return self._chosen(path)

    def folder(self, title: str) -> Optional[Path]:
        return self._chosen(QFileDialog.getExistingDirectory(self.parent, title, self.last_dir))

    def _chosen(self, text: str) -> Optional[Path]:
        if not text:
            return None
        path = Path(text)
        self.remember(path)
        return path
