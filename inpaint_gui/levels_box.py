"""Window/level beside the views: histogram (linear or log counts), numeric bounds, auto; the difference and
uncertainty maps' scales."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from .slice_view import difference_lut, uncertainty_lut


def auto_levels(values: np.ndarray) -> tuple[float, float]:
    """0.5th-99.5th percentiles of the tissue: the non-zero voxels when there are enough, else all."""
    finite = values[np.isfinite(values)]
    tissue = finite[finite != 0] if np.count_nonzero(finite) > 100 else finite
    if tissue.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(tissue, [0.5, 99.5]))
    return lo, (hi if hi > lo else lo + 1.0)


class ColourScale(QWidget):
    """Colour bar of an overlay: `lut` under `title`, with its limits (-limit..+limit when `signed`, else 0..limit)."""

    def __init__(self, lut: np.ndarray, title: str, tooltip: str, signed: bool) -> None:
        super().__init__()
        self.signed = signed
        stops = ", ".join(f"stop:{i / 255:.3f} rgba({r}, {g}, {b}, {a})" for i, (r, g, b, a)
                          in enumerate(lut) if i % 32 == 0 or i == 255)
        bar = QLabel()
        bar.setFixedHeight(10)
        bar.setStyleSheet(f"background: qlineargradient(x1:0, y1:0, x2:1, y2:0, {stops});")
        self.low, self.high = QLabel(""), QLabel("")
        self.high.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout = QGridLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.setSpacing(0)
        layout.addWidget(QLabel(title), 0, 0, 1, 2)
        layout.addWidget(bar, 1, 0, 1, 2)
        layout.addWidget(self.low, 2, 0)
        layout.addWidget(self.high, 2, 1)
        self.setToolTip(tooltip)

    def set_limit(self, limit: float) -> None:
        self.low.setText(f"-{limit:.3g}" if self.signed else "0")
        self.high.setText(f"+{limit:.3g}" if self.signed else f"{limit:.3g}")


class LevelsBox(QWidget):
    """Histogram with draggable bounds, the bounds as numbers, Auto and a log-count switch."""

    levelsChanged = Signal()
    entered = Signal()  # Return pressed in a field: the keys go back to the views

    def __init__(self) -> None:
        super().__init__()
        self._source = pg.ImageItem(axisOrder="row-major")
        self._auto = (0.0, 1.0)
        self.histogram = pg.HistogramLUTWidget(image=self._source)
        self.histogram.item.gradient.hide()
        self.histogram.item.sigLevelsChanged.connect(self._from_histogram)
        self.histogram.setMinimumHeight(60)
        self.low, self.high = QDoubleSpinBox(), QDoubleSpinBox()
        for box, tip in ((self.low, "Window bottom: intensity shown black."),
                         (self.high, "Window top: intensity shown white.")):
            box.setRange(-1e9, 1e9)
            box.setDecimals(1)
            box.setKeyboardTracking(False)
            box.setToolTip(tip)
            box.valueChanged.connect(self._from_fields)
            box.editingFinished.connect(lambda box=box: box.hasFocus() and self.entered.emit())  # not on focus out
        self.auto = QPushButton("Auto")
        self.auto.setToolTip("Window/level from 0 (or the tissue's 0.5th percentile, if lower) to its 99.5th percentile (W).")
        self.auto.clicked.connect(self.apply_auto)
        self.log = QCheckBox("Log")
        self.log.setToolTip("Histogram counts on a log scale (on skull-on images the brain's peaks are small).")
        self.log.toggled.connect(self._draw_histogram)
        self.difference = ColourScale(difference_lut(), "filled - original",
                                      "Colour scale of the difference map (X): red where the fill is brighter than "
                                      "the original, blue where darker; full colour at the 95th percentile of the "
                                      "change.", signed=True)
        self.difference.hide()
        self.uncertainty = ColourScale(uncertainty_lut(), "predicted error (SD)",
                                       "Colour scale of the uncertainty map (Shift+U): the fill's predicted error, one "
                                       "standard deviation per voxel in the image's intensity units; full colour at "
                                       "its largest value.", signed=False)
        self.uncertainty.hide()
        fields = QHBoxLayout()
        for widget in (self.low, self.high):
            fields.addWidget(widget)
        switches = QHBoxLayout()
        switches.addWidget(self.auto)
        switches.addWidget(self.log)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.histogram, 1)
        layout.addLayout(fields)
        layout.addLayout(switches)
        layout.addWidget(self.difference)
        layout.addWidget(self.uncertainty)
        self.setMaximumWidth(190)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)

    @property
    def levels(self) -> tuple[float, float]:
        lo, hi = self.histogram.item.getLevels()
        return float(lo), float(hi)

    def set_values(self, values: np.ndarray) -> None:
        """Histogram of an image's voxels (a sample); sets the automatic window."""
        finite = values[np.isfinite(values)]
        self._auto = auto_levels(finite)
        sample = finite[finite != 0] if np.count_nonzero(finite) > 100 else finite
        if sample.size and np.abs(sample).max() < 2 ** 31 and np.array_equal(sample, np.round(sample)):
            sample = sample.astype(np.int32)   # whole numbers: pyqtgraph then puts its bins on them (no comb)
        side = max(1, int(np.sqrt(sample.size)))
        self._source.setImage(sample[: side * side].reshape(side, side), autoLevels=False, levels=self._auto)
        decimals = 1 if self._auto[1] - self._auto[0] > 20 else 4
        for box in (self.low, self.high):
            box.setDecimals(decimals)
        self._draw_histogram()
        self.apply_auto()

    def apply_auto(self) -> None:
        lo, hi = self._auto
        self.set_levels(min(lo, 0.0), hi)

    def set_levels(self, lo: float, hi: float) -> None:
        self.histogram.item.setLevels(lo, hi if hi > lo else lo + 1e-3)

    def _draw_histogram(self) -> None:
        x, y = self._source.getHistogram()
        if x is None:
            return
        self.histogram.item.plot.setData(x, np.log10(1.0 + y) if self.log.isChecked() else y)

    def _from_histogram(self) -> None:
        lo, hi = self.levels
        for box, value in ((self.low, lo), (self.high, hi)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.levelsChanged.emit()

    def _from_fields(self) -> None:
        self.set_levels(self.low.value(), self.high.value())
