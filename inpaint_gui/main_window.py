"""Main window: wires the viewer, the inpainting panel, the menus and the fill jobs to one Document."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Callable, Optional

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QGraphicsView, QLabel, QMainWindow, QMessageBox, QScrollArea

from core import __version__
from core.checkpoint import load_model
from core.errors import InpaintError
from core.job import Progress
from core.mask_editor import EditRefused
from core.registry import default_model_name, list_models

from .actions import build_actions, build_toolbar, shortcut_table
from .document import Document, JobResult, PreviewMap
from .file_actions import FileActions
from .fill_controller import FillController
from .inpaint_panel import InpaintPanel
from .ortho_viewer import OrthoViewer
from .worker import FillJob

LOCKED = "A fill is running: mask editing is locked until it finishes or you cancel it (Esc)."
LAYERS_LOCKED = "A fill is running: the views show its live preview until it finishes or you cancel it (Esc)."
MOUSE_HELP = (("Left drag", "paint (eraser tool: erase)"), ("Right drag", "erase"),
              ("Ctrl+left click", "move the crosshair"), ("Wheel", "next / previous slice"),
              ("Shift+wheel", "brush size"), ("Ctrl+wheel", "zoom"), ("Middle drag", "pan"),
              ("Drop a file", "open it"))


class MainWindow(FileActions, QMainWindow):
    """The inpaint-gui window (file menu in FileActions, jobs in FillController)."""

    def __init__(self, settings: Optional[QSettings] = None) -> None:
        super().__init__()
        # every mouse move counts: strokes must follow the cursor, and handlers are fast enough
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, mouseRateLimit=0)
        self.settings = settings if settings is not None else QSettings()
        self.doc: Optional[Document] = None
        self.jobs = FillController(self)
        self._preview: Optional[PreviewMap] = None
        self._layer_before_job = "original"
        self._job_state = 0
        self.viewer = OrthoViewer(self)
        self.setCentralWidget(self.viewer)
        self.panel = InpaintPanel(self)
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        dock = QDockWidget("Inpainting", self)
        dock.setObjectName("inpainting")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.cursor_label = QLabel("")
        self.brush_label = QLabel("")
        separator = QFrame()
        separator.setFrameShape(QFrame.Shape.VLine)
        for widget in (self.cursor_label, separator, self.brush_label):
            self.statusBar().addPermanentWidget(widget)
        self.act, self.recent_menu = build_actions(self)  # QAction by name
        self.toolbar = build_toolbar(self, self.act)
        self.act["radiological"].setChecked(self.settings.value("radiological", True, type=bool))
        self._connect()
        self.setAcceptDrops(True)
        for view in self.findChildren(QGraphicsView):  # a file dropped anywhere reaches the window
            view.setAcceptDrops(False)
            view.viewport().setAcceptDrops(False)
        self._load_model_list()
        self._update_recent_menu()
        self._update_state()
        self.resize(1400, 900)

    # wiring ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        a, v = self.act, self.viewer
        slots: dict[str, Callable[[], object]] = {
            "open": self.open_dialog, "open_dicom": self.open_dicom_dialog, "import_mask": self.import_mask_dialog,
            "save_mask": self.save_mask,
            "save_mask_as": lambda: self.save_mask(ask=True), "export": self.export_result, "quit": self.close,
            "undo": lambda: v.apply_history(True), "redo": lambda: v.apply_history(False),
            "tool_brush": lambda: self.set_tool("brush"), "tool_eraser": self._eraser_key,
            "tool_crosshair": lambda: self.set_tool("crosshair"),
            "brush_bigger": lambda: v.step_brush(1), "brush_smaller": lambda: v.step_brush(-1),
            "sphere": self._toggle_sphere, "clear_slice": self.clear_slice, "clear_all": self.clear_all,
            "cycle_layer": self.cycle_layer, "difference": lambda: v.set_difference_visible(a["difference"].isChecked()),
            "overlay": lambda: v.set_overlay_visible(a["overlay"].isChecked()),
            "opacity_down": lambda: self._opacity(-1), "opacity_up": lambda: self._opacity(1),
            "slice_next": lambda: v.step_slice(1), "slice_prev": lambda: v.step_slice(-1),
            "slice_next5": lambda: v.step_slice(5), "slice_prev5": lambda: v.step_slice(-5),
            "max_axial": lambda: v.toggle_maximised(2), "max_coronal": lambda: v.toggle_maximised(1),
            "max_sagittal": lambda: v.toggle_maximised(0), "max_none": lambda: v.toggle_maximised(None),
            "reset_zoom": v.reset_zoom, "radiological": self._convention_changed,
            "crosshair": lambda: v.set_crosshair_visible(a["crosshair"].isChecked()),
            "run": self.run_fill, "cancel": self.cancel_fill, "load_checkpoint": self.load_checkpoint_dialog,
            "shortcuts": self.show_shortcuts, "about": self.show_about,
        }
        for name, slot in slots.items():
            a[name].triggered.connect(slot)
        for layer in ("original", "masked", "generated", "blended"):
            a[f"layer_{layer}"].triggered.connect(lambda checked=False, layer=layer: self.set_layer(layer))
        v.message.connect(self.show_message)
        v.cursorInfo.connect(self.cursor_label.setText)
        v.maskEdited.connect(self._update_state)
        v.brushChanged.connect(self._update_brush_label)
        self.panel.runRequested.connect(self.run_fill)
        self.panel.cancelRequested.connect(self.cancel_fill)
        self.panel.checkpointRequested.connect(self.load_checkpoint_dialog)
        self.panel.sliceRequested.connect(v.show_slice)
        self.jobs.progressed.connect(self._job_progress)
        self.jobs.succeeded.connect(self._job_succeeded)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.idleChanged.connect(self._update_state)

    def _update_brush_label(self) -> None:
        if self.doc is None:
            self.brush_label.setText("")
            return
        editor = self.doc.editor
        shape = "ball" if editor.sphere else "disc"
        self.brush_label.setText(f"{self._tool()}  |  {shape} {editor.brush_size:g} vox  |  mask "
                                 f"{editor.voxel_count} vox")

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 6000)

    def _update_state(self) -> None:
        """Enable actions and set the title from the current state."""
        self._update_brush_label()
        doc, running = self.doc, self.jobs.running
        has_doc = doc is not None
        has_result = has_doc and doc.blended is not None
        for name in ("import_mask", "clear_slice", "clear_all"):
            self.act[name].setEnabled(has_doc and not running)
        for name in ("save_mask", "save_mask_as", "undo", "redo", "cycle_layer", "layer_original", "layer_masked"):
            self.act[name].setEnabled(has_doc)
        for name in ("layer_generated", "layer_blended", "difference", "export"):
            self.act[name].setEnabled(bool(has_result))
        self.act["open"].setEnabled(not running)
        self.act["open_dicom"].setEnabled(not running)
        can_run = has_doc and self.jobs.idle and self.panel.model_choice() is not None
        self.act["run"].setEnabled(can_run)
        self.panel.run_button.setEnabled(can_run)
        self.act["cancel"].setEnabled(running)
        if doc is not None:
            name = doc.path.name if doc.path else "untitled"
            self.setWindowTitle(f"{name}[*] - inpaint-gui")
            self.setWindowModified(doc.editor.modified or not doc.result_saved)
            self.panel.mark_result_stale(doc.result is not None and doc.result_state != doc.editor.state)
        else:
            self.setWindowTitle("inpaint-gui")

    def set_document(self, doc: Document) -> None:
        """Show a newly opened document with the current tool and view settings."""
        self.doc = doc
        self.viewer.set_document(doc)
        self.panel.clear_result()
        self.act["layer_original"].setChecked(True)
        self.act["difference"].setChecked(False)
        doc.editor.sphere = self.act["sphere"].isChecked()
        self.viewer.set_tool(self._tool())
        self.viewer.set_overlay_visible(self.act["overlay"].isChecked())
        self.viewer.set_radiological(self.act["radiological"].isChecked())
        self._update_state()

    def closeEvent(self, event) -> None:
        if self.jobs.running and self.ask("A fill is running; stop it and quit?") != QMessageBox.StandardButton.Yes:
            event.ignore()
            return
        if not self.confirm_discard():  # a cancelled quit leaves the fill running
            event.ignore()
            return
        self.cancel_fill()
        self.jobs.wait()
        event.accept()

    # editing -----------------------------------------------------------------------------------
    def _tool(self) -> str:
        for tool in ("brush", "eraser", "crosshair"):
            if self.act[f"tool_{tool}"].isChecked():
                return tool
        return "brush"

    def set_tool(self, tool: str) -> None:
        self.act[f"tool_{tool}"].setChecked(True)
        self.viewer.set_tool(tool)
        self._update_brush_label()

    def _eraser_key(self) -> None:
        """E toggles between eraser and brush."""
        self.set_tool("eraser" if self.viewer.views[2].tool != "eraser" else "brush")

    def _toggle_sphere(self) -> None:
        if self.doc is not None:
            self.doc.editor.sphere = self.act["sphere"].isChecked()
        self._update_brush_label()

    def _convention_changed(self) -> None:
        radiological = self.act["radiological"].isChecked()
        self.settings.setValue("radiological", radiological)
        self.viewer.set_radiological(radiological)

    def _opacity(self, direction: int) -> None:
        value = self.viewer.change_opacity(0.1 * direction)
        self.show_message(f"Mask overlay opacity {value:.0%}")

    def clear_slice(self) -> None:
        if self.doc is None:
            return
        axis = self.viewer.active
        self._edit(lambda: self.doc.editor.clear_slice(axis, int(self.viewer.point[axis])))

    def clear_all(self) -> None:
        if self.doc is not None:
            self._edit(self.doc.editor.clear_all)

    def _edit(self, action) -> None:
        try:
            edit = action()
        except EditRefused as exc:
            self.show_message(str(exc))
            return
        if edit is None:
            self.show_message("Nothing to clear.")
            return
        self.viewer.refresh_mask(edit.indices)
        self.show_message(f"{edit.label.capitalize()}: {edit.count} voxels (Ctrl+Z to undo)")
        self._update_state()

    # layers --------------------------------------------------------------------------------------
    def set_layer(self, layer: str) -> None:
        if self.jobs.running:
            self.act[f"layer_{self._layer_before_job}"].setChecked(True)  # a toolbar click must not stick
            self.show_message(LAYERS_LOCKED)
            return
        if self.doc is None or layer not in self.doc.available_layers():
            return
        self.viewer.set_layer(layer)
        self.act[f"layer_{layer}"].setChecked(True)
        self.show_message(f"Showing {layer}")

    def cycle_layer(self) -> None:
        if self.jobs.running:
            self.show_message(LAYERS_LOCKED)
            return
        if self.doc is None:
            return
        layer = self.viewer.cycle_layer()
        self.act[f"layer_{layer}"].setChecked(True)
        self.show_message(f"Showing {layer}")

    # models --------------------------------------------------------------------------------------
    def _load_model_list(self) -> None:
        try:
            default: Optional[str] = default_model_name()
        except InpaintError:
            default = None
        self.panel.set_models(list_models(), default)

    def load_checkpoint_dialog(self) -> None:
        path = self.ask_path("Load checkpoint", str(Path.home()),
                             "Model weights (*.safetensors);;Model config (config.json)", save=False)
        if path is not None:
            self.load_checkpoint(path.parent if path.name == "config.json" else path)

    def load_checkpoint(self, path: os.PathLike | str) -> bool:
        try:
            model = load_model(path)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self.jobs.add_model(str(path), model)
        self.panel.add_checkpoint(Path(path), model.axis)
        self._update_state()
        return True

    # fill jobs -----------------------------------------------------------------------------------
    def run_fill(self) -> None:
        """Start a fill of the mask (or its current slice) with the panel's model and settings."""
        doc = self.doc
        if doc is None or not self.jobs.idle:
            return
        choice = self.panel.model_choice()
        if choice is None:
            self.show_error("No model is selected; choose a shipped model or Load checkpoint... in the Inpainting panel.")
            return
        key, axis = choice
        scope = self.panel.scope_choice()
        doc.editor.end_stroke()  # Ctrl+R in mid-stroke: the stroke is part of the job's mask and state
        try:
            hole = doc.job_hole(scope, axis, self.viewer.point)
        except InpaintError as exc:
            self.show_error(str(exc))
            return
        self._job_state = doc.editor.state
        self._layer_before_job = self.viewer.layer
        self._preview = doc.start_preview(hole)
        self.viewer.set_layer("preview")
        doc.editor.lock(LOCKED)
        self.panel.set_running(True)
        self.jobs.start(FillJob(image=doc.volume.data, affine=doc.volume.affine, hole=hole,
                                settings=self.panel.fill_settings(), load_model=lambda: self.jobs.model(key),
                                scope=scope))
        self.show_message(f"Filling {int(hole.sum())} voxels...")

    def _job_progress(self, progress: Progress) -> None:
        self.panel.show_progress(progress)
        if progress.preview is not None and self._preview is not None and self.doc.preview is not None:
            self._preview.place(progress.preview, self.doc.preview)
            self.viewer.refresh_all()

    def _job_succeeded(self, result: JobResult) -> None:
        doc = self.doc
        self._preview = None
        doc.editor.unlock()
        doc.set_result(result, self._job_state)
        self.viewer.set_layer("blended")
        self.act["layer_blended"].setChecked(True)
        self.panel.show_result(result)
        self._update_state()
        self.show_message(f"Fill done in {result.fill.seconds:.1f} s; T toggles before/after, X shows the difference.")

    def _job_failed(self, text: str) -> None:
        self._restore_after_job("The fill failed; nothing was changed.")
        self.show_error(text)

    def cancel_fill(self) -> None:
        """Stop the job now: the view, mask and result are as they were before Run."""
        if self.jobs.cancel():
            self._restore_after_job("Cancelled; nothing was changed.")
            self.show_message("Fill cancelled.")

    def _restore_after_job(self, text: str) -> None:
        self._preview = None
        if self.doc is not None:
            self.doc.editor.unlock()
            self.doc.end_preview()
            layer = self._layer_before_job if self._layer_before_job in self.doc.available_layers() else "original"
            self.viewer.set_layer(layer)
        self.panel.job_stopped(text)
        self._update_state()

    # help ----------------------------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        rows = shortcut_table(self.act) + list(MOUSE_HELP)
        body = "".join(f"<tr><td>{html.escape(a)}</td><td><b>{html.escape(b)}</b></td></tr>" for a, b in rows)
        QMessageBox.information(self, "Keyboard and mouse", f"<table>{body}</table>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About inpaint-gui",
                          f"inpaint-gui {__version__}: fill lesions in brain MRI by semantic inpainting with a deep "
                          "generative model (Yeh et al., CVPR 2017) and Poisson blending.")
