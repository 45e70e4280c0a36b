"""Cohort review: open an `inpaint bids` output, show its scans one by one, record the reviewer's ratings.

The model is `core.review.CohortReview` (ratings written atomically at every key press); a scan is
read with `core.review_scan.load_scan` and shown as a read-only document whose result is the filled
image, so the comparison keys (T, Ctrl+1..4, X) and N / Shift+N work on it as on a fill; Ctrl+N / Ctrl+Shift+N
follow the list's order as sorted (scans are addressed by their index in the CohortReview; "Scan k of N" counts
rows), and a cohort opens at the first unrated scan of that order. The uncertainty overlay is off when a cohort
opens, so the fill itself shows (Shift+U turns it on), and the settings panel (a fill's, not the scan's) is hidden;
both come back as they were when the review ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget

from core.errors import InpaintError
from core.review import CohortReview
from core.review_scan import load_scan

from .dialogs import Dialogs
from .document import Document
from .file_controller import FileController
from .ortho_viewer import OrthoViewer
from .review_panel import ReviewPanel


class ReviewController(QObject):
    """The cohort under review, the scan shown, and the rating keys."""

    message = Signal(str)
    changed = Signal()   # a cohort opened or closed, a scan shown: update the actions

    def __init__(self, files: FileController, viewer: OrthoViewer, dialogs: Dialogs, dock: QDockWidget,
                 panel: ReviewPanel, first_lesion: Callable[[], None], overlay: QAction, side_panel: QAction) -> None:
        super().__init__()
        self.files, self.viewer, self.dialogs, self.dock, self.panel = files, viewer, dialogs, dock, panel
        self._first_lesion = first_lesion
        self._overlay = overlay            # the uncertainty overlay's checkable action
        self._side_panel = side_panel      # the settings panel's (View > Show settings panel)
        self._before = (overlay.isChecked(), side_panel.isChecked())
        self.cohort: Optional[CohortReview] = None
        self.index = 0
        panel.scanRequested.connect(self.show)
        files.opened.connect(self._document_opened)

    def open_dialog(self) -> None:
        path = self.dialogs.folder("Review cohort: the output folder of 'inpaint bids'")
        if path is not None:
            self.open(path)

    def open(self, out_dir: os.PathLike | str) -> bool:
        """Open a cohort and show its first unrated scan; False when refused or unreadable (asked about unsaved work
        only once the cohort has been read)."""
        try:
            cohort = CohortReview(Path(out_dir))
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        if not cohort.scans:
            self.dialogs.error(f"{out_dir} lists no scans in its table; run 'inpaint bids' into it first.")
            return False
        if not self.files.confirm_discard():
            return False
        if self.cohort is None:
            self._before = (self._overlay.isChecked(), self._side_panel.isChecked())
        self._overlay.setChecked(False)     # the fill shows (the overlay covered it); Shift+U for the SD
        self._side_panel.setChecked(False)  # the panel's settings are a fill's, not this scan's
        self.cohort = cohort
        self.panel.show_cohort(cohort)
        self.dock.show()
        self.show(cohort.first_unrated(self.panel.order()))  # the first unrated in the list's order
        if cohort.read_only:
            self.dialogs.error(f"{cohort.out_dir} cannot be written ({cohort.read_only}), so ratings cannot be saved "
                               "there; review a copy of the folder you may write, or change its permissions.")
        return True

    def close(self) -> None:
        self.cohort = None
        self._overlay.setChecked(self._before[0])
        self._side_panel.setChecked(self._before[1])
        self.dock.hide()
        self.changed.emit()

    def show(self, index: int) -> None:
        """Show scan `index`: the source with its fill, or why it cannot be shown."""
        cohort = self.cohort
        if cohort is None:
            return
        self.index = index
        scan = cohort.scans[index]
        self.panel.select(index)
        where = f"Scan {self.panel.order().index(index) + 1} of {len(cohort.scans)} ({cohort.progress()})"  # its row
        try:
            files = load_scan(cohort.out_dir, scan)
        except InpaintError as exc:
            self.files.close_document()
            self.viewer.clear_document(f"<h3>{scan.source}</h3>{exc}<br><br>Rate it (P / F / U) or go on "
                                       "(Ctrl+N).")
            self.message.emit(f"{where}: {exc}")
            self.changed.emit()
            return
        self.files.show_document(Document.for_review(files))
        self._first_lesion()
        error = ""
        if scan.uncertainty_share is not None:  # the table's, as the list shows it
            error = f"Predicted error SD {scan.uncertainty_share:.1%} of its brain intensity range. "
        else:  # an older table or fill: the share of the scan's range on screen
            share = files.error_share(scan.uncertainty)
            if share is not None:
                error = f"Predicted error SD {share:.1%} of its intensity range. "
                self.panel.show_share(index, f"{share:.1%} of its intensity range (0.5th to 99.5th percentile)")
        notes = " ".join(files.notes)
        self.message.emit(f"{where}: {scan.source}. {error}N / Shift+N lesions, T compare, P / F / U rate. "
                          f"{notes}".strip())
        self.changed.emit()

    def step(self, direction: int) -> None:
        """Show the next (1) or previous (-1) scan in the list's order, as sorted."""
        cohort = self.cohort
        if cohort is None:
            return
        order = self.panel.order()
        position = order.index(self.index) + direction
        if not 0 <= position < len(order):
            self.message.emit(f"{'Last' if direction > 0 else 'First'} scan of the list ({cohort.progress()}).")
            return
        self.show(order[position])

    def rate(self, rating: str) -> None:
        cohort = self.cohort
        if cohort is None:
            return
        if not self._saved("rating", lambda: cohort.rate(self.index, rating)):
            return
        self.message.emit(f"Rated {cohort.scans[self.index].source} {rating} ({cohort.progress()}); Ctrl+N: next "
                          "scan.")

    def clear(self) -> None:
        """Take back the shown scan's rating (and comment)."""
        cohort = self.cohort
        if cohort is None or cohort.rating(self.index) is None:
            return
        if self._saved("rating", lambda: cohort.clear(self.index)):
            self.message.emit(f"Cleared the rating of {cohort.scans[self.index].source} ({cohort.progress()}).")

    def comment(self) -> None:
        cohort = self.cohort
        if cohort is None:
            return
        old = cohort.rating(self.index)
        text = self.dialogs.text("Comment", f"Comment on {cohort.scans[self.index].source}:",
                                 old.comment if old else "")
        if text is None:
            return
        self._saved("comment", lambda: cohort.comment(self.index, text))

    def _saved(self, what: str, write: Callable[[], None]) -> bool:
        """Run `write` (a rating or comment to desc-qc_scans.tsv) and show the scan's rating; False, said, on failure."""
        try:
            write()
        except OSError as exc:
            self.dialogs.error(f"The {what} could not be written to {self.cohort.out_dir} ({exc}); check that the "
                               "folder is writable.")
            return False
        except InpaintError as exc:   # the ratings file, read again to merge, was damaged meanwhile
            self.dialogs.error(str(exc))
            return False
        self.panel.show_rating(self.cohort, self.index)
        return True

    def _document_opened(self) -> None:
        doc = self.files.doc
        if self.cohort is not None and doc is not None and not doc.reviewed:  # an image opened: the review ends
            self.close()
