"""The cohort review's list: one row per scan with its status, uncertainty, rating and comment."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QStyledItemDelegate, QStyleOptionViewItem, \
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from core.review import CohortReview, Scan

COLUMNS = ("scan", "status", "SD (a.u.)", "rating", "comment")  # SD: the table's uncertainty column, scan units
SD_TIP = ("The mean predicted error (one SD) over the scan's filled voxels, from desc-filled_scans.tsv, in the scan's "
          "own intensity units (a.u.): compare it between scans only when their intensities share a scale. A scan "
          "on screen also gives it as a share of its intensity range (0.5th to 99.5th percentile, as the MAE %) in "
          "the status bar and in its tooltip here.")
SHARE_HEADER = "SD (%)"  # a table with the uncertainty_share column
SHARE_TIP = ("The mean predicted error (one SD) over the scan's filled voxels, from desc-filled_scans.tsv, as a share "
             "of the scan's brain intensity range (0.5th to 99.5th percentile of its known brain voxels, the fill's "
             "own normalisation): comparable across scans whatever their intensity scale. Its tooltip also gives it "
             "in the scan's own units (a.u.); a scan filled by an earlier version has those only.")
WIDTH = 380    # the list's width when it opens: every column whole, names and comments a few words wide
COMMENT = 90   # the comments' width that scan names leave, when the list is wide enough for both
RATING_COLOURS = {"pass": QColor(40, 150, 60), "fail": QColor(200, 40, 40), "unsure": QColor(200, 130, 0)}
KEYS = "Ctrl+N / Ctrl+Shift+N next / previous scan, N / Shift+N lesions, P pass, F fail, U unsure, Shift+C comment"


class OneLine(QStyledItemDelegate):
    """Cells on one line (elided when too long): only comments wrap."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.features &= ~QStyleOptionViewItem.ViewItemFeature.WrapText


class ReviewTable(QTableWidget):
    """The scans, every column in view: status, SD and rating as wide as their contents, scan names as wide as the
    longest but leaving COMMENT px or half the rest (elided in the middle), comments the rest, wrapped."""

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)  # set by fit_names
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its subject and its suffix
        self.setWordWrap(True)
        self.one_line = OneLine(self)
        for column in (0, 1, 2, 3):
            self.setItemDelegateForColumn(column, self.one_line)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

    def fit_names(self) -> None:
        """Size the scan names' column for the list's width now."""
        header = self.horizontalHeader()
        narrow = sum(max(self.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in (1, 2, 3))
        names = max(self.sizeHintForColumn(0), header.sectionSizeHint(0))
        rest = self.viewport().width() - narrow
        header.resizeSection(0, max(header.minimumSectionSize(), min(names, max(rest // 2, rest - COMMENT))))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_names()


def _sd_cell(scan: Scan, shares: bool) -> tuple[str, str]:
    """The SD cell's text and tooltip (empty: none predicted): the share of the scan's brain intensity range when
    the table has that column, else (an older table, or a scan filled by an earlier version) the scan's units."""
    sd = scan.uncertainty
    if shares and scan.uncertainty_share is not None:
        units = f"; {sd} in its own intensity units" if sd else ""
        return (f"{scan.uncertainty_share:.1%}", f"{scan.uncertainty_share:.2%} of the scan's brain intensity range "
                f"(0.5th to 99.5th percentile of known brain voxels){units}")
    if not sd:
        return "n/a", ""
    if shares:
        return f"{sd} a.u.", f"{sd} in the scan's own intensity units (filled by an earlier version, no share recorded)"
    return sd, f"{sd} in the scan's own intensity units"


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
        self.table = ReviewTable()
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeaderItem(2).setToolTip(SD_TIP)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the window's keys (N, P, F, U...) stay the window's
        self.table.verticalHeader().setVisible(False)
        self.table.cellClicked.connect(lambda row, _column: self.scanRequested.emit(row))
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(keys)
        layout.addWidget(self.table, 1)

    def sizeHint(self) -> QSize:
        return QSize(WIDTH, super().sizeHint().height())  # the dock opens this wide; it can be narrowed

    def show_cohort(self, review: CohortReview) -> None:
        header = self.table.horizontalHeaderItem(2)
        header.setText(SHARE_HEADER if review.shares else COLUMNS[2])
        header.setToolTip(SHARE_TIP if review.shares else SD_TIP)
        self.table.setRowCount(len(review.scans))
        for row, scan in enumerate(review.scans):
            name = scan.source.rsplit("/", 1)[-1].split(".", 1)[0]
            sd, tip = _sd_cell(scan, review.shares)
            for column, text in enumerate((name, scan.status, sd)):
                item = QTableWidgetItem(text)
                item.setToolTip(scan.message or scan.output)
                self.table.setItem(row, column, item)
            if tip:
                self.table.item(row, 2).setToolTip(tip)
                self.table.item(row, 2).setData(Qt.ItemDataRole.UserRole, tip)  # what show_share adds to
            self.show_rating(review, row)
        self.show_progress(review)
        self.table.fit_names()

    def show_rating(self, review: CohortReview, row: int) -> None:
        rating = review.rating(row)
        item = QTableWidgetItem(rating.rating if rating else "")
        if rating:
            item.setForeground(RATING_COLOURS[rating.rating])
        self.table.setItem(row, 3, item)
        comment = QTableWidgetItem(rating.comment if rating else "")
        comment.setToolTip(comment.text())
        self.table.setItem(row, 4, comment)
        self.show_progress(review)

    def show_share(self, row: int, text: str) -> None:
        """The SD of the scan on screen as a share of its intensity range, in its cell's tooltip."""
        item = self.table.item(row, 2)
        item.setToolTip(f"{item.data(Qt.ItemDataRole.UserRole)}: {text}")

    def show_progress(self, review: CohortReview) -> None:
        self.title.setText(f"<b>{review.out_dir.name}</b>: {len(review.scans)} scans, {review.progress()}")

    def select(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, 0))
