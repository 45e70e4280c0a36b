"""Live preview latency and brush response of the app, offscreen, idle and beside a busy process.

Opens a ~1 mm scan with its brain mask in the real window (the model and the refiner warmed up
as the app does), then:
- latency: paints a 10 mm-radius lesion with one click of the 3D ball brush, at `--trials` places,
  and times the end of the stroke to the preview drawn in all three views (repainted);
- brush: one stroke-step (a mouse move through to the repainted view, as scripts/bench_gui.py)
  with the live preview off, and with a preview computing on its worker thread.
Each is measured idle, then with `while true; do :; done` running beside it (`--busy` only that).

    python scripts/measure_preview.py [--image T1w] [--brainmask MASK] [--trials 7] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCAN = ROOT.parent / "shared" / "data" / "heldout_cohort" / "ds002748" / "sub-09_T1w.nii.gz"

import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

RADIUS_MM = 10.0


def viewport_point(view, voxel) -> QPoint:
    mm = QPointF((voxel[view.col_axis] + 0.5) * view._spacing[view.col_axis],
                 (voxel[view.row_axis] + 0.5) * view._spacing[view.row_axis])
    return view.mapFromScene(view.box.mapViewToScene(mm))


def wait(app: QApplication, condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the preview did not arrive")
        app.processEvents()
        time.sleep(0.001)


def places(doc, count: int) -> list[np.ndarray]:
    """`count` centres inside the brain mask, 30 mm apart at least (separate lesions)."""
    brain = doc.reo.apply(doc.brain.astype(np.uint8)) if doc.brain is not None else doc.original > 0
    rng = np.random.default_rng(0)
    inside = np.argwhere(brain)
    deep = [v for v in inside[rng.choice(len(inside), 4000, replace=False)]
            if brain[tuple(np.clip(v + 14, 0, np.array(doc.shape) - 1))] and brain[tuple(np.maximum(v - 14, 0))]]
    chosen: list[np.ndarray] = []
    for voxel in deep:
        if all(np.linalg.norm((voxel - c) * doc.spacing) > 30 for c in chosen):
            chosen.append(voxel)
        if len(chosen) == count:
            break
    return chosen


def latency(app, window, centres) -> list[float]:
    viewer, axial = window.viewer, window.viewer.views[2]
    times = []
    for centre in centres:
        viewer.set_point(centre)
        shown: list[float] = []
        window.preview.shown.connect(lambda s: shown.append(time.perf_counter() - s))
        QTest.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         viewport_point(axial, centre))
        wait(app, lambda: shown)
        for view in viewer.views.values():
            view.viewport().repaint()
        times.append(time.perf_counter() - shown[0])
        window.preview.shown.disconnect()
        wait(app, lambda: not window.preview._threads)
    return times


def brush_steps(app, window, centre, steps: int, with_preview: bool) -> list[float]:
    """Stroke steps of a disc brush (size 9) on the axial view; with a preview computing beside them."""
    viewer, axial, doc = window.viewer, window.viewer.views[2], window.doc
    viewport = axial.viewport()
    if with_preview:  # a ball painted first: its preview computes while the stroke below is drawn
        doc.editor.sphere = True
        viewer.set_point(centre + np.array([0, 0, 12]))
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         viewport_point(axial, viewer.point))
        assert window.preview._threads, "no preview is computing"
    doc.editor.sphere, size = False, doc.editor.brush_size
    doc.editor.brush_size = 9
    viewer.set_point(centre)
    angles = np.linspace(0, np.pi, steps + 1)
    points = [centre + np.array([10 * np.cos(a), 10 * np.sin(a), 0]) for a in angles]
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     viewport_point(axial, points[0]))
    times = []
    for point in points[1:]:
        start = time.perf_counter()
        QTest.mouseMove(viewport, viewport_point(axial, point))
        viewport.repaint()
        times.append(time.perf_counter() - start)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       viewport_point(axial, points[-1]))
    running_after = bool(window.preview._threads)
    doc.editor.brush_size, doc.editor.sphere = size, True
    wait(app, lambda: not window.preview._threads)
    if with_preview and not running_after:
        print("  (the preview ended before the stroke did: the steps overlapped it only in part)")
    return times


def ms(values: list[float]) -> str:
    return (f"median {1000 * statistics.median(values):.0f} ms (min {1000 * min(values):.0f}, "
            f"max {1000 * max(values):.0f}, n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=SCAN)
    parser.add_argument("--brainmask", type=Path, default=None, help="default: <image stem>_brainmask beside it")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--busy", action="store_true", help="only the measurement beside a busy process")
    args = parser.parse_args()
    brainmask = args.brainmask or args.image.with_name(args.image.name.replace("_T1w", "_brainmask"))
    app = QApplication.instance() or QApplication([])
    from inpaint_gui.main_window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "measure.ini"), QSettings.Format.IniFormat), warm_up=True)
        window.resize(1600, 1000)
        window.show()
        QTest.qWaitForWindowExposed(window)
        if not (window.files.open_image(args.image) and window.files.load_brain_mask(brainmask)):
            return 2
        doc = window.doc
        wait(app, lambda: all(w.isFinished() for w in window.jobs._warm.values()) and window.preview._warm.isFinished())
        doc.editor.sphere = True
        window.act["sphere"].setChecked(True)
        doc.editor.brush_size = 2 * RADIUS_MM / float(doc.spacing.min())
        print(f"{args.image.name}: {'x'.join(map(str, doc.shape))} voxels of "
              f"{'x'.join(f'{s:.2f}' for s in doc.spacing)} mm; brush ball {doc.editor.brush_size:.1f} voxels "
              f"(radius {RADIUS_MM:g} mm); cores {os.cpu_count()}")
        centres = places(doc, 2 * args.trials + 4)
        conditions = [("busy", True)] if args.busy else [("idle", False), ("busy", True)]
        for name, busy in conditions:
            spinner = subprocess.Popen(["bash", "-c", "while true; do :; done"]) if busy else None
            try:
                time.sleep(1.0 if busy else 0.0)
                batch = centres[:args.trials] if name == "idle" else centres[args.trials:2 * args.trials]
                before = doc.editor.voxel_count
                times = latency(app, window, batch)
                lesion = (doc.editor.voxel_count - before) / len(batch)
                print(f"{name} (load average {os.getloadavg()[0]:.2f}): stroke end -> preview in 3 views: "
                      f"{ms(times)}; lesions of {lesion:.0f} voxels ({lesion * doc.voxel_ml:.2f} ml)")
                window.act["live_preview"].trigger()  # off
                spare = centres[-4:-2] if busy else centres[-2:]
                plain = brush_steps(app, window, spare[0], args.steps, False)
                window.act["live_preview"].trigger()  # on
                during = brush_steps(app, window, spare[1], args.steps, True)
                print(f"{name}: brush stroke step, live preview off: {ms(plain)}; during a preview: {ms(during)}")
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
        doc.editor.mark_saved()
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
