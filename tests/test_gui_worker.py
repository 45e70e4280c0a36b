"""Fill jobs from the app: a tiny model on the worker thread, live preview, locking, cancel, failure."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from core.errors import InpaintError  # noqa: E402
from test_gui_support import ScriptedWindow, viewport_point  # noqa: E402
from inpaint_gui import worker  # noqa: E402

REAL_QUESTION = QMessageBox.question  # before the scripted dialogs replace it
AXIAL = 2
SEARCH = "slices2d"  # the fill method with a latent search (live previews, per-slice losses)


@pytest.fixture
def window(qtbot, tmp_path, brain_files, tiny_vae, dialogs):
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.files.open_image(brain_files[0]) and w.load_checkpoint(tiny_vae)
    w.doc.editor.brush_size = 5
    z = int(w.viewer.point[AXIAL])
    for dz in (0, 1):
        w.doc.editor.begin_stroke((20, 24, z + dz), AXIAL)
        w.doc.editor.end_stroke()
    w.viewer.refresh_mask()
    w.panel.form.restarts.setValue(2)
    w.panel.form.scope.setCurrentIndex(w.panel.form.scope.findData("all"))
    w.panel.form.method.setCurrentIndex(w.panel.form.method.findData(SEARCH))  # previews and losses
    yield w
    w.forget_changes()


def test_run_fills_on_the_worker_with_preview_metrics_and_losses(qtbot, window):
    doc, panel = window.doc, window.panel
    panel.form.iterations.setValue(6)
    original = doc.volume.data.copy()
    hole = doc.mask_in_file_order()
    previews = []
    window.session.run()
    assert window.jobs.worker is not None and not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    window.jobs.progressed.connect(lambda p: previews.append(p.preview is not None))
    # editing is locked while the job runs, and the status bar says why
    view = window.viewer.views[AXIAL]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(view, (10, 10, int(window.viewer.point[AXIAL]))))
    assert "locked" in window.statusBar().currentMessage() and doc.editor.voxel_count == hole.sum()
    assert window.viewer.layer == "preview"
    qtbot.keyClick(window, Qt.Key.Key_T)  # the layers wait for the result, and the status bar says so
    assert window.viewer.layer == "preview" and "live preview" in window.statusBar().currentMessage()
    window.act["layer_masked"].trigger()  # a toolbar click neither switches nor stays checked
    layers = [window.act[f"layer_{layer}"] for layer in ("original", "masked", "generated", "blended")]
    assert window.viewer.layer == "preview" and not any(action.isChecked() for action in layers)  # no button: Preview
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        pass
    assert window.jobs.worker is None and doc.result is not None and any(previews)
    filled = doc.result.fill.filled
    assert np.array_equal(filled[~hole], original[~hole]) and not np.array_equal(filled[hole], original[hole])
    assert window.viewer.layer == "blended" and doc.editor.locked is None
    assert np.array_equal(view.image.image, doc.blended[:, :, view.index].T)
    assert panel.losses.rowCount() == len(doc.result.fill.final_loss) == 2
    qtbot.waitUntil(lambda: bool(doc.result.metrics), timeout=30000)
    assert panel.metrics.item(0, 0).text() not in ("", "...") and panel.metrics.item(1, 0).text() not in ("", "...")
    rows = [panel.metrics.verticalHeaderItem(row).text() for row in range(2)]
    assert rows == [SEARCH, "Biharmonic 3D"]   # the row says which method filled, not "Model fill" for any of them
    assert len(panel._loss_y) > 0 and window.isWindowModified()
    assert window.act["export"].isEnabled() and window.act["layer_blended"].isChecked()


def test_current_slice_scope_fills_only_that_slice(qtbot, window):
    window.panel.form.iterations.setValue(2)
    window.panel.form.scope.setCurrentIndex(window.panel.form.scope.findData("slice"))
    window.session.run()
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        pass
    fill = window.doc.result.fill
    assert list(fill.final_loss) == [int(window.viewer.point[AXIAL])]
    assert fill.hole.sum() < window.doc.editor.voxel_count


def test_run_pressed_mid_stroke_fills_the_whole_stroke(qtbot, window):
    editor = window.doc.editor
    z = int(window.viewer.point[AXIAL])
    editor.begin_stroke((10, 30, z), AXIAL)  # the mouse button is still down
    editor.extend_stroke((14, 30, z))
    window.panel.form.iterations.setValue(2)
    window.session.run()
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        pass
    assert np.array_equal(window.doc.result.fill.hole, window.doc.mask_in_file_order())
    assert window.panel.result_note.text() == ""  # the result is not stale
    window.viewer.painter.apply_history(True)
    assert editor.mask[10:15, 30, z].sum() == 0  # the stroke was one undo step


def test_cancel_returns_within_a_second_and_changes_nothing(qtbot, window):
    doc, panel = window.doc, window.panel
    panel.form.iterations.setValue(2)
    window.session.run()
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        pass
    qtbot.waitUntil(lambda: window.jobs.idle, timeout=5000)
    result, curve = doc.result, panel.loss_curve.getData()
    assert curve[0] is not None and len(curve[0]) > 0
    window.display.set_layer("original")
    window.panel.form.iterations.setValue(100000)
    layer_before = window.viewer.layer
    assert window.act["export"].isEnabled() and panel.metrics.isEnabled()
    window.session.run()
    with qtbot.waitSignal(window.jobs.progressed, timeout=30000):
        pass
    # while it runs, the result shown is the one being replaced: no export of it, its figures greyed
    assert not window.act["export"].isEnabled() and not panel.metrics.isEnabled() and not panel.losses.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)   # Ctrl+O says why nothing opens
    assert window.statusBar().currentMessage().startswith("A fill is running; cancel it (Esc)")
    assert not window.script.starts and window.jobs.running   # no file dialog, the fill goes on
    start = time.monotonic()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.jobs.worker is None and doc.editor.locked is None and doc.preview is None
    assert window.viewer.layer == layer_before and doc.result is result
    assert np.array_equal(panel.loss_curve.getData()[1], curve[1]) and panel.progress.value() == 0
    qtbot.waitUntil(lambda: window.jobs.idle, timeout=1000)  # the thread has ended
    assert time.monotonic() - start < 1.0
    qtbot.waitUntil(lambda: window.act["run"].isEnabled(), timeout=1000)
    assert not window.errors and "Cancelled" in window.panel.eta.text()
    assert window.act["export"].isEnabled() and panel.metrics.isEnabled() and not panel.result_note.isVisibleTo(panel)
    view = window.viewer.views[AXIAL]   # a click paints: the result no longer matches the mask, and the panel says so
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(view, (8, 8, int(window.viewer.point[AXIAL]))))
    qtbot.waitUntil(lambda: panel.result_note.isVisibleTo(panel), timeout=2000)
    assert "mask changed" in panel.result_note.text() and not panel.metrics.isEnabled()


def test_failed_job_shows_one_sentence_and_restores_state(qtbot, window, monkeypatch):
    def broken(key):
        raise InpaintError("model.safetensors in /nowhere is unreadable; choose another checkpoint.")

    monkeypatch.setattr(window.jobs, "model", broken)
    window.session.run()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=10000)
    assert window.errors == ["model.safetensors in /nowhere is unreadable; choose another checkpoint."]
    assert window.jobs.worker is None and window.doc.editor.locked is None and window.viewer.layer == "original"


def test_an_unexpected_job_error_is_one_line(qtbot, window, monkeypatch):
    def broken(key):
        raise ValueError("first line of a long message.\nsecond line\nthird line")

    monkeypatch.setattr(window.jobs, "model", broken)
    monkeypatch.setattr("traceback.print_exc", lambda: None)
    window.session.run()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=10000)
    assert window.errors == ["The fill failed (ValueError: first line of a long message); the details were "
                             "printed to the terminal."]


def test_quitting_during_a_fill_stops_it_before_the_save_question(qtbot, window):
    window.panel.form.iterations.setValue(100000)
    window.session.run()
    window.answers.append(QMessageBox.StandardButton.No)
    assert not window.close() and window.jobs.running and len(window.questions) == 1  # "No": the fill goes on
    window.answers.extend([QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Cancel])
    assert not window.close()
    assert "stop it and quit" in window.questions[1] and "painted mask" in window.questions[2]
    assert not window.jobs.running and window.doc.editor.locked is None  # stopped before the save question
    window.answers.append(QMessageBox.StandardButton.Discard)
    assert window.close() and not window.jobs.running
    assert all(worker.isFinished() for worker in window.jobs._threads)  # close waited for the thread


def test_the_stop_question_goes_away_when_the_fill_ends_on_its_own(qtbot, window, monkeypatch):
    """'A fill is running; stop it and quit?' stayed on screen after the fill had finished."""
    asked = []

    def question(parent, title, text, *args):
        asked.append(text)
        if "stop it and quit" not in text:
            return QMessageBox.StandardButton.Cancel  # the save question that follows: stay
        # a real box; should it outlive the fill by a second, it is answered No (and the test fails)
        timer = QTimer(window)
        timer.timeout.connect(lambda: window.jobs.idle and time.monotonic() - ended[0] > 1.0 and forced.extend(
            box.button(QMessageBox.StandardButton.No).click() for box in window.findChildren(QMessageBox)
            if box.isVisible()))
        timer.start(50)
        try:
            return REAL_QUESTION(parent, title, text, *args)
        finally:
            timer.stop()

    ended, forced = [float("inf")], []
    window.jobs.idleChanged.connect(lambda: window.jobs.idle and ended.__setitem__(0, time.monotonic()))
    monkeypatch.setattr(QMessageBox, "question", question)
    window.panel.form.iterations.setValue(2)
    window.session.run()
    assert window.jobs.running
    assert not window.close()  # the fill ends while it asks: the question closes, the save question follows
    assert not forced and len(asked) == 2 and "stop it and quit" in asked[0] and "the fill result" in asked[1]
    assert window.doc.result is not None and "Fill done" in window.statusBar().currentMessage()  # not cancelled
    assert not any(box.isVisible() for box in window.findChildren(QMessageBox))


def test_export_after_a_real_fill_matches_inpaint_fill(qtbot, window, tmp_path, tiny_vae, capsys):
    import json

    import nibabel as nib

    from core.cli import main

    doc = window.doc
    window.panel.form.iterations.setValue(2)
    window.session.run()
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        pass
    out = tmp_path / "out"
    out.mkdir()
    assert window.files.export_to(out / doc.default_name("inpainted"))
    source, filled = nib.load(doc.path), nib.load(out / "sub-01_desc-inpainted_T1w.nii.gz")
    assert nib.aff2axcodes(source.affine) == ("L", "A", "S")  # the LAS test image keeps its geometry
    assert np.array_equal(filled.affine, source.affine) and filled.shape == source.shape
    for code in ("qform_code", "sform_code"):
        assert int(filled.header[code]) == int(source.header[code]) == 4
    hole = doc.result.fill.hole
    a, b = source.get_fdata(dtype=np.float32), filled.get_fdata(dtype=np.float32)
    assert np.array_equal(a[~hole], b[~hole]) and not np.array_equal(a[hole], b[hole])
    mask_file = out / "sub-01_label-lesion_mask.nii.gz"
    assert np.array_equal(nib.load(mask_file).get_fdata() != 0, hole) and not doc.editor.modified
    gui = json.loads((out / "sub-01_desc-inpainted_T1w.json").read_text())
    assert main(["fill", str(doc.path), str(mask_file), "-o", str(out / "cli.nii.gz"), "--method", SEARCH,
                 "--model", str(tiny_vae), "--iterations", "2", "--restarts", "2", "--reference", str(doc.path),
                 "--quiet"]) == 0, \
        capsys.readouterr().err
    cli = json.loads((out / "cli.json").read_text())
    assert set(cli) - {"reference"} <= set(gui) and set(gui["metrics"]) <= set(cli["metrics"])
    assert gui["parameters"].keys() == cli["parameters"].keys() and gui["mask"]["path"] == cli["mask"]["path"]
    assert gui["hole_voxels"] == cli["hole_voxels"] == int(hole.sum())
    assert set(gui["baseline_metrics"]["biharmonic-3d-mm"]) == set(gui["metrics"])


def test_empty_mask_is_refused_before_starting(qtbot, window):
    window.doc.editor.clear_all()
    window.session.run()
    assert window.jobs.worker is None and "mask is empty" in window.errors[0]


def test_eta_leaves_out_the_first_step_warm_up(window):
    from core.job import Progress

    panel = window.panel
    panel.set_running(True)
    for step, elapsed in ((1, 5.0), (2, 5.1), (10, 5.9)):  # the first step took 5 s, then 0.1 s a step
        panel.show_progress(Progress(stage="search", step=step, total=50, elapsed=elapsed))
    assert "ETA 0:04" in panel.eta.text()  # 40 steps of 0.1 s (Progress.eta would say 0:24)
    panel.job_stopped("stopped")


def test_current_slice_scope_says_what_was_left(qtbot, window):
    window.panel.form.iterations.setValue(2)
    window.panel.form.scope.setCurrentIndex(window.panel.form.scope.findData("slice"))
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    left = window.doc.editor.voxel_count - int(window.doc.result.fill.hole.sum())
    assert left > 0 and f"{left} vox" in window.panel.eta.text() and "painted on other slices were left" in \
        window.panel.eta.text()
    assert "1 axial slice " in window.panel.eta.text()  # singular
    window.panel.form.dilate.setValue(1)   # the voxels left are then the dilated mask's, not painted ones
    qtbot.waitUntil(lambda: window.act["run"].isEnabled(), timeout=30000)   # Run is back once the metrics are in
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    fill = window.doc.result.fill
    left = int((window.doc.job_hole("all", fill.axis, window.viewer.point, 1) & ~fill.hole).sum())
    assert left > 0 and f"{left} vox" in window.panel.eta.text() and "of the mask dilated by 1 vox on other " \
        "slices were left" in window.panel.eta.text()


def test_warm_up_prepares_the_model_in_the_background(qtbot, window, tiny_vae):
    key = str(tiny_vae)
    window.jobs._models.clear()
    window.jobs.warm_up(key)
    worker = window.jobs._warm[key]
    qtbot.waitUntil(worker.isFinished, timeout=30000)
    assert key in window.jobs._models
    window.jobs.warm_up(key)
    assert window.jobs._warm[key] is worker  # once per model


def test_a_skipped_mirror_is_said_with_its_reason(qtbot, window, monkeypatch):
    import core.methods.refine3d
    from core.mirror import NoReflection

    def no_reflection(*_args):
        raise NoReflection("the hemispheres do not match (correlation 0.31 after registration, 0.5 needed)")

    monkeypatch.setattr(core.methods.refine3d, "scan_reflection", no_reflection)
    window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("refine3d"))
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    assert "Other hemisphere not used: the hemispheres do not match" in window.panel.eta.text()
    assert window.doc.result.fill.refiner["mirror"].startswith("not used:")
    assert window.panel.eta.text().startswith("Filled 1 lesion, ")  # a 3D fill counts lesions, not slices
    assert "slice" not in window.panel.eta.text()


def test_a_method_without_a_slice_model_fills_without_loading_one(qtbot, window, monkeypatch):
    """refine3d reads no slice model: the app does not load one (a NaN of a method was once blamed on the slice
    model chosen in the form), and the export's sidecar has no model record."""
    def unused(key):
        raise AssertionError("the slice model was loaded")

    monkeypatch.setattr(window.jobs, "model", unused)
    window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("refine3d"))
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.session.run()
    assert not window.errors and window.doc.result.model is None


