"""The desktop app driven like a user: real mouse and key events on an offscreen window (pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QRect, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox  # noqa: E402

from core.checkpoint import load_model  # noqa: E402
from core.fill import FillResult, FillSettings  # noqa: E402
from core.mask_editor import MaskEditor  # noqa: E402
from core.volume import load_mask, load_volume  # noqa: E402
from inpaint_gui.document import JobResult  # noqa: E402
from test_gui_support import ScriptedWindow, fake_result, viewport_point  # noqa: E402

AXIAL = 2
NONE = Qt.KeyboardModifier.NoModifier
LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton


@pytest.fixture
def window(qtbot, tmp_path, brain_files, dialogs):
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    assert w.files.open_image(brain_files[0])
    yield w
    w.forget_changes()


def drag(qtbot, view, points, button=LEFT):
    viewport = view.viewport()
    qtbot.mousePress(viewport, button, NONE, viewport_point(view, points[0]))
    for point in points[1:]:
        qtbot.mouseMove(viewport, viewport_point(view, point))
    qtbot.mouseRelease(viewport, button, NONE, viewport_point(view, points[-1]))


def hover(view, voxel):
    """Move the mouse over `voxel` without a button: a plain move event (QTest's synthetic moves are dropped
    by Qt for a second offscreen window)."""
    pos = QPointF(viewport_point(view, voxel))
    QApplication.sendEvent(view.viewport(), QMouseEvent(QEvent.Type.MouseMove, pos, pos, Qt.MouseButton.NoButton,
                                                        Qt.MouseButton.NoButton, NONE))


def wheel(view, voxel, steps, modifiers=NONE, notch=120):
    pos = QPointF(viewport_point(view, voxel))
    event = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, int(notch * steps)), Qt.MouseButton.NoButton, modifiers,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def test_demo_brain_opens_without_arguments(qtbot, tmp_path, dialogs):
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.files.open_initial(None, None)
    assert w.doc is not None and w.doc.path.name == "sub-demo_T1w_brain.nii.gz" and not w.errors
    w.forget_changes()


def test_mouse_stroke_paints_the_interpolated_capsule(qtbot, window):
    doc, view = window.doc, window.viewer.views[AXIAL]
    doc.editor.brush_size = 3
    z = int(window.viewer.point[AXIAL])
    start, end = (8, 20, z), (30, 20, z)
    drag(qtbot, view, [start, (15, 20, z), end])  # few, far-apart mouse events
    expected = MaskEditor(doc.shape, doc.spacing)
    expected.brush_size = 3
    assert doc.editor.voxel_count == expected.capsule(start, end, AXIAL).size == 3 * 25
    assert doc.editor.mask[7:32, 19:22, z].all()
    # the file-order mask (what is saved) holds the same voxels
    assert doc.mask_in_file_order()[doc.file_index((30, 20, z))]
    assert view.overlay.image[20, 30] == 1  # the overlay of the current slice was redrawn (rows, cols)


def test_right_button_erases_and_undo_redo_across_slices(qtbot, window):
    doc, view = window.doc, window.viewer.views[AXIAL]
    undo, redo = window.act["undo"], window.act["redo"]
    assert not undo.isEnabled() and not redo.isEnabled()   # a fresh image: nothing to undo or redo
    doc.editor.brush_size = 5
    z = int(window.viewer.point[AXIAL])
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    disc = doc.editor.voxel_count
    assert undo.isEnabled() and not redo.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert window.viewer.point[AXIAL] == z + 1
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z + 1)))
    doc.editor.brush_size = 1
    qtbot.mouseClick(view.viewport(), RIGHT, NONE, viewport_point(view, (20, 24, z + 1)))
    assert doc.editor.voxel_count == 2 * disc - 1 and doc.editor.mask[20, 24, z + 1] == 0
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.editor.voxel_count == 2 * disc
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the stroke on the other slice
    assert doc.editor.voxel_count == 0 and not view.overlay.image.any()
    assert not undo.isEnabled() and redo.isEnabled()   # greyed in the Edit menu, as the editor's history says
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert doc.editor.voxel_count == 2 * disc and doc.editor.mask[:, :, z].sum() == disc
    assert undo.isEnabled() and redo.isEnabled()


def test_eraser_key_and_clear_slice_are_undoable(qtbot, window):
    doc, view = window.doc, window.viewer.views[AXIAL]
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 3
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    qtbot.keyClick(window, Qt.Key.Key_E)
    assert view.tool == "eraser"
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (21, 24, z)))
    assert doc.editor.voxel_count == 3
    qtbot.keyClick(window, Qt.Key.Key_E)
    assert view.tool == "brush"
    qtbot.keyClick(window, Qt.Key.Key_Delete)
    assert doc.editor.voxel_count == 0 and "Ctrl+Z" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.editor.voxel_count == 3


def test_refused_strokes_say_why_in_the_status_bar(qtbot, window):
    view = window.viewer.views[AXIAL]
    z = int(window.viewer.point[AXIAL])
    view.box.scaleBy((3, 3))  # zoom out so that points beside the image are on screen
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (-20, -20, z)))
    assert "outside the volume" in window.statusBar().currentMessage()
    # a drag begun outside starts when it enters the image, and keeps its button's meaning (erase)
    window.doc.editor.brush_size = 3
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (5, 24, z)))
    assert window.doc.editor.voxel_count == 9
    drag(qtbot, view, [(-10, 24, z), (-3, 24, z), (5, 24, z)], button=RIGHT)
    assert window.doc.editor.voxel_count == 0
    window.doc.editor.lock("A fill is running: mask editing is locked.")
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    assert "locked" in window.statusBar().currentMessage() and window.doc.editor.voxel_count == 0
    assert window.doc.editor.can_undo  # the erase above


def test_slices_move_with_keys_and_wheel_and_show_the_right_data(qtbot, window):
    viewer, view = window.viewer, window.viewer.views[AXIAL]
    z = int(viewer.point[AXIAL])
    qtbot.keyClick(window, Qt.Key.Key_PageUp, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.point[AXIAL] == z + 5
    wheel(view, (20, 24, z + 5), -1)
    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert viewer.point[AXIAL] == z + 3
    assert np.array_equal(view.image.image, window.doc.original[:, :, z + 3].T)
    for _ in range(3):  # a smooth wheel or touchpad: a slice per full notch, not per event
        wheel(view, (20, 24, z + 3), 1, notch=40)
    assert viewer.point[AXIAL] == z + 4
    for _ in range(100):
        qtbot.keyClick(window, Qt.Key.Key_PageUp, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.point[AXIAL] == window.doc.shape[AXIAL] - 1  # clipped at the last slice
    # Ctrl+click moves the crosshair: the coronal and sagittal views follow
    qtbot.mouseClick(view.viewport(), LEFT, Qt.KeyboardModifier.ControlModifier,
                     viewport_point(view, (12, 30, viewer.point[AXIAL])))
    assert tuple(viewer.point[:2]) == (12, 30) and window.doc.editor.voxel_count == 0
    assert np.array_equal(viewer.views[1].image.image, window.doc.original[:, 30, :].T)


def test_brush_size_keys_and_shift_wheel(qtbot, window):
    editor, view = window.doc.editor, window.viewer.views[AXIAL]
    size = editor.brush_size
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)
    assert editor.brush_size == size + 1
    wheel(view, (20, 24, 10), 1, Qt.KeyboardModifier.ShiftModifier)
    assert editor.brush_size == size + 2 and window.viewer.point[AXIAL] == window.doc.shape[AXIAL] // 2
    assert f"{size + 2:g} vox" in window.brush_label.text()


def test_orientation_letters_follow_the_convention(qtbot, window):
    axial, coronal = window.viewer.views[AXIAL], window.viewer.views[1]
    z = int(window.viewer.point[AXIAL])
    right, left = (30, 24, z), (5, 24, z)  # RAS x grows towards the patient's right
    assert (axial.letters["left"].text(), axial.letters["right"].text()) == ("R", "L")
    assert (axial.letters["top"].text(), axial.letters["bottom"].text()) == ("A", "P")
    for view in window.viewer.views.values():  # a long title ("Sagittal 8 (0-49)  Blended") never hides the top letter
        assert not view.title.geometry().intersects(view.letters["top"].geometry())
    assert viewport_point(axial, right).x() < viewport_point(axial, left).x()  # the image is flipped too
    assert viewport_point(coronal, right).x() < viewport_point(coronal, left).x()
    window.act["radiological"].trigger()
    assert (axial.letters["left"].text(), axial.letters["right"].text()) == ("L", "R")
    assert viewport_point(axial, right).x() > viewport_point(axial, left).x()
    assert viewport_point(coronal, right).x() > viewport_point(coronal, left).x()
    assert coronal.letters["left"].text() == "L"
    assert window.viewer.views[0].letters["left"].text() == "A"
    assert axial.box.xInverted() is False and window.viewer.views[0].box.xInverted() is True
    # the choice is remembered for the next session
    again = ScriptedWindow(Path(window.settings.fileName()), window.script)
    qtbot.addWidget(again)
    again.files.open_image(window.doc.path)
    assert again.viewer.views[AXIAL].letters["left"].text() == "L"
    again.forget_changes()


def test_status_bar_shows_file_voxel_and_value_under_cursor(qtbot, window):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    hover(view, (10, 24, z))
    i, j, k = doc.file_index((10, 24, z))
    assert (i, j, k) == (doc.shape[0] - 1 - 10, 24, z)  # the test image is stored LAS: x is flipped
    assert f"voxel ({i}, {j}, {k})" in window.cursor_label.text()
    assert f"value {doc.volume.data[i, j, k]:.4g}" in window.cursor_label.text()



def test_on_the_results_layers_the_outline_and_readout_show_the_voxels_the_fill_changed(qtbot, window):
    """A fill with Dilate mask fills more than was painted: its layers outline what it filled and the readout says
    "filled" there (they showed the painted mask only, and a changed voxel read as outside it)."""
    from core.volume import dilate_mask
    from inpaint_gui.slice_view import OUTLINE_SUBDIVISION as F
    from scipy import ndimage

    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 5
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    painted = doc.editor.mask.copy()
    hole = dilate_mask(doc.mask_in_file_order(), 1)   # what a fill with Dilate mask 1 fills
    fill = FillResult(filled=np.where(hole, np.float32(-5), doc.volume.data), generated_hole=np.zeros(int(hole.sum()),
                      np.float32), hole=hole, axis="axial", final_loss={}, seconds=0.1, device="cpu",
                      settings=FillSettings(method="refine3d"))
    doc.set_result(JobResult(fill=fill, model=None, scope="all", dilate=1), doc.editor.state)
    window.viewer.set_layer("blended")
    filled = doc.reo.apply(hole)
    ring = next(v for v in zip(*np.nonzero(filled[:, :, z] & ~(painted[:, :, z] != 0))))   # filled, not painted
    shown = view.overlay.image.T   # the outline, OUTLINE_SUBDIVISION times finer than the voxels, (cols, rows)
    rows, cols = filled[:, :, z].shape
    per_voxel = shown.reshape(rows, F, cols, F)
    edge = filled[:, :, z] & ~ndimage.binary_erosion(filled[:, :, z], border_value=0)
    assert np.array_equal(per_voxel.any(axis=(1, 3)), edge)              # on the filled region's edge voxels...
    assert per_voxel.sum(axis=(1, 3)).max() <= 2 * F - 1                  # ...a quarter voxel wide (a corner: 7 of 16)
    hover(view, (int(ring[0]), int(ring[1]), z))
    assert window.cursor_label.text().endswith("   filled")
    window.viewer.set_layer("original")                                    # the image as loaded: the painted mask
    assert np.array_equal(view.overlay.image.T, painted[:, :, z])
    hover(view, (int(ring[0]), int(ring[1]), z))
    assert "filled" not in window.cursor_label.text() and "in mask" not in window.cursor_label.text()
    window.viewer.set_layer("blended")
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (32, 24, z)))   # a new stroke: result stale
    per_voxel = view.overlay.image.T.reshape(rows, F, cols, F)
    now = doc.editor.mask[:, :, z] != 0
    assert np.array_equal(per_voxel.any(axis=(1, 3)), now & ~ndimage.binary_erosion(now, border_value=0))
    window.forget_changes()


def test_opening_an_oblique_scan_says_the_views_show_its_voxel_grid(qtbot, window, brain_files, tmp_path):
    """A grid tilted 20 degrees in the scanner looked exactly like an upright one, its letters 20 degrees off."""
    source = nib.load(brain_files[0])
    assert "oblique" not in window.statusBar().currentMessage()
    angle = np.radians(20.0)
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    path = tmp_path / "tilted.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj), turn @ source.affine), path)
    assert window.files.open_image(path)
    assert "oblique, 20 degrees from the scanner's axes" in window.statusBar().currentMessage()


def test_the_metrics_table_is_as_tall_as_its_two_rows(window):
    """It was 6 px taller than its header and rows: an empty strip under the biharmonic row."""
    table = window.panel.metrics
    assert table.height() == table.horizontalHeader().height() + table.verticalHeader().length() + 2 * table.frameWidth()
    assert not table.verticalScrollBar().isVisible() and not table.horizontalScrollBar().isVisible()

def test_toggle_layers_keeps_window_level_and_difference_map(qtbot, window):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 5
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    fake_result(window, value=-5.0)
    window.viewer.levels_box.histogram.item.setLevels(10.0, 90.0)
    seen = []
    for _ in range(4):
        qtbot.keyClick(window, Qt.Key.Key_T)
        seen.append(window.viewer.layer)
        assert tuple(view.image.levels) == (10.0, 90.0)
        assert np.array_equal(view.image.image, doc.layer_slice(window.viewer.layer, AXIAL, z).T)
    assert seen == ["masked", "generated", "blended", "original"]
    assert view.image.image[24, 20] == doc.original[20, 24, z]
    qtbot.keyClick(window, Qt.Key.Key_T)
    assert view.image.image[24, 20] == 0  # masked: the hole is voided
    qtbot.keyClick(window, Qt.Key.Key_X)
    assert view.difference.isVisible() and view.difference.image[24, 20] == -5.0 - doc.original[20, 24, z]


def test_overlay_keys(qtbot, window):
    view = window.viewer.views[AXIAL]
    qtbot.keyClick(window, Qt.Key.Key_S)
    assert not view.overlay.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_S)
    assert view.overlay.isVisible()
    before = view.overlay.opacity()
    qtbot.keyClick(window, Qt.Key.Key_D)
    assert view.overlay.opacity() == pytest.approx(before + 0.1)
    qtbot.keyClick(window, Qt.Key.Key_A)
    qtbot.keyClick(window, Qt.Key.Key_A)
    assert view.overlay.opacity() == pytest.approx(before - 0.1)


def test_maximise_one_view(qtbot, window):
    views = window.viewer.views
    qtbot.keyClick(window, Qt.Key.Key_2)
    assert views[1].isVisible() and not views[2].isVisible() and not views[0].isVisible()
    qtbot.waitUntil(lambda: views[1].width() > 0.9 * window.viewer.width(), timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_2)
    assert all(v.isVisible() for v in views.values())


def test_save_mask_and_export_then_reload(qtbot, window, tmp_path, tiny_vae):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 3
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    out = tmp_path / "out"
    out.mkdir()
    saved = out / doc.default_name("mask")
    assert window.files.save_mask_to(saved) and not doc.editor.modified
    assert np.array_equal(load_mask(out / "sub-01_label-lesion_mask.nii.gz", doc.volume), doc.mask_in_file_order())
    saved_bytes = saved.read_bytes()
    filled = fake_result(window, value=33.0, model=load_model(tiny_vae))
    assert window.isWindowModified()
    assert window.files.export_to(out / "sub-01_desc-inpainted_T1w")  # no extension typed: NIfTI
    assert not window.questions and not window.isWindowModified()
    reloaded = load_volume(out / "sub-01_desc-inpainted_T1w.nii.gz")
    assert np.array_equal(reloaded.data, filled) and np.allclose(reloaded.affine, doc.volume.affine)
    sidecar = json.loads((out / "sub-01_desc-inpainted_T1w.json").read_text())
    assert sidecar["hole_voxels"] == 9 and sidecar["app"] == "inpaint-gui"
    # the export writes its own mask: the mask's file (Ctrl+S writes it again later) is not the export's
    beside = out / "sub-01_desc-inpainted_label-lesion_mask.nii.gz"
    assert sidecar["mask"]["path"] == str(beside.resolve()) and saved.read_bytes() == saved_bytes
    assert np.array_equal(load_mask(beside, doc.volume), doc.result.fill.hole)


def test_export_beside_a_different_saved_mask_asks_and_keeps_it(qtbot, window, tmp_path, tiny_vae):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 3
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    fake_result(window, value=33.0, model=load_model(tiny_vae))
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (10, 24, z)))  # painted after the fill
    saved = tmp_path / doc.default_name("mask")   # a mask saved by another session, not this document's file
    nib.save(nib.Nifti1Image(doc.mask_in_file_order().astype(np.uint8), doc.volume.affine), saved)
    window.answers.append(QMessageBox.StandardButton.No)
    assert window.files.export_to(tmp_path / doc.default_name("inpainted"))
    assert "holds another mask" in window.questions[-1]
    assert load_mask(saved, doc.volume).sum() == 18  # the user's mask is kept
    beside = tmp_path / "sub-01_desc-inpainted_label-lesion_mask.nii.gz"
    assert np.array_equal(load_mask(beside, doc.volume), doc.result.fill.hole)
    sidecar = json.loads((tmp_path / "sub-01_desc-inpainted_T1w.json").read_text())
    assert sidecar["mask"]["path"] == str(beside.resolve()) and len(sidecar["mask"]["sha256"]) == 64
    window.answers.append(QMessageBox.StandardButton.Cancel)
    assert not window.files.export_to(tmp_path / "again.nii.gz") and not (tmp_path / "again.nii.gz").exists()


def test_closing_with_an_unsaved_mask_prompts(qtbot, window):
    view = window.viewer.views[AXIAL]
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, int(window.viewer.point[AXIAL]))))
    window.answers.append(QMessageBox.StandardButton.Cancel)
    assert not window.close() and window.isVisible() and "painted mask" in window.questions[-1]
    window.answers.append(QMessageBox.StandardButton.Discard)
    assert window.close() and not window.isVisible()


def test_unsaved_mask_prompts_before_opening_another(qtbot, window, brain_files):
    view, doc = window.viewer.views[AXIAL], window.doc
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, int(window.viewer.point[AXIAL]))))
    window.answers.append(QMessageBox.StandardButton.Cancel)
    assert not window.files.open_image(brain_files[0]) and window.doc is doc
    assert "painted mask" in window.questions[-1]
    window.answers.append(QMessageBox.StandardButton.Discard)
    assert window.files.open_image(brain_files[0]) and window.doc is not doc


def test_errors_become_one_sentence_dialogs(qtbot, window, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    doc = window.doc
    assert not window.files.open_image(broken) and window.doc is doc
    other = tmp_path / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), other)
    assert not window.files.import_mask(other)
    assert len(window.errors) == 2 and "broken.nii.gz" in window.errors[0] and "shape" in window.errors[1]


def test_mask_option_and_recent_files(qtbot, window, brain_files, tmp_path):
    image, mask, hole = brain_files
    window.answers.append(QMessageBox.StandardButton.Discard)
    assert window.files.open_image(image, mask)
    assert np.array_equal(window.doc.mask_in_file_order(), hole) and not window.doc.editor.modified
    assert window.settings.value("recentFiles")[0] == str(image.resolve())
    assert [a.text() for a in window.recent_menu.actions()] == [str(image.resolve())]
    other = tmp_path / "sub-02_T1w.nii.gz"
    other.write_bytes(image.read_bytes())
    assert window.files.open_image(other)
    recent = window.recent_menu.actions()
    assert [a.text() for a in recent] == [str(other.resolve()), str(image.resolve())]
    recent[1].trigger()
    assert window.doc.path.resolve() == image.resolve()
    other.unlink()  # a recent file that has gone away is reported and dropped from the list
    window.recent_menu.actions()[1].trigger()
    assert "no longer exists" in window.errors[-1] and window.doc.path.resolve() == image.resolve()
    assert [a.text() for a in window.recent_menu.actions()] == [str(image.resolve())]


def test_mask_on_another_grid_still_opens_the_image(qtbot, window, brain_files, tmp_path):
    other = tmp_path / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), other)
    previous = window.doc
    assert window.files.open_image(brain_files[0], other)
    assert window.doc is not previous and window.doc.editor.voxel_count == 0
    assert len(window.errors) == 1 and "shape" in window.errors[0]


def test_a_file_dropped_anywhere_opens(qtbot, window, brain_files):
    from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent
    from PySide6.QtWidgets import QGraphicsView

    # a real drag goes to the first widget under the cursor that accepts drops: it must be the window
    for view in window.findChildren(QGraphicsView):
        widget = view.viewport()
        while not widget.acceptDrops():
            widget = widget.parentWidget()
        assert widget is window, view
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(brain_files[0]))])
    pos = QPoint(300, 300)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, data, LEFT, NONE)
    QApplication.sendEvent(window, enter)
    move = QDragMoveEvent(pos, Qt.DropAction.CopyAction, data, LEFT, NONE)
    move.ignore()
    QApplication.sendEvent(window, move)
    assert enter.isAccepted() and move.isAccepted()
    previous = window.doc
    QApplication.sendEvent(window, QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, data, LEFT, NONE))
    qtbot.waitUntil(lambda: window.doc is not previous, timeout=2000)
    assert window.doc.path == brain_files[0]


def test_toolbar_buttons_toggle_the_layers(qtbot, window):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    fake_result(window, value=-5.0)
    window.viewer.levels_box.histogram.item.setLevels(10.0, 90.0)
    button = window.toolbar.widgetForAction(window.act["layer_blended"])
    assert button is not None and button.isVisible() and "Ctrl+4" in button.toolTip()
    qtbot.mouseClick(button, LEFT)
    assert window.viewer.layer == "blended" and view.image.image[24, 20] == -5.0
    qtbot.mouseClick(window.toolbar.widgetForAction(window.act["cycle_layer"]), LEFT)
    assert window.viewer.layer == "original" and view.image.image[24, 20] == doc.original[20, 24, z]
    assert tuple(view.image.levels) == (10.0, 90.0)


def test_the_context_window_stays_odd(window):
    box = window.panel.form.window
    box.setValue(4)
    box.editingFinished.emit()
    assert box.value() == 5 and window.panel.form.fill_settings(1).window == 5


def test_brush_outline_follows_the_cursor_and_the_size(qtbot, window):
    view = window.viewer.views[AXIAL]
    z = int(window.viewer.point[AXIAL])
    hover(view, (20, 24, z))
    rect = view.outline.rect()
    assert view.outline.isVisible() and rect.center().x() == pytest.approx(20.5 * view._spacing[0])
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert view.outline.rect().width() > rect.width() and view.outline.rect().center() == rect.center()


def test_every_action_is_in_a_menu_with_its_shortcut(window):
    in_menus = {a for menu in window.menuBar().findChildren(type(window.recent_menu)) for a in menu.actions()}
    for name, action in window.act.items():
        assert action in in_menus, name
    for name in ("undo", "redo", "cycle_layer", "overlay", "brush_bigger", "run", "cancel", "export"):
        assert window.act[name].shortcuts(), name
    assert [k.toString() for k in window.act["redo"].shortcuts()] == ["Ctrl+Shift+Z", "Ctrl+Y"]


def test_command_line_help():
    from inpaint_gui.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


def test_the_app_says_at_start_which_plugin_methods_were_left_out(qtbot, tmp_path, monkeypatch, capsys):
    """`inpaint-gui` as started by its entry point: the demo brain opens and the status bar then names the broken
    plug-ins (the opening's own message must not hide it)."""
    import sys

    from PySide6.QtCore import QSettings, QTimer

    import core.methods
    import inpaint_gui.app as app_module
    import inpaint_gui.main_window as main_window
    from core.methods.plugins import Plugins
    from inpaint_gui.main_window import MainWindow

    problems = ["The fill method plug-in aaa (aaa-fill 0.1) is left out: ImportError: no module named x; "
                "update or uninstall aaa-fill 0.1.",
                "The fill method plug-in bbb (bbb-fill 0.2) is left out: it is not a FillMethod; "
                "update or uninstall bbb-fill 0.2."]
    monkeypatch.setattr(core.methods, "PLUGINS", Plugins(sources={}, problems=problems))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(main_window, "QSettings", lambda: QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))

    def exit_(status: int):
        raise SystemExit(status)

    monkeypatch.setattr(app_module.os, "_exit", exit_)
    seen: dict = {}

    def look() -> None:   # once the demo brain is open and the app is idle, read the status bar and close
        window = next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)), None)
        if window is None or window.doc is None or window.jobs.running:
            QTimer.singleShot(50, look)
            return
        QTimer.singleShot(300, lambda: (seen.setdefault("message", window.statusBar().currentMessage()),
                                        window.close()))

    QTimer.singleShot(0, look)
    with pytest.raises(SystemExit) as exit_info:
        app_module.main([])
    assert exit_info.value.code == 0
    assert seen["message"] == " ".join(problems)
    assert capsys.readouterr().err.count("inpaint-gui: note: The fill method plug-in") == 2


