"""Entry point of `inpaint-gui [IMAGE] [--mask MASK]`."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from core import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint-gui",
                                     description="Paint a lesion mask on a brain MRI and fill it with a deep "
                                                 "generative model. Without IMAGE, opens the bundled demo brain.")
    parser.add_argument("image", nargs="?", type=Path, help="volume to open (NIfTI, NRRD, MHA/MHD, DICOM folder)")
    parser.add_argument("--mask", type=Path, default=None, help="lesion mask on the image's grid to load with it")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def install_excepthook(window) -> None:
    """An unexpected error in a slot becomes a dialog (details on stderr) instead of ending the app."""

    def hook(kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb)
        first = (str(value).strip().splitlines() or [""])[0].rstrip(".")
        window.show_error(f"Unexpected error ({kind.__name__}: {first}); the details were printed to the terminal.")

    sys.excepthook = hook


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start the application; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.mask is not None and args.image is None:
        build_parser().error("--mask needs an IMAGE")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("brain-inpaint")
    app.setApplicationName("inpaint-gui")
    window = MainWindow()
    install_excepthook(window)
    window.show()
    QTimer.singleShot(0, lambda: window.open_initial(args.image, args.mask))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
