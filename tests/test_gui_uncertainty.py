"""The app's own refine3d fill predicts its error: the overlay (off until Shift+U, so the fill shows), its colour bar
with units."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from test_gui_support import ScriptedWindow, viewport_point  # noqa: E402

AXIAL = 2


def test_a_refine3d_fill_in_the_app_shows_the_fill_and_its_uncertainty_on_shift_u(qtbot, tmp_path, brain_files,
                                                                                    tiny_vae, dialogs):
    window = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.files.open_image(brain_files[0]) and window.load_checkpoint(tiny_vae)
    z = int(window.viewer.point[AXIAL])
    window.doc.editor.brush_size = 5
    for dz in (0, 1):
        window.doc.editor.begin_stroke((20, 24, z + dz), AXIAL)
        window.doc.editor.end_stroke()
    form = window.panel.form
    form.scope.setCurrentIndex(form.scope.findData("all"))
    form.method.setCurrentIndex(form.method.findData("refine3d"))
    axial, scale = window.viewer.views[AXIAL], window.viewer.levels_box.uncertainty
    assert not axial.uncertainty.isVisible() and not scale.isVisible()
    with qtbot.waitSignal(window.jobs.succeeded, timeout=60000):
        window.session.run()
    qtbot.waitUntil(lambda: window.jobs.idle, timeout=5000)
    doc = window.doc
    hole = doc.editor.mask.astype(bool)
    assert doc.uncertainty is not None and (doc.uncertainty[hole] > 0).all() and not doc.uncertainty[~hole].any()
    assert doc.uncertainty_range == float(doc.uncertainty.max())
    overlay = window.act["uncertainty"]
    assert not overlay.isChecked() and not axial.uncertainty.isVisible() and not scale.isVisible()  # the fill shows
    overlay.trigger()   # Shift+U: on
    assert overlay.isChecked() and axial.uncertainty.isVisible() and scale.isVisible()
    assert scale.high.text() == f"{doc.uncertainty_range:.3g}" and scale.low.text() == "0"
    assert "SD" in scale.findChildren(type(scale.low))[0].text() and "intensity units" in scale.toolTip()
    overlay.trigger()   # Shift+U: off
    assert not overlay.isChecked() and not axial.uncertainty.isVisible() and not scale.isVisible()
    overlay.setChecked(True)  # checked without a trigger (as a menu or the review does): the views follow
    assert axial.uncertainty.isVisible() and scale.isVisible()
    assert np.isfinite(doc.uncertainty).all()
    # File > Export writes the map beside the filled volume, as `inpaint fill --uncertainty` does, and says where
    dialogs.paths.append(tmp_path / "out" / "brain_desc-inpainted_T1w.nii.gz")
    (tmp_path / "out").mkdir()
    window.act["export"].trigger()
    sd_file = tmp_path / "out" / "brain_desc-uncertainty_T1w.nii.gz"
    image = nib.load(brain_files[0])
    written = nib.load(sd_file)
    assert np.array_equal(written.affine, image.affine) and written.shape == image.shape
    sd = np.asarray(written.dataobj)
    file_hole = window.doc.mask_in_file_order()
    assert sd.dtype == np.float32 and (sd[file_hole] > 0).all() and not sd[~file_hole].any()
    record = json.loads((tmp_path / "out" / "brain_desc-inpainted_T1w.json").read_text())["uncertainty"]
    assert record["path"] == str(sd_file) and record["mean_sd"] == pytest.approx(float(sd[file_hole].mean()), rel=1e-5)
    assert sd_file.name in window.statusBar().currentMessage()
    window.act["difference"].trigger()   # X
    assert axial.difference.isVisible() and window.viewer.levels_box.difference.isVisible()
    # a new stroke's live preview: the fill's maps describe the old result, not the voxels shown, so they step aside
    window.act["live_preview"].setChecked(True)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(axial, (10, 10, z)))
    qtbot.waitUntil(lambda: window.viewer.layer == "live", timeout=30000)
    assert not axial.uncertainty.isVisible() and not scale.isVisible()
    assert not axial.difference.isVisible() and not window.viewer.levels_box.difference.isVisible()
    window.act["layer_blended"].trigger()   # back on the result: its maps again
    assert axial.uncertainty.isVisible() and axial.difference.isVisible() and scale.isVisible()
    window.forget_changes()