def test_unexpected_errors_become_a_dialog(window, monkeypatch):
    import sys

    from inpaint_gui.app import install_excepthook

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(window)
    try:
        raise KeyError("boom")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    assert window.errors and window.errors[0].startswith("Unexpected error (KeyError")


def test_model_list_selects_the_default_and_offers_checkpoints(window, tiny_vae):
    from core.registry import ModelInfo

    infos = [ModelInfo(name=n, kind="vae", kernel=3, size=96, spacing=2.0, axis=axis, path=tiny_vae, source="shipped")
             for n, axis in (("a", "axial"), ("b", "coronal"))]
    window.panel.form.set_models(infos, "b")
    assert window.panel.model_choice() == ("b", "coronal")
    assert window.panel.form.model.itemText(window.panel.form.model.count() - 1) == "Load checkpoint..."
    assert window.load_checkpoint(tiny_vae)
    assert window.panel.model_choice() == (str(tiny_vae), "axial") and window.act["run"].isEnabled()
    assert not window.load_checkpoint(tiny_vae.parent / "missing") and "missing" in window.errors[-1]


def test_only_the_chosen_methods_fields_are_shown(qtbot, window):
    form = window.panel.form
    form.method.setCurrentIndex(form.method.findData("refine3d"))
    assert form.mirror.isVisibleTo(form) and form.dilate.isVisibleTo(form)
    assert not any(w.isVisibleTo(form) for w in (form.iterations, form.lam, form.restarts, form.window, form.blend,
                                                  form.model))
    form.method.setCurrentIndex(form.method.findData("slices2d"))
    assert all(w.isVisibleTo(form) for w in (form.iterations, form.lam, form.restarts, form.window, form.blend,
                                              form.model))
    assert not form.mirror.isVisibleTo(form) and form.fill_settings(0).method == "slices2d"
    form.method.setCurrentIndex(form.method.findData("poisson3d"))
    assert form.iterations.isVisibleTo(form) and not form.blend.isVisibleTo(form)


