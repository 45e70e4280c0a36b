"""One 2D view of a RAS volume (axial, coronal or sagittal): image, mask overlay, crosshair, brush outline.

The view draws in millimetres: a pixel of in-plane voxel sizes (sa, sb) spans
[i * sa, (i + 1) * sa]. Columns are the plane's first RAS axis, rows the second (pointing up).
Mouse input becomes signals carrying RAS voxel coordinates; the view edits nothing itself.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QLabel

from core.modelspace import plane_axes

PLANE_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}
POSITIVE, NEGATIVE = "RAS", "LPI"
MASK_LUT = np.array([[0, 0, 0, 0], [255, 40, 40, 255]], dtype=np.uint8)
BRAIN_LUT = np.array([[0, 0, 0, 0], [40, 220, 120, 200]], dtype=np.uint8)   # the brain mask's edge: green
OUTLINE_SUBDIVISION = 4   # an outline is drawn on a grid this much finer than the voxels: a quarter voxel wide


def difference_lut() -> np.ndarray:
    """Blue (filled darker) - transparent - red (filled brighter), alpha growing with |difference|."""
    t = np.linspace(-1.0, 1.0, 256)
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:, 0] = np.where(t > 0, 255, 255 * (1 + t)).astype(np.uint8)
    lut[:, 2] = np.where(t < 0, 255, 255 * (1 - t)).astype(np.uint8)
    lut[:, 1] = (255 * (1 - np.abs(t))).astype(np.uint8)
    lut[:, 3] = (255 * np.minimum(1.0, 3 * np.abs(t))).astype(np.uint8)
    lut[np.abs(t) < 0.01, 3] = 0  # no difference: fully transparent
    return lut


def uncertainty_lut() -> np.ndarray:
    """Transparent (no uncertainty) to opaque yellow (the colour scale's top)."""
    t = np.linspace(0.0, 1.0, 256)
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:, 0] = 255
    lut[:, 1] = (255 * np.sqrt(t)).astype(np.uint8)
    lut[:, 2] = 0
    lut[:, 3] = (220 * np.minimum(1.0, 2 * t)).astype(np.uint8)
    return lut


class _PaintViewBox(pg.ViewBox):
    """ViewBox whose left/right drags paint/erase, middle drag pans, wheel steps slices."""

    def __init__(self, view: "SliceView") -> None:
        super().__init__(lockAspect=True, enableMenu=False, invertY=False)
        self._view = view
        self._wheel = 0  # angle delta not yet turned into steps (smooth wheels and touchpads send small ones)

    def _intent(self, ev) -> str:
        """'pick' (move the crosshair), 'erase' or 'paint' for a left/right button event."""
        if ev.button() == Qt.MouseButton.RightButton:
            return "erase"
        if self._view.tool == "crosshair" or ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return "pick"
        return "erase" if self._view.tool == "eraser" else "paint"

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)  # pan
            return
        ev.accept()
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        view, intent = self._view, self._intent(ev)
        if intent == "pick":
            view.pointPicked.emit(view.voxel_at(self.mapToView(ev.pos())))
            return
        if ev.isStart():
            view.begin_stroke(self.mapToView(ev.buttonDownPos()), intent == "erase")
        view.continue_stroke(self.mapToView(ev.pos()))
        if ev.isFinish():
            view.end_stroke()

    def mouseClickEvent(self, ev) -> None:
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        ev.accept()
        view, intent, point = self._view, self._intent(ev), self.mapToView(ev.pos())
        if intent == "pick":
            view.pointPicked.emit(view.voxel_at(point))
            return
        view.begin_stroke(point, intent == "erase")
        view.end_stroke()

    def wheelEvent(self, ev, axis=None) -> None:
        modifiers = ev.modifiers()
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self._wheel += ev.delta()
        steps = int(self._wheel / 120)  # one notch of a classic wheel is 120
        self._wheel -= 120 * steps
        if steps == 0:
            return
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            self._view.brushStepped.emit(steps)
        else:
            self._view.sliceStepped.emit(steps)


