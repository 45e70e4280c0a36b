"""Locks in OUT_DIR/logs: the scans table's lock and one claim per scan, so that runs into one OUT_DIR can overlap.

A run claims a scan (`logs/<stem>.lock`, an exclusive `flock`) before it decides whether the
scan needs filling and holds the claim until the scan's record is written. Another run that finds
the claim held leaves the scan to its holder. `flock` locks die with their process, so the claim
of a run that was killed is free at once and the next run takes the scan over; the holder's pid
and host, written into the lock file, only name it in messages. Lock files are opened without
following symbolic links. Without `fcntl` (Windows) there are no locks.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

try:
    import fcntl
except ImportError:  # Windows: each run still rebuilds the whole table from the records
    fcntl = None

LOGS = "logs"
TABLE_LOCK = "desc-filled_scans.lock"
_ATTEMPTS = 5        # a table rebuild holds a scan's lock for microseconds to test it: try again before giving up
_PAUSE_SECONDS = 0.02


def lock_path(out_dir: Path, output: str) -> Path:
    """The lock file of the scan whose filled image is `output` (relative to OUT_DIR)."""
    return out_dir / LOGS / (Path(output).name.split(".", 1)[0] + ".lock")


def _open_lock(path: Path) -> int:
    """A descriptor of the lock file, created if needed; OSError if it is a symbolic link."""
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class Claim:
    """A run's hold on one scan (released by `release`, or by the process ending)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def claim_scan(out_dir: Path, output: str) -> Claim | str:
    """Claim the scan; if another live run holds it, the holder as text ('pid 12 on host x')."""
    if fcntl is None:
        return Claim(-1)
    fd = _open_lock(lock_path(out_dir, output))
    for attempt in range(_ATTEMPTS):
        if _try_flock(fd, fcntl.LOCK_EX):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
            return Claim(fd)
        time.sleep(_PAUSE_SECONDS * (attempt + 1))
    try:
        return _holder_text(fd)
    finally:
        os.close(fd)


def _holder_text(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "a run that is starting"


def holder(out_dir: Path, output: str) -> Optional[str]:
    """Who holds the scan's claim now ('pid 12 on host x'), or None when no live run does."""
    path = lock_path(out_dir, output)
    if fcntl is None or not path.is_file() or path.is_symlink():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            return None  # closing the descriptor below releases the test at once
        return _holder_text(fd)
    finally:
        os.close(fd)


@contextmanager
def table_lock(out_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of the scans table (released when the block ends or the process dies)."""
    (out_dir / LOGS).mkdir(exist_ok=True)
    fd = _open_lock(out_dir / LOGS / TABLE_LOCK)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
