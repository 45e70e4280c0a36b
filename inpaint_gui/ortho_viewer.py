"""Axial, coronal and sagittal views linked by a crosshair, a window/level histogram, and painting.

Holds the navigation state (crosshair voxel, displayed layer, overlay settings) and turns
the views' mouse signals into mask edits. Only slices that changed are redrawn.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QWidget

from core.modelspace import PLANES

from .document import Document
from .levels_box import LevelsBox
from .painting import Painter
from .slice_view import SliceView

LAYER_TITLES = {"original": "Original", "masked": "Masked", "generated": "Generated", "blended": "Blended",
                "preview": "Preview", "live": "Live preview"}
EMPTY = ("<h3>No image open</h3>File &gt; Open image (<b>Ctrl+O</b>), Open DICOM folder (<b>Ctrl+Shift+O</b>) "
         "or drop a file here.<br>Painting starts once an image is open.")
HINT = ("<b>Window/level</b>: drag the histogram's bounds, type them, <b>W</b> auto.<br><br>"
        "<b>Left drag</b> paint &nbsp; <b>Right drag</b> erase<br>"
        "<b>[ ]</b> or <b>Shift+wheel</b> brush size<br>"
        "<b>Wheel</b>, <b>PgUp/PgDn</b> slice (Shift: 5)<br>"
        "<b>N</b> / <b>Shift+N</b> next / previous lesion<br>"
        "<b>Ctrl+click</b> move crosshair<br>"
        "<b>Ctrl+wheel</b> zoom, <b>middle drag</b> pan, <b>Home</b> reset<br>"
        "<b>1 2 3</b> maximise a view, <b>0</b> all views<br>"
        "<b>S</b> mask overlay, <b>A / D</b> opacity, <b>G</b> brain mask outline<br>"
        "<b>T</b> Original / Masked / Generated / Blended<br>"
        "<b>X</b> difference map, <b>Shift+U</b> uncertainty<br>"
        "<b>L</b> live preview on/off (a finished stroke shows its lesion filled)<br>"
        "<b>Ctrl+Z</b> undo, <b>Ctrl+Shift+Z</b> redo<br>"
        "<b>Ctrl+R</b> run fill, <b>Esc</b> cancel<br>"
        "<b>Ctrl+Shift+R</b> review a cohort: <b>Ctrl+N</b> / <b>Ctrl+Shift+N</b> next / previous scan "
        "in the list's order, "
        "<b>P</b> pass, <b>F</b> fail, <b>U</b> unsure, <b>Backspace</b> clear, <b>Shift+C</b> comment<br>"
        "<b>F1</b> all shortcuts, <b>F2</b> hide this help, <b>F3</b> hide the side panel")
OUTLINED = ("masked", "preview", "live", "generated", "blended")  # layers where the mask is drawn as an outline
PREVIEW_LAYERS = ("preview", "live")   # previews, not the fill result: the result's maps are not drawn over them


def intensity_text(value: float) -> str:
    """An intensity in 4 significant digits; a negative zero (scaled files store them) is 0."""
    return f"{value + 0.0:.4g}"


def _help_panel() -> QScrollArea:
    """The mouse and key hints; scrolls in a small window instead of taking height from the views."""
    hint = QLabel(HINT)
    hint.setWordWrap(True)
    hint.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    hint.setStyleSheet("color: #bbb; background: black; padding: 8px;")
    panel = QScrollArea()
    panel.setWidget(hint)
    panel.setWidgetResizable(True)
    panel.setFrameShape(QFrame.Shape.NoFrame)
    panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    panel.setStyleSheet("background: black;")
    panel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
    return panel


class OrthoViewer(QWidget):
    """Three linked slice views over one Document."""

    message = Signal(str)        # why a stroke was refused, etc. (status bar)
    cursorInfo = Signal(str)     # voxel / mm / value under the cursor
    maskEdited = Signal()        # after any mask change (undo state, titles)
    layerChanged = Signal(str)   # the layer the views show now
    brushChanged = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.doc: Optional[Document] = None
        self.point = np.zeros(3, dtype=int)
        self.layer = "original"
        self.show_difference = False
        self.show_uncertainty = False  # follows the "uncertainty" action (main_window)
        self.show_brain = True         # follows the "brain_outline" action (main_window)
        self.opacity = 0.5
        self.levels = (0.0, 1.0)
        self.active = 2
        self._hover: Optional[tuple[SliceView, np.ndarray]] = None  # last view and voxel under the cursor
        self._cursor_text = ""
        self._result_outlined = False   # the outline shows a result's filled voxels, not the painted mask
        self.views = {axis: SliceView(axis, self) for axis in (2, 1, 0)}
        self.levels_box = LevelsBox()
        self.levels_box.levelsChanged.connect(self._levels_changed)
        self.levels_box.entered.connect(self.take_keys)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self.views[2], 0, 0)
        grid.addWidget(self.views[0], 0, 1)
        grid.addWidget(self.views[1], 1, 0)
        self.help = _help_panel()
        self.corner = QWidget()  # window/level and the help, beside the coronal view
        corner = QHBoxLayout(self.corner)
        corner.setContentsMargins(0, 0, 0, 0)
        corner.addWidget(self.levels_box)
        corner.addWidget(self.help, 1)
        self.corner.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # the views come first
        grid.addWidget(self.corner, 1, 1)
        self.empty = QLabel(EMPTY)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #ddd; background: black; padding: 24px;")
        grid.addWidget(self.empty, 0, 0, 2, 2)
        self._grid = grid
        self._set_stretch(1)
        self.maximised: Optional[int] = None
        for view in self.views.values():
            self._connect(view)
        self.painter = Painter(self.views, lambda: self.doc, self.refresh_mask, self._activate)
        self.painter.message.connect(self.message)
        self.painter.maskEdited.connect(self.maskEdited)
        # a stroke's end may make a result stale: refresh_mask redraws every outline when their source changes
        self.painter.maskEdited.connect(lambda: self.refresh_mask(np.zeros(0, dtype=np.int64)))
        self.painter.brushChanged.connect(self.brushChanged)
        self._show_views(False)

    def take_keys(self) -> None:
        """Give the keyboard to the active view (its slice, zoom and layer keys), e.g. after a field was set."""
        self.views[self.active].setFocus(Qt.FocusReason.OtherFocusReason)

    def _activate(self, axis: int) -> None:
        self.active = axis

    def _show_views(self, shown: bool) -> None:
        """Views with an image; the hint to open one without."""
        self.empty.setVisible(not shown)
        for view in self.views.values():
            view.setVisible(shown)
        self.corner.setVisible(shown)

    def _connect(self, view: SliceView) -> None:
        view.pointPicked.connect(self.set_point)
        view.hovered.connect(lambda voxel, v=view: self._hovered(v, voxel))
        view.sliceStepped.connect(lambda n, v=view: self.step_slice(n, v.axis))

    # document ----------------------------------------------------------------------------------
    def set_document(self, doc: Document) -> None:
        if self.doc is not None:   # the brush keeps its size from one image to the next, as ITK-SNAP's does
            doc.editor.brush_size = self.doc.editor.brush_size
        self.empty.setText(EMPTY)
        self.doc = doc
        self.layer = "original"
        self.show_difference = False
        self.levels_box.difference.hide()
        self.point = np.array(doc.shape) // 2
        self._hover = None
        self._show_views(True)
        self.toggle_maximised(None)
        step = max(1, int(round((doc.original.size / 2e6) ** (1 / 3))))
        for view in self.views.values():
            view.set_volume_geometry(doc.shape, doc.spacing)
            view.set_brush(doc.editor.brush_size, float(doc.spacing.min()))
        self.levels_box.set_values(np.ascontiguousarray(doc.original[::step, ::step, ::step]))
        self.refresh_all()

    def clear_document(self, text: str) -> None:
        """No document: the views give way to `text` (e.g. why a reviewed scan cannot be shown)."""
        self.doc = None
        self._hover = None
        self.empty.setText(text)
        self._show_views(False)
        self.cursorInfo.emit("")

    def auto_levels(self) -> None:
        self.levels_box.apply_auto()

    def set_help_visible(self, visible: bool) -> None:
        self.help.setVisible(visible)

    def _levels_changed(self) -> None:
        self.levels = self.levels_box.levels
        if self.doc is None:
            return
        for view in self.views.values():
            view.image.setLevels(self.levels)

    # drawing -----------------------------------------------------------------------------------
    def refresh_all(self) -> None:
        for view in self.views.values():
            self.refresh_view(view)
        self.refresh_cursor()

    def refresh_view(self, view: SliceView) -> None:
        doc = self.doc
        if doc is None:
            return
        view.index = int(self.point[view.axis])
        view.set_slice_image(doc.layer_slice(self.layer, view.axis, view.index), self.levels)
        self._refresh_mask_view(view)
        self._refresh_brain(view)
        self._refresh_difference(view)
        self._refresh_uncertainty(view)
        for other in self.views.values():
            other.set_crosshair(self.point)
        self._set_title(view)

    def refresh_mask(self, changed: Optional[np.ndarray] = None) -> None:
        """Redraw the overlay of each view whose current slice holds a changed voxel (all when None)."""
        doc = self.doc
        if doc is None:
            return
        result_outlined = doc.outlined_mask(self.layer) is not doc.editor.mask
        if result_outlined != self._result_outlined:   # the outline changes source on every slice
            changed, self._result_outlined = None, result_outlined
        coords = None if changed is None else np.unravel_index(changed, doc.shape)
        for view in self.views.values():
            if coords is None or np.any(coords[view.axis] == view.index):
                self._refresh_mask_view(view)
                if self.layer == "masked":
                    view.set_slice_image(doc.layer_slice(self.layer, view.axis, view.index), self.levels)
        self.refresh_cursor()

    def _refresh_mask_view(self, view: SliceView) -> None:
        assert self.doc is not None
        outlined = self.doc.outlined_mask(self.layer)
        self._result_outlined = outlined is not self.doc.editor.mask
        view.set_mask(np.take(outlined, view.index, axis=view.axis), outline=self.layer in OUTLINED)

    def _result_overlays(self) -> bool:
        """The difference and uncertainty maps describe the fill result: not drawn over a preview (live or of a
        running fill), whose voxels they do not describe; they come back with the result's layers."""
        return self.doc is not None and self.layer not in PREVIEW_LAYERS

    def _refresh_difference(self, view: SliceView) -> None:
        shown = self.show_difference and self._result_overlays()
        values = self.doc.difference_slice(view.axis, view.index) if shown else None  # type: ignore[union-attr]
        view.set_difference(values, self._difference_limit())
        self.levels_box.difference.setVisible(shown)

    def _refresh_uncertainty(self, view: SliceView) -> None:
        shown = self.show_uncertainty and self._result_overlays()
        values = self.doc.uncertainty_slice(view.axis, view.index) if shown else None  # type: ignore[union-attr]
        view.set_uncertainty(values, self._uncertainty_limit())
        self.levels_box.uncertainty.set_limit(self._uncertainty_limit())
        self.levels_box.uncertainty.setVisible(values is not None)

    def _uncertainty_limit(self) -> float:
        """Colour scale of the uncertainty map: its largest finite value."""
        return max(1e-6, self.doc.uncertainty_range if self.doc is not None else 0.0)

    def _refresh_brain(self, view: SliceView) -> None:
        doc = self.doc
        view.set_brain(doc.brain_slice(view.axis, view.index) if (doc is not None and self.show_brain) else None)

    def set_brain_visible(self, visible: bool) -> None:
        """Show the loaded brain mask's edge (or not); called again when a brain mask is loaded or forgotten."""
        self.show_brain = visible
        for view in self.views.values():
            self._refresh_brain(view)

    def set_uncertainty_visible(self, visible: bool) -> None:
        self.show_uncertainty = visible
        for view in self.views.values():
            self._refresh_uncertainty(view)
        self.refresh_cursor()

    def _difference_limit(self) -> float:
        """Colour scale of the difference map: the largest change the fill made."""
        return max(1e-6, self.doc.difference_range if self.doc is not None else 0.0)

    def _set_title(self, view: SliceView) -> None:
        n = self.doc.shape[view.axis] if self.doc else 0
        view.set_title(f"{view.name.capitalize()} {view.index}  (0-{n - 1})   {LAYER_TITLES[self.layer]}")

    # navigation --------------------------------------------------------------------------------
    def set_point(self, voxel) -> None:
        """Move the crosshair to a voxel (clipped into the volume); redraw only views whose slice changed."""
        if self.doc is None:
            return
        new = np.clip(np.rint(np.asarray(voxel, dtype=float)).astype(int), 0, np.array(self.doc.shape) - 1)
        old, self.point = self.point, new
        for view in self.views.values():
            if new[view.axis] != old[view.axis]:
                self.refresh_view(view)
            view.set_crosshair(new)
        self.refresh_cursor()

    def show_slice(self, plane: str, index: int) -> None:
        """Move the crosshair to slice `index` (RAS order) of a plane and make its view the active one."""
        point = self.point.copy()
        point[PLANES[plane]] = index
        self.show_point(point, plane)

    def show_point(self, voxel, plane: str) -> None:
        """Move the crosshair to a RAS voxel and make the view of `plane` the active one."""
        self.active = PLANES[plane]
        self.set_point(voxel)

    def step_slice(self, steps: int, axis: Optional[int] = None) -> None:
        axis = self.active if axis is None else axis
        self.active = axis
        point = self.point.copy()
        point[axis] += steps
        self.set_point(point)

    def toggle_maximised(self, axis: Optional[int]) -> None:
        """Show one view alone (again: all views)."""
        self.maximised = None if axis is None or self.maximised == axis else axis
        shown = self.doc is not None
        for a, view in self.views.items():
            view.setVisible(shown and self.maximised in (None, a))
        self.corner.setVisible(shown and self.maximised is None)
        self._set_stretch(1 if self.maximised is None else 0)  # empty cells with a stretch would keep space
        if self.maximised is not None:
            self.active = self.maximised

    def _set_stretch(self, stretch: int) -> None:
        for i in (0, 1):
            self._grid.setColumnStretch(i, stretch)
            self._grid.setRowStretch(i, stretch)

    def reset_zoom(self) -> None:
        for view in self.views.values():
            view.reset_zoom()

    def set_radiological(self, radiological: bool) -> None:
        for view in self.views.values():
            view.set_radiological(radiological)

    def set_crosshair_visible(self, visible: bool) -> None:
        for view in self.views.values():
            view.vline.setVisible(visible)
            view.hline.setVisible(visible)

    # layers and overlay ------------------------------------------------------------------------
    def set_layer(self, layer: str) -> None:
        self.layer = layer
        self.refresh_all()
        self.layerChanged.emit(layer)

    def cycle_layer(self) -> str:
        if self.doc is None:
            return self.layer
        layers = self.doc.available_layers()
        position = layers.index(self.layer) if self.layer in layers else -1
        self.set_layer(layers[(position + 1) % len(layers)])
        return self.layer

    def set_difference_visible(self, visible: bool) -> None:
        self.show_difference = visible
        self.levels_box.difference.set_limit(self._difference_limit())
        for view in self.views.values():
            self._refresh_difference(view)
        self.refresh_cursor()

    def set_overlay_visible(self, visible: bool) -> None:
        for view in self.views.values():
            view.overlay.setVisible(visible)

    def change_opacity(self, delta: float) -> float:
        self.opacity = float(np.clip(self.opacity + delta, 0.1, 1.0))
        for view in self.views.values():
            view.overlay.setOpacity(self.opacity)
        return self.opacity

    def set_tool(self, tool: str) -> None:
        for view in self.views.values():
            view.tool = tool

    # cursor --------------------------------------------------------------------------------------
    def _hovered(self, view: SliceView, voxel: Optional[np.ndarray]) -> None:
        self.active = view.axis
        self._hover = None if voxel is None else (view, voxel)
        self.refresh_cursor()

    def refresh_cursor(self) -> None:
        """Readout of the voxel under the cursor, for what the views show now (slice, layer, mask)."""
        doc = self.doc
        if doc is None or self._hover is None:
            self._cursor_text = ""
            self.cursorInfo.emit("")
            return
        view, voxel = self._hover
        voxel = voxel.copy()
        voxel[view.axis] = view.index  # the slice may have changed under a still cursor
        ras = np.clip(np.rint(voxel).astype(int), 0, np.array(doc.shape) - 1)
        i, j, k = doc.file_index(ras)
        x, y, z = doc.world(ras)
        value = float(doc.original[tuple(ras)])
        text = (f"{view.name} {ras[view.axis]}   file voxel ({i}, {j}, {k})   {x:.1f}, {y:.1f}, {z:.1f} mm RAS   "
                f"value {intensity_text(value)}")
        if self.layer != "original":
            text += f"   {LAYER_TITLES[self.layer].lower()} {intensity_text(doc.layer_value(self.layer, ras))}"
        outlined = doc.outlined_mask(self.layer)
        if outlined is not doc.editor.mask:   # a result's layer: the voxels it filled
            painted = doc.editor.mask[tuple(ras)]
            text += "   filled" if outlined[tuple(ras)] else "   in mask, not filled" if painted else ""
        elif doc.editor.mask[tuple(ras)]:
            text += "   in mask"
        if self._result_overlays() and doc.blended is not None and self.show_difference:   # the overlays shown
            text += f"   difference {intensity_text(float(doc.blended[tuple(ras)] - doc.original[tuple(ras)]))}"
        if self._result_overlays() and doc.uncertainty is not None and self.show_uncertainty:
            text += f"   predicted error SD {intensity_text(float(doc.uncertainty[tuple(ras)]))}"
        if text != self._cursor_text:
            self._cursor_text = text
            self.cursorInfo.emit(text)