def test_focused_fields_keep_their_arrow_keys(qtbot, window):
    window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("slices2d"))
    viewer, iterations = window.viewer, window.panel.form.iterations
    z, value = int(viewer.point[AXIAL]), iterations.value()
    iterations.setFocus()
    qtbot.keyClick(iterations, Qt.Key.Key_Up)
    assert iterations.value() == value + iterations.singleStep() and viewer.point[AXIAL] == z
    viewer.views[AXIAL].setFocus()  # what a click on a view does
    qtbot.keyClick(viewer.views[AXIAL], Qt.Key.Key_PageUp)
    assert viewer.point[AXIAL] == z + 1 and iterations.value() == value + iterations.singleStep()


def test_per_slice_losses_use_the_view_numbers_and_jump_there(qtbot, window):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    fake_result(window)
    doc.result.fill.final_loss.clear()
    doc.result.fill.final_loss.update({z: 1.5, z + 3: 2.5})
    window.panel.show_result(doc.result, 2, "9 vox (0.07 ml)")
    table = window.panel.losses
    assert [table.item(r, 0).text() for r in range(2)] == [str(z), str(z + 3)]
    assert view.title.text().startswith(f"Axial {z} ")
    table.cellClicked.emit(1, 0)
    assert window.viewer.point[AXIAL] == z + 3 and view.title.text().startswith(f"Axial {z + 3} ")
    sidecar_keys = {str(k) for k in doc.result.fill.final_loss}  # the sidecar's final_loss_per_slice keys
    assert {table.item(r, 0).text() for r in range(2)} == sidecar_keys


