"""The cohort review's list: one row per scan with its status, uncertainty, rating and comment."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, \
    QWidget

from core.review import CohortReview

COLUMNS = ("scan", "status", "SD", "rating", "comment")   # SD: the table's uncertainty column (narrow: the list is)
RATING_COLOURS = {"pass": QColor(40, 150, 60), "fail": QColor(200, 40, 40), "unsure": QColor(200, 130, 0)}
KEYS = "Ctrl+N / Ctrl+Shift+N next / previous scan, N / Shift+N lesions, P pass, F fail, U unsure, Shift+C comment"


class ReviewPanel(QWidget):
    """Thin view of a CohortReview; a click on a row asks for that scan."""

    scanRequested = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        keys = QLabel(KEYS)
        keys.setWordWrap(True)
        keys.setStyleSheet("color: #666;")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeaderItem(2).setToolTip("uncertainty: the mean predicted error SD over the scan's filled "
                                                      "voxels, in its intensity units (desc-filled_scans.tsv)")
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the window's keys (N, P, F, U...) stay the window's
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.cellClicked.connect(lambda row, _column: self.scanRequested.emit(row))
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(keys)
        layout.addWidget(self.table, 1)

    def show_cohort(self, review: CohortReview) -> None:
        self.table.setRowCount(len(review.scans))
        for row, scan in enumerate(review.scans):
            name = scan.source.rsplit("/", 1)[-1].split(".", 1)[0]
            uncertainty = scan.uncertainty if scan.uncertainty not in (None, "") else "n/a"
            for column, text in enumerate((name, scan.status, uncertainty)):
                item = QTableWidgetItem(text)
                item.setToolTip(scan.message or scan.output)
                self.table.setItem(row, column, item)
            self.show_rating(review, row)
        self.show_progress(review)

    def show_rating(self, review: CohortReview, row: int) -> None:
        rating = review.rating(row)
        item = QTableWidgetItem(rating.rating if rating else "")
        if rating:
            item.setForeground(RATING_COLOURS[rating.rating])
        self.table.setItem(row, 3, item)
        self.table.setItem(row, 4, QTableWidgetItem(rating.comment if rating else ""))
        self.show_progress(review)

    def show_progress(self, review: CohortReview) -> None:
        self.title.setText(f"<b>{review.out_dir.name}</b>: {len(review.scans)} scans, {review.progress()}")

    def select(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, 0))
