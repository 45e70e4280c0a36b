"""Atomic file replacement: write a fresh file beside the target, then rename it over the target.

A reader never sees a half-written file and a failed write leaves the old file as it was. The
result gets the user's default permissions (umask), whatever mode the writer chose (safetensors,
like `tempfile.mkstemp`, makes owner-only files).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temp)` for an unused name beside `path`, then rename it to `path`; clean up on failure."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}")
    try:
        with open(temp, "x"):
            pass
        default_mode = temp.stat().st_mode & 0o777  # what an ordinary new file gets under the umask
        write(temp)
        os.chmod(temp, default_mode)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return path