def test_open_dicom_folder(qtbot, window, tmp_path, monkeypatch):
    from test_volume import _write_dicom_series

    folder = tmp_path / "dicom_T1w"
    _write_dicom_series(folder, np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5), spacing=(1.0, 1.0, 2.0),
                        origin=(0.0, 0.0, 0.0))
    window.script.paths.append(folder)
    window.act["open_dicom"].trigger()
    assert not window.errors and window.doc.path == folder and window.doc.volume.shape == (5, 6, 4)
    assert window.doc.default_name("mask") == "dicom_label-lesion_mask.nii.gz"
    window.act["save_mask_as"].trigger()   # cancelled; the dialog started beside the series, not inside it
    assert Path(window.script.starts[-1]) == (tmp_path / "dicom_label-lesion_mask.nii.gz").resolve()


def test_window_level_fields_auto_and_log_histogram(qtbot, window):
    box, view = window.viewer.levels_box, window.viewer.views[AXIAL]
    box.low.setValue(20.0)
    box.high.setValue(80.0)
    assert box.levels == (20.0, 80.0) and tuple(view.image.levels) == (20.0, 80.0)
    box.histogram.item.setLevels(10.0, 90.0)  # dragging the bounds updates the fields
    assert (box.low.value(), box.high.value()) == (10.0, 90.0)
    qtbot.keyClick(window, Qt.Key.Key_W)
    tissue = window.doc.original[window.doc.original != 0]
    assert box.levels == pytest.approx((0.0, float(np.percentile(tissue, 99.5))), rel=0.02)
    counts = box.histogram.item.plot.getData()[1].copy()
    box.log.setChecked(True)
    assert np.allclose(box.histogram.item.plot.getData()[1], np.log10(1 + counts))



