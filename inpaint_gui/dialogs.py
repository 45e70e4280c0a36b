"""Every question the app asks the user, through Qt's static dialogs; file dialogs start in the last folder used."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMessageBox, QWidget

TITLE = "inpaint-gui"
Button = QMessageBox.StandardButton


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

    def information(self, title: str, text: str) -> None:
        QMessageBox.information(self.parent, title, text)

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
        folder = str(self.settings.value("lastDir", ""))
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def remember(self, path: Path) -> None:
        """Make the folder of `path` (or `path`, a folder) where the next file dialog starts."""
        folder = path if path.is_dir() else path.parent
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
