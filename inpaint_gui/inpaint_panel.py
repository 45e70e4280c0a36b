"""Side panel: fill settings, Run/Cancel, progress with ETA, loss curve, metrics and per-slice losses."""

from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QAbstractScrollArea, QAbstractSpinBox, QComboBox, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from core.inputs import count_lesions
from core.job import EtaClock, Progress
from core.methods import fills_slices
from core.progress import clock

from .document import BASELINE, JobResult
from .settings_form import SettingsForm
from .worker import finite_mean

METRIC_ROWS = (("model", "This fill"), (BASELINE, "Biharmonic 3D"))   # the first row is named by the method once run
FIELD_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)  # kept from the slice keys
METRIC_COLUMNS = (("psnr", "PSNR dB", "{:.2f}", 1.0), ("ssim", "SSIM", "{:.3f}", 1.0),
                  ("mae", "MAE %", "{:.2f}", 100.0))  # MAE as % of the image's intensity range
WARNING_STYLE = "color: #a05000;"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class InpaintPanel(QWidget):
    """Settings, job state and results; the main window runs the jobs."""

    runRequested = Signal()
    cancelRequested = Signal()
    sliceRequested = Signal(str, int)  # plane name, RAS slice index: a row of the losses table was clicked
    fieldDone = Signal()   # a choice was made in a field (a list picked, Return in a number): keys back to the views

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.form = SettingsForm()
        self.image_note = QLabel("")
        self.image_note.setWordWrap(True)
        self.image_note.setStyleSheet(WARNING_STYLE)
        self.image_note.hide()
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Fill the mask with the model (Ctrl+R).")
        self.run_button.clicked.connect(self.runRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running fill and keep everything as it was (Esc).")
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.eta = QLabel("")
        self.eta.setWordWrap(True)
        self._eta = EtaClock()
        self.loss_plot = pg.PlotWidget(background="w")
        self.loss_plot.setMinimumHeight(110)
        self.loss_plot.setToolTip("Mean best loss of the filled slices during the latent search.")
        self.loss_plot.setLabel("left", "mean best loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setMouseEnabled(x=False, y=False)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((30, 90, 200), width=2))
        self._loss_x: list[float] = []
        self._loss_y: list[float] = []
        self._shown: tuple[list[float], list[float]] = ([], [])  # the result's curve, restored after a cancel

        self.metrics = QTableWidget(len(METRIC_ROWS), len(METRIC_COLUMNS))
        self.metrics.setHorizontalHeaderLabels([c[1] for c in METRIC_COLUMNS])
        self.metrics.setVerticalHeaderLabels([r[1] for r in METRIC_ROWS])
        self.metrics.setSelectionMode(QTableWidget.SelectionMode.NoSelection)   # figures to read, not to pick
        self.metrics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.metrics.setToolTip("In-hole metrics against the image as loaded (the mask was painted over it), "
                                "BraTS style: higher PSNR and SSIM, lower MAE are better. MAE is in % of the "
                                "image's intensity range (0.5th to 99.5th percentile). Biharmonic 3D: biharmonic "
                                "inpainting in 3D weighted by the voxel size, the strongest classical fill.")
        self.metrics_label = QLabel("Metrics in the hole vs the input")
        self.losses_label = QLabel("Per-slice final losses")
        self.losses = QTableWidget(0, 2)
        self.losses.setHorizontalHeaderLabels(["slice", "final loss"])
        self.losses.setToolTip("Final loss of the best restart of every filled slice, numbered as in the view "
                               "titles and the sidecar; click a row to show that slice.")
        self.losses.cellClicked.connect(self._loss_row_clicked)
        self._loss_slices: tuple[str, list[int]] = ("axial", [])
        for table in (self.metrics, self.losses):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.setTabKeyNavigation(False)   # Tab moves on to the next control, not through the cells
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics.setFixedHeight(self.metrics.horizontalHeader().sizeHint().height()   # its rows exactly: no
                                    + self.metrics.verticalHeader().length() + 2 * self.metrics.frameWidth())  # strip
        self.result_note = QLabel("")
        self.result_note.setWordWrap(True)
        self.result_note.setStyleSheet(WARNING_STYLE)
        self.result_note.hide()
        self._running = self._stale = False

        layout = QVBoxLayout(self)
        for widget, stretch in ((self.form, 0), (self.image_note, 0), (buttons, 0), (self.progress, 0),
                                (self.eta, 0), (self.result_note, 0), (self.loss_plot, 1),
                                (self.metrics_label, 0), (self.metrics, 0),
                                (self.losses_label, 0), (self.losses, 1)):
            if isinstance(widget, QHBoxLayout):
                layout.addLayout(widget)
            else:
                layout.addWidget(widget, stretch)
        layout.addStretch(0)  # takes the space only while the plot and the losses table are hidden
        self.setMinimumWidth(270)
        for kind in (QAbstractSpinBox, QComboBox, QAbstractItemView):
            for widget in self.findChildren(kind):
                widget.installEventFilter(self)
                if not isinstance(widget, QAbstractItemView):
                    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)   # the wheel alone does not focus a field
        for box in self.findChildren(QComboBox):
            box.activated.connect(lambda _index: self.fieldDone.emit())
        for box in self.findChildren(QAbstractSpinBox):   # Return, not the focus moving on
            box.editingFinished.connect(lambda box=box: box.hasFocus() and self.fieldDone.emit())
        self.clear_result()   # no loss plot or per-slice table before a search has run

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A focused field keeps Up/Down/PageUp/PageDown for itself instead of the window's slice shortcuts; the
        wheel over a field that is not focused scrolls the panel instead of changing the setting."""
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in FIELD_KEYS:
            event.accept()
        if (event.type() == QEvent.Type.Wheel and isinstance(watched, (QAbstractSpinBox, QComboBox))
                and not watched.hasFocus()):
            area = self.parentWidget()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parentWidget()
            if area is not None:
                QCoreApplication.sendEvent(area.verticalScrollBar(), event)
            return True
        return False

    def model_choice(self) -> Optional[tuple[str, str]]:
        return self.form.model_choice()

    def show_metrics_table(self, shown: bool) -> None:
        """The in-hole metrics (hidden for a reviewed scan: its truth under the lesion is unknown)."""
        self.metrics_label.setVisible(shown)
        self.metrics.setVisible(shown)

    def set_image_note(self, text: str) -> None:
        """A warning about the open image (empty: none)."""
        self.image_note.setText(text)
        self.image_note.setVisible(bool(text))

    # job state -------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        self.cancel_button.setEnabled(running)
        self.form.set_enabled(not running)
        self._show_current(not running and not self._stale)   # while a fill runs they are the previous result's
        if running:
            self._shown = (self._loss_x, self._loss_y)
            self._eta = EtaClock()
            self.progress.setValue(0)
            self.eta.setText("Starting...")
            search = self.form.uses_latent_search()  # no loss curve without a latent search
            self._set_curve([], [], running=search)

    def _set_curve(self, x: list[float], y: list[float], running: bool = False) -> None:
        """Show a loss curve on fresh axes; the plot is hidden when there is none (methods without a search)."""
        self._loss_x, self._loss_y = x, y
        self.loss_curve.setData(x, y)
        self.loss_plot.getPlotItem().enableAutoRange()
        self.loss_plot.setVisible(running or bool(x))

    def job_stopped(self, text: str) -> None:
        """A job was cancelled or failed: empty progress bar, the previous result's loss curve again."""
        self.set_running(False)
        self.progress.setValue(0)
        self._set_curve(*self._shown)
        self.eta.setText(text)

    def show_progress(self, progress: Progress) -> None:
        self.progress.setValue(int(1000 * progress.fraction))
        eta = self._eta.update(progress)
        text = f"step {progress.step}/{progress.total}"
        if progress.stage != "done" and eta is not None:
            text += f"   ETA {clock(eta)}"
        self.eta.setText(text)
        loss = finite_mean(progress.best_loss)
        if progress.preview is not None and loss is not None:  # best losses change when previews are taken
            self._loss_x.append(progress.step)
            self._loss_y.append(loss)
            self.loss_curve.setData(self._loss_x, self._loss_y)

    def show_result(self, result: JobResult, slices: int, filled: str, note: str = "") -> None:
        """Show a finished fill of `filled` ('N vox (V ml)') in `slices` slices (a method that fills slices) or in its
        lesions (a 3D method); `note` ends the summary."""
        self.set_running(False)
        self._set_curve(self._loss_x, self._loss_y)
        fill = result.fill
        self.progress.setValue(1000)
        where = (f"{filled} in {plural(slices, fill.axis + ' slice')}" if fills_slices(fill.settings.method)
                 else f"{plural(count_lesions(fill.hole), 'lesion')}, {filled},")
        self.eta.setText(f"Filled {where} in {fill.seconds:.1f} s ({fill.device}, "
                         f"{plural(result.threads, 'thread')}).{note}")
        self.metrics.setVerticalHeaderItem(0, QTableWidgetItem(fill.settings.method))
        self.show_metrics(result.metrics)
        self.losses.setRowCount(len(fill.final_loss))
        self.losses.setHorizontalHeaderLabels([f"{fill.axis} slice", "final loss"])
        self._loss_slices = (fill.axis, sorted(fill.final_loss))
        for row, index in enumerate(self._loss_slices[1]):
            self.losses.setItem(row, 0, QTableWidgetItem(str(index)))
            self.losses.setItem(row, 1, QTableWidgetItem(f"{fill.final_loss[index]:.4g}"))
        self._show_losses(bool(fill.final_loss))
        self._set_note("")

    def show_metrics(self, metrics: dict) -> None:
        """In-hole metrics of the fill and the baseline ('...' while they are computed)."""
        for row, (key, _) in enumerate(METRIC_ROWS):
            values = metrics.get(key)
            for col, (name, _, fmt, factor) in enumerate(METRIC_COLUMNS):
                text = "..." if not metrics else "n/a" if values is None else fmt.format(factor * values[name])
                self.metrics.setItem(row, col, QTableWidgetItem(text))

    def _loss_row_clicked(self, row: int, _column: int) -> None:
        axis, slices = self._loss_slices
        if 0 <= row < len(slices):
            self.sliceRequested.emit(axis, slices[row])

    def clear_result(self) -> None:
        self.progress.setValue(0)
        self.eta.setText("")
        self._shown = ([], [])
        self._set_curve([], [])
        self.metrics.clearContents()
        self.metrics.setVerticalHeaderItem(0, QTableWidgetItem(METRIC_ROWS[0][1]))
        self.losses.setRowCount(0)
        self._show_losses(False)
        self._set_note("")

    def _show_losses(self, shown: bool) -> None:
        """The per-slice losses table, for methods that search per slice."""
        self.losses_label.setVisible(shown)
        self.losses.setVisible(shown)

    def mark_result_stale(self, reason: str) -> None:
        """Say why the result shown no longer matches the inputs (`Document.stale_reason`; empty: it does), and grey
        its figures."""
        self._set_note(reason)
        self._stale = bool(reason)
        self._show_current(not self._stale and not self._running)

    def _set_note(self, text: str) -> None:
        self.result_note.setText(text)
        self.result_note.setVisible(bool(text))

    def _show_current(self, current: bool) -> None:
        """The metrics and per-slice losses in full (they describe the mask and result shown) or greyed."""
        for table in (self.metrics, self.losses):
            table.setEnabled(current)