def test_the_histogram_of_a_whole_number_image_has_a_bin_per_value_not_a_comb(qtbot, window):
    """uint8-like images (ds002748) drew alternate long and short bins: bins of a width that is not a whole number
    hold one value or two in turn."""
    box = window.viewer.levels_box
    rng = np.random.default_rng(0)
    values = np.clip(np.rint(rng.normal(100, 20, 50000)), 1, 255).astype(np.float32)   # stored as float32, as read
    box.set_values(values)
    x, y = box.histogram.item.plot.getData()
    assert np.allclose(np.diff(x), np.round(np.diff(x))) and np.diff(x).min() >= 1   # whole-number bins
    middle = y[(x > 80) & (x < 120)]   # around the peak no bin is nearly empty between two full ones
    assert middle.min() > 0.5 * middle.max()

def test_help_panel_is_optional_and_the_difference_map_has_a_scale(qtbot, window):
    viewer = window.viewer
    assert viewer.help.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F2)
    assert not viewer.help.isVisible() and viewer.levels_box.isVisible()
    z = int(viewer.point[AXIAL])
    qtbot.mouseClick(viewer.views[AXIAL].viewport(), LEFT, NONE, viewport_point(viewer.views[AXIAL], (20, 24, z)))
    fake_result(window, value=-5.0)
    qtbot.keyClick(window, Qt.Key.Key_X)
    scale = viewer.levels_box.difference
    assert scale.isVisible() and scale.high.text() == f"+{window.doc.difference_range:.3g}"
    qtbot.keyClick(window, Qt.Key.Key_X)
    assert not scale.isVisible()


