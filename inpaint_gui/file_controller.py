"""The File menu: open (dialog, DICOM folder, recent, drop), masks in and out, export, unsaved-work prompts.

Owns the open Document; the window shows it. Every path comes from a dialog or a caller, never
from a signal's argument.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QMenu

from core.errors import InpaintError
from core.mask_editor import EditRefused
from core.resources import DEMO_BRAIN
from core.modelspace import obliquity_deg
from core.sidecar import export_recording
from core.targets import derived_name
from core.volume import check_grid

from .actions import connect_action
from .dialogs import Button, Dialogs
from .document import Document, nifti_path, probability_range

IMAGE_FILTER = "Images (*.nii.gz *.nii *.nrrd *.nhdr *.mha *.mhd);;All files (*)"
NIFTI_FILTER = "NIfTI (*.nii.gz *.nii)"
MAX_RECENT = 8


OBLIQUE_DEG = 1.0   # a voxel grid tilted this much from the scanner axes is said to be oblique on opening
KEEP_DTYPE = "exportKeepDtype"   # the setting File > Export in the input's data type keeps
BUSY = "A fill is running; cancel it (Esc) before opening another image."


class FileController(QObject):
    """Opens, saves and exports; asks before unsaved work is dropped or replaced."""

    opened = Signal()        # a new document replaced the old one
    maskReplaced = Signal()  # an imported mask: redraw everything
    changed = Signal()       # saved state, brain mask: update titles and actions
    message = Signal(str)    # status bar

    def __init__(self, dialogs: Dialogs, settings: QSettings, recent_menu: QMenu, busy: Callable[[], bool]) -> None:
        super().__init__()
        self.dialogs, self.settings, self.recent_menu, self._busy = dialogs, settings, recent_menu, busy
        self.doc: Optional[Document] = None
        self.update_recent_menu()

    # opening -----------------------------------------------------------------------------------
    def open_initial(self, image: Optional[Path], mask: Optional[Path]) -> None:
        """Start-up: the given image (and mask), or the bundled demo brain."""
        self.open_image(image if image is not None else DEMO_BRAIN, mask)

    def open_dialog(self) -> None:
        path = None if self._refuse_while_busy() else self.dialogs.open_file("Open image", IMAGE_FILTER)
        if path is not None:
            self.open_image(path)

    def open_dicom_dialog(self) -> None:
        path = None if self._refuse_while_busy() else self.dialogs.folder("Open DICOM folder")
        if path is not None:
            self.open_image(path)

    def _refuse_while_busy(self) -> bool:
        """While a fill runs, say why nothing opens (before any dialog); True then."""
        if self._busy():
            self.message.emit(BUSY)
        return self._busy()

    def open_image(self, path: os.PathLike | str, mask: Optional[os.PathLike | str] = None) -> bool:
        """Open a volume (and optionally its mask); False when refused, cancelled or unreadable.

        The file is read before the question about unsaved work: an unreadable one leaves the open
        document as it was, unasked. A mask that cannot be used is reported after the image has opened without it.
        """
        if self._refuse_while_busy():
            return False
        try:
            doc = Document.open(path)
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        if not self.confirm_discard():
            return False
        mask_error = None
        if mask is not None:
            try:
                doc.import_mask(mask)
                doc.editor.mark_saved()
            except InpaintError as exc:
                mask_error = str(exc)
        self.doc = doc
        self._add_recent(Path(path))
        tilt = obliquity_deg(doc.volume.affine)
        oblique = (f" Its voxel grid is oblique, {tilt:.0f} degrees from the scanner's axes: the views show the grid "
                   "as stored and their letters name the nearest axes." if tilt >= OBLIQUE_DEG else "")
        self.message.emit(f"Opened {Path(path).name}: {'x'.join(map(str, doc.volume.shape))} voxels.{oblique}")
        self.opened.emit()  # after the message: the window may have a warning to show instead
        if mask_error is not None:
            self.dialogs.error(mask_error)
        elif mask is not None:
            self.maskReplaced.emit()   # as an import: the views go to a lesion of it
        return True

    def show_document(self, doc: Document) -> None:
        """Make `doc` (already read, e.g. a reviewed scan) the open document."""
        self.doc = doc
        self.opened.emit()

    def close_document(self) -> None:
        """No open document (the caller has asked about unsaved work)."""
        self.doc = None
        self.changed.emit()

    def open_recent(self, text: str) -> bool:
        """Open a recent file; one that has disappeared is dropped from the list."""
        if not Path(text).exists():
            self.settings.setValue("recentFiles", [p for p in self._recent() if p != text])
            self.update_recent_menu()
            self.dialogs.error(f"{text} no longer exists, so it was removed from the recent files; open it from "
                               "its new place with File > Open.")
            return False
        return self.open_image(text)

    def _recent(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self, path: Path) -> None:
        text = str(path.resolve())
        self.settings.setValue("recentFiles", [text] + [p for p in self._recent() if p != text][: MAX_RECENT - 1])
        self.dialogs.remember(path)
        self.update_recent_menu()

    def update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for text in self._recent():
            connect_action(self.recent_menu.addAction(text), lambda text=text: self.open_recent(text))
        self.recent_menu.setEnabled(bool(self._recent()))

    # masks -------------------------------------------------------------------------------------
    def import_mask_dialog(self) -> None:
        path = self.dialogs.open_file("Import mask", IMAGE_FILTER)
        if path is not None:
            self.import_mask(path)

    def import_mask(self, path: os.PathLike | str) -> bool:
        """Load a mask on the image grid (one undo step); asks before replacing unsaved painting and for a
        probability map's threshold."""
        doc = self.doc
        if doc is None:
            return False
        name = Path(path).name
        try:
            check_grid(path, doc.volume, "mask")   # from its header: a mask of another scan is said before any question
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        if doc.editor.modified and doc.editor.voxel_count and self.dialogs.ask(
                f"Replace the painted mask ({doc.lesion_text()}, not saved) with {name}? (Ctrl+Z brings it back.)"
        ) != Button.Yes:
            return False
        try:
            span = probability_range(path)
            threshold = None if span is None else self.dialogs.number(
                "Probability map", f"{name} holds values from {span[0]:.3g} to {span[1]:.3g}.\n"
                "Voxels above this threshold form the lesion mask:", 0.5, span[0], span[1], 3)
            if span is not None and threshold is None:
                return False
            doc.import_mask(path, threshold)
        except (InpaintError, EditRefused) as exc:
            self.dialogs.error(str(exc))
            return False
        self.maskReplaced.emit()
        above = "" if threshold is None else f" above {threshold:g}"
        self.message.emit(f"Imported {name}{above}: {doc.lesion_text()}.")
        return True

    def brain_mask_dialog(self) -> None:
        path = self.dialogs.open_file("Load brain mask", IMAGE_FILTER)
        if path is not None:
            self.load_brain_mask(path)

    def load_brain_mask(self, path: os.PathLike | str) -> bool:
        """Fill with this brain mask from now on (the model sees only tissue inside it)."""
        if self.doc is None:
            return False
        try:
            self.doc.load_brain_mask(path)
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        self.changed.emit()
        self.message.emit(f"Brain mask {Path(path).name}: {self.doc.lesion_text(int(self.doc.brain.sum()))}; "
                          "the model sees only tissue inside it.")
        return True

    def forget_brain_mask(self) -> None:
        if self.doc is not None:
            self.doc.forget_brain_mask()
            self.changed.emit()
            self.message.emit("No brain mask: the brain is estimated from the image.")

    # saving ------------------------------------------------------------------------------------
    def save_mask(self, ask: bool = False) -> bool:
        """Save the mask to its file (asking for a name the first time, or with `ask`); False if cancelled."""
        doc = self.doc
        if doc is None:
            return False
        if doc.mask_path is not None and not ask and not doc.editor.modified:
            self.message.emit(f"The mask ({doc.lesion_text()}) is saved in {doc.mask_path} already.")
            return True
        name = doc.default_name("mask")
        beside = doc.path.parent / name if doc.path is not None else None
        if any(exported.name == name for exported in doc.exported_masks) or (
                beside is not None and export_recording(beside)):   # not an export's own mask file
            name = name[: -len("_mask.nii.gz")] + "_desc-painted_mask.nii.gz"
        path = doc.mask_path if (doc.mask_path is not None and not ask) else \
            self.dialogs.save_file("Save mask", name, NIFTI_FILTER)
        return path is not None and self.save_mask_to(path)

    def save_mask_to(self, path: os.PathLike | str) -> bool:
        doc = self.doc
        assert doc is not None
        try:
            out = doc.save_mask(path)
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        self.changed.emit()
        self.message.emit(f"Saved mask ({doc.lesion_text()}) to {out}.")
        return True

    def export(self) -> bool:
        """Ask where, then write the filled volume, its sidecar and the job's mask; False if cancelled."""
        doc = self.doc
        if doc is None or doc.result is None:
            return False
        path = self.dialogs.save_file("Export filled volume", doc.default_name("inpainted"), NIFTI_FILTER)
        return path is not None and self.export_to(path)

    def export_to(self, path: os.PathLike | str) -> bool:
        """Write the export at `path`; asks before replacing a different mask saved beside it."""
        doc = self.doc
        assert doc is not None and doc.result is not None
        path = nifti_path(path, keep_itk=True)
        mask_path = path.parent / doc.default_name("mask")
        beside = path.parent / derived_name(path, "mask")
        if doc.protects(mask_path):  # the export's mask never replaces a file the document read or saves to
            mask_path = beside
        elif mask_path.exists() and not doc.mask_file_matches_result(mask_path):
            answer = self.dialogs.ask(f"{mask_path.name} next to the export holds another mask; replace it with the "
                                      f"mask of this fill (No keeps it and writes {beside.name} instead)?",
                                      Button.Yes | Button.No | Button.Cancel, Button.No)
            if answer == Button.Cancel:
                return False
            if answer != Button.Yes:
                mask_path = beside
        try:
            written = doc.export(path, mask_path, keep_dtype=self.settings.value(KEEP_DTYPE, False, type=bool))
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        self.changed.emit()
        self.message.emit("Wrote " + ", ".join(p.name for p in written) + f" in {path.parent}.")
        return True

    def confirm_discard(self) -> bool:
        """Ask about an unsaved mask or result; True when it is fine to drop the document."""
        doc = self.doc
        if doc is None:
            return True
        unsaved = (["the painted mask"] if doc.editor.modified else []) + \
                  (["the fill result"] if not doc.result_saved else [])
        if not unsaved:
            return True
        name = doc.path.name if doc.path else "the image"
        answer = self.dialogs.ask(f"Save {' and '.join(unsaved)} before closing {name}?",
                                  Button.Save | Button.Discard | Button.Cancel, Button.Save)
        if answer == Button.Discard:
            return True
        if answer != Button.Save:
            return False
        if doc.editor.modified and not self.save_mask():
            return False
        return doc.result_saved or self.export()
