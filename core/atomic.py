"""Atomic file replacement: write a fresh file beside the target, then rename it over the target.

A reader never sees a half-written file and a failed write leaves the old file as it was. The
result gets the user's default permissions (umask), whatever mode the writer chose (safetensors,
like `tempfile.mkstemp`, makes owner-only files).

Temporary names are hidden and follow two exact patterns: `.<name>.<12 hex>.tmp<suffix>` for
single files (`write_atomically`) and `.inpaint-tmp-<8 chars>` for staging folders
(`core.volume`). A process killed in the middle of a write (SIGKILL, power loss) leaves one
behind; the next write into the same folder removes those older than `STALE_SECONDS`.

Files that must change together (a volume and its sidecar) are placed by `commit_files`, whose
commit point is a journal `.<last target>.inpaint-journal` beside the targets, written (and
synced) after every new file is complete in the staging folder and before the first rename,
locked while the renames run, and removed after them. A run killed between the renames leaves
the journal; the next check or write in that folder (`recover_commits`, also run by
`clean_stale_temps`) finds it unlocked and completes the renames from the staging folder, so
the pair appears whole. Without `fcntl` (Windows) a journal counts as abandoned after
`STALE_SECONDS`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

STAGING_PREFIX = ".inpaint-tmp-"
STALE_SECONDS = 15 * 60
JOURNAL_SUFFIX = ".inpaint-journal"
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
    recover_commits(folder)  # an abandoned commit's staging folder holds files still to be placed
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


def check_writable(folder: str | os.PathLike) -> None:
    """OSError unless entries can be created in `folder`: a staging folder is made there and removed at once."""
    os.rmdir(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))


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
    """Call `write(temp)` for an unused name beside `path`, then rename it to `path`; clean up on failure. An OSError
    (a full disk) names `path`, not the temporary file."""
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
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
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
    for temp, _ in moves:
        _sync(temp)
    journal, fd = _open_journal(moves, staging)
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
    finally:
        _close_journal(journal, fd)


def _sync(path: Path) -> None:
    """Flush a file's data to the disk (a journal must never name files still in the page cache only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journal_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{JOURNAL_SUFFIX}")


def _open_journal(moves: Sequence[tuple[Path, Path]], staging: Path) -> tuple[Path, int]:
    """Write, sync and lock the journal of `moves` (staging folder and file names, no paths), then put it
    beside the last target; returns its path and the open descriptor holding the lock."""
    folder = moves[-1][1].parent
    if staging.parent != folder or any(t.parent != staging or g.parent != folder for t, g in moves):
        raise ValueError("commit_files needs the staging folder and every target in one folder")
    record = {"staging": staging.name, "moves": [[temp.name, target.name] for temp, target in moves]}
    draft = staging / "journal"
    fd = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps(record).encode("utf-8"))
        os.fsync(fd)
        journal = _journal_path(moves[-1][1])
        os.replace(draft, journal)  # the commit point: from here on the pair is completed, not undone
    except BaseException:
        os.close(fd)
        raise
    return journal, fd


def _close_journal(journal: Path, fd: int) -> None:
    """Remove the journal (if it is still ours) and release its lock."""
    try:
        if os.path.samestat(os.fstat(fd), os.stat(journal)):
            journal.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def recover_commits(folder: str | os.PathLike) -> list[Path]:
    """Complete every commit a killed process left half done in `folder` (see the module docstring);
    returns the targets placed now. Journals of commits still running (locked) are left alone; errors are
    ignored, so that a check or write never fails here."""
    placed: list[Path] = []
    try:
        journals = [Path(e.path) for e in os.scandir(folder)
                    if e.name.startswith(".") and e.name.endswith(JOURNAL_SUFFIX) and e.is_file(follow_symlinks=False)]
    except OSError:
        return placed
    for journal in journals:
        try:
            placed += _recover(journal)
        except OSError:
            continue
    return placed


def _recover(journal: Path) -> list[Path]:
    """Place the files of one abandoned journal still in its staging folder, then remove both."""
    fd = os.open(journal, os.O_RDONLY)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # its writer is still at work
        elif time.time() - os.fstat(fd).st_mtime < STALE_SECONDS:
            return []
        if not os.path.samestat(os.fstat(fd), os.stat(journal)):
            return []  # finished and replaced meanwhile
        moves = _journal_moves(os.read(fd, 1 << 20), journal.parent)
        placed = []
        for source, target in moves or []:
            if os.path.lexists(source):
                os.replace(source, target)
                placed.append(target)
        if moves:
            shutil.rmtree(moves[0][0].parent, ignore_errors=True)
        journal.unlink()
        return placed
    finally:
        os.close(fd)


def _journal_moves(text: bytes, folder: Path) -> Optional[list[tuple[Path, Path]]]:
    """The (staged file, target) pairs a journal names, or None for a journal that is not ours or damaged."""
    try:
        record = json.loads(text.decode("utf-8"))
        staging, moves = record["staging"], record["moves"]
        names = [staging] + [name for pair in moves for name in pair]
        if not _STAGING.fullmatch(staging) or not all(isinstance(n, str) and n == Path(n).name and n not in
                                                          ("", ".", "..") for n in names):
            return None
        return [(folder / staging / temp, folder / target) for temp, target in moves]
    except (ValueError, KeyError, TypeError):
        return None

