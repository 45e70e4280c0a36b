"""Every menu action triggered through its QAction, dialogs answered by patching Qt's static methods (pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QAction  # noqa: E402
from PySide6.QtWidgets import QMenu, QMessageBox  # noqa: E402

from core.checkpoint import load_model  # noqa: E402
from core.volume import load_mask  # noqa: E402
from inpaint_gui.slice_view import OUTLINE_SUBDIVISION  # noqa: E402
from test_gui_support import ScriptedWindow, fake_result, viewport_point  # noqa: E402

AXIAL = 2
Yes, No, Discard = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No, QMessageBox.StandardButton.Discard


def menu_actions(window) -> list[QAction]:
    """Every action of every menu and submenu, in menu order."""
    found: list[QAction] = []

    def walk(menu: QMenu) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu())
            elif not action.isSeparator():
                found.append(action)

    for top in window.menuBar().actions():
        walk(top.menu())
    return found


def paint(qtbot, window, voxel) -> None:
    view = window.viewer.views[AXIAL]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(view, voxel))


@pytest.fixture
def window(qtbot, tmp_path, brain_files, tiny_vae, dialogs, monkeypatch):
    from inpaint_gui.app import install_excepthook

    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(w)  # as the app does: an error in a slot becomes an "Unexpected error" dialog
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    assert w.files.open_image(brain_files[0]) and w.load_checkpoint(tiny_vae)
    w.doc.editor.brush_size = 3
    yield w
    w.forget_changes()


def test_every_menu_action_triggers_without_an_unexpected_error(qtbot, window, brain_files, tiny_vae, tmp_path):
    from test_volume import _write_dicom_series

    image, mask, _ = brain_files
    brain = tmp_path / "brain.nii.gz"
    source = nib.load(image)
    nib.save(nib.Nifti1Image((source.get_fdata() > 0).astype(np.uint8), source.affine), brain)
    folder = tmp_path / "dicom"
    _write_dicom_series(folder, np.ones((4, 6, 5), np.int16), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    out = tmp_path / "out"
    out.mkdir()
    paint(qtbot, window, (20, 24, int(window.viewer.point[AXIAL])))
    fake_result(window, model=load_model(tiny_vae))
    script = window.script
    # what each dialog answers, by action (Save mask writes the imported mask's file without asking);
    # the File menu's open actions and Quit go last (they end the document)
    prepare = {
        "&Import mask...": lambda: (script.answers.append(Yes), script.paths.append(mask)),
        "Load &brain mask...": lambda: script.paths.append(brain),
        "Save mask &as...": lambda: script.paths.append(out / "saved_as_mask.nii.gz"),
        "&Export filled volume...": lambda: (script.paths.append(out / "export.nii.gz"), script.answers.append(No)),
        "&Load checkpoint...": lambda: script.paths.append(tiny_vae / "model.safetensors"),
        "&Open image...": lambda: (script.paths.append(image), script.answers.append(Discard)),
        "Open &DICOM folder...": lambda: (script.paths.append(folder), script.answers.append(Discard)),
        "&Quit": lambda: script.answers.append(Discard),
        # Edit > Clear whole mask came before: undo it, and make the fill last until Cancel fill stops it
        "&Run fill": lambda: (window.viewer.painter.apply_history(True), window.panel.form.iterations.setValue(100000),
                              window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("slices2d"))),
    }
    last = ("&Open image...", "Open &DICOM folder...", "&Quit")
    actions = menu_actions(window)
    recent = [a for a in actions if a.text() == str(image.resolve())]
    assert recent, "the opened image is in File > Open recent"
    ordered = [a for a in actions if a.text() not in last and a not in recent] + recent + \
        sorted((a for a in actions if a.text() in last), key=lambda a: last.index(a.text()))
    assert len(ordered) == len(actions) == len(window.act) + len(recent)
    triggered = []
    for action in ordered:
        prepare.get(action.text(), lambda: None)()
        enabled = action.isEnabled()
        action.trigger()
        qtbot.wait(1)
        if action.text() == "&Run fill":
            assert window.jobs.running  # Cancel fill comes next in the menu and stops it
        assert not script.unexpected(), (action.text(), script.unexpected())
        assert not script.errors, (action.text(), script.errors)
        triggered.append((action.text(), enabled))
    # the Review menu acts on a cohort under review (none here: File > Review cohort... was cancelled)
    reviewing = ["&Next scan", "&Previous scan", "Rate &pass", "Rate &fail", "Rate &unsure", "&Comment...",
                 "C&lear rating"]
    disabled = [text for text, enabled in triggered if not enabled and text not in reviewing]
    assert disabled == ["Forget brain mask"] or disabled == [], disabled  # everything else was live
    assert [text for text, enabled in triggered if text in reviewing and not enabled] == reviewing
    assert (out / "saved_as_mask.nii.gz").is_file() and (out / "export.nii.gz").is_file()
    assert (out / "export.json").is_file() and not window.isVisible()  # Quit closed the window
    assert not script.paths  # every file dialog that was prepared for was shown


def test_a_fill_is_shown_where_the_user_looks_or_on_the_lesions_largest_slice(qtbot, window):
    z = int(window.viewer.point[AXIAL])
    for dz, size in ((-1, 1), (0, 5), (1, 1)):  # a lesion whose middle slice is its largest
        window.viewer.show_slice("axial", z + dz)
        window.doc.editor.brush_size = size
        paint(qtbot, window, (20, 24, z + dz))
    form = window.panel.form
    form.scope.setCurrentIndex(form.scope.findData("all"))
    form.method.setCurrentIndex(form.method.findData("refine3d"))
    window.viewer.show_slice("axial", z + 6)  # looking away from the lesion
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    qtbot.waitUntil(lambda: window.jobs.idle, timeout=5000)
    point = window.viewer.point
    assert point[AXIAL] == z and window.doc.editor.mask[tuple(point)]  # not its first slice, z - 1
    inside = np.argwhere(window.doc.editor.mask[:, :, z + 1])[0]
    window.viewer.show_point(np.array([inside[0], inside[1], z + 1]), "axial")  # looking at the lesion
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    assert list(window.viewer.point) == [inside[0], inside[1], z + 1]  # the view stays



def test_export_in_the_inputs_data_type_keeps_its_stored_values_outside_the_fill(qtbot, window, brain_files, tmp_path):
    """File > Export in the input's data type writes an int16 scan with its slope as int16 (it was always float32, the
    app had no --keep-dtype); the choice is remembered."""
    source = nib.load(brain_files[0])
    stored = np.clip(np.rint(source.get_fdata() * 2), -32768, 32767).astype(np.int16)
    scaled = nib.Nifti1Image(stored, source.affine)
    scaled.header.set_slope_inter(0.5, 0.0)
    path = tmp_path / "scan_T1w.nii.gz"
    nib.save(scaled, path)
    assert window.files.open_image(path)
    paint(qtbot, window, (20, 24, int(window.viewer.point[AXIAL])))
    fake_result(window, value=33.3)
    window.act["keep_dtype"].trigger()
    assert window.settings.value("exportKeepDtype", type=bool)
    out = tmp_path / "out"
    out.mkdir()
    window.script.paths.append(out / "filled.nii.gz")
    window.act["export"].trigger()
    written = nib.load(out / "filled.nii.gz")
    hole = window.doc.result.fill.hole
    assert written.get_data_dtype() == np.int16 and (written.dataobj.slope, written.dataobj.inter) == (0.5, 0.0)
    raw = np.asarray(written.dataobj.get_unscaled())
    assert np.array_equal(raw[~hole], stored[~hole]) and np.all(raw[hole] == 67)   # 33.3 / 0.5, rounded
    assert json.loads((out / "filled.json").read_text())["keep_dtype"] is True
    window.act["keep_dtype"].trigger()   # off again: float32
    window.script.paths.append(out / "filled_float.nii.gz")
    window.act["export"].trigger()
    assert nib.load(out / "filled_float.nii.gz").get_data_dtype() == np.float32

def test_save_save_as_and_export_from_the_menu_and_keys_write_correct_files(qtbot, window, brain_files, tmp_path):
    image, _, _ = brain_files
    z = int(window.viewer.point[AXIAL])
    for dz in (0, 1):
        window.viewer.show_slice("axial", z + dz)
        paint(qtbot, window, (20, 24, z + dz))
    script, doc = window.script, window.doc
    window.panel.form.iterations.setValue(2)
    window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("slices2d"))  # per-slice losses
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    assert window.viewer.point[AXIAL] == z + 1  # the view stays where the user last painted
    out = tmp_path / "out"
    out.mkdir()
    # Ctrl+S the first time asks where (it used to receive triggered(bool) as the path)
    script.paths.append(out / "lesion.nii.gz")
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not doc.editor.modified and np.array_equal(load_mask(out / "lesion.nii.gz", doc.volume),
                                                      doc.mask_in_file_order())
    window.act["save_mask"].trigger()  # again: no dialog, same file
    assert not script.paths and len(script.starts) == 1
    script.paths.append(out / "copy")  # Save mask as: a name without extension becomes NIfTI
    window.act["save_mask_as"].trigger()
    assert np.array_equal(load_mask(out / "copy.nii.gz", doc.volume), doc.mask_in_file_order())
    assert script.starts[-1] == str(out / doc.default_name("mask"))  # the dialog started in the last folder
    script.paths.append(out / "filled.nii.gz")
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert not script.errors and not window.isWindowModified()
    source, filled = nib.load(image), nib.load(out / "filled.nii.gz")
    assert filled.shape == source.shape and np.array_equal(filled.affine, source.affine)
    for code in ("qform_code", "sform_code"):
        assert int(filled.header[code]) == int(source.header[code])
    hole = doc.result.fill.hole
    a, b = source.get_fdata(dtype=np.float32), filled.get_fdata(dtype=np.float32)
    assert np.array_equal(a[~hole], b[~hole]) and not np.array_equal(a[hole], b[hole])
    sidecar = json.loads((out / "filled.json").read_text())
    assert sidecar["hole_voxels"] == int(hole.sum()) and sidecar["app"] == "inpaint-gui"
    assert set(sidecar["final_loss_per_slice"]) == {str(z), str(z + 1)}  # the numbering of the views
    assert Path(sidecar["mask"]["path"]).parent == out.resolve()


def test_save_after_an_export_never_overwrites_the_mask_the_exports_sidecar_names(qtbot, window, tiny_vae, tmp_path):
    """Painted from scratch, filled, exported; then one more stroke and Ctrl+S: the app asks where, and the
    export's mask keeps the checksum its sidecar recorded (it used to be the mask's file from then on)."""
    from core.jsonfiles import sha256_file

    script, doc = window.script, window.doc
    z = int(window.viewer.point[AXIAL])
    paint(qtbot, window, (20, 24, z))
    fake_result(window, model=load_model(tiny_vae))
    out = tmp_path / "out"
    out.mkdir()
    script.paths.append(out / "filled.nii.gz")
    window.act["export"].trigger()
    assert not script.paths and not window.isWindowModified()  # nothing unsaved after the export
    sidecar = json.loads((out / "filled.json").read_text())
    exported_mask = Path(sidecar["mask"]["path"])
    assert sha256_file(exported_mask) == sidecar["mask"]["sha256"]
    paint(qtbot, window, (8, 24, z))
    assert window.isWindowModified()
    script.paths.append(out / "edited.nii.gz")
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    # a dialog asked where, suggesting another name than the export's mask
    assert not script.paths and script.starts[-1] == str(out / "sub-01_label-lesion_desc-painted_mask.nii.gz")
    assert sha256_file(exported_mask) == sidecar["mask"]["sha256"]
    assert np.array_equal(load_mask(out / "edited.nii.gz", doc.volume), doc.mask_in_file_order())
    assert not window.isWindowModified()
    paint(qtbot, window, (8, 30, z))
    script.paths.append(exported_mask)          # Save mask as... onto the export's mask: refused in one sentence
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "is the mask of an export" in script.errors[-1] and window.isWindowModified()
    assert sha256_file(exported_mask) == sidecar["mask"]["sha256"]


def test_an_export_never_rewrites_an_imported_label_mask_and_save_then_asks(qtbot, window, brain_files, tiny_vae):
    """A BIDS lesion mask with labels 1 and 2 beside the image, imported, filled and exported into the same
    folder: the export's default mask name is that file's, and it used to be rewritten as 0/1 uint8."""
    from core.jsonfiles import sha256_file

    image, _, hole = brain_files
    source = nib.load(image)
    labels = np.where(hole, 1, 0).astype(np.int16)
    labels[hole.nonzero()[0].min()] *= 2                      # a second label on the first slab of the lesion
    imported = image.parent / "sub-01_label-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(labels, source.affine), imported)
    before = sha256_file(imported)
    script, doc = window.script, window.doc
    script.paths.append(imported)
    window.act["import_mask"].trigger()
    assert np.array_equal(doc.mask_in_file_order(), hole)
    fake_result(window, model=load_model(tiny_vae))
    script.paths.append(image.parent / doc.default_name("inpainted"))
    window.act["export"].trigger()
    assert not script.errors and not script.questions and not window.isWindowModified()
    assert sha256_file(imported) == before
    sidecar = json.loads((image.parent / "sub-01_desc-inpainted_T1w.json").read_text())
    assert sidecar["mask"]["path"] == str((image.parent / "sub-01_desc-inpainted_label-lesion_mask.nii.gz").resolve())
    paint(qtbot, window, (8, 24, int(window.viewer.point[AXIAL])))
    script.paths.append(image.parent / "edited.nii.gz")     # Ctrl+S asks: saving 0/1 over labels would lose them
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not script.paths and (image.parent / "edited.nii.gz").is_file() and sha256_file(imported) == before


def test_a_probability_map_in_another_voxel_order_imports_the_voxels_above_the_threshold(window, brain_files,
                                                                                       tmp_path):
    image, _, hole = brain_files
    source = nib.load(image)
    probability = np.where(hole, 0.9, 0.0).astype(np.float32)
    flip = source.affine @ np.array([[-1, 0, 0, hole.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    path = tmp_path / "lesion_prob_flipped.nii.gz"
    nib.save(nib.Nifti1Image(probability[::-1].copy(), flip), path)
    window.script.paths.append(path)
    window.script.numbers.append(0.5)
    window.act["import_mask"].trigger()
    assert not window.script.errors and np.array_equal(window.doc.mask_in_file_order(), hole)
    assert window.doc.mask_path is None  # Save mask asks where: it never writes 0/1 over the probabilities


def test_import_over_unsaved_painting_asks_and_probability_maps_ask_for_a_threshold(qtbot, window, brain_files,
                                                                                    tmp_path):
    image, mask, hole = brain_files
    script, doc = window.script, window.doc
    paint(qtbot, window, (5, 24, int(window.viewer.point[AXIAL])))
    painted = doc.editor.voxel_count
    script.paths.append(mask)
    window.act["import_mask"].trigger()  # the question is answered Cancel: nothing changes
    assert "Replace the painted mask" in script.questions[-1] and doc.editor.voxel_count == painted
    source = nib.load(image)
    probability = np.where(hole, 0.9, 0.0).astype(np.float32)
    probability[0:3, 0:3, 0:3] = 0.3
    path = tmp_path / "lesion_prob.nii.gz"
    nib.save(nib.Nifti1Image(probability, source.affine), path)
    script.answers.append(Yes)
    script.paths.append(path)
    script.numbers.append(0.5)
    window.act["import_mask"].trigger()
    assert "threshold" in script.questions[-1] and np.array_equal(doc.mask_in_file_order(), hole)
    assert not script.errors and f"{int(hole.sum())} vox" in window.brush_label.text()
    assert "ml)" in window.brush_label.text()
    script.paths.append(path)  # cancelling the threshold imports nothing
    window.act["import_mask"].trigger()
    assert np.array_equal(doc.mask_in_file_order(), hole) and doc.editor.can_undo
    elsewhere = tmp_path / "other_grid_prob.nii.gz"   # a probability map of another scan: refused before any question
    nib.save(nib.Nifti1Image(probability[:-2], source.affine), elsewhere)
    asked = len(script.questions)
    script.paths.append(elsewhere)
    window.act["import_mask"].trigger()
    assert len(script.questions) == asked and "grid" in script.errors[-1] and np.array_equal(doc.mask_in_file_order(), hole)


def test_dilate_brain_mask_method_and_threads_reach_the_fill(qtbot, window, brain_files, tmp_path):
    from core.fill import METHODS, FillSettings

    image, mask, hole = brain_files
    form, script = window.panel.form, window.script
    assert form.scope.currentData() == "all"  # the default scope
    assert [form.method.itemData(i) for i in range(form.method.count())] == list(METHODS)
    assert form.method.currentData() == FillSettings().method
    window.files.import_mask(mask)
    brain = tmp_path / "brain.nii.gz"
    source = nib.load(image)
    nib.save(nib.Nifti1Image((source.get_fdata() > 0).astype(np.uint8), source.affine), brain)
    script.paths.append(brain)
    window.act["load_brainmask"].trigger()
    assert window.doc.brain is not None and "brain mask" in window.brush_label.text()
    form.dilate.setValue(1)
    form.threads.setValue(1)
    form.iterations.setValue(2)
    assert form.mirror.isVisibleTo(form) == (form.method.currentData() == "refine3d")
    form.mirror.setValue(0.25)
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    result = window.doc.result
    assert result.fill.hole.sum() > hole.sum() and result.fill.hole[hole].all()  # dilated by one voxel
    assert result.threads == 1 and result.dilate == 1 and result.fill.settings.method == form.method.currentData()
    assert result.fill.settings.mirror == 0.25
    script.paths.append(tmp_path / "filled.nii.gz")
    window.act["export"].trigger()
    sidecar = json.loads((tmp_path / "filled.json").read_text())
    assert sidecar["mask_dilation_voxels"] == 1 and sidecar["brainmask"]["path"] == str(brain.resolve())
    assert sidecar["torch_threads"] == 1
    # the brain mask forgotten after the fill: the result is stale, and an export still names the mask it used
    assert not window.panel.result_note.isVisibleTo(window.panel)
    window.act["clear_brainmask"].trigger()
    assert "brain mask changed" in window.panel.result_note.text() and window.panel.result_note.isVisibleTo(window.panel)
    script.paths.append(tmp_path / "again.nii.gz")
    window.act["export"].trigger()
    assert json.loads((tmp_path / "again.json").read_text())["brainmask"]["path"] == str(brain.resolve())
    qtbot.waitUntil(lambda: window.act["run"].isEnabled(), timeout=30000)   # the first fill's metrics are measured
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    assert not window.panel.result_note.isVisibleTo(window.panel)
    script.paths.append(tmp_path / "without.nii.gz")
    window.act["export"].trigger()
    assert json.loads((tmp_path / "without.json").read_text())["brainmask"] is None


def test_no_image_open_shows_a_hint_and_skull_on_images_warn(qtbot, tmp_path, dialogs):
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.viewer.empty.isVisible() and "No image open" in w.viewer.empty.text()
    assert not any(view.isVisible() for view in w.viewer.views.values())
    for name in ("save_mask", "export", "run", "import_mask", "load_brainmask"):
        assert not w.act[name].isEnabled(), name
    rng = np.random.default_rng(0)
    head = (100 + 10 * rng.standard_normal((80, 80, 80))).astype(np.float32)  # 4 l of "tissue" at 2 mm
    path = tmp_path / "sub-02_T1w.nii.gz"
    nib.save(nib.Nifti1Image(head, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    assert w.files.open_image(path)
    assert not w.viewer.empty.isVisible() and w.panel.image_note.isVisible()
    assert "skull" in w.panel.image_note.text()
    w.forget_changes()
    flair = tmp_path / "sub-02_FLAIR.nii.gz"   # named as another contrast than the networks learned: said too
    nib.save(nib.Nifti1Image(head * (np.indices(head.shape)[0] < 60), np.diag([2.0, 2.0, 2.0, 1.0])), flair)
    assert w.files.open_image(flair)
    assert w.panel.image_note.isVisible() and "named as a FLAIR image" in w.panel.image_note.text()
    assert "biharmonic3d" in w.panel.image_note.text()
    form = w.panel.form
    form.method.setCurrentIndex(form.method.findData("biharmonic3d"))   # the classical fill chosen: nothing to say
    assert "named as" not in w.panel.image_note.text()
    form.method.setCurrentIndex(form.method.findData("refine3d"))
    assert "named as a FLAIR image" in w.panel.image_note.text()
    w.forget_changes()


def test_next_and_previous_lesion_walk_the_lesions_in_slice_order_and_wrap(qtbot, window):
    script, viewer = window.script, window.viewer
    z = int(viewer.point[AXIAL])
    paint(qtbot, window, (20, 24, z))
    viewer.show_slice("axial", z + 4)
    paint(qtbot, window, (10, 14, z + 4))
    viewer.show_slice("axial", z - 6)
    visited = []
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_N)
        visited.append((tuple(int(v) for v in viewer.point), window.statusBar().currentMessage()))
    assert [p[2] for p, _ in visited] == [z, z + 4, z]                # slice order, then back to the first
    assert window.doc.editor.mask[visited[0][0]] and window.doc.editor.mask[visited[1][0]]
    assert visited[0][1].startswith("Lesion 1 of 2: ") and visited[1][1].startswith("Lesion 2 of 2: ")
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert int(viewer.point[AXIAL]) == z + 4                           # previous, wrapping past the first
    window.act["clear_all"].trigger()
    window.act["lesion_next"].trigger()
    assert window.statusBar().currentMessage() == "No lesion is painted." and not script.errors


def test_a_loaded_brain_mask_is_outlined_in_every_view_and_the_outline_toggles(qtbot, window, brain_files, tmp_path):
    """The user sees which brain mask the fill will use: its edge, even when the file is stored in another voxel
    order; View > Brain mask outline (G) hides and shows it; forgetting the mask removes it."""
    from scipy import ndimage

    image, _, _ = brain_files
    source = nib.load(image)
    brain = np.asarray(source.dataobj) > 0
    brain[:, :, : brain.shape[2] // 2] &= np.arange(brain.shape[0])[:, None, None] < brain.shape[0] // 2   # lopsided
    flipped = np.ascontiguousarray(brain[::-1, :, ::-1]).astype(np.uint8)          # the file in another voxel order
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])
    flip[[0, 2], 3] = [brain.shape[0] - 1, brain.shape[2] - 1]
    path = tmp_path / "brain_flipped.nii.gz"
    nib.save(nib.Nifti1Image(flipped, source.affine @ flip), path)
    views = window.viewer.views
    assert not any(view.brain.isVisible() for view in views.values())   # none loaded: nothing drawn
    window.script.paths.append(path)
    window.act["load_brainmask"].trigger()
    assert window.doc.brain is not None and not window.errors
    ras = window.doc.reo.apply(brain.astype(np.uint8)) != 0                # the image file's own order, to RAS
    for axis, view in views.items():
        assert view.brain.isVisible()
        plane = np.take(ras, view.index, axis=axis)
        edge = plane & ~ndimage.binary_erosion(plane, border_value=0)
        rows, cols = plane.shape
        drawn = view.brain.image.T.reshape(rows, OUTLINE_SUBDIVISION, cols, OUTLINE_SUBDIVISION).any(axis=(1, 3))
        assert edge.any() and np.array_equal(drawn, edge)   # the edge voxels, drawn finer than a voxel
    window.act["brain_outline"].trigger()
    assert not any(view.brain.isVisible() for view in views.values())
    window.act["brain_outline"].trigger()
    assert all(view.brain.isVisible() for view in views.values())
    window.act["clear_brainmask"].trigger()
    assert window.doc.brain is None and not any(view.brain.isVisible() for view in views.values())


def _wheel(widget, steps: int) -> None:
    """One wheel event of `steps` notches (negative: towards the user) over the widget's centre."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_panel_over_a_field_until_the_field_is_clicked(qtbot, window):
    window.resize(1000, 420)   # the panel scrolls
    scroll = window.panel.parentWidget().parentWidget().verticalScrollBar()
    qtbot.waitUntil(lambda: scroll.maximum() > 0, timeout=2000)
    dilate = window.panel.form.dilate
    before = dilate.value()
    _wheel(dilate, -2)
    assert dilate.value() == before and scroll.value() > 0   # the panel moved, the setting did not
    qtbot.mouseClick(dilate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dilate.hasFocus, timeout=2000)
    _wheel(dilate, 2)
    assert dilate.value() == before + 2   # a focused field takes the wheel


