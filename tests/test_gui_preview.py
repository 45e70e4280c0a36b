"""Live preview while painting, through the real strokes and the View > Live preview action (pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.checkpoint import load_model  # noqa: E402
from core.live_preview import preview_fill  # noqa: E402
from test_gui_support import ScriptedWindow, fake_result, viewport_point  # noqa: E402

AXIAL = 2


@pytest.fixture
def window(qtbot, tmp_path, brain_files, tiny_vae, dialogs):
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    assert w.files.open_image(brain_files[0]) and w.load_checkpoint(tiny_vae)
    w.doc.editor.brush_size = 3
    yield w
    w.forget_changes()


def paint(qtbot, window, voxel) -> None:
    view = window.viewer.views[AXIAL]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(view, voxel))


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.preview._threads, timeout=60000)
    qtbot.wait(10)


def test_a_finished_stroke_shows_its_lesion_filled_in_every_view(qtbot, window, tiny_vae):
    doc, viewer = window.doc, window.viewer
    z = int(viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.shown, timeout=60000) as shown:
        paint(qtbot, window, (20, 24, z))
    assert 0 < shown.args[0] < 60
    hole = np.flatnonzero(doc.editor.mask)
    expected = preview_fill(doc.volume.data, doc.volume.affine, hole, load_model(tiny_vae))
    assert np.array_equal(np.sort(doc.live.indices), hole) and np.allclose(
        doc.live.values[np.argsort(doc.live.indices)], expected)
    assert viewer.layer == "live" and all("Live preview" in v.title.text() for v in viewer.views.values())
    voxel = np.unravel_index(hole[0], doc.shape)
    for axis, view in viewer.views.items():  # every view shows the preview on its slice through the lesion
        viewer.set_point(voxel)
        rows = doc.layer_slice("live", axis, int(voxel[axis]))
        assert np.array_equal(view.image.image, np.ascontiguousarray(rows.T))
    assert "Run (Ctrl+R) makes the full fill" in window.statusBar().currentMessage()
    fake_result(window)  # a full fill supersedes the preview
    assert doc.live is None and "live" not in doc.available_layers()


def test_a_newer_stroke_drops_the_stale_preview_and_the_next_one_fills_both_lesions(qtbot, window):
    doc, viewer, preview = window.doc, window.viewer, window.preview
    z = int(viewer.point[AXIAL])
    shown = []
    preview.shown.connect(shown.append)
    view = viewer.views[AXIAL]
    paint(qtbot, window, (8, 10, z))              # stroke A ends: its preview starts on the worker
    first = preview.generation
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(view, (26, 30, z)))
    qtbot.mouseMove(view.viewport(), viewport_point(view, (28, 31, z)))  # stroke B begins: A's preview is stale
    assert preview.generation > first and doc.editor.stroke_active  # painting went on at once
    settle(qtbot, window)
    assert not shown and doc.live is None          # A's result was dropped
    with qtbot.waitSignal(preview.shown, timeout=60000):
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           viewport_point(view, (28, 31, z)))
    assert np.array_equal(np.sort(doc.live.indices), np.flatnonzero(doc.editor.mask))  # A and B together
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo B: B's preview goes
    settle(qtbot, window)
    assert np.array_equal(np.sort(doc.live.indices), np.flatnonzero(doc.editor.mask))


def test_view_live_preview_turns_it_off_and_on(qtbot, window):
    doc, viewer, action = window.doc, window.viewer, window.act["live_preview"]
    z = int(viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.shown, timeout=60000):
        paint(qtbot, window, (20, 24, z))
    settle(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert not action.isChecked() and doc.live is None and viewer.layer == "original"
    assert window.settings.value("livePreview", type=bool) is False
    paint(qtbot, window, (10, 14, z))
    assert not window.preview._threads and doc.live is None  # nothing runs
    action.trigger()
    assert action.isChecked()
    with qtbot.waitSignal(window.preview.shown, timeout=60000):
        paint(qtbot, window, (8, 30, z))
    assert doc.live is not None and viewer.layer == "live"
    window.act["clear_all"].trigger()  # a clear forgets the preview
    assert doc.live is None and viewer.layer == "original"


def test_a_stroke_on_the_background_alone_says_why_there_is_no_preview(qtbot, window):
    doc, viewer = window.doc, window.viewer
    z = int(viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.message, timeout=60000) as said:
        paint(qtbot, window, (1, 1, z))                 # the volume's corner: background only
    assert said.args[0].startswith("No live preview: All ") and "voxels to fill lie outside the brain" in said.args[0]
    assert "Error" not in said.args[0] and doc.live is None



def test_a_preview_that_fails_without_a_message_says_so_once(qtbot, window, monkeypatch):
    """An error whose message is empty (a bare MemoryError) is said in the status bar; it broke the handler itself
    (the first line of an empty message), and the preview was then retried on the same lesions forever."""
    import inpaint_gui.preview_controller as preview_controller

    calls = []

    def fail(*args, **kwargs):
        calls.append(1)
        raise MemoryError()

    monkeypatch.setattr(preview_controller, "preview_fill", fail)
    z = int(window.viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.message, timeout=60000) as said:
        paint(qtbot, window, (20, 24, z))
    assert said.args[0] == "No live preview (MemoryError)"
    settle(qtbot, window)
    qtbot.wait(300)
    assert len(calls) == 1 and window.doc.live is None

def hover(view, voxel) -> None:
    """A plain mouse move over `voxel` (QTest's synthetic moves are dropped offscreen)."""
    pos = QPointF(viewport_point(view, voxel))
    QApplication.sendEvent(view.viewport(), QMouseEvent(QEvent.Type.MouseMove, pos, pos, Qt.MouseButton.NoButton,
                                                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))


def test_the_toolbar_shows_no_layer_while_the_views_show_the_live_preview(qtbot, window):
    """'Original' stayed checked while every view said 'Live preview'."""
    layers = [window.act[f"layer_{name}"] for name in ("original", "masked", "generated", "blended")]
    z = int(window.viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.shown, timeout=60000):
        paint(qtbot, window, (20, 24, z))
    assert window.viewer.layer == "live" and not any(action.isChecked() for action in layers)
    window.act["layer_masked"].trigger()  # a layer of its own: its button
    assert window.viewer.layer == "masked" and window.act["layer_masked"].isChecked()
    with qtbot.waitSignal(window.preview.shown, timeout=60000):
        paint(qtbot, window, (8, 10, z))
    assert window.viewer.layer == "live" and not any(action.isChecked() for action in layers)
    settle(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_L)  # preview off: back to the original, and its button
    assert window.viewer.layer == "original" and window.act["layer_original"].isChecked()


def test_a_long_message_is_not_cut_off_by_the_cursor_readout(qtbot, window):
    """The readout took the status bar's width: the preview's message ended '...; Run (Ct'."""
    bar, viewer = window.status, window.viewer
    view, z = viewer.views[AXIAL], int(viewer.point[AXIAL])
    with qtbot.waitSignal(window.preview.shown, timeout=60000):
        paint(qtbot, window, (20, 24, z))
    hover(view, (21, 24, z))  # a long readout: slice, file voxel, mm, value, live preview value, in mask
    qtbot.wait(20)
    message = bar.currentMessage()
    assert message.endswith("Run (Ctrl+R) makes the full fill.") and "live preview" in window.cursor_label.text()
    assert bar.toolTip() == message
    width = bar.fontMetrics().horizontalAdvance(message)
    assert 6 + width <= window.cursor_label.x() - 2  # QStatusBar draws the message from x = 6 to the readout
    assert window.cursor_label.width() > 0 and window.brush_label.width() >= window.brush_label.sizeHint().width()
    # the preview's time is a passing note: after 2 s the readout has its width again (it gave way for 6 s after every
    # stroke, hiding the intensity while one paints)
    qtbot.waitUntil(lambda: not bar.currentMessage(), timeout=3000)
    qtbot.wait(20)
    assert window.cursor_label.width() >= window.cursor_label.sizeHint().width()
    with qtbot.waitSignal(window.preview.message, timeout=60000) as said:
        paint(qtbot, window, (1, 1, z))  # background only: a message longer than the bar has room for
    qtbot.wait(20)
    assert bar.toolTip() == said.args[0] == bar.currentMessage()  # the whole of it, on the status bar's tooltip
    assert window.cursor_label.width() == 0  # the readout gave way
