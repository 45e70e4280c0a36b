"""Review a whole `inpaint bids` output with key presses only, then reopen it and check the ratings and checksums.

Drives the real window offscreen with key events: Ctrl+Shift+R (the folder dialog answered with
OUT_DIR), for every scan N through each of its lesions, P / F / U in turn, Ctrl+N; Ctrl+Q; then
a fresh window reopens OUT_DIR and every rating must be there, with no other file of OUT_DIR,
its raw dataset or its masks changed (SHA-256).

    python scripts/review_with_keys.py OUT_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402

from core.mask_editor import lesions  # noqa: E402
from core.review import QC_TABLE, read_ratings  # noqa: E402
from core.review_scan import dataset_links  # noqa: E402

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
VERDICTS = ((Qt.Key.Key_P, "pass"), (Qt.Key.Key_F, "fail"), (Qt.Key.Key_U, "unsure"))


def checksums(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file() and p.name not in (QC_TABLE, "desc-qc_scans.json")}


def window(app: QApplication, settings: Path):
    from inpaint_gui.main_window import MainWindow

    w = MainWindow(QSettings(str(settings), QSettings.Format.IniFormat), warm_up=False)
    w.resize(1400, 900)
    w.show()
    QTest.qWaitForWindowExposed(w)
    w.activateWindow()
    while QApplication.activeWindow() is not w:
        app.processEvents()
    return w


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="an `inpaint bids` output folder")
    out = parser.parse_args().out_dir.resolve()
    links = dataset_links(out)
    folders = [out] + [links[k] for k in ("raw", "masks") if k in links]
    before = checksums(*folders)
    app = QApplication.instance() or QApplication([])
    QFileDialog.getExistingDirectory = staticmethod(lambda *a, **k: str(out))
    with tempfile.TemporaryDirectory() as tmp:
        w = window(app, Path(tmp) / "review.ini")
        start = time.perf_counter()
        QTest.keyClick(w, Qt.Key.Key_R, CTRL | SHIFT)
        review, keys, steps, expected = w.review, 1, 0, {}
        while True:
            scan = review.cohort.scans[review.index]
            count = len(lesions(w.doc.editor.mask)) if w.doc is not None else 0
            for _ in range(count):
                QTest.keyClick(w, Qt.Key.Key_N)
            key, verdict = VERDICTS[review.index % 3]
            QTest.keyClick(w, key)
            expected[scan.output] = verdict
            keys, steps = keys + count + 2, steps + count
            last = review.index == len(review.cohort.scans) - 1
            QTest.keyClick(w, Qt.Key.Key_N, CTRL)
            if last:
                break
        seconds = time.perf_counter() - start
        QTest.keyClick(w, Qt.Key.Key_Q, CTRL)
        app.processEvents()
        print(f"{len(expected)} scans, {steps} lesion steps, {keys + 1} key presses in {seconds:.1f} s; "
              f"window closed: {not w.isVisible()}")
        w2 = window(app, Path(tmp) / "review.ini")
        QTest.keyClick(w2, Qt.Key.Key_R, CTRL | SHIFT)
        ratings = {k: r.rating for k, r in read_ratings(out).items()}
        shown = [w2.review_panel.table.item(i, 3).text() for i in range(len(w2.review.cohort.scans))]
        w2.close()
    same = checksums(*folders) == before
    ok = ratings == expected and shown == [expected[s.output] for s in w2.review.cohort.scans] and same
    print(f"reopened: {len(ratings)} ratings in {QC_TABLE}, all as given: {ratings == expected}; listed in the "
          f"window: {shown == [expected[s.output] for s in w2.review.cohort.scans]}; every other file of the cohort "
          f"unchanged ({len(before)} files, SHA-256): {same}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
