"""Time a 3-slice fill through the app's own path (Run action -> worker thread -> result shown), on a busy CPU.

Opens the demo brain in the real main window (offscreen), paints the lesion of the screenshots
(three axial slices), starts `--busy` CPU-bound processes beside it (`python -c 'while 1: pass'`),
then triggers Inpaint > Run fill at the app's default settings (or another `--method`) and
measures the wall time until the result is on screen.

    python scripts/measure_gui_fill.py [--busy 1] [--threads 0 (auto)] [--method NAME] [--repeat 3]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

LESION_CENTRE = (58, 62, 50)  # RAS voxel of the demo brain, as in scripts/gui_screenshots.py


def paint_lesion(window) -> None:
    """The three-slice lesion of the screenshots, painted with the app's brush (size 5)."""
    editor = window.doc.editor
    editor.brush_size = 5
    x, y, z = LESION_CENTRE
    for dz, reach in ((-1, 3), (0, 5), (1, 3)):
        editor.begin_stroke((x - reach, y - 4, z + dz), 2)
        editor.extend_stroke((x + reach, y + 4, z + dz))
        editor.extend_stroke((x + reach // 2, y - 2, z + dz))
        editor.end_stroke()
    window.viewer.refresh_mask()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes running beside the app")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the app's automatic choice)")
    parser.add_argument("--method", default=None, help="fill method (core.fill.METHODS; default: the app's)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core.threads import choose_threads, load_average
    from inpaint_gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(QSettings(str(Path(tmp) / "measure.ini"), QSettings.Format.IniFormat))
        window.resize(1400, 900)
        window.show()
        window.files.open_initial(None, None)
        paint_lesion(window)
        form = window.panel.form
        form.threads.setValue(args.threads)
        if args.method is not None:
            form.method.setCurrentIndex(form.method.findData(args.method))
            if form.method.currentData() != args.method:
                print(f"measure_gui_fill: no fill method {args.method!r}", file=sys.stderr)
                return 2
        busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.busy)]
        try:
            time.sleep(3.0)  # let the busy processes show in the load average
            walls, fills, threads = [], [], []
            for _ in range(args.repeat):
                done: list[object] = []
                window.jobs.succeeded.connect(done.append)
                window.jobs.failed.connect(done.append)
                start = time.perf_counter()
                window.act["run"].trigger()
                while not done:
                    app.processEvents()
                    time.sleep(0.005)
                walls.append(time.perf_counter() - start)
                window.jobs.succeeded.disconnect(done.append)
                window.jobs.failed.disconnect(done.append)
                result = window.doc.result
                if result is None or done[0] is not result:
                    print(f"measure_gui_fill: the fill failed: {done[0]}", file=sys.stderr)
                    return 1
                fills.append(result.fill.seconds)
                threads.append(result.threads)
                slices = window.doc.filled_slices(result.fill.hole, result.fill.axis)
                print(f"fill of {int(result.fill.hole.sum())} voxels in {len(slices)} slices: "
                      f"{walls[-1]:.2f} s wall ({result.fill.seconds:.2f} s in the engine), "
                      f"{result.threads} torch thread(s), load average {load_average()}", flush=True)
                while not window.jobs.idle:  # the metrics, measured after the result is shown
                    app.processEvents()
                    time.sleep(0.005)
        finally:
            for process in busy:
                process.kill()
                process.wait()
        window.doc.editor.mark_saved()
        window.doc.result_saved = True
        window.close()
    print(f"median {statistics.median(walls):.2f} s wall from Run to the result on screen "
          f"({statistics.median(fills):.2f} s in the engine), method {form.method.currentData()}, "
          f"{args.busy} busy process(es); "
          f"torch threads {sorted(set(threads))} (auto would choose {choose_threads()} now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