def test_the_3d_refiner_shows_lesion_progress_and_no_empty_loss_plot(qtbot, window, monkeypatch):
    monkeypatch.setattr(worker, "PROGRESS_INTERVAL", 3600.0)   # however fast the fill: each stage's end shows
    panel = window.panel
    panel.form.method.setCurrentIndex(panel.form.method.findData("refine3d"))
    steps = []
    window.jobs.progressed.connect(lambda p: steps.append((p.stage, p.step, p.total)))
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.session.run()
        assert not panel.loss_plot.isVisible()       # a method without a latent search has no loss curve
    assert ("search", 1, 1) in steps                 # one lesion: 0 of 1, then 1 of 1
    assert not panel.loss_plot.isVisible() and panel.progress.value() == 1000
    qtbot.waitUntil(lambda: window.jobs.idle, timeout=5000)
    panel.form.method.setCurrentIndex(panel.form.method.findData(SEARCH))
    panel.form.iterations.setValue(2)
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.session.run()
        assert panel.loss_plot.isVisible()


def test_the_3d_refiners_bar_steps_through_the_lesions(qtbot, window, monkeypatch):
    """Three lesions: the bar and its text go 0, 1, 2, 3 of 3 (they said step 0/1 until the first lesion ended)."""
    monkeypatch.setattr(worker, "PROGRESS_INTERVAL", 0.0)   # every report shows
    doc, panel = window.doc, window.panel
    doc.editor.clear_all()
    doc.editor.brush_size = 3
    z = int(window.viewer.point[AXIAL])
    for x in (12, 20, 28):                                   # three separate lesions
        doc.editor.begin_stroke((x, 24, z), AXIAL)
        doc.editor.end_stroke()
    window.viewer.refresh_mask()
    panel.form.method.setCurrentIndex(panel.form.method.findData("refine3d"))
    shown = []
    show = panel.show_progress

    def record(progress) -> None:
        show(progress)
        if progress.stage == "search":
            shown.append((panel.progress.value() / panel.progress.maximum(), panel.eta.text()))

    monkeypatch.setattr(panel, "show_progress", record)
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.act["run"].trigger()
    assert [text.split("   ")[0] for _, text in shown] == ["step 0/3", "step 1/3", "step 2/3", "step 3/3"]
    assert [fraction for fraction, _ in shown] == pytest.approx([0, 1 / 3, 2 / 3, 1], abs=1e-3)
    assert "ETA" in shown[2][1]                              # measured from the second lesion on
    assert panel.progress.value() == panel.progress.maximum()