def test_tab_leaves_the_metrics_table(qtbot, window):
    window.activateWindow()
    metrics = window.panel.metrics
    fake_result(window)
    metrics.setFocus()
    qtbot.waitUntil(metrics.hasFocus, timeout=2000)
    qtbot.keyClick(metrics, Qt.Key.Key_Tab)
    assert not metrics.hasFocus()


def test_the_export_s_mask_stays_protected_after_the_image_is_opened_again(qtbot, window, brain_files, tiny_vae):
    """The app forgot an export's mask once the image was reopened: Ctrl+S offered that name and replaced the file
    whose checksum the export's sidecar holds."""
    from core.jsonfiles import sha256_file

    image = brain_files[0]
    script = window.script
    z = int(window.viewer.point[AXIAL])
    paint(qtbot, window, (20, 24, z))
    fake_result(window, model=load_model(tiny_vae))
    script.paths.append(image.parent / window.doc.default_name("inpainted"))
    window.act["export"].trigger()
    sidecar = json.loads((image.parent / "sub-01_desc-inpainted_T1w.json").read_text())
    exported = Path(sidecar["mask"]["path"])
    window.forget_changes()
    assert window.files.open_image(image)                 # a new session on the same scan
    paint(qtbot, window, (8, 24, z))
    script.paths.append(image.parent / "painted.nii.gz")
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert script.starts[-1].endswith("sub-01_label-lesion_desc-painted_mask.nii.gz")   # not the export's name
    paint(qtbot, window, (8, 30, z))
    script.paths.append(exported)                          # Save mask as... onto it: one sentence, file kept
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "is the mask of an export" in script.errors[-1] and sha256_file(exported) == sidecar["mask"]["sha256"]


