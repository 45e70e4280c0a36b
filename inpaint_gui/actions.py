"""Every user action as a QAction with its shortcut, grouped into the menus (one table, one place)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QToolBar


@dataclass(frozen=True)
class Spec:
    name: str
    text: str
    keys: tuple[str, ...] = ()
    tip: str = ""
    checkable: bool = False
    checked: bool = False
    group: Optional[str] = None


MENUS: dict[str, tuple[Spec | str, ...]] = {
    "&File": (
        Spec("open", "&Open image...", ("Ctrl+O",), "Open a brain MRI volume (NIfTI, NRRD, MHA/MHD)."),
        Spec("open_dicom", "Open &DICOM folder...", ("Ctrl+Shift+O",), "Open a folder holding one DICOM series."),
        "recent",
        Spec("review", "Re&view cohort...", ("Ctrl+Shift+R",),
             "Open the output folder of 'inpaint bids' (OUT_DIR): step through its filled scans and rate them."),
        Spec("import_mask", "&Import mask...", ("Ctrl+I",),
             "Load a lesion mask (or a probability map, thresholded) drawn on this image's grid."),
        Spec("load_brainmask", "Load &brain mask...", ("Ctrl+Shift+B",),
             "Load a brain mask on this image's grid: the model then sees only brain tissue (like --brainmask; "
             "use it for images with skull)."),
        Spec("clear_brainmask", "Forget brain mask", (), "Fill without a brain mask (estimated from the image)."),
        Spec("save_mask", "&Save mask", ("Ctrl+S",), "Save the mask as uint8 NIfTI on the image grid."),
        Spec("save_mask_as", "Save mask &as...", ("Ctrl+Shift+S",), "Save the mask under a new name."),
        Spec("export", "&Export filled volume...", ("Ctrl+E",),
             "Write the filled volume (input geometry) with its JSON sidecar and the mask it used."),
        Spec("keep_dtype", "Export in the input's &data type",  (),
             "Write the export in the input's stored type and scaling (e.g. uint8: the fill is rounded), as "
             "'inpaint fill --keep-dtype'; off: float32 (float64 where float32 cannot hold the input).", True),
        "-",
        Spec("quit", "&Quit", ("Ctrl+Q",), "Close the application."),
    ),
    "&Edit": (
        Spec("undo", "&Undo mask edit", ("Ctrl+Z",), "Undo the last stroke, clear or import, on any slice."),
        Spec("redo", "&Redo mask edit", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo the last undone mask edit."),
        "-",
        Spec("tool_brush", "&Brush", ("B",), "Left button paints the mask.", True, True, "tool"),
        Spec("tool_eraser", "&Eraser", ("E",), "Left button erases (the right button always erases).",
             True, False, "tool"),
        Spec("tool_crosshair", "&Crosshair", ("C",), "Left button moves the crosshair (Ctrl+click does too).",
             True, False, "tool"),
        Spec("brush_bigger", "Brush &bigger", ("]",), "Grow the brush by one voxel (Shift+wheel too)."),
        Spec("brush_smaller", "Brush &smaller", ("[",), "Shrink the brush by one voxel (Shift+wheel too)."),
        Spec("sphere", "3D &ball brush", ("Shift+B",), "Paint a ball spanning neighbouring slices.", True),
        "-",
        Spec("clear_slice", "Clear mask on &slice", ("Delete",), "Erase the mask on the active view's slice."),
        Spec("clear_all", "Clear &whole mask", ("Ctrl+Shift+Delete",), "Erase the whole mask (undoable)."),
    ),
    "&View": (
        Spec("cycle_layer", "&Toggle layer", ("T",), "Cycle Original / Masked / Generated / Blended."),
        Spec("layer_original", "&Original", ("Ctrl+1",), "Show the image as loaded.", True, True, "layer"),
        Spec("layer_masked", "&Masked", ("Ctrl+2",), "Show the image with the mask voided (the model's input).",
             True, False, "layer"),
        Spec("layer_generated", "&Generated", ("Ctrl+3",), "Show the generator's output in the hole.",
             True, False, "layer"),
        Spec("layer_blended", "B&lended", ("Ctrl+4",), "Show the final, blended fill.", True, False, "layer"),
        Spec("difference", "&Difference map", ("X",), "Overlay filled minus original (red brighter, blue darker).",
             True),
        Spec("live_preview", "&Live preview", ("L",), "When a stroke ends, fill the lesion it touched in the "
             "background (refine3d without mirrored detail) and show it; Run makes the full fill.", True, True),
        Spec("uncertainty", "&Uncertainty overlay", ("Shift+U",),
             "Show the fill's predicted error (refine3d fills made here; desc-uncertainty maps of reviewed "
             "cohorts) over the views, with its colour bar. Off until turned on, so that a fill shows itself; on "
             "while a cohort is reviewed.", True, False),
        "-",
        Spec("overlay", "Mask &overlay", ("S",), "Show or hide the painted mask.", True, True),
        Spec("brain_outline", "&Brain mask outline", ("G",), "Outline a loaded brain mask in green (File > Load "
             "brain mask): check that it is this brain's before a fill.", True, True),
        Spec("opacity_down", "Overlay more transparent", ("A",), "Lower the mask overlay's opacity."),
        Spec("opacity_up", "Overlay more opaque", ("D",), "Raise the mask overlay's opacity."),
        "-",
        Spec("slice_next", "Next slice", ("PgUp", "Up"), "Move the active view one slice up (wheel too)."),
        Spec("slice_prev", "Previous slice", ("PgDown", "Down"), "Move the active view one slice down."),
        Spec("slice_next5", "Next 5 slices", ("Shift+PgUp", "Shift+Up"), "Move the active view five slices up."),
        Spec("slice_prev5", "Previous 5 slices", ("Shift+PgDown", "Shift+Down"), "Move five slices down."),
        Spec("lesion_next", "&Next lesion", ("N",), "Move the crosshair to the next lesion (a 26-connected part of "
             "the mask), slice by slice; the status bar says which and how large."),
        Spec("lesion_prev", "Previous lesion", ("Shift+N",), "Move the crosshair to the previous lesion."),
        "-",
        Spec("max_axial", "Maximise &axial", ("1",), "Show the axial view alone (again: all views)."),
        Spec("max_coronal", "Maximise &coronal", ("2",), "Show the coronal view alone (again: all views)."),
        Spec("max_sagittal", "Maximise &sagittal", ("3",), "Show the sagittal view alone (again: all views)."),
        Spec("max_none", "All &views", ("0",), "Show the three views and the histogram."),
        Spec("reset_zoom", "&Reset zoom", ("Home",), "Fit the slices in their views (Ctrl+wheel zooms, "
             "middle button pans)."),
        Spec("radiological", "&Radiological convention", ("Ctrl+L",),
             "Patient's right on the screen's left; off: neurological (right on the right).", True, True),
        Spec("crosshair", "Show cross&hair", ("H",), "Show the crosshair lines.", True, True),
        Spec("help_panel", "Show &help panel", ("F2",), "Show the mouse and key hints beside the histogram.",
             True, True),
        Spec("side_panel", "Show &settings panel", ("F3",), "Show the side panel (settings, Run, results); hide it "
             "to give a small screen to the views.", True, True),
        Spec("auto_levels", "&Auto window/level", ("W",),
             "Window/level from 0 (or the tissue's 0.5th percentile, if lower) to the 99.5th percentile of the "
             "tissue (non-zero voxels)."),
    ),
    "&Inpaint": (
        Spec("run", "&Run fill", ("Ctrl+R",), "Fill the mask with the selected model and settings."),
        Spec("cancel", "&Cancel fill", ("Esc",), "Stop the running fill; nothing changes."),
        Spec("load_checkpoint", "&Load checkpoint...", ("Ctrl+Shift+L",), "Use a model folder from disk."),
    ),
    "&Review": (
        Spec("scan_next", "&Next scan", ("Ctrl+N",), "Show the next scan in the review list's order."),
        Spec("scan_prev", "&Previous scan", ("Ctrl+Shift+N",), "Show the previous scan in the review list's order."),
        "-",
        Spec("rate_pass", "Rate &pass", ("P",), "The fill of this scan is fine (written to desc-qc_scans.tsv)."),
        Spec("rate_fail", "Rate &fail", ("F",), "The fill of this scan is wrong (written to desc-qc_scans.tsv)."),
        Spec("rate_unsure", "Rate &unsure", ("U",), "Not sure about this scan (written to desc-qc_scans.tsv)."),
        Spec("rate_comment", "&Comment...", ("Shift+C",), "A comment on this scan, kept with its rating."),
        Spec("rate_clear", "C&lear rating", ("Backspace",), "Take back this scan's rating and comment (it counts as "
             "unrated again)."),
    ),
    "&Help": (
        Spec("shortcuts", "&Keyboard and mouse", ("F1",), "List every shortcut and mouse gesture."),
        Spec("about", "&About", (), "Version and method."),
    ),
}


# actions that also get a button: painting tools, and the before/after comparison
TOOLBAR = ("tool_brush", "tool_eraser", "tool_crosshair", "sphere", "-", "cycle_layer", "layer_original",
           "layer_masked", "layer_generated", "layer_blended", "difference", "-", "overlay")


def build_actions(window: QMainWindow) -> tuple[dict[str, QAction], QMenu]:
    """Create the menus and actions on `window`; returns the actions by name and the Open Recent menu."""
    actions: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    recent = QMenu("Open &recent", window)
    for title, entries in MENUS.items():
        menu = window.menuBar().addMenu(title)
        for entry in entries:
            if entry == "-":
                menu.addSeparator()
            elif entry == "recent":
                menu.addMenu(recent)
            else:
                assert isinstance(entry, Spec)
                action = QAction(entry.text, window)
                action.setShortcuts([QKeySequence(k) for k in entry.keys])
                keys = f" ({entry.keys[0]})" if entry.keys else ""
                action.setToolTip(entry.tip.rstrip(".") + keys)  # what toolbar buttons show
                action.setStatusTip(entry.tip)
                action.setCheckable(entry.checkable)
                action.setChecked(entry.checked)
                if entry.group:
                    groups.setdefault(entry.group, QActionGroup(window)).addAction(action)
                menu.addAction(action)
                window.addAction(action)  # shortcuts work even with the menu bar hidden
                actions[entry.name] = action
    return actions, recent


def build_toolbar(window: QMainWindow, actions: dict[str, QAction]) -> QToolBar:
    """A toolbar of buttons for the TOOLBAR actions."""
    bar = window.addToolBar("Tools and layers")
    bar.setObjectName("tools")
    bar.setMovable(False)
    for name in TOOLBAR:
        if name == "-":
            bar.addSeparator()
            continue
        bar.addAction(actions[name])
    return bar


def connect_action(action: QAction, slot: Callable[[], object]) -> None:
    """Call `slot()` with no argument when `action` triggers (`triggered(bool)` never reaches it)."""
    action.triggered.connect(lambda *_: slot())


def shortcut_table(actions: dict[str, QAction]) -> list[tuple[str, str]]:
    """(action text, shortcuts) for the help dialog, in menu order."""
    rows = []
    for entries in MENUS.values():
        for entry in entries:
            if isinstance(entry, Spec) and entry.keys:
                keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in actions[entry.name].shortcuts())
                rows.append((entry.text.replace("&", "").rstrip("."), keys))
    return rows
