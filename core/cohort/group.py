"""The group level of `inpaint bids`: rebuild the scans table of OUT_DIR from its per-scan records.

Nothing is filled and nothing outside the table (`desc-filled_scans.tsv` and `.json`) is written;
run it after all participant-level jobs, e.g. once per cohort after one cluster job per participant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, TextIO

from ..errors import InpaintError
from .derivatives import FAILED, FILLED, NO_MASK, TABLE, check_out_dir, is_ours
from .records import update_table
from .run import Summary


def run_group(out_dir: Path, bids_dir: Path, *, quiet: bool = False, stream: Optional[TextIO] = None) -> Summary:
    """Rebuild the scans table of an `inpaint bids` output and report its counts and total lesion volume."""
    stream = stream or sys.stderr
    if not is_ours(out_dir):
        raise InpaintError(f"{out_dir} is not a dataset written by 'inpaint bids' (no dataset_description.json of "
                           "brain-inpaint); run the participant level into it first or check the path.")
    check_out_dir(out_dir, bids_dir)
    rows = update_table(out_dir.resolve(), [])
    summary = Summary(rows=rows, table=out_dir / TABLE)
    for row in rows:
        if row.status == FAILED:
            print(f"inpaint: {row.source}: {row.message}", file=stream)
    if not quiet:
        ml = sum(float(row.lesion_ml) for row in rows if row.status == FILLED)
        counts = ", ".join(f"{summary.count(s)} {s.replace('_', ' ')}" for s in (FILLED, FAILED, NO_MASK))
        print(f"{len(rows)} scan{'s' if len(rows) != 1 else ''}: {counts}; {ml:.3f} ml filled in total; wrote "
              f"{summary.table}", file=stream)
    return summary