def test_cursor_readout_follows_slice_changes_and_undo(qtbot, window):
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    hover(view, (20, 24, z))
    assert window.cursor_label.text().startswith(f"axial {z} ") and "in mask" not in window.cursor_label.text()
    qtbot.keyClick(window, Qt.Key.Key_PageUp)  # the cursor stays; the slice under it changes
    assert window.cursor_label.text().startswith(f"axial {z + 1} ")
    assert f"value {doc.original[20, 24, z + 1]:.4g}" in window.cursor_label.text()
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z + 1)))
    assert "in mask" in window.cursor_label.text()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "in mask" not in window.cursor_label.text()


def test_default_names_do_not_repeat_t1w(window, tmp_path):
    from inpaint_gui.document import Document

    source = tmp_path / "sub-demo_T1w_brain.nii.gz"
    source.write_bytes(window.doc.path.read_bytes())
    doc = Document.open(source)
    assert doc.default_name("inpainted") == "sub-demo_brain_desc-inpainted_T1w.nii.gz"
    assert doc.default_name("mask") == "sub-demo_brain_label-lesion_mask.nii.gz"
    assert window.doc.default_name("inpainted") == "sub-01_desc-inpainted_T1w.nii.gz"


def test_file_dialogs_start_in_the_last_folder(window, tmp_path):
    script = window.script
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script.paths.append(elsewhere / "mask.nii.gz")
    window.act["save_mask_as"].trigger()
    script.paths.append(None)  # cancelled
    window.act["import_mask"].trigger()
    assert script.starts[-1] == str(elsewhere.resolve())


