"""The Edit and View menus' state: painting tool, ball brush, clearing, layers, overlay, convention."""

from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QAction

from core.mask_editor import EditRefused, lesions

from .document import Document
from .ortho_viewer import OrthoViewer

LAYERS_LOCKED = "A fill is running: the views show its live preview until it finishes or you cancel it (Esc)."


class ViewController(QObject):
    """Keeps the checkable actions and the viewer in step; refuses layer changes while a fill previews."""

    message = Signal(str)
    changed = Signal()  # the mask or the tool changed: update labels and actions
    cleared = Signal()  # a clear changed the mask

    def __init__(self, act: dict[str, QAction], viewer: OrthoViewer, settings: QSettings,
                 document: Callable[[], Optional[Document]], running: Callable[[], bool]) -> None:
        super().__init__()
        self.act, self.viewer, self.settings = act, viewer, settings
        self._document, self._running = document, running

    def apply_to(self, doc: Document) -> None:
        """Show a newly opened document with the current tool and view settings."""
        self.act["layer_original"].setChecked(True)
        self.act["difference"].setChecked(False)
        doc.editor.sphere = self.act["sphere"].isChecked()
        self.viewer.set_tool(self.tool())
        self.viewer.set_overlay_visible(self.act["overlay"].isChecked())
        self.viewer.set_radiological(self.act["radiological"].isChecked())

    # tools ---------------------------------------------------------------------------------------
    def tool(self) -> str:
        return next((t for t in ("brush", "eraser", "crosshair") if self.act[f"tool_{t}"].isChecked()), "brush")

    def set_tool(self, tool: str) -> None:
        self.act[f"tool_{tool}"].setChecked(True)
        self.viewer.set_tool(tool)
        self.changed.emit()

    def eraser_key(self) -> None:
        """E toggles between eraser and brush."""
        self.set_tool("eraser" if self.viewer.views[2].tool != "eraser" else "brush")

    def toggle_sphere(self) -> None:
        doc = self._document()
        if doc is not None:
            doc.editor.sphere = self.act["sphere"].isChecked()
        self.changed.emit()

    def convention_changed(self) -> None:
        radiological = self.act["radiological"].isChecked()
        self.settings.setValue("radiological", radiological)
        self.viewer.set_radiological(radiological)

    def opacity(self, direction: int) -> None:
        self.message.emit(f"Mask overlay opacity {self.viewer.change_opacity(0.1 * direction):.0%}")

    # lesions -------------------------------------------------------------------------------------
    def step_lesion(self, direction: int) -> None:
        """Move the crosshair to the next (+1) or previous (-1) lesion after the crosshair, in slice order."""
        doc = self._document()
        if doc is None:
            return
        parts = lesions(doc.editor.mask)
        if not parts:
            self.message.emit("No lesion is painted.")
            return
        here = tuple(int(v) for v in self.viewer.point[::-1])
        keys = [voxel[::-1] for voxel, _ in parts]
        if direction > 0:
            index = next((i for i, key in enumerate(keys) if key > here), 0)
        else:
            index = next((i for i in reversed(range(len(keys))) if keys[i] < here), len(keys) - 1)
        voxel, size = parts[index]
        self.viewer.show_point(voxel, ("sagittal", "coronal", "axial")[self.viewer.active])
        self.message.emit(f"Lesion {index + 1} of {len(parts)}: {doc.lesion_text(size)}")

    # clearing ------------------------------------------------------------------------------------
    def clear_slice(self) -> None:
        doc = self._document()
        if doc is not None:
            axis = self.viewer.active
            self._edit(lambda: doc.editor.clear_slice(axis, int(self.viewer.point[axis])))

    def clear_all(self) -> None:
        doc = self._document()
        if doc is not None:
            self._edit(doc.editor.clear_all)

    def _edit(self, action) -> None:
        try:
            edit = action()
        except EditRefused as exc:
            self.message.emit(str(exc))
            return
        if edit is None:
            self.message.emit("Nothing to clear.")
            return
        self.viewer.refresh_mask(edit.indices)
        self.message.emit(f"{edit.label.capitalize()}: {edit.count} voxels (Ctrl+Z to undo)")
        self.cleared.emit()
        self.changed.emit()

    # layers --------------------------------------------------------------------------------------
    def check_layer(self, layer: str) -> None:
        """Check the action of the layer the views show; none for a layer without one (a fill's or the live
        preview)."""
        action = self.act.get(f"layer_{layer}")
        if action is not None:
            action.setChecked(True)
            return
        group = self.act["layer_original"].actionGroup()
        checked = group.checkedAction()
        if checked is not None:  # an exclusive group keeps one action checked: let go of it for a moment
            group.setExclusive(False)
            checked.setChecked(False)
            group.setExclusive(True)

    def set_layer(self, layer: str) -> None:
        if self._running():
            self.check_layer(self.viewer.layer)  # a toolbar click must not stick
            self.message.emit(LAYERS_LOCKED)
            return
        doc = self._document()
        if doc is None or layer not in doc.available_layers():
            return
        self.viewer.set_layer(layer)
        self.check_layer(layer)
        self.message.emit(f"Showing {layer}")

    def cycle_layer(self) -> None:
        if self._running():
            self.message.emit(LAYERS_LOCKED)
            return
        if self._document() is not None:
            layer = self.viewer.cycle_layer()
            self.check_layer(layer)
            self.message.emit(f"Showing {layer}")
