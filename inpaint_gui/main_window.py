"""Main window: the views, the side panel and the menus over one Document; files and fills are controllers it owns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import pyqtgraph as pg
from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QGraphicsView, QMainWindow, QScrollArea

from core import __version__
from core.checkpoint import load_model
from core.errors import InpaintError
from core.inputs import other_contrast
from core.registry import default_model_name, list_models

from .actions import build_actions, build_toolbar, connect_action, shortcut_table
from .dialogs import Button, Dialogs, TableWindow, fit_to_screen
from .document import LAYERS, Document
from .file_controller import KEEP_DTYPE, FileController
from .fill_controller import FillController
from .fill_session import FillSession
from .inpaint_panel import InpaintPanel
from .ortho_viewer import OrthoViewer
from .preview_controller import PreviewController
from .review_controller import ReviewController
from .review_panel import ReviewPanel
from .status_bar import StatusBar
from .view_controller import ViewController

PANEL_WIDTH = 300
WINDOW_SIZE = QSize(1400, 900)  # on a smaller screen: its free area
SKULL_ON = ("This image looks skull-on (more tissue than a brain holds). The models know only brain-extracted "
            "slices: load a brain mask (File > Load brain mask) or open the skull-stripped image.")
OTHER_CONTRAST = ("This image is named as a {contrast} image; the networks learned T1-weighted brains and may fill "
                  "it worse than the classical fill: Method biharmonic3d fills without them.")
MOUSE_HELP = (("Left drag", "paint (eraser tool: erase)"), ("Right drag", "erase"),
              ("Ctrl+left click", "move the crosshair"), ("Wheel", "next / previous slice"),
              ("Shift+wheel", "brush size"), ("Ctrl+wheel", "zoom"), ("Middle drag", "pan"),
              ("Drop a file", "open it"))

BRIEF_MS = 2000   # how long a passing note (a live preview's time) covers the cursor readout


class MainWindow(QMainWindow):
    """The inpaint-gui window: wiring and view state; `files` opens and saves, `session` runs fills."""

    def __init__(self, settings: Optional[QSettings] = None, warm_up: bool = True) -> None:
        """`warm_up`: prepare the selected model in the background so the first fill starts at full speed."""
        super().__init__()
        self._warm_up = warm_up
        # every mouse move counts: strokes must follow the cursor, and handlers are fast enough
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, mouseRateLimit=0)
        self.settings = settings if settings is not None else QSettings()
        self.dialogs = Dialogs(self, self.settings)
        self.jobs = FillController(self)
        self.viewer = OrthoViewer(self)
        self.setCentralWidget(self.viewer)
        self.panel = InpaintPanel(self)
        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        dock = QDockWidget("Inpainting", self)
        dock.setObjectName("inpainting")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.panel_dock = dock
        self.resizeDocks([dock], [PANEL_WIDTH], Qt.Orientation.Horizontal)  # the views take the rest
        self.review_panel = ReviewPanel(self.settings, self)
        self.review_dock = QDockWidget("Cohort review", self)
        self.review_dock.setObjectName("review")
        self.review_dock.setWidget(self.review_panel)
        self.review_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.review_dock)
        self.review_dock.hide()
        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.cursor_label, self.brush_label = self.status.readout, self.status.brush
        self.shortcuts: Optional[TableWindow] = None  # Help > Keyboard and mouse, made when first asked for
        self.act, self.recent_menu = build_actions(self)  # QAction by name
        self.toolbar = build_toolbar(self, self.act)
        self.act["radiological"].setChecked(self.settings.value("radiological", True, type=bool))
        self.act["live_preview"].setChecked(self.settings.value("livePreview", True, type=bool))
        self.act["keep_dtype"].setChecked(self.settings.value(KEEP_DTYPE, False, type=bool))
        self.files = FileController(self.dialogs, self.settings, self.recent_menu, lambda: self.jobs.running)
        self.session = FillSession(self.jobs, self.viewer, self.panel, self.dialogs, lambda: self.doc)
        self.display = ViewController(self.act, self.viewer, self.settings, lambda: self.doc, lambda: self.jobs.running)
        self.preview = PreviewController(self.viewer, lambda: self.doc, self._model_loader,
                                         self.panel.form.dilate.value, lambda: self.jobs.running)
        self.preview.set_enabled(self.act["live_preview"].isChecked())
        self.review = ReviewController(self.files, self.viewer, self.dialogs, self.review_dock, self.review_panel,
                                       lambda: self.display.step_lesion(1), self.act["uncertainty"],
                                       self.act["side_panel"])
        self._connect()
        self.setAcceptDrops(True)
        for view in self.findChildren(QGraphicsView):  # a file dropped anywhere reaches the window
            view.setAcceptDrops(False)
            view.viewport().setAcceptDrops(False)
        self._load_model_list()
        self._update_state()
        self._warm_up_model()
        fit_to_screen(self, WINDOW_SIZE)

    @property
    def doc(self) -> Optional[Document]:
        return self.files.doc

    # wiring ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        a, v, f, c = self.act, self.viewer, self.files, self.display
        slots: dict[str, Callable[[], object]] = {
            "open": f.open_dialog, "open_dicom": f.open_dicom_dialog, "import_mask": f.import_mask_dialog,
            "load_brainmask": f.brain_mask_dialog, "clear_brainmask": f.forget_brain_mask,
            "save_mask": f.save_mask, "save_mask_as": lambda: f.save_mask(ask=True), "export": f.export,
            "quit": self.close,
            "undo": lambda: v.painter.apply_history(True), "redo": lambda: v.painter.apply_history(False),
            "tool_brush": lambda: c.set_tool("brush"), "tool_eraser": c.eraser_key,
            "tool_crosshair": lambda: c.set_tool("crosshair"),
            "brush_bigger": lambda: v.painter.step_brush(1), "brush_smaller": lambda: v.painter.step_brush(-1),
            "sphere": c.toggle_sphere, "clear_slice": c.clear_slice, "clear_all": c.clear_all,
            "cycle_layer": c.cycle_layer, "difference": lambda: v.set_difference_visible(a["difference"].isChecked()),
            "overlay": lambda: v.set_overlay_visible(a["overlay"].isChecked()),
            "opacity_down": lambda: c.opacity(-1), "opacity_up": lambda: c.opacity(1),
            "slice_next": lambda: v.step_slice(1), "slice_prev": lambda: v.step_slice(-1),
            "slice_next5": lambda: v.step_slice(5), "slice_prev5": lambda: v.step_slice(-5),
            "lesion_next": lambda: c.step_lesion(1), "lesion_prev": lambda: c.step_lesion(-1),
            "max_axial": lambda: v.toggle_maximised(2), "max_coronal": lambda: v.toggle_maximised(1),
            "max_sagittal": lambda: v.toggle_maximised(0), "max_none": lambda: v.toggle_maximised(None),
            "reset_zoom": v.reset_zoom, "radiological": c.convention_changed,
            "crosshair": lambda: v.set_crosshair_visible(a["crosshair"].isChecked()),
            "help_panel": lambda: v.set_help_visible(a["help_panel"].isChecked()), "auto_levels": v.auto_levels,
            "run": self.session.run, "cancel": self.session.cancel, "load_checkpoint": self.load_checkpoint_dialog,
            "shortcuts": self.show_shortcuts, "about": self.show_about,
            "live_preview": self._live_preview_toggled,
            "keep_dtype": lambda: self.settings.setValue(KEEP_DTYPE, self.act["keep_dtype"].isChecked()),
            "review": self.review.open_dialog, "scan_next": lambda: self.review.step(1),
            "scan_prev": lambda: self.review.step(-1), "rate_pass": lambda: self.review.rate("pass"),
            "rate_fail": lambda: self.review.rate("fail"), "rate_unsure": lambda: self.review.rate("unsure"),
            "rate_comment": self.review.comment, "rate_clear": self.review.clear,
        }
        for name, slot in slots.items():
            connect_action(a[name], slot)
        for layer in LAYERS:
            connect_action(a[f"layer_{layer}"], lambda layer=layer: c.set_layer(layer))
        a["uncertainty"].toggled.connect(v.set_uncertainty_visible)  # the views follow the action, whoever sets it
        v.set_uncertainty_visible(a["uncertainty"].isChecked())
        a["brain_outline"].toggled.connect(v.set_brain_visible)
        a["side_panel"].toggled.connect(self.panel_dock.setVisible)   # F3; the panel's own close button unchecks it
        self.panel_dock.toggleViewAction().toggled.connect(a["side_panel"].setChecked)
        self.files.changed.connect(lambda: v.set_brain_visible(a["brain_outline"].isChecked()))  # loaded, forgotten
        v.message.connect(self.show_message)
        v.cursorInfo.connect(self.cursor_label.setText)
        v.maskEdited.connect(self._update_state)
        v.painter.edited.connect(self.preview.request)
        v.painter.strokeStarted.connect(self.preview.cancel)
        self.preview.message.connect(self.show_message)
        self.preview.timing.connect(lambda text: self.status.showMessage(text, BRIEF_MS))
        self.files.maskReplaced.connect(self.preview.reset)
        c.cleared.connect(self.preview.reset)
        self.jobs.idleChanged.connect(lambda: self.jobs.running and self.preview.reset())
        self.review.message.connect(self.show_message)
        self.review.changed.connect(self._update_state)
        v.brushChanged.connect(self._update_brush_label)
        self.panel.runRequested.connect(self.session.run)
        self.panel.cancelRequested.connect(self.session.cancel)
        self.panel.form.checkpointRequested.connect(self.load_checkpoint_dialog)
        self.panel.form.model.currentIndexChanged.connect(lambda *_: self._warm_up_model())
        self.panel.form.method.currentIndexChanged.connect(lambda *_: self._update_state())   # the image note
        self.panel.sliceRequested.connect(v.show_slice)
        self.panel.fieldDone.connect(v.take_keys)
        self.files.opened.connect(self._document_opened)
        self.files.maskReplaced.connect(self._mask_replaced)
        self.files.changed.connect(self._update_state)
        self.files.message.connect(self.show_message)
        self.session.message.connect(self.show_message)
        c.message.connect(self.show_message)
        c.changed.connect(self._update_state)
        self.session.changed.connect(self._update_state)
        v.layerChanged.connect(c.check_layer)  # whoever sets the layer (a fill, the live preview), the buttons follow
        self.jobs.idleChanged.connect(self._update_state)

    def show_message(self, text: str) -> None:
        self.status.showMessage(text, 6000)

    def _update_brush_label(self) -> None:
        doc = self.doc
        if doc is None:
            self.brush_label.setText("")
            return
        shape = "ball" if doc.editor.sphere else "disc"
        brain = "  |  brain mask" if doc.brain is not None else ""
        self.brush_label.setText(f"{self.display.tool()}  |  {shape} {doc.editor.brush_size:g} vox  |  mask "
                                 f"{doc.lesion_text()}{brain}")

    def _update_state(self) -> None:
        """Enable actions and set the title from the current state."""
        self._update_brush_label()
        doc, running = self.doc, self.jobs.running
        has_doc = doc is not None
        has_result = has_doc and doc.blended is not None
        for name in ("import_mask", "load_brainmask", "clear_slice", "clear_all"):
            self.act[name].setEnabled(has_doc and not running)
        self.act["clear_brainmask"].setEnabled(has_doc and not running and doc.brain is not None)
        for name in ("save_mask", "save_mask_as", "cycle_layer", "layer_original", "layer_masked", "auto_levels"):
            self.act[name].setEnabled(has_doc)
        self.act["undo"].setEnabled(has_doc and doc.editor.can_undo)   # greyed with nothing to undo, as in ITK-SNAP
        self.act["redo"].setEnabled(has_doc and doc.editor.can_redo)
        for name in ("layer_generated", "layer_blended", "difference"):
            self.act[name].setEnabled(bool(has_result))
        self.act["export"].setEnabled(bool(has_result) and not doc.reviewed and not running)  # not a result being replaced
        reviewing = self.review.cohort is not None
        for name in ("scan_next", "scan_prev", "rate_pass", "rate_fail", "rate_unsure", "rate_comment", "rate_clear"):
            self.act[name].setEnabled(reviewing)
        self.act["review"].setEnabled(not running)
        can_run = has_doc and not doc.reviewed and self.jobs.idle and self.panel.model_choice() is not None
        self.act["run"].setEnabled(can_run)
        self.panel.run_button.setEnabled(can_run)
        self.act["cancel"].setEnabled(running)
        if doc is not None:
            self.setWindowTitle(f"{doc.path.name if doc.path else 'untitled'}[*] - inpaint-gui")
            self.setWindowModified(doc.editor.modified or not doc.result_saved)
            self.panel.mark_result_stale(doc.stale_reason())
            self.panel.show_metrics_table(not doc.reviewed)
            chosen = self.panel.form.chosen()
            learned = chosen.needs_model or chosen.needs_refiner   # a method with networks that learned T1w only
            contrast = other_contrast(doc.path) if doc.path and learned else None
            notes = ([SKULL_ON] if doc.brain is None and doc.skull_on else []) + \
                ([OTHER_CONTRAST.format(contrast=contrast)] if contrast else [])
            self.panel.set_image_note(" ".join(notes))
        else:
            self.setWindowTitle("inpaint-gui")

    def _document_opened(self) -> None:
        """Show a newly opened document with the current tool and view settings."""
        doc = self.doc
        assert doc is not None
        self.preview.reset()
        self.viewer.set_document(doc)
        self.panel.clear_result()
        self.display.apply_to(doc)
        if doc.reviewed:  # a reviewed scan opens on its fill
            self.display.set_layer("blended")
        self._update_state()
        if self.panel.model_choice() is None:
            self.show_message("No model is installed: Inpaint > Load checkpoint... chooses one.")
        elif doc.skull_on:
            self.show_message(SKULL_ON)

    def _mask_replaced(self) -> None:
        """An imported mask (Import mask, or --mask at start): shown, with the crosshair on a lesion of it."""
        self.viewer.refresh_all()
        self.display.step_lesion(1)
        self._update_state()

    def closeEvent(self, event) -> None:
        if self.jobs.running:
            # a fill that ends on its own closes the question: there is nothing left to stop
            answer = self.dialogs.ask_until("A fill is running; stop it and quit?", self.jobs.idleChanged)
            if answer is not None and answer != Button.Yes:
                event.ignore()
                return
            self.session.cancel()  # stopped before the save question, not behind it (nothing when it has ended)
        if not self.files.confirm_discard():
            event.ignore()
            return
        self.jobs.wait()
        self.preview.wait()
        event.accept()

    # drops -------------------------------------------------------------------------------------
    @staticmethod
    def _dropped_files(event) -> list[str]:
        return [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]

    def dragEnterEvent(self, event) -> None:
        if self._dropped_files(event):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_files(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = self._dropped_files(event)
        if files:
            event.acceptProposedAction()
            # after the drop has returned: the unsaved-work question must not block the drag source
            QTimer.singleShot(0, lambda: self.files.open_image(files[0]))

    # models and help -----------------------------------------------------------------------------
    def _load_model_list(self) -> None:
        try:
            default: Optional[str] = default_model_name()
        except InpaintError:
            default = None
        self.panel.form.set_models(list_models(), default)

    def _warm_up_model(self) -> None:
        choice = self.panel.model_choice()
        if self._warm_up and choice is not None:
            self.jobs.warm_up(choice[0])
            if self.act["live_preview"].isChecked():
                self.preview.warm_up()

    def _model_loader(self) -> Optional[Callable[[], object]]:
        """A loader of the selected model for the live preview (None: no model installed)."""
        choice = self.panel.model_choice()
        return None if choice is None else (lambda key=choice[0]: self.jobs.model(key))

    def _live_preview_toggled(self) -> None:
        on = self.act["live_preview"].isChecked()
        self.settings.setValue("livePreview", on)
        self.preview.set_enabled(on)
        if on and self._warm_up:
            self.preview.warm_up()
        self.show_message("Live preview on: each finished stroke shows its lesion filled (refine3d, no mirrored "
                          "detail)." if on else "Live preview off: Run (Ctrl+R) fills.")
    def load_checkpoint_dialog(self) -> None:
        path = self.dialogs.open_file("Load checkpoint", "Model weights (*.safetensors);;Model config (config.json)")
        if path is not None:
            self.load_checkpoint(path.parent if path.name == "config.json" else path)

    def load_checkpoint(self, path: os.PathLike | str) -> bool:
        try:
            model = load_model(path)
        except InpaintError as exc:
            self.dialogs.error(str(exc))
            return False
        self.jobs.add_model(str(path), model)
        self.panel.form.add_checkpoint(Path(path), model.axis)
        self._update_state()
        return True

    def show_shortcuts(self) -> None:
        if self.shortcuts is None:
            self.shortcuts = TableWindow(self, "Keyboard and mouse", shortcut_table(self.act) + list(MOUSE_HELP))
        self.shortcuts.show_fitted()

    def show_about(self) -> None:
        self.dialogs.about("About inpaint-gui",
                           f"inpaint-gui {__version__}: fill lesions in brain MRI by semantic inpainting with a deep "
                           "generative model (Yeh et al., CVPR 2017) and Poisson blending.")
