"""Quality review of an `inpaint bids` output: its scans table, and the reviewer's ratings in a file of their own.

The scans come from `desc-filled_scans.tsv` (rewritten by every run of `inpaint bids`); the
ratings live in `desc-qc_scans.tsv` beside it, one row per rated scan keyed by the filled
image's path relative to OUT_DIR (the table's `output` column), so they survive reruns. The
ratings file is rewritten whole and atomically on every change, merged with what is in it then (another
reviewer's window may have rated since); ratings of scans that a later run no longer lists are kept. Each
rating holds the SHA-256 the scan's record gave its filled image when it was rated: after a later fill of the
scan the rating is of an earlier fill, shown so and counted as unrated. Scans whose recorded files are gone or
changed are found when the review opens (as `inpaint bids ... group` finds them). No Qt.
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

from .atomic import check_writable, write_atomically
from .cohort.derivatives import FILLED, TABLE, data_dictionary, output_name
from .cohort.records import bids_ignore, files_problem, read_record
from .errors import InpaintError

QC_TABLE = "desc-qc_scans.tsv"
QC_COLUMNS = {
    "output": "The filled image, relative to this dataset (the `output` of desc-filled_scans.tsv).",
    "source": "The T1w image, relative to the BIDS dataset.",
    "rating": "The reviewer's verdict: pass, fail or unsure.",
    "comment": "The reviewer's comment (n/a: none).",
    "rated": "When it was rated (local time with its UTC offset, ISO 8601).",
    "filled_sha256": "SHA-256 of the filled image that was rated, as its record gave it (n/a: unknown); a later "
                     "fill of the scan makes the rating one of an earlier fill.",
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
    filled_sha256: str = ""   # the rated fill's (empty: unknown, e.g. a file written before the column)


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
                                  comment=_value(row.get("comment")), rated=_value(row.get("rated")),
                                  filled_sha256=_value(row.get("filled_sha256")))
            for row in rows if row.get("output") and row.get("rating") in RATINGS}


def write_ratings(out_dir: Path, ratings: dict[str, Rating]) -> Path:
    """Rewrite the ratings file atomically (sorted by output), and its column descriptions once."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(QC_COLUMNS)
    for key in sorted(ratings):
        r = ratings[key]
        writer.writerow([r.output, r.source or "n/a", r.rating, " ".join(r.comment.split()) or "n/a", r.rated,
                         r.filled_sha256 or "n/a"])
    text = buffer.getvalue()
    description = out_dir / Path(QC_TABLE).with_suffix(".json")
    columns = json.dumps(data_dictionary(QC_COLUMNS, QC_LEVELS), indent=2) + "\n"
    if not description.is_file() or description.read_text(encoding="utf-8") != columns:   # new columns: described
        write_atomically(description, lambda temp: temp.write_text(columns, encoding="utf-8"))
    bids_ignore(out_dir, (QC_TABLE, description.name))
    return write_atomically(out_dir / QC_TABLE, lambda temp: temp.write_text(text, encoding="utf-8"))


class CohortReview:
    """The scans of one `inpaint bids` output and their ratings; every change is written at once."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.scans, self.shares = read_table(self.out_dir)  # shares: the table has the uncertainty_share column
        self.ratings = read_ratings(self.out_dir)
        self.fills: dict[str, str] = {}        # output -> the recorded SHA-256 of its filled image
        self.problems: dict[str, tuple[str, str]] = {}   # output -> (missing or damaged, what is wrong)
        for scan in self.scans:
            self._check(scan)
        try:
            check_writable(self.out_dir)
            self.read_only = ""
        except OSError as exc:
            self.read_only = exc.strerror or str(exc)   # why ratings cannot be written there

    def _check(self, scan: Scan) -> None:
        """Note the recorded checksum of a filled scan's image, and whether its recorded files are still as written."""
        if scan.status != FILLED:
            return
        try:
            record = read_record(self.out_dir, scan.output)
        except ValueError:
            return   # an unreadable record: `inpaint bids ... group` says so
        if record is None:
            return
        stamp = record.files.get(scan.output)
        if stamp:
            self.fills[scan.output] = stamp["sha256"]
        problem = files_problem(self.out_dir, record.files, thorough=False)
        if problem:
            self.problems[scan.output] = problem

    def status(self, index: int) -> str:
        """The scan's status: the table's, or missing / damaged when its files changed since they were recorded."""
        scan = self.scans[index]
        return self.problems[scan.output][0] if scan.output in self.problems else scan.status

    def rating(self, index: int) -> Optional[Rating]:
        return self.ratings.get(self.scans[index].output)

    def stale(self, index: int) -> bool:
        """True when the scan's rating is of an earlier fill than the one its record now gives."""
        rating, scan = self.rating(index), self.scans[index]
        current = self.fills.get(scan.output)
        return rating is not None and bool(rating.filled_sha256) and current is not None \
            and rating.filled_sha256 != current

    def _rated(self, index: int) -> bool:
        return self.rating(index) is not None and not self.stale(index)

    def first_unrated(self, order: Optional[list[int]] = None) -> int:
        """Index of the first scan without a rating (of its current fill) in `order` (default: the table's), else
        the order's first."""
        order = list(range(len(self.scans))) if order is None else order
        return next((i for i in order if not self._rated(i)), order[0] if order else 0)

    def rate(self, index: int, rating: str, comment: Optional[str] = None) -> Rating:
        """Rate scan `index` (`comment` None keeps the scan's comment) and write the ratings file, merged with what
        it holds now; on a failed write nothing changes here either."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        scan, old = self.scans[index], self.rating(index)
        kept = old.comment if old is not None else ""
        new = Rating(output=scan.output, source=scan.source, rating=rating,
                     comment=kept if comment is None else comment, rated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     filled_sha256=self.fills.get(scan.output, ""))
        merged = {**read_ratings(self.out_dir), scan.output: new}   # another window's ratings since are kept
        write_ratings(self.out_dir, merged)
        self.ratings = merged
        return new

    def clear(self, index: int) -> None:
        """Take back scan `index`'s rating and comment, and write the ratings file (merged as `rate` does)."""
        output = self.scans[index].output
        merged = {key: value for key, value in read_ratings(self.out_dir).items() if key != output}
        write_ratings(self.out_dir, merged)
        self.ratings = merged

    def comment(self, index: int, text: str) -> Rating:
        """Set the comment of scan `index`; an unrated scan is rated unsure with it."""
        old = self.rating(index)
        return self.rate(index, old.rating if old is not None else "unsure", text)

    def progress(self) -> str:
        """'N of M rated' (a rating of an earlier fill does not count)."""
        rated = sum(self._rated(index) for index in range(len(self.scans)))
        return f"{rated} of {len(self.scans)} rated"
