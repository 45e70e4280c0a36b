"""Side panel: model and fill settings, Run/Cancel, progress with ETA, loss curve, metrics and per-slice losses."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox,
                               QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                               QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from core.fill import FillSettings
from core.job import Progress
from core.registry import ModelInfo

from .document import JobResult
from .worker import finite_mean, preview_interval

LOAD_CHECKPOINT = "Load checkpoint..."
AXIS_ROLE = Qt.ItemDataRole.UserRole + 1
METRIC_ROWS = (("model", "Model fill"), ("biharmonic", "Biharmonic"))
FIELD_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)  # kept from the slice keys
METRIC_COLUMNS = (("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"), ("mae", "MAE", "{:.4f}"))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class InpaintPanel(QWidget):
    """Thin widget over FillSettings; the main window runs the jobs."""

    runRequested = Signal()
    cancelRequested = Signal()
    checkpointRequested = Signal()
    sliceRequested = Signal(str, int)  # plane name, RAS slice index: a row of the losses table was clicked

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        defaults = FillSettings()
        self.model = QComboBox()
        self.model.setToolTip("Generative model used to fill the mask: a shipped model or a checkpoint folder "
                              "(model.safetensors + config.json) loaded from disk.")
        self.model.activated.connect(self._model_activated)
        self._last_model = 0
        self.lam = self._double(0.0, 10.0, 0.001, 4, defaults.lam,
                                "Lambda: weight of the prior loss (how much realism counts against matching the "
                                "context). Paper value 0.003.")
        self.iterations = self._int(1, 100000, 10, defaults.iterations,
                                    "Adam steps on the latent code per restart; more is slower and usually better.")
        self.restarts = self._int(1, 256, 1, defaults.restarts,
                                  "Random starting points per slice; the restart with the lowest final loss wins.")
        self.window = self._int(1, 31, 2, defaults.window,
                                "Context-weight window in model pixels (odd): known pixels near the hole count more.")
        self.window.editingFinished.connect(lambda: self.window.setValue(self.window.value() | 1))
        self.blend = QCheckBox("Poisson blending")
        self.blend.setChecked(defaults.blend)
        self.blend.setToolTip("Blend the generated content into the surrounding tissue (gradient-domain). "
                              "Off: paste the generator's output as is.")
        self.scope = QComboBox()
        self.scope.addItem("Current slice", "slice")
        self.scope.addItem("All masked slices", "all")
        self.scope.setToolTip("Fill only the painted voxels of the current slice (in the model's plane), "
                              "or every painted voxel of the volume.")
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Lambda", self.lam)
        form.addRow("Iterations", self.iterations)
        form.addRow("Restarts", self.restarts)
        form.addRow("Window", self.window)
        form.addRow("", self.blend)
        form.addRow("Scope", self.scope)

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
        self.loss_plot = pg.PlotWidget(background="w")
        self.loss_plot.setMinimumHeight(110)
        self.loss_plot.setLabel("left", "mean best loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setMouseEnabled(x=False, y=False)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((30, 90, 200), width=2))
        self._loss_x: list[float] = []
        self._loss_y: list[float] = []
        self._shown: tuple[int, list[float], list[float]] = (0, [], [])  # restored after a cancel

        self.metrics = QTableWidget(len(METRIC_ROWS), len(METRIC_COLUMNS))
        self.metrics.setHorizontalHeaderLabels([c[1] for c in METRIC_COLUMNS])
        self.metrics.setVerticalHeaderLabels([r[1] for r in METRIC_ROWS])
        self.metrics.setToolTip("In-hole metrics against the image as loaded (the mask was painted over it), "
                                "BraTS style: higher PSNR and SSIM, lower MAE are better.")
        self.losses = QTableWidget(0, 2)
        self.losses.setHorizontalHeaderLabels(["slice", "final loss"])
        self.losses.setToolTip("Final loss of the best restart of every filled slice, numbered as in the view "
                               "titles; click a row to show that slice.")
        self.losses.cellClicked.connect(self._loss_row_clicked)
        self._loss_slices: tuple[str, list[int]] = ("axial", [])
        for table in (self.metrics, self.losses):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics.setMaximumHeight(90)
        self.result_note = QLabel("")
        self.result_note.setWordWrap(True)

        layout = QVBoxLayout(self)
        settings_box = QGroupBox("Inpainting")
        settings_box.setLayout(form)
        layout.addWidget(settings_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.eta)
        layout.addWidget(self.loss_plot, 2)
        layout.addWidget(QLabel("Metrics in the hole vs the input"))
        layout.addWidget(self.metrics)
        layout.addWidget(QLabel("Per-slice final losses"))
        layout.addWidget(self.losses, 1)
        layout.addWidget(self.result_note)
        self.setMinimumWidth(270)
        for kind in (QAbstractSpinBox, QComboBox, QAbstractItemView):
            for widget in self.findChildren(kind):
                widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A focused field keeps Up/Down/PageUp/PageDown for itself instead of the window's slice shortcuts."""
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in FIELD_KEYS:
            event.accept()
        return False

    @staticmethod
    def _int(lo: int, hi: int, step: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    @staticmethod
    def _double(lo: float, hi: float, step: float, decimals: int, value: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setDecimals(decimals)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    # models ----------------------------------------------------------------------------------------
    def set_models(self, models: list[ModelInfo], default: Optional[str]) -> None:
        self.model.clear()
        for info in models:
            self.model.addItem(f"{info.name} ({info.kind}, {info.axis})", info.name)
            self.model.setItemData(self.model.count() - 1, info.axis, AXIS_ROLE)
        self.model.addItem(LOAD_CHECKPOINT, None)
        names = [info.name for info in models]
        self._last_model = names.index(default) if default in names else 0
        self.model.setCurrentIndex(self._last_model)

    def add_checkpoint(self, path: Path, axis: str) -> None:
        index = self.model.count() - 1
        self.model.insertItem(index, f"{path.name} (checkpoint)", str(path))
        self.model.setItemData(index, axis, AXIS_ROLE)
        self.model.setCurrentIndex(index)
        self._last_model = index

    def _model_activated(self, index: int) -> None:
        if self.model.itemData(index) is None:
            self.model.setCurrentIndex(self._last_model)
            self.checkpointRequested.emit()
        else:
            self._last_model = index

    def model_choice(self) -> Optional[tuple[str, str]]:
        """(shipped name or checkpoint path, plane) of the selected model, or None."""
        key = self.model.currentData()
        return None if key is None else (key, self.model.currentData(AXIS_ROLE))

    # settings --------------------------------------------------------------------------------------
    def fill_settings(self) -> FillSettings:
        window = self.window.value() | 1  # the window must be odd
        iterations = self.iterations.value()
        return FillSettings(iterations=iterations, restarts=self.restarts.value(), lam=self.lam.value(),
                            window=window, blend=self.blend.isChecked(), preview_every=preview_interval(iterations))

    def scope_choice(self) -> str:
        return self.scope.currentData()

    # job state -------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        for widget in (self.model, self.lam, self.iterations, self.restarts, self.window, self.blend, self.scope):
            widget.setEnabled(not running)
        if running:
            self._shown = (self.progress.value(), self._loss_x, self._loss_y)
            self.progress.setValue(0)
            self.eta.setText("Starting...")
            self._loss_x, self._loss_y = [], []
            self.loss_curve.setData([], [])

    def job_stopped(self, text: str) -> None:
        """A job was cancelled or failed: show the previous result's progress and loss curve again."""
        self.set_running(False)
        value, self._loss_x, self._loss_y = self._shown
        self.progress.setValue(value)
        self.loss_curve.setData(self._loss_x, self._loss_y)
        self.eta.setText(text)

    def show_progress(self, progress: Progress) -> None:
        self.progress.setValue(int(1000 * progress.fraction))
        eta = progress.eta
        text = f"step {progress.step}/{progress.total}"
        if progress.stage == "search" and eta is not None:
            text += f"   ETA {_clock(eta)}"
        self.eta.setText(text)
        loss = finite_mean(progress.best_loss)
        if progress.preview is not None and loss is not None:  # best losses change when previews are taken
            self._loss_x.append(progress.step)
            self._loss_y.append(loss)
            self.loss_curve.setData(self._loss_x, self._loss_y)

    def show_result(self, result: JobResult) -> None:
        self.set_running(False)
        fill = result.fill
        self.progress.setValue(1000)
        self.eta.setText(f"Filled {int(fill.hole.sum())} voxels in {len(fill.final_loss)} {fill.axis} slices "
                         f"in {fill.seconds:.1f} s ({fill.device}).")
        for row, (key, _) in enumerate(METRIC_ROWS):
            values = result.metrics.get(key)
            for col, (name, _, fmt) in enumerate(METRIC_COLUMNS):
                text = "n/a" if values is None else fmt.format(values[name])
                self.metrics.setItem(row, col, QTableWidgetItem(text))
        self.losses.setRowCount(len(fill.final_loss))
        self._loss_slices = (fill.axis, sorted(fill.final_loss))
        for row, index in enumerate(self._loss_slices[1]):
            self.losses.setItem(row, 0, QTableWidgetItem(str(index + 1)))  # the view titles count from 1
            self.losses.setItem(row, 1, QTableWidgetItem(f"{fill.final_loss[index]:.4g}"))
        self.result_note.setText("")

    def _loss_row_clicked(self, row: int, _column: int) -> None:
        axis, slices = self._loss_slices
        if 0 <= row < len(slices):
            self.sliceRequested.emit(axis, slices[row])

    def clear_result(self) -> None:
        self.progress.setValue(0)
        self.eta.setText("")
        self._loss_x, self._loss_y = [], []
        self._shown = (0, [], [])
        self.loss_curve.setData([], [])
        self.metrics.clearContents()
        self.losses.setRowCount(0)
        self.result_note.setText("")

    def mark_result_stale(self, stale: bool) -> None:
        self.result_note.setText("The mask changed since this result was computed; run again to update it."
                                 if stale else "")
