"""How records name input files: relative to the repository when beside it, so no machine's paths leak."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"   # the project's brains, beside a checkout (benchmarks, scripts)


def shown_path(path: Path | str | None) -> str | None:
    """How results name an input: relative to the repository when beside it (`../shared/data/...`), else as given."""
    if path is None:
        return None
    absolute = Path(os.path.abspath(path))   # links kept: a linked ../shared is still beside the repository
    if absolute.is_relative_to(REPO.parent):
        return os.path.relpath(absolute, REPO)
    return str(path)