def test_painted_voxels_outside_the_brain_are_left_and_said(qtbot, window):
    doc = window.doc
    original = doc.volume.data.copy()
    z = int(window.viewer.point[AXIAL])
    edge = int(np.nonzero(doc.original[:, 24, z])[0][0])   # the brain's first voxel along the first RAS axis
    doc.editor.begin_stroke((edge, 24, z), AXIAL)             # a stroke across the brain's edge
    doc.editor.end_stroke()
    window.viewer.refresh_mask()
    window.panel.form.method.setCurrentIndex(window.panel.form.method.findData("refine3d"))
    with qtbot.waitSignal(window.jobs.measured, timeout=60000):
        window.act["run"].trigger()
    fill = doc.result.fill
    assert fill.outside_brain_voxels > 0
    assert f"{fill.outside_brain_voxels} painted voxels outside the brain were left as they were" in \
        window.panel.eta.text()
    painted = doc.mask_in_file_order()
    assert int((painted & ~fill.hole).sum()) == fill.outside_brain_voxels
    assert not (fill.filled != original)[~fill.hole].any()   # nothing but the brain part of the mask changed


def test_a_run_over_the_brains_edge_shows_previews_without_errors(qtbot, window):
    """Painted voxels on the background are left out of the fill; the slice search's previews used to be placed with
    the painted mask's count and raised an IndexError dialog per preview."""
    doc = window.doc
    z = int(window.viewer.point[AXIAL])
    doc.editor.begin_stroke((1, 1, z), AXIAL)          # the volume's corner: background
    doc.editor.end_stroke()
    window.panel.form.iterations.setValue(6)
    previews = []
    window.jobs.progressed.connect(lambda p: previews.append(p.preview is not None))
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.session.run()
    assert any(previews) and not window.script.unexpected()
    fill = doc.result.fill
    assert fill.outside_brain_voxels > 0 and "outside the brain were left as they were" in \
        window.statusBar().currentMessage()
