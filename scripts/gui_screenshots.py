"""Proof of the desktop app: a scripted paint-run-toggle-export session on the demo brain, with screenshots.

Starts the real application window under X (re-running itself inside `xvfb-run` when there is
no display), paints a lesion with real mouse events, runs fills on the worker thread through
the keyboard shortcuts, exports with Ctrl+E (the save dialog answered by the script) and saves
what the screen shows to docs/screenshots/:

    00_start.png       the window before an image is open: how to open one
    01_painting.png    lesion painted on three axial slices, brush outline under the cursor
    02_running.png     a latent-search fill (slices2d) running: progress, ETA, loss curve, live preview
    03_result.png      the result of the default method, first filled slice, metrics, lesion volume (the
                       uncertainty overlay is off after a fill, so the fill itself shows)
    03_uncertainty.png the same with its predicted error as the yellow uncertainty overlay and its colour bar
                       (Shift+U)
    04_compare.png     the axial view as Original / Masked / Generated / Blended (the T key)
    05_difference.png  difference map (filled - original) with its colour scale
    06_skull_on.png    with --skull-on IMAGE: the warning for an image with skull, log histogram
    07_live_preview.png  one more stroke with View > Live preview on (L): its lesion filled in the three views
    08_review.png      with --cohort OUT_DIR: a copy of an `inpaint bids` output under review (Ctrl+Shift+R),
                       two scans rated with P and F, the third on its first lesion (N), the fill itself
                       (the uncertainty overlay is off when a cohort opens; Shift+U shows it)

    python scripts/gui_screenshots.py [--model NAME_OR_PATH] [--iterations N] [--skull-on IMAGE] [--cohort OUT_DIR]
                                      [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCREEN = "1600x1000x24"


def rerun_under_xvfb() -> int:
    if shutil.which("xvfb-run") is None:
        print("gui_screenshots: no X display and no xvfb-run; install it with "
              "'apt-get update && apt-get install -y xvfb'", file=sys.stderr)
        return 2
    env = dict(os.environ, GUI_SCREENSHOTS_XVFB="1", QT_QPA_PLATFORM="xcb")
    command = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, *sys.argv]
    return subprocess.call(command, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped model name or checkpoint path (default: default model)")
    parser.add_argument("--iterations", type=int, default=None, help="default: the app's")
    parser.add_argument("--restarts", type=int, default=None, help="default: the app's")
    parser.add_argument("--skull-on", type=Path, default=None, help="an image with skull for 06_skull_on.png")
    parser.add_argument("--cohort", type=Path, default=None, help="an 'inpaint bids' output for 08_review.png")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and not os.environ.get("GUI_SCREENSHOTS_XVFB"):
        return rerun_under_xvfb()

    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QColor, QImage, QPainter, QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QFileDialog

    from core.fill import FillSettings
    from core.volume import load_volume
    from inpaint_gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    app.setOrganizationName("brain-inpaint-screenshots")
    app.setApplicationName("inpaint-gui")
    window = MainWindow()
    errors: list[str] = []
    window.dialogs.error = lambda text: errors.append(text) or print(f"gui_screenshots: {text}", file=sys.stderr)
    window.resize(1560, 960)
    window.move(20, 20)
    window.show()
    window.activateWindow()  # shortcuts need the active window (there is no window manager under Xvfb)
    QTest.qWaitForWindowExposed(window)
    if not QTest.qWaitForWindowActive(window):
        print("gui_screenshots: the window did not become active; keyboard shortcuts will not reach it",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shoot(name: str) -> QImage:
        settle()
        image = window.screen().grabWindow(window.winId()).toImage()
        image.save(str(args.out / name))
        print(f"wrote {args.out / name} ({image.width()}x{image.height()})")
        return image

    shoot("00_start.png")
    window.files.open_initial(None, None)
    form = window.panel.form
    if args.model is not None:
        shipped = form.model.findData(args.model)
        if shipped >= 0:
            form.model.setCurrentIndex(shipped)
        elif not window.load_checkpoint(args.model):
            return 2
    if window.panel.model_choice() is None:
        print("gui_screenshots: no model installed; pass --model PATH to a checkpoint folder", file=sys.stderr)
        return 2
    viewer, doc = window.viewer, window.doc

    def at(view, voxel) -> QPoint:
        mm = QPointF((voxel[view.col_axis] + 0.5) * view._spacing[view.col_axis],
                     (voxel[view.row_axis] + 0.5) * view._spacing[view.row_axis])
        return view.mapFromScene(view.box.mapViewToScene(mm))

    def zoom_at(view, voxel) -> None:
        pos = QPointF(at(view, voxel))
        event = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(view.viewport(), event)
        settle(0.05)

    def stroke(view, points) -> None:
        viewport = view.viewport()
        QTest.mouseMove(viewport, at(view, points[0]))
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, points[0]))
        for a, b in zip(points[:-1], points[1:]):
            for t in (0.25, 0.5, 0.75, 1.0):
                QTest.mouseMove(viewport, at(view, [a[i] + t * (b[i] - a[i]) for i in range(3)]))
                settle(0.02)
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, points[-1]))

    def uncertainty(on: bool) -> None:
        """Shift+U until the uncertainty overlay is `on`."""
        if window.act["uncertainty"].isChecked() != on:
            QTest.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ShiftModifier)

    def live_preview(on: bool) -> None:
        """L until View > Live preview is `on` (the app remembers the choice between runs)."""
        if window.act["live_preview"].isChecked() != on:
            QTest.keyClick(window, Qt.Key.Key_L)

    # a periventricular "lesion" in the right hemisphere, painted on three axial slices (live preview off)
    live_preview(False)
    centre = (58, 62, 50)
    viewer.set_point(centre)
    axial = viewer.views[2]
    for _ in range(2):
        QTest.keyClick(window, Qt.Key.Key_BracketRight)
    for dz, reach in ((-1, 3), (0, 5), (1, 3)):
        z = centre[2] + dz
        viewer.set_point((centre[0], centre[1], z))
        stroke(axial, [(centre[0] - reach, centre[1] - 4, z), (centre[0] + reach, centre[1] + 4, z),
                       (centre[0] + reach // 2, centre[1] - 2, z)])
    viewer.set_point(centre)
    QTest.mouseMove(axial.viewport(), at(axial, (centre[0] - 14, centre[1] + 10, centre[2])))
    shoot("01_painting.png")

    # live preview on: one more stroke, and its lesion (the one painted above) is filled in the three views
    live_preview(True)
    shown: list[float] = []
    window.preview.shown.connect(shown.append)
    stroke(axial, [(centre[0] - 2, centre[1] + 3, centre[2]), (centre[0] + 2, centre[1] + 4, centre[2])])
    end = time.monotonic() + 60
    while not shown and time.monotonic() < end:
        settle(0.05)
    if viewer.layer != "live":
        print("gui_screenshots: the live preview was not shown", file=sys.stderr)
        return 1
    print(f"live preview shown {1000 * shown[0]:.0f} ms after the stroke ended")
    QTest.mouseMove(axial.viewport(), at(axial, (centre[0] - 14, centre[1] + 10, centre[2])))
    shoot("07_live_preview.png")
    live_preview(False)  # the fills below are the subject

    panel = window.panel
    if args.iterations is not None:
        form.iterations.setValue(args.iterations)
    if args.restarts is not None:
        form.restarts.setValue(args.restarts)
    default_method = form.method.currentData()

    def run(method: str) -> bool:
        """Ctrl+R with `method`; False (and a message) when the fill did not start or finish."""
        form.method.setCurrentIndex(form.method.findData(method))
        while not window.jobs.idle:  # the previous job's thread (metrics) ends first
            settle(0.05)
        QTest.mouseMove(panel, QPoint(10, 10))  # off the views (no brush outline) and off any button (no tooltip)
        QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        if not window.jobs.running:
            print(f"gui_screenshots: Ctrl+R did not start the {method} fill", file=sys.stderr)
            return False
        return True

    def finish() -> bool:
        while window.jobs.running:
            settle(0.1)
        while not window.jobs.idle:  # metrics are measured after the result is shown
            settle(0.1)
        if doc.result is None or errors:
            print(f"gui_screenshots: the fill did not finish: {panel.eta.text()}", file=sys.stderr)
            return False
        return True

    if form.method.findData("slices2d") >= 0:  # the latent search shows a live preview and a loss curve
        if not run("slices2d"):
            return 1
        while window.jobs.running and panel.progress.value() < 450:
            settle(0.05)
        shoot("02_running.png")
        if not finish():
            return 1
    if not run(default_method) or not finish():
        return 1
    print(f"fill ({default_method}): {panel.eta.text()}")
    shoot("03_result.png")
    uncertainty(True)
    shoot("03_uncertainty.png")
    uncertainty(False)  # the comparisons show the tissue itself

    # export with Ctrl+E; the save dialog is answered here (a native dialog cannot be scripted)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "sub-demo_desc-inpainted_T1w.nii.gz"
        QFileDialog.getSaveFileName = staticmethod(lambda *a, **k: (str(target), ""))
        QTest.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        settle()
        if errors or not target.is_file():
            print("gui_screenshots: Ctrl+E wrote no export", file=sys.stderr)
            return 1
        exported, source = load_volume(target), doc.volume
        hole = doc.result.fill.hole
        if not ((exported.data[~hole] == source.data[~hole]).all() and (exported.affine == source.affine).all()):
            print("gui_screenshots: the export changed voxels outside the mask or the geometry", file=sys.stderr)
            return 1
        print(f"exported {target.name} (+ sidecar and mask): geometry and voxels outside the mask identical")
    print(f"method {default_method} (FillSettings default {FillSettings().method})")

    # the four layers of the axial view, side by side (the brush outline hidden: cursor on the panel)
    QTest.mouseMove(panel, QPoint(10, 10))
    QTest.keyClick(window, Qt.Key.Key_1)
    QTest.keyClick(window, Qt.Key.Key_S)  # no mask overlay and no crosshair: the tissue itself is compared
    QTest.keyClick(window, Qt.Key.Key_H)
    settle()
    for _ in range(3):  # Ctrl+wheel: zoom in around the lesion (x2.5)
        zoom_at(axial, centre)
    tiles = []
    viewer.set_point(centre)
    for number, layer in enumerate(("original", "masked", "generated", "blended")):
        QTest.keyClick(window, Qt.Key(Qt.Key.Key_1.value + number), Qt.KeyboardModifier.ControlModifier)
        settle()
        if viewer.layer != layer:
            print(f"gui_screenshots: Ctrl+{number + 1} showed {viewer.layer}, not {layer}", file=sys.stderr)
            return 1
        corner = axial.mapTo(window, QPoint(0, 0))
        tiles.append(window.screen().grabWindow(window.winId(), corner.x(), corner.y(), axial.width(),
                                                axial.height()).toImage())
    w, h = tiles[0].width(), tiles[0].height()
    montage = QImage(2 * w + 4, 2 * h + 4, QImage.Format.Format_RGB32)
    montage.fill(QColor("white"))
    painter = QPainter(montage)
    for i, tile in enumerate(tiles):
        painter.drawImage((i % 2) * (w + 4), (i // 2) * (h + 4), tile)
    painter.end()
    if montage.width() > 1400:
        montage = montage.scaledToWidth(1400, Qt.TransformationMode.SmoothTransformation)
    montage.save(str(args.out / "04_compare.png"))
    print(f"wrote {args.out / '04_compare.png'} ({montage.width()}x{montage.height()})")
    QTest.keyClick(window, Qt.Key.Key_S)
    QTest.keyClick(window, Qt.Key.Key_H)
    QTest.keyClick(window, Qt.Key.Key_Home)
    QTest.keyClick(window, Qt.Key.Key_0)
    QTest.keyClick(window, Qt.Key.Key_X)
    shoot("05_difference.png")
    doc.editor.mark_saved()
    doc.result_saved = True
    if args.skull_on is not None:
        if not window.files.open_image(args.skull_on) or not window.panel.image_note.isVisible():
            print(f"gui_screenshots: {args.skull_on} did not open with the skull-on warning", file=sys.stderr)
            return 1
        window.viewer.levels_box.log.setChecked(True)
        shoot("06_skull_on.png")
    if args.cohort is not None:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(shutil.copytree(args.cohort, Path(tmp) / args.cohort.name))
            QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: str(copy))
            review_keys = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
            QTest.keyClick(window, Qt.Key.Key_R, review_keys)
            if window.review.cohort is None:
                print(f"gui_screenshots: {args.cohort} did not open for review", file=sys.stderr)
                return 1
            for key in (Qt.Key.Key_P, Qt.Key.Key_F):
                QTest.keyClick(window, key)
                QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
            QTest.keyClick(window, Qt.Key.Key_N)
            settle()
            shoot("08_review.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