def test_views_keep_their_space_in_a_small_window(qtbot, window):
    window.resize(800, 520)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.width() < 600, timeout=2000)
    axial, coronal = viewer.views[AXIAL], viewer.views[1]
    assert axial.height() >= 0.45 * viewer.height() and coronal.height() >= 0.45 * viewer.height()
    assert axial.width() >= 0.45 * viewer.width()


def test_a_single_slice_image_shows_as_a_thin_slab_in_the_other_views(qtbot, window, tmp_path):
    """Its side views were zoomed until the one-voxel slab filled them (the pan limits were 3 voxels tall)."""
    image = nib.load(window.doc.path)
    one = tmp_path / "one_slice.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 20:21].astype(np.float32), image.affine), one)
    assert window.files.open_image(one)
    for axis in (0, 1):                                  # sagittal and coronal: the slab is one row
        (x0, x1), (y0, y1) = window.viewer.views[axis].box.viewRange()
        assert y1 - y0 > 20 * 2.0 and (x1 - x0) / (y1 - y0) < 5   # many voxels tall, aspect kept


def test_the_first_window_fits_a_small_screen(qtbot, tmp_path, dialogs):
    """It asked for 1400 x 900 whatever the screen, so a 1400 x 900 screen hid its status bar behind the title bar."""
    from inpaint_gui.dialogs import FRAME

    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    area = w.screen().availableGeometry()   # offscreen: 800 x 800, smaller than the window's own 1400 x 900
    assert w.width() + FRAME.width() <= area.width() and w.height() + FRAME.height() <= area.height()
    w.show()
    qtbot.waitExposed(w)
    status = w.statusBar()
    assert area.contains(w.frameGeometry()) and status.isVisible()
    assert area.contains(QRect(status.mapToGlobal(QPoint(0, 0)), status.size()))


def test_the_shortcuts_window_fits_the_screen_and_scrolls(qtbot, window):
    """F1 was a message box as tall as its 45 rows (1068 px): its last rows and OK lay below a 900 px screen."""
    qtbot.keyClick(window, Qt.Key.Key_F1)
    shortcuts = window.shortcuts
    assert shortcuts.isVisible() and not window.script.infos
    area = shortcuts.screen().availableGeometry()
    assert area.contains(shortcuts.frameGeometry())
    ok = shortcuts.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isVisible() and shortcuts.rect().contains(QRect(ok.mapTo(shortcuts, QPoint(0, 0)), ok.size()))
    scroll = shortcuts.scroll.verticalScrollBar()
    assert scroll.maximum() > 0  # taller than the 800 px offscreen screen: the rows scroll, the OK button stays
    for action in window.act.values():
        if action.shortcuts():
            assert action.text().replace("&", "").rstrip(".") in shortcuts.table.text()
    assert "Drop a file" in shortcuts.table.text()
    qtbot.mouseClick(ok, LEFT)
    assert not shortcuts.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F1)  # again: the same window
    assert window.shortcuts is shortcuts and shortcuts.isVisible()
    shortcuts.close()


def test_dialogs_after_the_demo_brain_start_in_the_users_folder_not_the_apps(qtbot, window, tmp_path):
    """Opening the bundled demo brain made its folder (resources/demo, site-packages in a wheel) the start of every
    later file dialog, the export's included."""
    from core.resources import DEMO_BRAIN

    script = window.script
    users = str(tmp_path.resolve())       # the test image was opened from here
    window.files.open_initial(None, None)  # the demo brain
    assert window.doc.path == DEMO_BRAIN
    fake_result(window)
    script.paths.append(None)              # cancelled
    window.act["export"].trigger()
    assert script.starts[-1] == str(Path(users) / window.doc.default_name("inpainted"))
    script.paths.append(None)
    window.act["open"].trigger()
    assert script.starts[-1] == users
    window.settings.setValue("lastDir", str(DEMO_BRAIN.parent))  # left by an earlier version: not used either
    script.paths.append(None)
    window.act["save_mask_as"].trigger()
    assert script.starts[-1] == str(Path.home() / window.doc.default_name("mask"))


def test_an_unreadable_file_is_refused_before_the_question_about_unsaved_work(qtbot, window, tmp_path, brain_files):
    """File > Open asked 'Save ... before closing?' first: after Discard, the unreadable file left the old image open
    with changes the user had just 'discarded'."""
    view, doc = window.viewer.views[AXIAL], window.doc
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, int(window.viewer.point[AXIAL]))))
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    empty = tmp_path / "not_dicom"
    empty.mkdir()
    window.script.paths.extend([broken, empty])
    window.act["open"].trigger()
    window.act["open_dicom"].trigger()
    assert len(window.errors) == 2 and "broken.nii.gz" in window.errors[0] and "not_dicom" in window.errors[1]
    assert not window.questions and window.doc is doc and doc.editor.modified  # nothing asked, nothing dropped
    window.script.paths.append(brain_files[0])
    window.answers.append(QMessageBox.StandardButton.Discard)
    window.act["open"].trigger()  # a readable file: asked, then opened
    assert "painted mask" in window.questions[-1] and window.doc is not doc and not window.doc.editor.modified


