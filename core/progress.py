"""A plain progress bar with ETA on stderr for the command line (no Qt, no extra package)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .job import EtaClock, Progress


def clock(seconds: float) -> str:
    """Seconds as minutes:seconds (`75` -> `1:15`)."""
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


LOG_INTERVAL = 30.0  # seconds between the plain lines written into a file or pipe (a SLURM log, say)


class ProgressBar:
    """Redraws one line at most every `interval` seconds on a terminal; into a file or pipe it writes a plain line
    at most every LOG_INTERVAL seconds instead (no carriage returns in logs). `close()` ends the line."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 28, interval: float = 0.2) -> None:
        """`stream`: default the standard error of the moment (not of the import: it may be redirected since)."""
        self.label, self.stream, self.width, self.interval = label, stream or sys.stderr, width, interval
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._drawn = False
        self._eta = EtaClock()   # report(): one job's steps

    def update(self, fraction: float, text: str = "", eta: float | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (self.interval if self.terminal else LOG_INTERVAL):
            return
        self._last = now
        filled = int(round(self.width * min(1.0, max(0.0, fraction))))
        eta_text = f" ETA {clock(eta)}" if eta is not None else ""
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:5.1f}%{eta_text} {text}"
        self.stream.write("\r" + line.ljust(100)[:140] if self.terminal else line.rstrip() + "\n")
        self.stream.flush()
        self._drawn = self.terminal

    def report(self, progress: Progress) -> None:
        """Adapter for the progress reports of one core.job job (refine3d: a step per lesion). The ETA leaves out the
        first step, which carries the warm-up (`EtaClock`); the job's end says 'done'."""
        done = progress.stage == "done"
        eta = None if done else self._eta.update(progress)
        text = "done" if done else f"{progress.step}/{progress.total}"
        if progress.best_loss is not None and len(progress.best_loss):
            finite = progress.best_loss[progress.best_loss < float("inf")]
            if finite.size:
                text += f" loss {finite.mean():.3f}"
        self.update(progress.fraction, text, eta, force=done)

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