class SliceView(pg.GraphicsView):
    """Display of one plane; emits mouse intent in RAS voxel coordinates."""

    strokeBegan = Signal(object, bool)  # voxel (x, y, z) floats, erase
    strokeMoved = Signal(object)
    strokeEnded = Signal()
    pointPicked = Signal(object)
    hovered = Signal(object)            # voxel, or None when the cursor leaves
    sliceStepped = Signal(int)
    brushStepped = Signal(int)

    def __init__(self, axis: int, parent=None) -> None:
        super().__init__(parent, background="k")
        self.axis = axis
        _, self.col_axis, self.row_axis = plane_axes(PLANE_NAMES[axis])
        self.name = PLANE_NAMES[axis]
        self.tool = "brush"
        self.index = 0
        self._shape = (1, 1, 1)
        self._spacing = np.ones(3)
        self._rect = QRectF(0, 0, 1, 1)   # the slice's extent in mm
        self._radius_mm = 1.0
        self._outline_at: Optional[np.ndarray] = None  # voxel under the brush outline
        self._stroking = False
        self.box = _PaintViewBox(self)
        self.setCentralItem(self.box)
        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=False)
        self.overlay = pg.ImageItem(axisOrder="row-major", autoDownsample=False, lut=MASK_LUT, levels=(0, 1))
        self.difference = pg.ImageItem(axisOrder="row-major", autoDownsample=False, lut=difference_lut())
        self.uncertainty = pg.ImageItem(axisOrder="row-major", autoDownsample=False, lut=uncertainty_lut())
        self.brain = pg.ImageItem(axisOrder="row-major", autoDownsample=False, lut=BRAIN_LUT, levels=(0, 1))
        self.overlay.setOpacity(0.5)
        self.brain.setVisible(False)
        self.difference.setVisible(False)
        self.uncertainty.setVisible(False)
        for item in (self.image, self.brain, self.overlay, self.difference, self.uncertainty):
            self.box.addItem(item)
        pen = pg.mkPen(QColor(0, 200, 255, 140), width=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self.box.addItem(self.vline, ignoreBounds=True)
        self.box.addItem(self.hline, ignoreBounds=True)
        self.outline = QGraphicsEllipseItem()
        outline_pen = QPen(QColor(255, 230, 0))
        outline_pen.setCosmetic(True)
        self.outline.setPen(outline_pen)
        self.outline.setVisible(False)
        self.box.addItem(self.outline, ignoreBounds=True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.title = self._label("", Qt.AlignmentFlag.AlignLeft)
        self.letters = {side: self._label("", Qt.AlignmentFlag.AlignCenter) for side in ("left", "right", "top", "bottom")}
        self.set_radiological(True)

    def _label(self, text: str, align: Qt.AlignmentFlag) -> QLabel:
        label = QLabel(text, self)
        label.setAlignment(align)
        # a dark backing keeps it legible over bright tissue
        label.setStyleSheet("color: rgb(255, 200, 0); background: rgba(0, 0, 0, 120); font-weight: bold;")
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    # geometry ----------------------------------------------------------------------------------
    def set_volume_geometry(self, shape: tuple[int, int, int], spacing: np.ndarray) -> None:
        self._shape = shape
        self._spacing = np.asarray(spacing, dtype=float)
        rows, cols = shape[self.row_axis], shape[self.col_axis]
        rect = QRectF(0, 0, cols * spacing[self.col_axis], rows * spacing[self.row_axis])
        self._rect = rect
        for item in (self.image, self.brain, self.overlay, self.difference, self.uncertainty):
            item.setImage(np.zeros((rows, cols), dtype=np.uint8), autoLevels=False, levels=(0, 1))
            item.setRect(rect)  # scales by the current image's size: set after an image of the right shape
        # panning room of the larger side on every side: a slab one voxel thick is not zoomed to fill the view
        room = max(rect.width(), rect.height())
        self.box.setLimits(xMin=-room, xMax=rect.width() + room, yMin=-room, yMax=rect.height() + room)
        self.reset_zoom()

    def reset_zoom(self) -> None:
        sa, sb = self._spacing[self.col_axis], self._spacing[self.row_axis]
        self.box.setRange(QRectF(0, 0, self._shape[self.col_axis] * sa, self._shape[self.row_axis] * sb), padding=0.02)

    def set_radiological(self, radiological: bool) -> None:
        """Radiological: patient right on screen left (axial, coronal); sagittal always shows anterior left."""
        inverted = True if self.axis == 0 else radiological
        self.box.invertX(inverted)
        col, row = self.col_axis, self.row_axis
        left, right = (POSITIVE[col], NEGATIVE[col]) if inverted else (NEGATIVE[col], POSITIVE[col])
        for side, text in (("left", left), ("right", right), ("top", POSITIVE[row]), ("bottom", NEGATIVE[row])):
            self.letters[side].setText(text)
        self._place_labels()

    def set_title(self, text: str) -> None:
        self.title.setText(text)
        self._place_labels()

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._place_labels()

    def _place_labels(self) -> None:
        if not hasattr(self, "letters"):  # pyqtgraph resizes during its own constructor
            return
        w, h, size = self.width(), self.height(), 20
        self.title.setGeometry(6, 4, min(self.title.sizeHint().width() + 6, max(10, w - 40)), size)  # its text's width
        self.letters["left"].setGeometry(2, (h - size) // 2, size, size)
        self.letters["right"].setGeometry(w - size - 2, (h - size) // 2, size, size)
        self.letters["top"].setGeometry((w - size) // 2, size + 4, size, size)  # under the title, which may reach it
        self.letters["bottom"].setGeometry((w - size) // 2, h - size - 2, size, size)

    # content -----------------------------------------------------------------------------------
    def set_slice_image(self, values: np.ndarray, levels: tuple[float, float]) -> None:
        """Show a slice given as (first in-plane axis, second in-plane axis)."""
        self.image.setImage(np.ascontiguousarray(values.T), autoLevels=False, levels=levels)

    def set_mask(self, mask: np.ndarray, outline: bool = False) -> None:
        """Show the mask slice filled, or only its outline (to see a fill through it)."""
        self._set_overlay(self.overlay, outline_image(mask) if outline else mask)

    def set_brain(self, brain: Optional[np.ndarray]) -> None:
        """Outline the brain mask's slice (None: hidden)."""
        if brain is None:
            self.brain.setVisible(False)
            return
        self._set_overlay(self.brain, outline_image(brain))
        self.brain.setVisible(True)

    def _set_overlay(self, item: pg.ImageItem, image: np.ndarray) -> None:
        """A 0/1 slice image, at the slice's resolution or finer (an outline), over the slice's extent."""
        item.setImage(np.ascontiguousarray(image.T), autoLevels=False, levels=(0, 1))
        item.setRect(self._rect)   # a finer image keeps the slice's extent

    def set_difference(self, values: Optional[np.ndarray], limit: float) -> None:
        if values is None:
            self.difference.setVisible(False)
            return
        self.difference.setImage(np.ascontiguousarray(values.T), autoLevels=False, levels=(-limit, limit))
        self.difference.setVisible(True)

    def set_uncertainty(self, values: Optional[np.ndarray], limit: float) -> None:
        """Overlay an uncertainty map slice on a 0..`limit` scale (None: hidden)."""
        if values is None:
            self.uncertainty.setVisible(False)
            return
        self.uncertainty.setImage(np.ascontiguousarray(values.T), autoLevels=False, levels=(0.0, limit))
        self.uncertainty.setVisible(True)

    def set_crosshair(self, point: np.ndarray) -> None:
        self.vline.setPos((point[self.col_axis] + 0.5) * self._spacing[self.col_axis])
        self.hline.setPos((point[self.row_axis] + 0.5) * self._spacing[self.row_axis])

    def set_brush(self, size: float, min_spacing: float) -> None:
        self._radius_mm = size / 2.0 * min_spacing
        if self.outline.isVisible() and self._outline_at is not None:
            self._show_outline(self._outline_at)  # resize under the cursor ([ ] or Shift+wheel)

    # mouse -------------------------------------------------------------------------------------
    def voxel_at(self, pos: QPointF) -> np.ndarray:
        """RAS voxel coordinates (floats) of a point in view millimetres, on the current slice."""
        voxel = np.zeros(3)
        voxel[self.axis] = self.index
        voxel[self.col_axis] = pos.x() / self._spacing[self.col_axis] - 0.5
        voxel[self.row_axis] = pos.y() / self._spacing[self.row_axis] - 0.5
        return voxel

    def begin_stroke(self, pos: QPointF, erase: bool) -> None:
        self._stroking = True
        self.strokeBegan.emit(self.voxel_at(pos), erase)

    def continue_stroke(self, pos: QPointF) -> None:
        if self._stroking:
            self._show_outline(self.voxel_at(pos))
            self.strokeMoved.emit(self.voxel_at(pos))

    def end_stroke(self) -> None:
        if self._stroking:
            self._stroking = False
            self.strokeEnded.emit()

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        voxel = self.voxel_at(self.box.mapSceneToView(scene_pos))
        self._show_outline(voxel)
        inside = all(-0.5 <= voxel[a] < n - 0.5 for a, n in enumerate(self._shape))
        self.hovered.emit(voxel if inside else None)

    def _show_outline(self, voxel: np.ndarray) -> None:
        if self.tool == "crosshair":
            self.outline.setVisible(False)
            return
        self._outline_at = voxel
        r = self._radius_mm
        cx = (np.rint(voxel[self.col_axis]) + 0.5) * self._spacing[self.col_axis]
        cy = (np.rint(voxel[self.row_axis]) + 0.5) * self._spacing[self.row_axis]
        self.outline.setRect(QRectF(cx - r, cy - r, 2 * r, 2 * r))
        self.outline.setVisible(True)

    def leaveEvent(self, ev) -> None:
        self.outline.setVisible(False)
        self.hovered.emit(None)
        super().leaveEvent(ev)


def outline_image(mask: np.ndarray) -> np.ndarray:
    """The outline of a mask slice, OUTLINE_SUBDIVISION times finer than its voxels (uint8 0/1): the sub-voxels of
    the mask that touch its outside, so the line lies on the inner rim of the edge voxels and leaves most of each
    one (and the seam beside it) in view."""
    inside = np.repeat(np.repeat(mask != 0, OUTLINE_SUBDIVISION, axis=0), OUTLINE_SUBDIVISION, axis=1)
    pad = np.pad(inside, 1)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return (inside & ~interior).astype(np.uint8)
