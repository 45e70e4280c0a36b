"""Quality review of an `inpaint bids` output: its scans table, and the reviewer's ratings in a file of their own.

The scans come from `desc-filled_scans.tsv` (rewritten by every run of `inpaint bids`); the
ratings live in `desc-qc_scans.tsv` beside it, one row per rated scan keyed by the filled
image's path relative to OUT_DIR (the table's `output` column), so they survive reruns. The
ratings file is rewritten whole and atomically on every change; ratings of scans that a
later run no longer lists are kept. No Qt.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .atomic import write_atomically
from .cohort.derivatives import TABLE, data_dictionary, output_name
from .cohort.records import bids_ignore
from .errors import InpaintError

QC_TABLE = "desc-qc_scans.tsv"
QC_COLUMNS = {
    "output": "The filled image, relative to this dataset (the `output` of desc-filled_scans.tsv).",
    "source": "The T1w image, relative to the BIDS dataset.",
    "rating": "The reviewer's verdict: pass, fail or unsure.",
    "comment": "The reviewer's comment (n/a: none).",
    "rated": "When it was rated (local time, ISO 8601).",
}
QC_LEVELS = {"rating": {"pass": "The fill looks like healthy tissue; the scan can be used.",
                        "fail": "The fill is not usable (or the mask or scan is wrong).",
                        "unsure": "The reviewer could not decide; look again."}}
RATINGS = tuple(QC_LEVELS["rating"])
UNCERTAINTY_COLUMN = "uncertainty"
SHARE_COLUMN = "uncertainty_share"  # tables written before it have no such column


@dataclass(frozen=True)
class Scan:
    """One row of the scans table, as the review needs it."""

    output: str
    source: str
    mask: str
    status: str
    message: str
    uncertainty: Optional[str]  # the table's per-scan summary; None when the table or the scan has none (n/a)
    uncertainty_share: Optional[float] = None  # that summary as a share of the scan's brain intensity range (None: n/a)


@dataclass(frozen=True)
class Rating:
    output: str
    source: str
    rating: str
    comment: str = ""
    rated: str = ""


def _value(text: Optional[str]) -> str:
    return "" if text in (None, "n/a") else str(text)


def number(text: Optional[str]) -> Optional[float]:
    """A table cell as a finite number; None for n/a, an empty cell or anything else."""
    try:
        value = float(_value(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns of a table and its rows."""
    with open(path, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, delimiter="\t")
        rows = list(reader)
        return list(reader.fieldnames or ()), rows


def read_table(out_dir: Path) -> tuple[list[Scan], bool]:
    """The scans of `out_dir`'s table, in its order, and whether the table has the uncertainty_share column;
    InpaintError when there is no readable table."""
    path = out_dir / TABLE
    if not path.is_file():
        raise InpaintError(f"{out_dir} has no {TABLE}; open the output folder of 'inpaint bids' (OUT_DIR).")
    try:
        columns, rows = _read_tsv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InpaintError(f"{path} cannot be read ({exc}); run 'inpaint bids ... group' to rebuild it.") from None
    if rows and not {"output", "source", "status"} <= set(columns):
        raise InpaintError(f"{path} lacks the output, source or status column; run 'inpaint bids ... group' to "
                           "rebuild it.")
    scans = [Scan(output=_value(row["output"]) or output_name(row["source"]),  # n/a: a scan without output
                  source=row["source"], mask=_value(row.get("mask")), status=row["status"],
                  message=_value(row.get("message")), uncertainty=_value(row.get(UNCERTAINTY_COLUMN)) or None,
                  uncertainty_share=number(row.get(SHARE_COLUMN))) for row in rows]
    return scans, SHARE_COLUMN in columns


def read_ratings(out_dir: Path) -> dict[str, Rating]:
    """The ratings of `out_dir` by output path (empty without a ratings file)."""
    path = out_dir / QC_TABLE
    if not path.is_file():
        return {}
    try:
        _, rows = _read_tsv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InpaintError(f"{path} cannot be read ({exc}); move it away to start the review afresh.") from None
    return {row["output"]: Rating(output=row["output"], source=_value(row.get("source")), rating=row["rating"],
                                  comment=_value(row.get("comment")), rated=_value(row.get("rated")))
            for row in rows if row.get("output") and row.get("rating") in RATINGS}


def write_ratings(out_dir: Path, ratings: dict[str, Rating]) -> Path:
    """Rewrite the ratings file atomically (sorted by output), and its column descriptions once."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(QC_COLUMNS)
    for key in sorted(ratings):
        r = ratings[key]
        writer.writerow([r.output, r.source or "n/a", r.rating, " ".join(r.comment.split()) or "n/a", r.rated])
    text = buffer.getvalue()
    description = out_dir / Path(QC_TABLE).with_suffix(".json")
    if not description.exists():
        record = data_dictionary(QC_COLUMNS, QC_LEVELS)
        write_atomically(description, lambda temp: temp.write_text(json.dumps(record, indent=2) + "\n",
                                                                   encoding="utf-8"))
    bids_ignore(out_dir, (QC_TABLE, description.name))
    return write_atomically(out_dir / QC_TABLE, lambda temp: temp.write_text(text, encoding="utf-8"))


class CohortReview:
    """The scans of one `inpaint bids` output and their ratings; every change is written at once."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.scans, self.shares = read_table(self.out_dir)  # shares: the table has the uncertainty_share column
        self.ratings = read_ratings(self.out_dir)

    def rating(self, index: int) -> Optional[Rating]:
        return self.ratings.get(self.scans[index].output)

    def first_unrated(self, order: Optional[list[int]] = None) -> int:
        """Index of the first scan without a rating in `order` (default: the table's), else the order's first."""
        order = list(range(len(self.scans))) if order is None else order
        return next((i for i in order if self.scans[i].output not in self.ratings), order[0] if order else 0)

    def rate(self, index: int, rating: str, comment: Optional[str] = None) -> Rating:
        """Rate scan `index` (`comment` None keeps the scan's comment) and write the ratings file."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        scan, old = self.scans[index], self.rating(index)
        kept = old.comment if old is not None else ""
        new = Rating(output=scan.output, source=scan.source, rating=rating,
                     comment=kept if comment is None else comment, rated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.ratings[scan.output] = new
        write_ratings(self.out_dir, self.ratings)
        return new

    def comment(self, index: int, text: str) -> Rating:
        """Set the comment of scan `index`; an unrated scan is rated unsure with it."""
        old = self.rating(index)
        return self.rate(index, old.rating if old is not None else "unsure", text)

    def progress(self) -> str:
        """'N of M rated'."""
        rated = sum(scan.output in self.ratings for scan in self.scans)
        return f"{rated} of {len(self.scans)} rated"
