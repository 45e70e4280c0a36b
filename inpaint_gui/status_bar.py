"""The status bar: messages on the left; the cursor readout and the brush and mask label on the right.

A message comes first: while it shows, the readout narrows (its text elided) and, for a message longer
still, the brush label too, so that the message fits; the whole message is the status bar's tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QStatusBar

UNLIMITED = 16777215   # QWIDGETSIZE_MAX
MARGINS = 24           # QStatusBar draws a message from x = 6 and leaves 12 px at the right, plus room to spare
GAP = 8                # a permanent widget's frame and the layout's spacing
MIN_READOUT = 80       # narrower than this, the readout is no use and gives way altogether


class ElidedLabel(QLabel):
    """A one-line label that can shrink to nothing, eliding its text; `text()` stays the whole text."""

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:
        rect = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter = QPainter(self)
        self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(), self.isEnabled(), shown,
                                  QPalette.ColorRole.WindowText)


class StatusBar(QStatusBar):
    """`showMessage` as QStatusBar's, with the permanent `readout` and `brush` labels giving way to the message."""

    def __init__(self) -> None:
        super().__init__()
        self.readout = ElidedLabel("")
        self.separator = QFrame()
        self.separator.setFrameShape(QFrame.Shape.VLine)
        self.brush = ElidedLabel("")
        for widget in (self.readout, self.separator, self.brush):
            self.addPermanentWidget(widget)
        self.messageChanged.connect(self._message_changed)

    def _message_changed(self, text: str) -> None:
        self.setToolTip(text)
        self.make_room()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.make_room()

    def make_room(self) -> None:
        """Cap the readout's and then the brush label's widths so that the current message fits beside them."""
        text = self.currentMessage()
        if not text:
            readout = brush = UNLIMITED
        else:
            room = self.width() - MARGINS - self.fontMetrics().horizontalAdvance(text)
            brush_width = self.brush.sizeHint().width() + GAP
            readout = room - brush_width - self.separator.sizeHint().width() - 2 * GAP
            readout = readout if readout >= MIN_READOUT else 0
            brush = UNLIMITED if readout else max(0, room - GAP)
        self.readout.setMaximumWidth(readout)
        self.separator.setVisible(readout > 0)
        self.brush.setMaximumWidth(brush)
