"""The cohort review's list: one row per scan with its status, uncertainty, rating and comment, sorted by a click on
a column's header; each row keeps its scan's index in the CohortReview, the scan's identity whatever the order."""

from __future__ import annotations

import re
from typing import Optional

from PySide6.QtCore import QModelIndex, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QStyledItemDelegate, QStyleOptionViewItem, \
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from core.review import CohortReview, Rating, Scan, number

COLUMNS = ("scan", "status", "SD (a.u.)", "rating", "comment")  # SD: the table's uncertainty column, scan units
SD_TIP = ("The mean predicted error (one SD) over the scan's filled voxels, from desc-filled_scans.tsv, in the scan's "
          "own intensity units (a.u.): compare it between scans only when their intensities share a scale. A scan "
          "on screen also gives it as a share of its intensity range (0.5th to 99.5th percentile, as the MAE %) in "
          "the status bar and in its tooltip here.")
SHARE_HEADER = "SD (%)"  # a table with the uncertainty_share column
SHARE_TIP = ("The mean predicted error (one SD) over the scan's filled voxels, from desc-filled_scans.tsv, as a share "
             "of the scan's brain intensity range (from 0, or the 0.5th percentile of its known brain voxels if lower, to "
             "their 99.5th percentile: the fill's own normalisation): comparable across scans whatever their intensity scale. Its tooltip also gives it "
             "in the scan's own units (a.u.); a scan filled by an earlier version has those only.")
WIDTH = 420    # the list's width when it opens: every column whole, names and comments a few words wide
COMMENT = 90   # the comments' width that scan names leave, when the list is wide enough for both
RATING_COLOURS = {"pass": QColor(40, 150, 60), "fail": QColor(200, 40, 40), "unsure": QColor(200, 130, 0)}
KEYS = ("Ctrl+N / Ctrl+Shift+N next / previous scan in the list's order (click a header to sort by it), N / Shift+N "
        "lesions, P pass, F fail, U unsure, Shift+C comment")
SCAN = Qt.ItemDataRole.UserRole    # on column 0: the row's scan index in the CohortReview
KEY = Qt.ItemDataRole.UserRole + 1  # on every cell: its sort key (rank, value)
Key = tuple[int, object]
SORT_COLUMN, SORT_ORDER = "review/sortColumn", "review/sortOrder"  # settings keys


