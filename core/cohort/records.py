"""Per-scan records in OUT_DIR and the scans table rebuilt from them, safe for runs into one OUT_DIR at once.

Every scan a run handled has one record, `logs/<stem>_desc-filled_T1w.json`, written atomically
by that run while it holds the scan's claim (`claims`): the scan's table row as it ended (filled,
no_lesion, failed or no_mask) and, for each file written for it (the filled image or, for no_lesion, the
unchanged copy, its sidecar and, when the fill predicted its error, its uncertainty map), its SHA-256, size
and modification time as written. A failure keeps the file entries of an earlier fill.

The table is always rebuilt from every record, holding the table's lock, and lists every T1w scan
of the BIDS dataset: a scan recorded as filled (or no_lesion) keeps that status only while its files match the
record
(else `missing` or `damaged`), a scan another live run holds is `running`, a scan without a record
is `pending` (or `damaged` when files of it exist, its uncertainty map included). A quick check compares
size and modification time and hashes a file only when they differ; a thorough one (`group`, resume)
always hashes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..atomic import write_atomically
from ..jsonfiles import parse_json, sha256_file, write_json
from ..targets import sidecar_path
from .claims import LOGS, TABLE_LOCK, holder, table_lock
from .derivatives import (DAMAGED, DESCRIPTION, FAILED, FILLED, MISSING, NO_LESION, NO_MASK, PENDING, README, RUNNING,
                          SKIPPED, TABLE, WRITTEN, Row, output_name, uncertainty_name, write_table)
from .layout import name_entities

BIDSIGNORE = ".bidsignore"
SHARED_FILES = (DESCRIPTION, README, TABLE, str(Path(TABLE).with_suffix(".json")), BIDSIGNORE, f"{LOGS}/{TABLE_LOCK}")
_ROW_FIELDS = {f.name for f in fields(Row)}
_REQUIRED = {f.name for f in fields(Row) if f.default is dataclasses.MISSING}  # columns added later may be absent
_STAMP_KEYS = {"sha256": str, "size": int, "mtime_ns": int}


@dataclass(frozen=True)
class Record:
    """A scan's last outcome and the files written for it (OUT_DIR-relative path -> sha256, size, mtime_ns)."""

    row: Row
    files: dict[str, dict[str, Any]]


def record_path(out_dir: Path, output: str) -> Path:
    """Where the record of the scan whose filled image is `output` (relative to OUT_DIR) lives."""
    return out_dir / LOGS / (Path(output).name.split(".", 1)[0] + ".json")


def scan_files(output: str) -> list[str]:
    """Every file a fill may write for a scan, relative to OUT_DIR: the image, its sidecar, its uncertainty map and
    the map's sidecar."""
    return written_files(output, uncertainty=True)


def written_files(output: str, *, uncertainty: bool) -> list[str]:
    """The files a fill wrote for a scan, relative to OUT_DIR: the filled image, its sidecar and, with
    `uncertainty` (the fill predicted its error), its uncertainty map and the map's sidecar."""
    sd_map = uncertainty_name(output)
    maps = [sd_map, str(sidecar_path(Path(sd_map)))] if uncertainty else []
    return [output, str(sidecar_path(Path(output))), *maps]


def _stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"sha256": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_record(out_dir: Path, output: str) -> Optional[Record]:
    """The scan's record, or None when it has none; ValueError (what is wrong with the file) when it is unusable."""
    path = record_path(out_dir, output)
    if not os.path.lexists(path):
        return None
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path.relative_to(out_dir)} cannot be read ({exc})") from None
    return _parse(data, path.relative_to(out_dir))


def _parse(data: Any, where: Path) -> Record:
    """A record from its JSON, or ValueError naming the file."""
    files = data.pop("files", {}) if isinstance(data, dict) else None
    valid = (isinstance(data, dict) and _REQUIRED <= set(data) <= _ROW_FIELDS
             and data["status"] in (FILLED, NO_LESION, FAILED, NO_MASK)
             and isinstance(files, dict)
             and all(isinstance(s, dict) and all(isinstance(s.get(k), t) for k, t in _STAMP_KEYS.items())
                     for s in files.values()))
    if not valid:
        raise ValueError(f"{where} is not a record written by 'inpaint bids'")
    return Record(row=Row(**{k: str(v) for k, v in data.items()}), files=files)


def record_outcome(out_dir: Path, row: Row) -> None:
    """Write the record of a scan this run handled (a skipped scan keeps its record).

    A filled or no_lesion scan's files are hashed now; a failed or no_mask record keeps the file entries of the
    scan's earlier record, so a later run can still recognise (and skip) an intact earlier fill.
    """
    if row.status == SKIPPED:
        return
    if row.status in WRITTEN:
        written = written_files(row.output, uncertainty=bool(row.uncertainty))  # the map's mean: written
        files = {name: _stamp(out_dir / name) for name in written}
    else:
        try:
            earlier = read_record(out_dir, row.output)
        except ValueError:
            earlier = None
        files = {name: stamp for name, stamp in earlier.files.items() if os.path.lexists(out_dir / name)} \
            if earlier else {}   # the entries of an earlier fill's files that are still there
    (out_dir / LOGS).mkdir(exist_ok=True)
    write_json(record_path(out_dir, row.output), {**asdict(row), "files": files})


