"""Main window: wires the viewer, the inpainting panel, the menus and the fill worker to one Document."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QScrollArea

from core import __version__
from core.checkpoint import Model, load_model
from core.errors import InpaintError
from core.job import Progress
from core.mask_editor import EditRefused
from core.registry import DEMO_BRAIN, default_model_name, list_models, resolve_model

from .actions import build_actions, shortcut_table
from .document import Document, JobResult, PreviewMap
from .inpaint_panel import InpaintPanel
from .ortho_viewer import OrthoViewer
from .worker import FillJob, FillWorker

IMAGE_FILTER = "Images (*.nii.gz *.nii *.nrrd *.nhdr *.mha *.mhd);;All files (*)"
NIFTI_FILTER = "NIfTI (*.nii.gz *.nii)"
MAX_RECENT = 8
LOCKED = "A fill is running: mask editing is locked until it finishes or you cancel it (Esc)."
MOUSE_HELP = (("Left drag", "paint (eraser tool: erase)"), ("Right drag", "erase"),
              ("Ctrl+left click", "move the crosshair"), ("Wheel", "next / previous slice"),
              ("Shift+wheel", "brush size"), ("Ctrl+wheel", "zoom"), ("Middle drag", "pan"),
              ("Drop a file", "open it"))


class MainWindow(QMainWindow):
    """The inpaint-gui window. Dialog helpers are methods so tests can replace them."""

    def __init__(self, settings: Optional[QSettings] = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings()
        self.doc: Optional[Document] = None
        self.worker: Optional[FillWorker] = None
        self._retired: list[FillWorker] = []
        self._preview: Optional[PreviewMap] = None
        self._layer_before_job = "original"
        self._job_state = 0
        self._models: dict[str, Model] = {}
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
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.actions, self.recent_menu = build_actions(self)
        self._connect()
        self.setAcceptDrops(True)
        self._load_model_list()
        self._update_recent_menu()
        self._update_state()
        self.resize(1400, 900)

    # wiring ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        a, v = self.actions, self.viewer
        slots: dict[str, Callable[[], object]] = {
            "open": self.open_dialog, "import_mask": self.import_mask_dialog, "save_mask": self.save_mask,
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
            "reset_zoom": v.reset_zoom, "radiological": lambda: v.set_radiological(a["radiological"].isChecked()),
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
        self.panel.runRequested.connect(self.run_fill)
        self.panel.cancelRequested.connect(self.cancel_fill)
        self.panel.checkpointRequested.connect(self.load_checkpoint_dialog)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 6000)

    def _update_state(self) -> None:
        """Enable actions and set the title from the current state."""
        doc, running = self.doc, self.worker is not None
        has_doc = doc is not None
        has_result = has_doc and doc.blended is not None
        for name in ("import_mask", "clear_slice", "clear_all"):
            self.actions[name].setEnabled(has_doc and not running)
        for name in ("save_mask", "save_mask_as", "undo", "redo", "cycle_layer", "layer_original", "layer_masked"):
            self.actions[name].setEnabled(has_doc)
        for name in ("layer_generated", "layer_blended", "difference", "export"):
            self.actions[name].setEnabled(bool(has_result))
        self.actions["open"].setEnabled(not running)
        can_run = has_doc and not running and not self._retired and self.panel.model_choice() is not None
        self.actions["run"].setEnabled(can_run)
        self.panel.run_button.setEnabled(can_run)
        self.actions["cancel"].setEnabled(running)
        if doc is not None:
            name = doc.path.name if doc.path else "untitled"
            self.setWindowTitle(f"{name}[*] - inpaint-gui")
            self.setWindowModified(doc.editor.modified or not doc.result_saved)
            self.panel.mark_result_stale(doc.result is not None and doc.result_state != doc.editor.state)
        else:
            self.setWindowTitle("inpaint-gui")

    # dialogs (replaced in tests) ---------------------------------------------------------------
    def show_error(self, text: str) -> None:
        QMessageBox.warning(self, "inpaint-gui", text)

    def ask(self, text: str, buttons=QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            default=QMessageBox.StandardButton.No) -> QMessageBox.StandardButton:
        return QMessageBox.question(self, "inpaint-gui", text, buttons, default)

    def ask_path(self, title: str, start: str, filters: str, save: bool) -> Optional[Path]:
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, start, filters)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        return Path(path) if path else None

    # opening -----------------------------------------------------------------------------------
    def open_initial(self, image: Optional[Path], mask: Optional[Path]) -> None:
        """Start-up: the given image (and mask), or the bundled demo brain."""
        self.open_image(image if image is not None else DEMO_BRAIN, mask)

    def open_dialog(self) -> None:
        path = self.ask_path("Open image", self._start_dir(), IMAGE_FILTER, save=False)
        if path is not None:
            self.open_image(path)

    def open_image(self, path: os.PathLike | str, mask: Optional[os.PathLike | str] = None) -> bool:
        """Open a volume (and optionally its mask); False when cancelled or unreadable."""
        if self.worker is not None:
            self.show_message("A fill is running; cancel it (Esc) before opening another image.")
            return False
        if not self.confirm_discard():
            return False
        try:
            doc = Document.open(path, mask)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self.doc = doc
        self.viewer.set_document(doc)
        self.panel.clear_result()
        self.actions["layer_original"].setChecked(True)
        self.actions["difference"].setChecked(False)
        self._apply_view_settings()
        self._add_recent(Path(path))
        self._update_state()
        self.show_message(f"Opened {Path(path).name}: {'x'.join(map(str, doc.volume.shape))} voxels.")
        return True

    def _apply_view_settings(self) -> None:
        editor = self.doc.editor
        editor.sphere = self.actions["sphere"].isChecked()
        self.viewer.set_tool(self._tool())
        self.viewer.set_overlay_visible(self.actions["overlay"].isChecked())
        self.viewer.set_radiological(self.actions["radiological"].isChecked())

    def _start_dir(self) -> str:
        if self.doc is not None and self.doc.path is not None and os.access(self.doc.path.parent, os.W_OK):
            return str(self.doc.path.parent)
        return str(self.settings.value("lastDir", str(Path.home())))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_image(urls[0])

    def _add_recent(self, path: Path) -> None:
        text = str(path.resolve())
        recent = [p for p in self._recent() if p != text]
        self.settings.setValue("recentFiles", [text] + recent[: MAX_RECENT - 1])
        self.settings.setValue("lastDir", str(path.resolve().parent))
        self._update_recent_menu()

    def _recent(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for text in self._recent():
            action = self.recent_menu.addAction(text)
            action.triggered.connect(lambda checked=False, text=text: self.open_image(text))
        self.recent_menu.setEnabled(bool(self._recent()))

    # mask files ----------------------------------------------------------------------------------
    def import_mask_dialog(self) -> None:
        path = self.ask_path("Import mask", self._start_dir(), IMAGE_FILTER, save=False)
        if path is not None:
            self.import_mask(path)

    def import_mask(self, path: os.PathLike | str) -> bool:
        if self.doc is None:
            return False
        try:
            self.doc.import_mask(path)
        except (InpaintError, EditRefused) as exc:
            self.show_error(str(exc))
            return False
        self.viewer.refresh_all()
        self._update_state()
        self.show_message(f"Imported {Path(path).name}: {self.doc.editor.voxel_count} voxels.")
        return True

    def save_mask(self, path: Optional[os.PathLike | str] = None, ask: bool = False) -> bool:
        """Save the mask (to its file, or where the user chooses); False when cancelled or failed."""
        doc = self.doc
        if doc is None:
            return False
        if path is None:
            path = doc.mask_path if (doc.mask_path is not None and not ask) else self.ask_path(
                "Save mask", str(Path(self._start_dir()) / doc.default_name("mask")), NIFTI_FILTER, save=True)
            if path is None:
                return False
        try:
            out = doc.save_mask(path)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self._update_state()
        self.show_message(f"Saved mask ({doc.editor.voxel_count} voxels) to {out}.")
        return True

    def export_result(self, path: Optional[os.PathLike | str] = None) -> bool:
        """Write the filled volume, its sidecar and the job's mask; False when cancelled or failed."""
        doc = self.doc
        if doc is None or doc.result is None:
            return False
        if path is None:
            path = self.ask_path("Export filled volume", str(Path(self._start_dir()) / doc.default_name("inpainted")),
                                 NIFTI_FILTER, save=True)
            if path is None:
                return False
        path = Path(path)
        mask_path = path.parent / doc.default_name("mask")
        write_mask = True
        if mask_path.exists():
            write_mask = self.ask(f"{mask_path.name} already exists next to the export; replace it with the mask "
                                  "used for this fill?") == QMessageBox.StandardButton.Yes
        try:
            written = doc.export(path, mask_path if write_mask else None)
        except InpaintError as exc:
            self.show_error(str(exc))
            return False
        self._update_state()
        self.show_message("Wrote " + ", ".join(p.name for p in written) + f" in {path.parent}.")
        return True

    def confirm_discard(self) -> bool:
        """Ask about an unsaved mask or result; True when it is fine to drop the document."""
        doc = self.doc
        if doc is None:
            return True
        unsaved = (["the painted mask"] if doc.editor.modified else []) + \
                  (["the fill result"] if not doc.result_saved else [])
        if not unsaved:
            return True
        buttons = QMessageBox.StandardButton
        answer = self.ask(f"Save {' and '.join(unsaved)} before closing {doc.path.name if doc.path else 'it'}?",
                          buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Discard:
            return True
        if answer != buttons.Save:
            return False
        if doc.editor.modified and not self.save_mask():
            return False
        return doc.result_saved or self.export_result()

    def closeEvent(self, event) -> None:
        if self.worker is not None and self.ask("A fill is running; stop it and quit?") != QMessageBox.StandardButton.Yes:
            event.ignore()
            return
        if self.worker is not None:
            self.cancel_fill()
        if not self.confirm_discard():
            event.ignore()
            return
        for worker in list(self._retired):
            worker.wait(10000)
        event.accept()

    # editing -----------------------------------------------------------------------------------
    def _tool(self) -> str:
        for tool in ("brush", "eraser", "crosshair"):
            if self.actions[f"tool_{tool}"].isChecked():
                return tool
        return "brush"

    def set_tool(self, tool: str) -> None:
        self.actions[f"tool_{tool}"].setChecked(True)
        self.viewer.set_tool(tool)
        self.show_message(f"Tool: {tool}")

    def _eraser_key(self) -> None:
        """E toggles between eraser and brush."""
        self.set_tool("eraser" if self.viewer.views[2].tool != "eraser" else "brush")

    def _toggle_sphere(self) -> None:
        if self.doc is not None:
            self.doc.editor.sphere = self.actions["sphere"].isChecked()
        self.show_message("3D ball brush" if self.actions["sphere"].isChecked() else "2D disc brush")

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
        if self.doc is None or self.worker is not None or layer not in self.doc.available_layers():
            return
        self.viewer.set_layer(layer)
        self.actions[f"layer_{layer}"].setChecked(True)
        self.show_message(f"Showing {layer}")

    def cycle_layer(self) -> None:
        if self.doc is None or self.worker is not None:
            return
        layer = self.viewer.cycle_layer()
        self.actions[f"layer_{layer}"].setChecked(True)
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
        self._models[str(path)] = model
        self.panel.add_checkpoint(Path(path), model.axis)
        self._update_state()
        return True

    def _model(self, key: str) -> Model:
        """Load (once) the model for a shipped name or checkpoint path; runs on the worker thread."""
        if key not in self._models:
            self._models[key] = resolve_model(key)
        return self._models[key]

    # fill jobs -----------------------------------------------------------------------------------
    def run_fill(self) -> None:
        doc = self.doc
        choice = self.panel.model_choice()
        if doc is None or self.worker is not None or self._retired:
            return
        if choice is None:
            self.show_error("No model is selected; choose a shipped model or Load checkpoint... in the Inpainting panel.")
            return
        key, axis = choice
        scope = self.panel.scope_choice()
        try:
            hole = doc.job_hole(scope, axis, self.viewer.point)
        except InpaintError as exc:
            self.show_error(str(exc))
            return
        job = FillJob(image=doc.volume.data, affine=doc.volume.affine, hole=hole,
                      settings=self.panel.fill_settings(), load_model=lambda: self._model(key), scope=scope)
        worker = FillWorker(job)
        worker.progressed.connect(lambda p, w=worker: self._job_progress(w, p))
        worker.succeeded.connect(lambda r, w=worker: self._job_succeeded(w, r))
        worker.failed.connect(lambda text, w=worker: self._job_failed(w, text))
        worker.finished.connect(lambda w=worker: self._worker_finished(w))
        self.worker = worker
        self._job_state = doc.editor.state
        self._retired.append(worker)  # alive until its thread ends
        self._layer_before_job = self.viewer.layer
        self._preview = doc.start_preview(hole)
        self.viewer.set_layer("preview")
        doc.editor.lock(LOCKED)
        self.panel.set_running(True)
        self._update_state()
        self.show_message(f"Filling {int(hole.sum())} voxels...")
        worker.start()

    def _job_progress(self, worker: FillWorker, progress: Progress) -> None:
        if worker is not self.worker:
            return
        self.panel.show_progress(progress)
        if progress.preview is not None and self._preview is not None and self.doc.preview is not None:
            self._preview.place(progress.preview, self.doc.preview)
            self.viewer.refresh_all()

    def _job_succeeded(self, worker: FillWorker, result: JobResult) -> None:
        if worker is not self.worker:
            return
        self.worker = None
        doc = self.doc
        doc.editor.unlock()
        doc.set_result(result, self._job_state)
        self.viewer.set_layer("blended")
        self.actions["layer_blended"].setChecked(True)
        self.panel.show_result(result)
        self._update_state()
        self.show_message(f"Fill done in {result.fill.seconds:.1f} s; T toggles before/after, X shows the difference.")

    def _job_failed(self, worker: FillWorker, text: str) -> None:
        if worker is not self.worker:
            return
        self._stop_job("The fill failed; nothing was changed.")
        self.show_error(text)

    def cancel_fill(self) -> None:
        """Stop the job now: the view, mask and result are as they were before Run."""
        if self.worker is None:
            return
        self.worker.cancel()
        self._stop_job("Cancelled; nothing was changed.")
        self.show_message("Fill cancelled.")

    def _stop_job(self, text: str) -> None:
        self.worker = None
        self._preview = None
        if self.doc is not None:
            self.doc.editor.unlock()
            self.doc.end_preview()
            layer = self._layer_before_job if self._layer_before_job in self.doc.available_layers() else "original"
            self.viewer.set_layer(layer)
        self.panel.job_stopped(text)
        self._update_state()

    def _worker_finished(self, worker: FillWorker) -> None:
        if worker in self._retired:
            self._retired.remove(worker)
        worker.deleteLater()
        self._update_state()

    # help ----------------------------------------------------------------------------------------
    def show_shortcuts(self) -> None:
        rows = shortcut_table(self.actions) + list(MOUSE_HELP)
        body = "".join(f"<tr><td>{html.escape(a)}</td><td><b>{html.escape(b)}</b></td></tr>" for a, b in rows)
        QMessageBox.information(self, "Keyboard and mouse", f"<table>{body}</table>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About inpaint-gui",
                          f"inpaint-gui {__version__}: fill lesions in brain MRI by semantic inpainting with a deep "
                          "generative model (Yeh et al., CVPR 2017) and Poisson blending.")