def test_an_imported_mask_is_saved_as_it_is_and_written_back_in_its_own_voxel_order(qtbot, window, brain_files,
                                                                                      tmp_path):
    """An imported 0/1 mask counted as unsaved, and Ctrl+S rewrote it in the image's voxel order."""
    from core.jsonfiles import sha256_file

    image, _, hole = brain_files
    source = nib.load(image)
    flip = source.affine @ np.array([[-1, 0, 0, hole.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    path = tmp_path / "lesion_flipped.nii.gz"
    nib.save(nib.Nifti1Image(hole[::-1].astype(np.uint8), flip), path)
    before = sha256_file(path)
    window.script.paths.append(path)
    window.act["import_mask"].trigger()
    assert not window.isWindowModified()                   # the painting is that file: nothing to save
    asked = len(window.script.starts)
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert sha256_file(path) == before and len(window.script.starts) == asked   # nothing written, nothing asked
    paint(qtbot, window, (8, 24, int(window.viewer.point[AXIAL])))
    assert window.isWindowModified()
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    saved = nib.load(path)
    assert np.array_equal(saved.affine, flip) and not window.isWindowModified()
    assert np.array_equal(np.asarray(saved.dataobj)[::-1] != 0, window.doc.mask_in_file_order())


def test_an_imported_mask_puts_the_crosshair_on_a_lesion(qtbot, window, brain_files, tmp_path):
    """After --mask or Import mask the views stayed on the volume's centre, where the lesion may not be."""
    image, _, _ = brain_files
    source = nib.load(image)
    mask = np.zeros(source.shape, np.uint8)
    mask[4:7, 5:8, 3:6] = 1   # far from the centre
    nib.save(nib.Nifti1Image(mask, source.affine, source.header), tmp_path / "corner.nii.gz")
    window.script.paths.append(tmp_path / "corner.nii.gz")
    window.act["import_mask"].trigger()
    doc = window.doc
    assert doc.editor.mask[tuple(int(v) for v in window.viewer.point)]
    window.forget_changes()
    assert window.files.open_image(image, tmp_path / "corner.nii.gz")   # inpaint-gui IMAGE --mask MASK
    assert window.doc.editor.mask[tuple(int(v) for v in window.viewer.point)] and not window.isWindowModified()