def files_problem(out_dir: Path, files: dict[str, dict[str, Any]], *,
                  thorough: bool) -> Optional[tuple[str, str]]:
    """(MISSING or DAMAGED, what is wrong) for the first recorded file that is gone or changed, else None."""
    for name, stamp in sorted(files.items()):
        path = out_dir / name
        if path.is_symlink() or not path.is_file():
            return MISSING, f"the file {name} is missing"
        stat = path.stat()
        if not thorough and (stat.st_size, stat.st_mtime_ns) == (stamp["size"], stamp["mtime_ns"]):
            continue
        if stat.st_size != stamp["size"] or sha256_file(path) != stamp["sha256"]:
            return DAMAGED, (f"the file {name} no longer matches the SHA-256 recorded when it was written (it was "
                             "truncated, changed or replaced)")
    return None


def _base_row(source: str) -> Row:
    """The row of a scan known only by its source image (relative to the BIDS dataset)."""
    entities = name_entities(Path(source).name)
    return Row(participant_id=f"sub-{entities.get('sub', '')}",
               session_id=f"ses-{entities['ses']}" if "ses" in entities else "", source=source, mask="",
               brainmask="", output=output_name(source), status=PENDING)


def _again(row: Row) -> str:
    return f"run the participant level again for {row.participant_id} to fill it again"


def _recorded_row(out_dir: Path, record: Record, thorough: bool) -> Row:
    """The row of a recorded scan: as recorded, unless its output was written and its files changed since."""
    row = record.row
    if row.status not in WRITTEN:
        return row
    problem = files_problem(out_dir, record.files, thorough=thorough)
    if problem is None:
        return row if row.status == NO_LESION else dataclasses.replace(row, message="")
    status, what = problem
    return dataclasses.replace(row, status=status, message=f"{what[0].upper()}{what[1:]}; {_again(row)}.")


def _unrecorded_row(out_dir: Path, source: str) -> Row:
    """The row of a scan of the BIDS dataset without a record: pending, or damaged when files of it exist."""
    row = _base_row(source)
    present = [name for name in scan_files(row.output) if os.path.lexists(out_dir / name)]
    if not present:
        return dataclasses.replace(row, message="No run has handled this scan yet; run the participant level for "
                                                f"{row.participant_id}.")
    return dataclasses.replace(row, status=DAMAGED, message=f"{present[0]} exists without a record of what was written "
                                                            f"(a run was stopped while writing it); {_again(row)}.")


def _scan_row(out_dir: Path, output: str, source: Optional[str], thorough: bool) -> Optional[Row]:
    """The true row of one scan (`source` None: not in the BIDS dataset; None when it has no readable record)."""
    try:
        record = read_record(out_dir, output)
    except ValueError as exc:
        row = _base_row(source) if source else None
        return row and dataclasses.replace(row, status=DAMAGED, message=f"Its record {exc}; {_again(row)}.")
    if record is not None:
        row = _recorded_row(out_dir, record, thorough)
    elif source is not None:
        row = _unrecorded_row(out_dir, source)
    else:
        return None
    running = holder(out_dir, output)
    if running:
        return dataclasses.replace(row, status=RUNNING, message=f"Being filled by another run ({running}).")
    return row


def table_rows(out_dir: Path, sources: Iterable[str], *, thorough: bool = False) -> dict[str, Row]:
    """Every scan of the BIDS dataset (`sources`) and every recorded scan, by output name, with its true status."""
    by_output: dict[str, Optional[str]] = {output_name(source): source for source in sources}
    known = {record_path(out_dir, output).name for output in by_output}
    for path in (out_dir / LOGS).glob("*_desc-filled_T1w.json"):
        if path.name not in known:  # a scan no longer in the dataset (unreadable: nothing to list it by)
            try:
                by_output[_parse(parse_json(path.read_text(encoding="utf-8")), path).row.output] = None
            except (OSError, ValueError):
                continue
    rows = {}
    for output, source in by_output.items():
        row = _scan_row(out_dir, output, source, thorough)
        if row is not None:
            rows[output] = row
    return rows


def bids_ignore(out_dir: Path, patterns: Sequence[str]) -> None:
    """Make OUT_DIR's .bidsignore list `patterns` (the validator would read a table at the root as a scans file),
    keeping the lines a user added."""
    path = out_dir / BIDSIGNORE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    missing = [p for p in patterns if p not in lines]
    if missing:
        write_atomically(path, lambda temp: temp.write_text("\n".join(lines + missing) + "\n", encoding="utf-8"))


def update_table(out_dir: Path, rows: list[Row], sources: Iterable[str], *, thorough: bool = False) -> list[Row]:
    """Rebuild the scans table from every record and `sources`, with this run's finished `rows` in their place."""
    with table_lock(out_dir):
        merged = table_rows(out_dir, sources, thorough=thorough)
        merged.update({row.output: row for row in rows if row.status != RUNNING})
        write_table(out_dir, list(merged.values()))
        bids_ignore(out_dir, (f"{LOGS}/", TABLE, str(Path(TABLE).with_suffix(".json"))))
    return sorted(merged.values(), key=lambda row: row.source)
