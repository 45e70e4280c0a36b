"""The group level of `inpaint bids`: rebuild the scans table of OUT_DIR from its per-scan records.

Nothing is filled and nothing outside the table (`desc-filled_scans.tsv` and `.json`) is written;
run it after all participant-level jobs, e.g. once per cohort after one cluster job per participant.
Every recorded output is hashed and compared with its record, so the table it writes shows any
filled image, sidecar or uncertainty map that was deleted (`missing`) or changed (`damaged`) since it was
written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, TextIO

from ..errors import InpaintError
from .claims import LOGS
from .derivatives import (DAMAGE, FAILED, FILLED, NO_LESION, NO_MASK, TABLE, check_dataset_links, check_out_dir,
                          is_ours, make_out_dir)
from .layout import dataset_sources
from .records import SHARED_FILES, update_table
from .run import Summary

_GOOD = (FILLED, NO_LESION, NO_MASK)  # statuses that need no line of their own


def run_group(out_dir: Path, bids_dir: Path, *, quiet: bool = False, stream: Optional[TextIO] = None) -> Summary:
    """Rebuild the scans table of an `inpaint bids` output, say what is wrong with each scan, and count them.

    The caller's exit status should be non-zero when `damaged(summary)`.
    """
    stream = stream or sys.stderr
    if not is_ours(out_dir):
        raise InpaintError(f"{out_dir} is not a dataset written by 'inpaint bids' (no dataset_description.json of "
                           "brain-inpaint); run the participant level into it first or check the path.")
    check_out_dir(out_dir, bids_dir)
    out = out_dir.resolve()
    check_dataset_links(out, SHARED_FILES)
    make_out_dir(out, LOGS)
    rows = update_table(out, [], dataset_sources(bids_dir), thorough=True)
    summary = Summary(rows=rows, table=out_dir / TABLE)
    for row in rows:
        if row.status not in _GOOD:
            print(f"inpaint: {row.source}: {row.message}", file=stream)
    if not quiet:
        ml = sum(float(row.lesion_ml) for row in rows if row.status == FILLED)
        print(f"{summary.counts((FILLED, FAILED, NO_MASK))}; {ml:.3f} ml filled in total; wrote {summary.table}",
              file=stream)
    if damaged(summary):
        count = sum(summary.count(status) for status in DAMAGE)
        print(f"inpaint: {count} scan{'s' if count != 1 else ''} of {out_dir} {'have' if count != 1 else 'has'} "
              "missing or damaged files or records (listed above); run the participant level again for their "
              "participants to fill them again.", file=stream)
    return summary


def damaged(summary: Summary) -> bool:
    """True when a file recorded in OUT_DIR (filled image, sidecar, uncertainty map) is gone or no longer what was
    written, or a scan's record is unreadable or absent beside its files."""
    return any(summary.count(status) for status in DAMAGE)