def test_a_negative_zero_reads_as_0_under_the_cursor(qtbot, window, tmp_path):
    image = nib.load(window.doc.path)
    data = np.asarray(image.dataobj).astype(np.float32)
    data[data == 0] = -0.0               # as scaled files store their background
    path = tmp_path / "negative_zero.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), path)
    assert window.files.open_image(path)
    hover(window.viewer.views[AXIAL], (1, 1, int(window.viewer.point[AXIAL])))  # the background
    assert window.cursor_label.text().endswith("value 0") and "-0" not in window.cursor_label.text()


def test_keys_reach_the_views_again_after_a_window_level_is_typed(qtbot, window):
    """The field kept the keyboard: W (and every other one-key shortcut) did nothing until a view was clicked."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    box = window.viewer.levels_box
    box.low.setFocus()
    box.low.selectAll()
    qtbot.keyClicks(box.low, "25")
    qtbot.keyClick(box.low, Qt.Key.Key_Return)
    assert box.levels[0] == 25.0
    focused = QApplication.focusWidget()
    assert focused is window.viewer.views[window.viewer.active]
    qtbot.keyClick(focused, Qt.Key.Key_W)  # the key goes where the keyboard is
    assert box.levels[0] == 0.0  # auto window/level


def test_a_choice_in_a_list_or_return_in_a_number_gives_the_keys_back_to_the_views(qtbot, window):
    """The method list kept the keyboard after a choice: the next Down changed the method, not the slice."""
    form, viewer = window.panel.form, window.viewer
    window.activateWindow()
    form.method.setFocus()
    qtbot.waitUntil(form.method.hasFocus, timeout=2000)
    chosen = form.method.currentIndex()
    qtbot.keyClick(form.method, Qt.Key.Key_Down)   # a choice made with the keyboard, as with the list's popup
    assert form.method.currentIndex() != chosen
    qtbot.waitUntil(lambda: QApplication.focusWidget() is viewer.views[viewer.active], timeout=2000)
    method, z = form.method.currentIndex(), int(viewer.point[viewer.active])
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Up)
    assert form.method.currentIndex() == method and int(viewer.point[viewer.active]) != z
    form.dilate.setFocus()
    qtbot.waitUntil(form.dilate.hasFocus, timeout=2000)
    qtbot.keyClick(form.dilate, Qt.Key.Key_Up)      # a focused number keeps its arrows ...
    assert form.dilate.value() == 1 and form.dilate.hasFocus()
    qtbot.keyClick(form.dilate, Qt.Key.Key_Return)  # ... until Return
    qtbot.waitUntil(lambda: QApplication.focusWidget() is viewer.views[viewer.active], timeout=2000)


def test_no_loss_plot_or_per_slice_table_before_any_fill(qtbot, tmp_path, dialogs):
    """With no image open they showed, empty, while the default method has no latent search."""
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    panel = w.panel
    assert not panel.loss_plot.isVisibleTo(panel) and not panel.losses.isVisibleTo(panel)
    assert not panel.losses_label.isVisibleTo(panel)


def test_the_readout_gives_the_value_of_each_overlay_shown(qtbot, window):
    """With the difference (X) or the predicted error (Shift+U) shown, the readout gave only the image's values."""
    view, doc = window.viewer.views[AXIAL], window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.brush_size = 3
    qtbot.mouseClick(view.viewport(), LEFT, NONE, viewport_point(view, (20, 24, z)))
    hole = doc.mask_in_file_order()
    fill = FillResult(filled=np.where(hole, doc.volume.data - 7, doc.volume.data), generated_hole=np.zeros(
        int(hole.sum()), np.float32), hole=hole, axis="axial", final_loss={}, seconds=0.1, device="cpu",
        settings=FillSettings(method="refine3d"), uncertainty=np.full(int(hole.sum()), 2.5, np.float32))
    doc.set_result(JobResult(fill=fill, model=None, scope="all"), doc.editor.state)
    window._update_state()
    window.viewer.set_layer("blended")
    hover(view, (20, 24, z))
    assert "difference" not in window.cursor_label.text()
    window.act["difference"].trigger()
    assert "   difference -7" in window.cursor_label.text()
    window.act["uncertainty"].trigger()
    assert "   predicted error SD 2.5" in window.cursor_label.text()


def test_the_brush_keeps_its_size_from_one_image_to_the_next(qtbot, window, brain_files):
    """Every image opened with the default brush again (ITK-SNAP keeps it)."""
    before = window.doc.editor.brush_size
    for _ in range(3):
        window.act["brush_bigger"].trigger()
    assert window.doc.editor.brush_size == before + 3
    window.forget_changes()
    assert window.files.open_image(brain_files[0])
    assert window.doc.editor.brush_size == before + 3 and f"{before + 3:g} vox" in window.brush_label.text()


def test_f3_hides_the_side_panel_for_the_views_and_its_close_button_agrees(qtbot, window):
    """On a small screen the panel kept its width and the views shrank to a strip: it can be hidden now."""
    dock, action = window.panel_dock, window.act["side_panel"]
    width = window.viewer.width()
    qtbot.keyClick(window, Qt.Key.Key_F3)
    assert not action.isChecked() and not dock.isVisible()
    qtbot.waitUntil(lambda: window.viewer.width() > width, timeout=2000)   # the views take the room
    action.trigger()
    assert dock.isVisible()
    dock.close()                                                            # its own close button
    assert not action.isChecked()
