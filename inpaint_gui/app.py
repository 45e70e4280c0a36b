"""Entry point of `inpaint-gui [IMAGE] [--mask MASK]`."""

from __future__ import annotations

import argparse
import sys
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start the application; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.mask is not None and args.image is None:
        build_parser().error("--mask needs an IMAGE")
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("brain-inpaint")
    app.setApplicationName("inpaint-gui")
    window = MainWindow()
    window.show()
    QTimer.singleShot(0, lambda: window.open_initial(args.image, args.mask))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