def natural_key(name: str) -> tuple:
    """`name` sorted as a person would: runs of digits by their value (sub-2 before sub-10), the rest ignoring case."""
    return tuple(int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", name))


class Cell(QTableWidgetItem):
    """A cell sorted by its key: by value, and a higher rank (n/a, unrated) after a lower whichever the order."""

    def __init__(self, text: str, key: Key) -> None:
        super().__init__(text)
        self.setData(KEY, key)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        (rank, value), (other_rank, other_value) = self.data(KEY), other.data(KEY)
        if rank == other_rank:
            return value < other_value
        descending = self.tableWidget().horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        return rank > other_rank if descending else rank < other_rank  # Qt sorts descending by other < self


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
        self.setTabKeyNavigation(False)   # Tab moves on to the next control, not through the cells
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


def _sd_cell(scan: Scan, shares: bool) -> tuple[str, str, Key]:
    """The SD cell's text, tooltip (empty: none predicted) and sort key: the share of the scan's brain intensity range
    when the table has that column, else (an older table, or a scan filled by an earlier version) the scan's units,
    sorted after the shares (they cannot be compared with them), and n/a last."""
    sd = scan.uncertainty
    if shares and scan.uncertainty_share is not None:
        units = f"; {sd} in its own intensity units" if sd else ""
        return (f"{scan.uncertainty_share:.1%}", f"{scan.uncertainty_share:.2%} of the scan's brain intensity range "
                f"(from 0 to the 99.5th percentile of known brain voxels, the fill's normalisation){units}", (0, scan.uncertainty_share))
    if not sd:
        return "n/a", "", (2, 0.0)
    value = number(sd)
    key = (2, 0.0) if value is None else (1 if shares else 0, value)
    if shares:
        tip = f"{sd} in the scan's own intensity units (filled by an earlier version, no share recorded)"
        return f"{sd} a.u.", tip, key
    return sd, f"{sd} in the scan's own intensity units", key


def scan_name(source: str) -> str:
    """The list's name of a scan: its file name's entities, without the extension and the `_T1w` every scan has."""
    stem = source.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem[:-len("_T1w")] if stem.endswith("_T1w") and len(stem) > len("_T1w") else stem


class ReviewPanel(QWidget):
    """Thin view of a CohortReview; a click on a row asks for that scan, one on a header sorts the rows by that column
    (again: the other way). Its methods take scan indices, never row numbers."""

    scanRequested = Signal(int)

    def __init__(self, settings: QSettings, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings  # the list's sort, kept between sessions
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
        self.table.cellClicked.connect(lambda row, _column: self.scanRequested.emit(self.table.item(row, 0).data(SCAN)))
        header = self.table.horizontalHeader()
        header.setSortIndicatorShown(True)
        column = settings.value(SORT_COLUMN, -1, type=int)  # -1, unsorted: the table's order
        descending = settings.value(SORT_ORDER, 0, type=int) == Qt.SortOrder.DescendingOrder.value  # else ascending
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        header.setSortIndicator(column if -1 <= column < len(COLUMNS) else -1, order)
        header.sortIndicatorChanged.connect(self._sort)  # a click flips it (ascending first)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(keys)
        layout.addWidget(self.table, 1)

    def sizeHint(self) -> QSize:
        return QSize(WIDTH, super().sizeHint().height())  # the dock opens this wide; it can be narrowed

    def show_cohort(self, review: CohortReview) -> None:
        sd_header = self.table.horizontalHeaderItem(2)
        sd_header.setText(SHARE_HEADER if review.shares else COLUMNS[2])
        sd_header.setToolTip(SHARE_TIP if review.shares else SD_TIP)
        self.table.setRowCount(len(review.scans))
        for index, scan in enumerate(review.scans):  # in the table's order, then sorted as the list was
            name = scan_name(scan.source)
            sd, tip, key = _sd_cell(scan, review.shares)
            status = review.status(index)   # missing / damaged when its files changed since the run
            problem = review.problems.get(scan.output, ("", ""))[1]
            cells = (Cell(name, (0, natural_key(name))), Cell(status, (0, status.lower())), Cell(sd, key))
            for column, item in enumerate(cells):
                item.setToolTip(problem or scan.message or scan.output)
                self.table.setItem(index, column, item)
            self.table.item(index, 0).setData(SCAN, index)
            if tip:
                self.table.item(index, 2).setToolTip(tip)
                self.table.item(index, 2).setData(Qt.ItemDataRole.UserRole, tip)  # what show_share adds to
            self._show_rating(index, review.rating(index), review.stale(index))
        header = self.table.horizontalHeader()
        if header.sortIndicatorSection() >= 0:
            self.table.sortItems(header.sortIndicatorSection(), header.sortIndicatorOrder())
        self.show_progress(review)
        self.table.fit_names()

    def order(self) -> list[int]:
        """The scans' indices in the list's order, top to bottom."""
        return [self.table.item(row, 0).data(SCAN) for row in range(self.table.rowCount())]

    def show_rating(self, review: CohortReview, index: int) -> None:
        """Scan `index`'s rating and comment; its row stays where it is until the list is sorted again."""
        self._show_rating(self.order().index(index), review.rating(index), review.stale(index))
        self.show_progress(review)

    def _show_rating(self, row: int, rating: Optional[Rating], stale: bool = False) -> None:
        """A rating of an earlier fill of the scan is shown as such and sorted with the unrated."""
        if rating and stale:
            item = Cell(f"{rating.rating} (earlier fill)", (1, rating.rating))
            item.setToolTip(f"Rated {rating.rating} on {rating.rated}, before the scan was filled again; rate it again.")
        else:
            item = Cell(rating.rating, (0, rating.rating)) if rating else Cell("", (1, ""))  # unrated last
        if rating and not stale:
            item.setForeground(RATING_COLOURS[rating.rating])
        self.table.setItem(row, 3, item)
        text = rating.comment if rating else ""
        comment = Cell(text, (0, text.lower()) if text else (1, ""))  # no comment last
        comment.setToolTip(text)
        self.table.setItem(row, 4, comment)

    def show_share(self, index: int, text: str) -> None:
        """The SD of scan `index` (on screen) as a share of its intensity range, in its cell's tooltip."""
        item = self.table.item(self.order().index(index), 2)
        item.setToolTip(f"{item.data(Qt.ItemDataRole.UserRole)}: {text}")

    def show_progress(self, review: CohortReview) -> None:
        self.title.setText(f"<b>{review.out_dir.name}</b>: {len(review.scans)} scans, {review.progress()}")

    def select(self, index: int) -> None:
        """Select scan `index`'s row and scroll it into view."""
        row = self.order().index(index)
        self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, 0))

    def _sort(self, column: int, order: Qt.SortOrder) -> None:
        """Sort the rows by `column` (a header was clicked); the selected scan stays selected and in view."""
        self.table.sortItems(column, order)
        self.settings.setValue(SORT_COLUMN, column)
        self.settings.setValue(SORT_ORDER, order.value)
        selected = self.table.selectedItems()
        if selected:
            self.table.scrollToItem(selected[0])
