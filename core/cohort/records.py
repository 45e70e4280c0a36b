"""Per-scan records in OUT_DIR and the scans table rebuilt from them, safe for runs into one OUT_DIR at once.

Every scan's outcome is a file of its own, written atomically by the run that handled the scan:
- filled: its sidecar `sub-<label>/[ses-<label>/]anat/<stem>_desc-filled_T1w.json` beside the image;
- failed or no_mask: `logs/<stem>_desc-filled_T1w.json`, the table row as JSON (removed once the
  scan is filled or skipped; while it exists it wins over an older filled image).
The table is always rebuilt from all records, holding an exclusive lock on
`logs/desc-filled_scans.lock` (`fcntl.flock`), so the last run to write it lists every scan.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterator, Optional

from ..atomic import write_atomically
from ..volume import write_json
from .derivatives import FAILED, FILLED, NO_MASK, Row, output_name, read_sidecar, write_table
from .layout import name_entities

try:
    import fcntl
except ImportError:  # Windows: no lock; each run still rebuilds the whole table from the records
    fcntl = None

LOGS = "logs"
LOCK = "desc-filled_scans.lock"
BIDSIGNORE = ".bidsignore"


def _record_path(out_dir: Path, output: str) -> Path:
    """Where the record of a scan that failed or has no mask lives (`output`: the filled image's name)."""
    return out_dir / LOGS / (Path(output).name.split(".", 1)[0] + ".json")


def record_outcome(out_dir: Path, row: Row) -> None:
    """Keep a failed or no_mask row as the scan's record; a filled or skipped scan's record is its sidecar."""
    path = _record_path(out_dir, row.output)
    if row.status in (FAILED, NO_MASK):
        path.parent.mkdir(exist_ok=True)
        write_json(path, asdict(row))
    else:
        path.unlink(missing_ok=True)


def _row_from_sidecar(out_dir: Path, image: Path, record: dict[str, Any]) -> Optional[Row]:
    """The `filled` row of a filled image and its sidecar record (None: unreadable image or no Sources)."""
    import nibabel
    from nibabel.filebasedimages import ImageFileError

    from ..fill_file import voxel_ml

    try:
        affine = nibabel.load(image).affine  # the header only
    except (OSError, EOFError, ValueError, ImageFileError):
        return None
    found = [str(s).split(":", 2) for s in record.get("Sources") or []]
    raw = [s[2] for s in found if s[:2] == ["bids", "raw"] and len(s) == 3]
    masks = [s[2] for s in found if s[:2] == ["bids", "masks"] and len(s) == 3]
    entities = name_entities(Path(raw[0]).name) if raw else {}
    if not masks or "sub" not in entities:
        return None
    voxels = int(record.get("hole_voxels", 0))
    return Row(participant_id=f"sub-{entities['sub']}",
               session_id=f"ses-{entities['ses']}" if "ses" in entities else "", source=raw[0], mask=masks[0],
               brainmask=masks[1] if len(masks) > 1 else "", output=str(image.relative_to(out_dir)), status=FILLED,
               image_sha256=str((record.get("input") or {}).get("sha256", "")),
               mask_sha256=str((record.get("mask") or {}).get("sha256", "")), lesion_voxels=str(voxels),
               lesion_ml=f"{voxels * voxel_ml(affine):.3f}",
               slices=str(record.get("filled_slices", "")), seconds=f"{float(record.get('seconds', 0)):.2f}")


def _filled_rows(out_dir: Path) -> dict[str, Row]:
    rows = {}
    for sidecar in out_dir.glob("sub-*/**/*_desc-filled_T1w.json"):
        image = sidecar.with_name(sidecar.name[:-len(".json")] + ".nii.gz")
        record = read_sidecar(sidecar)
        row = _row_from_sidecar(out_dir, image, record) if record and image.is_file() else None
        if row and row.output == output_name(row.source):  # not a copy being written (staging folder)
            rows[row.output] = row
    return rows


def _recorded_rows(out_dir: Path) -> dict[str, Row]:
    names = {f.name for f in fields(Row)}
    rows = {}
    for path in (out_dir / LOGS).glob("*_desc-filled_T1w.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and set(record) == names and record["status"] in (FAILED, NO_MASK):
            rows[record["output"]] = Row(**{k: str(v) for k, v in record.items()})
    return rows


def collect_rows(out_dir: Path) -> dict[str, Row]:
    """Every scan recorded in `out_dir`, by output name (a failure record wins over a filled image)."""
    return _filled_rows(out_dir) | _recorded_rows(out_dir)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of the scans table (released when the block ends or the process dies)."""
    (out_dir / LOGS).mkdir(exist_ok=True)
    with open(out_dir / LOGS / LOCK, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def update_table(out_dir: Path, rows: list[Row]) -> list[Row]:
    """Rebuild the scans table from every record, with `rows` (this run's) in place of theirs; returns its rows."""
    with _locked(out_dir):
        merged = collect_rows(out_dir) | {row.output: row for row in rows}
        write_table(out_dir, list(merged.values()))
        if not (out_dir / BIDSIGNORE).exists():
            write_atomically(out_dir / BIDSIGNORE, lambda temp: temp.write_text(f"{LOGS}/\n", encoding="utf-8"))
    return sorted(merged.values(), key=lambda row: row.source)

