"""Proof of the desktop app: a scripted paint-and-inpaint session on the demo brain, with screenshots.

Starts the real application window under X (re-running itself inside `xvfb-run` when there is
no display), paints a lesion with real mouse events, runs the fill on the worker thread and
saves what the screen shows to docs/screenshots/:

    01_painting.png    lesion painted on three axial slices, brush outline under the cursor
    02_running.png     fill running: progress, ETA, loss curve and live preview
    03_result.png      blended result with the in-hole metrics and per-slice losses
    04_compare.png     the axial view as Original / Masked / Generated / Blended (the T key)
    05_difference.png  difference map (filled - original) over the blended image

    python scripts/gui_screenshots.py [--model NAME_OR_PATH] [--iterations N] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
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
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and not os.environ.get("GUI_SCREENSHOTS_XVFB"):
        return rerun_under_xvfb()

    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QColor, QImage, QPainter, QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from inpaint_gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    app.setOrganizationName("brain-inpaint-screenshots")
    app.setApplicationName("inpaint-gui")
    window = MainWindow()
    errors: list[str] = []
    window.show_error = lambda text: errors.append(text) or print(f"gui_screenshots: {text}", file=sys.stderr)
    window.resize(1560, 960)
    window.move(20, 20)
    window.show()
    window.activateWindow()  # shortcuts need the active window (there is no window manager under Xvfb)
    QTest.qWaitForWindowExposed(window)
    if not QTest.qWaitForWindowActive(window):
        print("gui_screenshots: the window did not become active; keyboard shortcuts will not reach it",
              file=sys.stderr)
        return 1
    window.open_initial(None, None)
    if args.model is not None:
        shipped = window.panel.model.findData(args.model)
        if shipped >= 0:
            window.panel.model.setCurrentIndex(shipped)
        elif not window.load_checkpoint(args.model):
            return 2
    if window.panel.model_choice() is None:
        print("gui_screenshots: no model installed; pass --model PATH to a checkpoint folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    viewer, doc = window.viewer, window.doc

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

    # a periventricular "lesion" in the right hemisphere, painted on three axial slices
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

    panel = window.panel
    if args.iterations is not None:
        panel.iterations.setValue(args.iterations)
    if args.restarts is not None:
        panel.restarts.setValue(args.restarts)
    panel.scope.setCurrentIndex(panel.scope.findData("all"))
    QTest.mouseMove(panel, QPoint(10, 10))  # off the views (no brush outline) and off any button (no tooltip)
    QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    if not window.jobs.running:
        print("gui_screenshots: Ctrl+R did not start the fill", file=sys.stderr)
        return 1
    while window.jobs.running and panel.progress.value() < 450:
        settle(0.05)
    shoot("02_running.png")
    while window.jobs.running:
        settle(0.1)
    if doc.result is None or errors:
        print(f"gui_screenshots: the fill did not finish: {panel.eta.text()}", file=sys.stderr)
        return 1
    shoot("03_result.png")

    # the four layers of the axial view, side by side (the brush outline hidden: cursor on the panel)
    QTest.mouseMove(panel, QPoint(10, 10))
    QTest.keyClick(window, Qt.Key.Key_1)
    QTest.keyClick(window, Qt.Key.Key_S)  # no mask overlay and no crosshair: the tissue itself is compared
    QTest.keyClick(window, Qt.Key.Key_H)
    settle()
    for _ in range(3):  # Ctrl+wheel: zoom in around the lesion (x2.5)
        zoom_at(axial, centre)
    tiles = []
    for layer in ("original", "masked", "generated", "blended"):
        window.set_layer(layer)
        settle()
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
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
