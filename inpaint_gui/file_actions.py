"""File menu of the main window: open (dialog, recent, drop), import/save mask, export, unsaved-work prompts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from core.errors import InpaintError
from core.mask_editor import EditRefused
from core.registry import DEMO_BRAIN
from core.volume import derived_name

from .document import Document, nifti_path

if TYPE_CHECKING:
    from .main_window import MainWindow

IMAGE_FILTER = "Images (*.nii.gz *.nii *.nrrd *.nhdr *.mha *.mhd);;All files (*)"
NIFTI_FILTER = "NIfTI (*.nii.gz *.nii)"
MAX_RECENT = 8


class FileActions:
    """Mixed into MainWindow; the dialog helpers are methods so tests can script them."""

    # dialogs -----------------------------------------------------------------------------------
    def show_error(self: "MainWindow", text: str) -> None:
        QMessageBox.warning(self, "inpaint-gui", text)

    def ask(self: "MainWindow", text: str,
            buttons=QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            default=QMessageBox.StandardButton.No) -> QMessageBox.StandardButton:
        return QMessageBox.question(self, "inpaint-gui", text, buttons, default)

    def ask_path(self: "MainWindow", title: str, start: str, filters: str, save: bool) -> Optional[Path]:
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, start, filters)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        return Path(path) if path else None

    def ask_folder(self: "MainWindow", title: str, start: str) -> Optional[Path]:
        path = QFileDialog.getExistingDirectory(self, title, start)
        return Path(path) if path else None

    def _start_dir(self: "MainWindow") -> str:
        if self.doc is not None and self.doc.path is not None and os.access(self.doc.path.parent, os.W_OK):
            return str(self.doc.path.parent)
        return str(self.settings.value("lastDir", str(Path.home())))

    # opening -----------------------------------------------------------------------------------
    def open_initial(self: "MainWindow", image: Optional[Path], mask: Optional[Path]) -> None:
        """Start-up: the given image (and mask), or the bundled demo brain."""
        self.open_image(image if image is not None else DEMO_BRAIN, mask)

    def open_dialog(self: "MainWindow") -> None:
        path = self.ask_path("Open image", self._start_dir(), IMAGE_FILTER, save=False)
        if path is not None:
            self.open_image(path)

    def open_dicom_dialog(self: "MainWindow") -> None:
        path = self.ask_folder("Open DICOM folder", self._start_dir())
        if path is not None:
            self.open_image(path)

    def open_image(self: "MainWindow", path: os.PathLike | str, mask: Optional[os.PathLike | str] = None) -> bool:
        """Open a volume (and optionally its mask); False when refused, cancelled or unreadable.

        A mask that cannot be used is reported after the image has opened without it.
        """
        if self.jobs.running:
            self.show_message("A fill is running; cancel it (Esc) before opening another image.")
            return False
        if not self.confirm_discard():
            return False
        try:
            doc = Document.open(path)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        mask_error = None
        if mask is not None:
            try:
                doc.import_mask(mask)
                doc.editor.mark_saved()
            except InpaintError as exc:
                mask_error = str(exc)
        self.set_document(doc)
        self._add_recent(Path(path))
        note = "" if self.panel.model_choice() is not None else \
            "; no model is installed: Inpaint > Load checkpoint... chooses one"
        self.show_message(f"Opened {Path(path).name}: {'x'.join(map(str, doc.volume.shape))} voxels{note}.")
        if mask_error is not None:
            self.show_error(mask_error)
        return True

    @staticmethod
    def _dropped_files(event) -> list[str]:
        return [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]

    def dragEnterEvent(self: "MainWindow", event) -> None:
        if self._dropped_files(event):
            event.acceptProposedAction()

    def dragMoveEvent(self: "MainWindow", event) -> None:
        if self._dropped_files(event):
            event.acceptProposedAction()

    def dropEvent(self: "MainWindow", event) -> None:
        files = self._dropped_files(event)
        if files:
            event.acceptProposedAction()
            # after the drop has returned: the unsaved-work question must not block the drag source
            QTimer.singleShot(0, lambda: self.open_image(files[0]))

    def _recent(self: "MainWindow") -> list[str]:
        value = self.settings.value("recentFiles", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self: "MainWindow", path: Path) -> None:
        text = str(path.resolve())
        self.settings.setValue("recentFiles", [text] + [p for p in self._recent() if p != text][: MAX_RECENT - 1])
        self.settings.setValue("lastDir", str(path.resolve().parent))
        self._update_recent_menu()

    def _update_recent_menu(self: "MainWindow") -> None:
        self.recent_menu.clear()
        for text in self._recent():
            action = self.recent_menu.addAction(text)
            action.triggered.connect(lambda checked=False, text=text: self.open_recent(text))
        self.recent_menu.setEnabled(bool(self._recent()))

    def open_recent(self: "MainWindow", text: str) -> bool:
        """Open a recent file; one that has disappeared is dropped from the list."""
        if not Path(text).exists():
            self.settings.setValue("recentFiles", [p for p in self._recent() if p != text])
            self._update_recent_menu()
            self.show_error(f"{text} no longer exists, so it was removed from the recent files; open it from "
                            "its new place with File > Open.")
            return False
        return self.open_image(text)

    # masks -------------------------------------------------------------------------------------
    def import_mask_dialog(self: "MainWindow") -> None:
        path = self.ask_path("Import mask", self._start_dir(), IMAGE_FILTER, save=False)
        if path is not None:
            self.import_mask(path)

    def import_mask(self: "MainWindow", path: os.PathLike | str) -> bool:
        """Load a mask file on the image grid (one undo step)."""
        if self.doc is None:
            return False
        try:
            self.doc.import_mask(path)
        except (InpaintError, EditRefused) as exc:
            self.show_error(str(exc))
            return False
        self.viewer.refresh_all()
        self._update_state()
        self.show_message(f"Imported {Path(path).name}: {self.doc.editor.voxel_count} voxels.")
        return True

    def save_mask(self: "MainWindow", path: Optional[os.PathLike | str] = None, ask: bool = False) -> bool:
        """Save the mask (to its file, or where the user chooses); False when cancelled or failed."""
        doc = self.doc
        if doc is None:
            return False
        if path is None:
            path = doc.mask_path if (doc.mask_path is not None and not ask) else self.ask_path(
                "Save mask", str(Path(self._start_dir()) / doc.default_name("mask")), NIFTI_FILTER, save=True)
            if path is None:
                return False
        try:
            out = doc.save_mask(path)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self._update_state()
        self.show_message(f"Saved mask ({doc.editor.voxel_count} voxels) to {out}.")
        return True

    # export ------------------------------------------------------------------------------------
    def export_result(self: "MainWindow", path: Optional[os.PathLike | str] = None) -> bool:
        """Write the filled volume, its sidecar and the job's mask; False when cancelled or failed."""
        doc = self.doc
        if doc is None or doc.result is None:
            return False
        if path is None:
            path = self.ask_path("Export filled volume", str(Path(self._start_dir()) / doc.default_name("inpainted")),
                                 NIFTI_FILTER, save=True)
            if path is None:
                return False
        path = nifti_path(path, keep_itk=True)
        mask_path = path.parent / doc.default_name("mask")
        if mask_path.exists() and not doc.mask_file_matches_result(mask_path):
            buttons = QMessageBox.StandardButton
            beside = path.parent / derived_name(path, "mask")
            answer = self.ask(f"{mask_path.name} next to the export holds another mask; replace it with the mask "
                              f"of this fill (No keeps it and writes {beside.name} instead)?",
                              buttons.Yes | buttons.No | buttons.Cancel, buttons.No)
            if answer == buttons.Cancel:
                return False
            if answer != buttons.Yes:
                mask_path = beside
        try:
            written = doc.export(path, mask_path)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self._update_state()
        self.show_message("Wrote " + ", ".join(p.name for p in written) + f" in {path.parent}.")
        return True

    def confirm_discard(self: "MainWindow") -> bool:
        """Ask about an unsaved mask or result; True when it is fine to drop the document."""
        doc = self.doc
        if doc is None:
            return True
        unsaved = (["the painted mask"] if doc.editor.modified else []) + \
                  (["the fill result"] if not doc.result_saved else [])
        if not unsaved:
            return True
        buttons = QMessageBox.StandardButton
        name = doc.path.name if doc.path else "the image"
        answer = self.ask(f"Save {' and '.join(unsaved)} before closing {name}?",
                          buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Discard:
            return True
        if answer != buttons.Save:
            return False
        if doc.editor.modified and not self.save_mask():
            return False
        return doc.result_saved or self.export_result()
