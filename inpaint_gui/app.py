"""Entry point of `inpaint-gui [IMAGE] [--mask MASK]` and `inpaint-gui --review OUT_DIR`."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn, Optional, Sequence

from core import __version__
from core.errors import described


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint-gui",
                                     description="Paint a lesion mask on a brain MRI and fill it with healthy-looking "
                                                 "tissue. Without IMAGE, opens the bundled demo brain.")
    parser.add_argument("image", nargs="?", type=Path, help="volume to open (NIfTI, NRRD, MHA/MHD, DICOM folder)")
    parser.add_argument("--mask", type=Path, default=None, help="lesion mask on the image's grid to load with it")
    parser.add_argument("--review", type=Path, default=None, metavar="OUT_DIR",
                        help="review the filled scans of an 'inpaint bids' output folder (rate them pass / fail / "
                             "unsure; ratings go to OUT_DIR/desc-qc_scans.tsv)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def install_excepthook(window) -> None:
    """An unexpected error in a slot becomes a dialog (details on stderr) instead of ending the app."""

    def hook(kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb)
        window.dialogs.error(f"Unexpected error ({described(value)}); the details were printed to the terminal.")

    sys.excepthook = hook


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run the application; the process exits with its status when the window has closed."""
    args = build_parser().parse_args(argv)
    if args.mask is not None and args.image is None:
        build_parser().error("--mask needs an IMAGE")
    if args.review is not None and args.image is not None:
        build_parser().error("--review opens a cohort; give no IMAGE with it")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("brain-inpaint")
    app.setApplicationName("inpaint-gui")
    window = MainWindow()
    install_excepthook(window)
    window.show()
    if args.review is not None:
        QTimer.singleShot(0, lambda: window.review.open(args.review))
    else:
        QTimer.singleShot(0, lambda: window.files.open_initial(args.image, args.mask))
    from core.methods import PLUGINS

    for problem in PLUGINS.problems:   # a broken plug-in method is left out; said after the first file's message
        print(f"inpaint-gui: note: {problem}", file=sys.stderr)
    if PLUGINS.problems:
        QTimer.singleShot(0, lambda: window.statusBar().showMessage(" ".join(PLUGINS.problems), 30000))
    status = int(app.exec())
    # Every file was written (atomically) and closed before the window could close; the interpreter's teardown
    # of torch, Qt and the volumes only takes seconds, so it is skipped.
    window.settings.sync()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
