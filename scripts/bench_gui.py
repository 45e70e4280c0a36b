"""Measure the app's interactive latency offscreen: one brush-stroke step and one slice change.

Each step goes through the real path (a Qt mouse or key event, pyqtgraph's event handling,
the mask editor, the image update) and ends with a synchronous repaint of the affected views.
Prints the medians in milliseconds; the target for both is <= 16 ms on a 256x256 slice.

    python scripts/bench_gui.py [--shape 256 256 160] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def synthetic_volume(shape: tuple[int, int, int], path: Path) -> Path:
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid ** 2).sum(0))
    data = np.where(radius < 0.9, 80 + 30 * (radius < 0.5) + 5 * rng.standard_normal(shape), 0).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return path


def viewport_point(view, voxel) -> QPoint:
    mm = QPointF((voxel[view.col_axis] + 0.5) * view._spacing[view.col_axis],
                 (voxel[view.row_axis] + 0.5) * view._spacing[view.row_axis])
    return view.mapFromScene(view.box.mapViewToScene(mm))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 160])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from inpaint_gui.main_window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "bench.ini"), QSettings.Format.IniFormat), warm_up=False)
        window.resize(1600, 1000)
        window.show()
        QTest.qWaitForWindowExposed(window)
        window.files.open_image(synthetic_volume(tuple(args.shape), Path(tmp) / "bench_T1w.nii.gz"))
        window.doc.editor.brush_size = 9
        viewer = window.viewer
        viewer.toggle_maximised(2)
        app.processEvents()
        axial = viewer.views[2]
        viewport = axial.viewport()
        centre = np.array(window.doc.shape) // 2
        stroke, slices = [], []

        # stroke: press, then many small moves along a circle (each one a stroke step)
        angles = np.linspace(0, 4 * np.pi, args.steps + 1)
        points = [centre + np.array([40 * np.cos(a), 40 * np.sin(a), 0]) for a in angles]
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         viewport_point(axial, points[0]))
        for point in points[1:]:
            target = viewport_point(axial, point)
            start = time.perf_counter()
            QTest.mouseMove(viewport, target)
            viewport.repaint()
            stroke.append(time.perf_counter() - start)
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           viewport_point(axial, points[-1]))

        viewer.toggle_maximised(None)
        app.processEvents()
        for i in range(args.steps):
            start = time.perf_counter()
            QTest.keyClick(window, Qt.Key.Key_PageUp if (i // 20) % 2 == 0 else Qt.Key.Key_PageDown)
            for view in viewer.views.values():
                view.viewport().repaint()
            slices.append(time.perf_counter() - start)
        painted = window.doc.editor.voxel_count
        window.doc.editor.mark_saved()
        window.close()

    shape = "x".join(map(str, args.shape))
    print(f"volume {shape}, {args.steps} steps each; {painted} voxels painted")
    print(f"brush stroke step (move event -> mask -> repaint): median {1000 * statistics.median(stroke):.2f} ms, "
          f"95th percentile {1000 * np.percentile(stroke, 95):.2f} ms")
    print(f"slice change (PageUp/PageDown -> 3 views repainted): median {1000 * statistics.median(slices):.2f} ms, "
          f"95th percentile {1000 * np.percentile(slices, 95):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
