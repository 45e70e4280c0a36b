"""`inpaint bench`'s output paths, checked before any work as `inpaint fill` checks its output.

`check_outputs` refuses, in one sentence, a `--json` file that is a folder, an input, or in a missing or
unwritable folder, and an `--out` that is a file or cannot be created or written, or in which a file the
bench writes is a folder or an input. It creates `--out` (with its parents), as the bench always did.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ..atomic import check_writable
from ..errors import InpaintError
from ..targets import check_target, input_files


def check_outputs(json_path: Optional[Path], out: Optional[Path], names: Sequence[str],
                  inputs: Iterable[Optional[Path]]) -> None:
    """InpaintError unless the files `names` in folder `out` (created first) and `json_path` (either may be None)
    can be written; never over a file of `inputs` (an image, its sidecar, ...)."""
    protected = [f for path in inputs if path is not None for f in input_files(path)]
    if out is not None:
        _make_folder(out)
        for name in names:
            check_target(out / name, protected=protected, force=True)
    if json_path is not None:
        check_target(json_path, protected=protected, force=True)
        problem = _unwritable(json_path.parent)
        if problem:
            raise InpaintError(f"Cannot write {json_path}: the folder {json_path.parent} is not writable ({problem}); "
                               "choose a writable folder for --json or change its permissions.")


def _make_folder(out: Path) -> None:
    """Create `out` (and its parents) unless a file is in the way; InpaintError unless it is then writable."""
    blocker = next((p for p in (out, *out.parents) if os.path.exists(p) and not os.path.isdir(p)), None)
    if blocker is not None:
        where = "it" if blocker == out else str(blocker)
        raise InpaintError(f"Cannot write the results into the folder {out}: {where} is a file, not a folder; "
                           "choose a folder (new or existing) for --out.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InpaintError(f"Cannot create the folder {out} ({exc.strerror or exc}); choose a writable place for "
                           "--out.") from None
    problem = _unwritable(out)
    if problem:
        raise InpaintError(f"Cannot write the results into the folder {out}: it is not writable ({problem}); choose a "
                           "writable folder for --out or change its permissions.")


def _unwritable(folder: Path) -> Optional[str]:
    """Why nothing can be created in `folder` (None: it can)."""
    try:
        check_writable(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
