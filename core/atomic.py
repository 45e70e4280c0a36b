"""Atomic file replacement: write a fresh file beside the target, then rename it over the target.

A reader never sees a half-written file and a failed write leaves the old file as it was. The
result gets the user's default permissions (umask), whatever mode the writer chose (safetensors,
like `tempfile.mkstemp`, makes owner-only files).

Temporary names are hidden and follow two exact patterns: `.<name>.<12 hex>.tmp<suffix>` for
single files (`write_atomically`) and `.inpaint-tmp-<8 chars>` for staging folders
(`core.volume`). A process killed in the middle of a write (SIGKILL, power loss) leaves one
behind; the next write into the same folder removes those older than `STALE_SECONDS`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

STAGING_PREFIX = ".inpaint-tmp-"
STALE_SECONDS = 15 * 60
_STAGING = re.compile(r"\.inpaint-tmp-[a-z0-9_]{8}")  # tempfile.mkdtemp's 8 random characters
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp(?P<suffix>.*)")


def is_temp_name(name: str) -> bool:
    """True for exactly the hidden names this module and `core.volume` create for temporary files/folders."""
    if _STAGING.fullmatch(name):
        return True
    match = _TEMP_FILE.fullmatch(name)
    return bool(match) and Path(match.group("name")).suffix == match.group("suffix")


def _newest_mtime(path: Path) -> float:
    """Latest modification time of a path and, for a folder, of its direct entries."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for entry in os.scandir(path):
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                pass
    return newest


def clean_stale_temps(folder: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove temporary files/folders of ours in `folder` untouched for `max_age` seconds; returns what went.

    Only names matching our patterns exactly are considered, symbolic links never, and any error
    (permissions, a concurrent cleaner) is ignored: cleaning must never make a write fail.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp_name(entry.name) or entry.is_symlink():
            continue
        path = Path(entry.path)
        try:
            if now - _newest_mtime(path) < max_age:
                continue
            if entry.is_dir(follow_symlinks=False):
                if not _STAGING.fullmatch(entry.name):
                    continue
                shutil.rmtree(path)
            elif entry.is_file(follow_symlinks=False):
                if _STAGING.fullmatch(entry.name):
                    continue
                path.unlink()
            else:
                continue
            removed.append(path)
        except OSError:
            continue
    return removed


def _default_mode(folder: Path) -> int:
    """Permissions an ordinary new file gets in `folder` (umask and default ACLs), read from a probe file."""
    probe = folder / f".mode-{secrets.token_hex(4)}"
    with open(probe, "x"):
        pass
    try:
        return probe.stat().st_mode & 0o777
    finally:
        probe.unlink()


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temp)` for an unused name beside `path`, then rename it to `path`; clean up on failure."""
    path = Path(path)
    clean_stale_temps(path.parent)
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


def make_staging(folder: str | os.PathLike) -> Path:
    """A fresh hidden staging folder inside `folder` (after removing stale ones); the caller removes it."""
    clean_stale_temps(folder)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))


def commit_files(moves: Sequence[tuple[Path, Path]], staging: Path) -> None:
    """Rename every `(temp, target)` pair into place so that all targets change or none does.

    Existing targets are first moved (hard-linked where possible) into `staging` as backups; if any
    rename fails, the targets already placed are removed and the backups put back before the
    error propagates. Temporary files get the user's default file permissions.
    """
    mode = _default_mode(staging)
    backups: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for temp, _ in moves:
            os.chmod(temp, mode)
        for index, (_, target) in enumerate(moves):
            if os.path.lexists(target):
                backup = staging / f"backup-{index}"
                try:
                    os.link(target, backup, follow_symlinks=False)
                except OSError:  # no hard links on this file system
                    shutil.copy2(target, backup, follow_symlinks=False)
                backups.append((backup, target))
        for temp, target in moves:
            os.replace(temp, target)
            placed.append(target)
    except BaseException:
        restored = {target for _, target in backups}
        for target in placed:
            if target not in restored:
                try:
                    target.unlink()
                except OSError:
                    pass
        for backup, target in backups:
            if target in placed:
                try:
                    os.replace(backup, target)
                except OSError:
                    pass
        raise

