"""The BIDS derivatives dataset `inpaint bids` writes, and how a finished scan is recognised.

Layout of OUT_DIR:
- `dataset_description.json` (DatasetType "derivative", GeneratedBy with version and settings,
  SourceDatasets and DatasetLinks `raw` and `masks` for the `bids:` URIs of the sidecars, relative when OUT_DIR
  and they lie in the BIDS dataset) and a `README.md` (written once);
- `sub-<label>/[ses-<label>/]anat/<source entities>_desc-filled_T1w.nii.gz` and its `.json` sidecar
  (the `inpaint fill` sidecar plus `Sources`), and beside it the fill's predicted error
  `<source entities>_desc-uncertainty_T1w.nii.gz` (refine3d with a calibrated refiner, `core.uncertainty`);
- `desc-filled_scans.tsv` with one row per scan, described by `desc-filled_scans.json`, rebuilt from
  the per-scan records (`records`);
- `logs/` with each scan's record and lock and the table's lock (listed in `.bidsignore`), see `records`
  and `claims`.

Nothing is written through a symbolic link inside OUT_DIR (`link_within`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from .. import __version__
from ..atomic import check_writable, is_temp_name, write_atomically
from ..errors import InpaintError
from ..jsonfiles import parse_json, write_json

TOOL = "brain-inpaint"
DESCRIPTION = "dataset_description.json"
TABLE = "desc-filled_scans.tsv"
README = "README.md"
README_TEXT = """# Lesion-filled T1w images (brain-inpaint)

Written by `inpaint bids` (brain-inpaint {version}). Each T1w image of the raw dataset that has a lesion
mask is here with the mask's voxels filled with healthy-looking tissue; every other voxel is the source
image's, unchanged, and the geometry is the source's.

- `sub-*/[ses-*/]anat/*_desc-filled_T1w.nii.gz`: the filled image. Its `.json` sidecar records the
  inputs with their SHA-256, the method with its settings and models, and `Sources`: BIDS URIs resolved by
  the `DatasetLinks` of `dataset_description.json` (`raw`: the BIDS dataset, `masks`: the lesion masks).
- `*_desc-uncertainty_T1w.nii.gz`: the fill's predicted error, one standard deviation per filled voxel
  (0 outside the lesion mask), where the method predicts it.
- `desc-filled_scans.tsv`: one row per scan and its status (described in `desc-filled_scans.json`);
  `desc-qc_scans.tsv`: the ratings given in `inpaint-gui --review`, if any.
- `logs/`: each scan's record and lock, for resuming runs (listed in `.bidsignore`).

`inpaint bids BIDS_DIR OUT_DIR group` rebuilds the table and checks every output against its record.
"""
BIDS_VERSION = "1.10.0"
FILLED = "filled"      # filled by this run
SKIPPED = "skipped"    # already filled from the same inputs with the same settings
FAILED = "failed"      # could not be filled; `message` says why in one sentence
NO_MASK = "no_mask"    # no lesion mask was found for the scan; nothing to fill
NO_LESION = "no_lesion"  # its lesion mask marks no voxel: the output is the image, copied unchanged
RUNNING = "running"    # another live run holds the scan (is filling it now)
PENDING = "pending"    # a scan of the BIDS dataset that no run has handled yet
MISSING = "missing"    # recorded as filled, but its image, sidecar or uncertainty map is gone
DAMAGED = "damaged"    # its files differ from what was recorded, or exist without a readable record
DAMAGE = (MISSING, DAMAGED)
WRITTEN = (FILLED, NO_LESION)  # recorded outcomes that wrote the scan's output and sidecar
WITHOUT_OUTPUT = (FAILED, NO_MASK, PENDING)  # the table leaves their output column empty (n/a)


@dataclass
class Row:
    """One scan's line of the scans table."""

    participant_id: str
    session_id: str
    source: str
    mask: str
    brainmask: str
    output: str
    status: str
    image_sha256: str = ""
    mask_sha256: str = ""
    lesion_voxels: str = ""
    lesion_ml: str = ""
    slices: str = ""
    seconds: str = ""
    uncertainty: str = ""
    uncertainty_share: str = ""
    message: str = ""


COLUMNS = {
    "participant_id": "Participant (sub-<label>).",
    "session_id": "Session (ses-<label>), n/a without sessions.",
    "source": "The T1w image, relative to the BIDS dataset.",
    "mask": "The lesion mask, relative to the masks dataset.",
    "brainmask": "The brain mask used (desc-brain_mask), relative to the masks dataset; n/a: estimated.",
    "output": "The filled image (for no_lesion the T1w image copied unchanged), relative to this dataset; n/a for "
              "a scan without one (failed, no_mask, pending).",
    "status": "What became of the scan (see Levels).",
    "image_sha256": "SHA-256 of the T1w image.",
    "mask_sha256": "SHA-256 of the lesion mask.",
    "lesion_voxels": "Voxels filled (the lesion mask after --dilate; 0 for no_lesion).",
    "lesion_ml": "Volume filled, in millilitres.",
    "slices": "Slices of the fill plane that touch the lesion.",
    "seconds": "Time the fill took, in seconds.",
    "uncertainty": "Mean predicted error of the fill over the filled voxels (one standard deviation, in the image's "
                   "intensity units; its map is the desc-uncertainty image beside the filled one); n/a: not predicted.",
    "uncertainty_share": "The same mean as a share of the scan's brain intensity range (from 0, or the 0.5th "
                         "percentile of known brain voxels where that is below 0, to their 99.5th percentile: the "
                         "fill's own normalisation), comparable across scans; n/a: not predicted.",
    "message": "Why a scan is not filled (no_lesion: its image was copied), is damaged or was filled again (by the "
               "run that wrote this table), in one sentence.",
}
LEVELS = {"status": {
    FILLED: "The filled image, its sidecar and, when written, its uncertainty map are in this dataset as they were "
            "written.",
    SKIPPED: "The participant run that wrote this table found it already filled from the same inputs with the same "
             "settings.",
    FAILED: "Not filled; the message says why.",
    NO_MASK: "No lesion mask was found; not filled.",
    NO_LESION: "Its lesion mask marks no voxel: the output is the T1w image copied unchanged, with a sidecar saying so.",
    RUNNING: "Another run was filling it when this table was written.",
    PENDING: "No run has handled it yet.",
    MISSING: "Its filled image, sidecar or uncertainty map was deleted.",
    DAMAGED: "Its files no longer match the SHA-256 recorded when they were written, or exist without a record; "
             "the message says which.",
}}
UNITS = {"lesion_voxels": "voxel", "lesion_ml": "mL", "seconds": "s"}


def data_dictionary(columns: dict[str, str], levels: Optional[dict[str, dict[str, str]]] = None,
                    units: Optional[dict[str, str]] = None) -> dict[str, dict[str, Any]]:
    """The BIDS description of a table's columns: each column's Description, and its Levels or Units if it has
    them."""
    levels, units = levels or {}, units or {}
    return {name: {"Description": meaning, **({"Levels": levels[name]} if name in levels else {}),
                   **({"Units": units[name]} if name in units else {})} for name, meaning in columns.items()}


def output_name(source: str) -> str:
    """Relative path of the filled image: the source's folders and entities plus `desc-filled`."""
    path = Path(source)
    stem = path.name.split(".", 1)[0]
    head, _, suffix = stem.rpartition("_")
    return str(path.parent / f"{head}_desc-filled_{suffix}.nii.gz")


def uncertainty_name(output: str) -> str:
    """Relative path of a filled image's predicted-error map: `desc-uncertainty` instead of `desc-filled`."""
    path = Path(output)
    return str(path.with_name(path.name.replace("_desc-filled_", "_desc-uncertainty_")))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(out_dir: Path, bids_dir: Path, masks_dir: Optional[Path] = None) -> None:
    """Refuse an output folder that is, holds or lies inside an input dataset, or holds someone else's files."""
    out, raw = out_dir.resolve(), bids_dir.resolve()
    masks = masks_dir.resolve() if masks_dir else None
    if out == raw:
        raise InpaintError(f"The output folder {out_dir} is the BIDS dataset itself; choose a folder outside it "
                           f"or under {bids_dir / 'derivatives'}.")
    if _inside(out, raw) and not _inside(out, raw / "derivatives"):
        raise InpaintError(f"The output folder {out_dir} lies inside the BIDS dataset's raw data; choose a folder "
                           f"outside it or under {bids_dir / 'derivatives'}.")
    if (masks and (_inside(out, masks) or _inside(masks, out))) or _inside(raw, out):
        raise InpaintError(f"The output folder {out_dir} overlaps an input dataset ({bids_dir} or {masks_dir}); "
                           "choose a folder of its own.")
    if out_dir.exists() and not out_dir.is_dir():
        raise InpaintError(f"The output folder {out_dir} is a file; choose a folder.")
    if _occupied(out_dir) and not is_ours(out_dir):
        raise InpaintError(f"The output folder {out_dir} is not empty and is not a dataset written by "
                           "'inpaint bids'; choose an empty or new folder.")


def make_out_dir(out_dir: Path, *folders: str) -> None:
    """Create OUT_DIR and its `folders` if needed and make sure entries can be written in each; InpaintError
    (one sentence) when they cannot (read-only file system, no permission, a file in the way)."""
    try:
        for folder in (out_dir, *(out_dir / name for name in folders)):
            folder.mkdir(parents=True, exist_ok=True)
            check_writable(folder)
    except OSError as exc:
        raise InpaintError(f"The output folder {out_dir} is not writable ({exc.strerror or exc}); choose a folder "
                           "you can write to, or make it writable.") from None


def link_within(out_dir: Path, relative: str | Path) -> Optional[Path]:
    """The first path from OUT_DIR down to `out_dir / relative` that is a symbolic link (None: none is)."""
    path = out_dir
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            return path
    return None


def link_refusal(out_dir: Path, relatives: Iterable[str | Path]) -> Optional[str]:
    """One sentence refusing to write `relatives` when a path to one of them passes a symbolic link.

    `relatives` hold no `..`, so a path without links inside OUT_DIR (a resolved folder) stays inside it.
    """
    for relative in relatives:
        link = link_within(out_dir, relative)
        if link is not None:
            return (f"Refused to write {relative}: {link} is a symbolic link (to {os.readlink(link)}) inside the "
                    "output folder, and 'inpaint bids' writes only inside it; replace the link by a real folder "
                    "or file.")
    return None


def check_dataset_links(out_dir: Path, relatives: Iterable[str]) -> None:
    """Refuse the whole run when a dataset-level file or folder of OUT_DIR is a symbolic link."""
    refusal = link_refusal(out_dir, relatives)
    if refusal:
        raise InpaintError(refusal)


def _occupied(out_dir: Path) -> bool:
    """True if the folder holds anything but the temporary files of a run starting at the same time."""
    return out_dir.is_dir() and any(not is_temp_name(name) for name in os.listdir(out_dir))


def is_ours(out_dir: Path) -> bool:
    """True if `out_dir` has the dataset_description.json of an `inpaint bids` output."""
    try:
        record = parse_json((out_dir / DESCRIPTION).read_text(encoding="utf-8"))
        return any(g.get("Name") == TOOL for g in record.get("GeneratedBy", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def dataset_link(target: Path, out_dir: Path, bids_dir: Path) -> str:
    """Where `target` is, as DatasetLinks gives it: a path relative to OUT_DIR when both lie in the BIDS dataset
    (OUT_DIR in its derivatives/, as BIDS suggests: the link holds wherever the dataset is mounted or moved), its
    file:// URI otherwise."""
    target, out_dir, bids_dir = target.resolve(), out_dir.resolve(), bids_dir.resolve()
    if _inside(out_dir, bids_dir) and _inside(target, bids_dir):
        return Path(os.path.relpath(target, out_dir)).as_posix()
    return target.as_uri()


def write_description(out_dir: Path, bids_dir: Path, masks_dir: Path, settings: str) -> Path:
    """The derivatives' dataset_description.json (rewritten by each run with that run's settings), and a README
    saying what the dataset holds (written once: a user's edits stay)."""
    links = {"raw": dataset_link(bids_dir, out_dir, bids_dir), "masks": dataset_link(masks_dir, out_dir, bids_dir)}
    record = {
        "Name": "Lesion-filled T1w images (brain-inpaint)",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": TOOL, "Version": __version__, "Description": settings}],
        "SourceDatasets": [{"URL": links["raw"]}, {"URL": links["masks"]}],
        "DatasetLinks": links,
    }
    written = write_json(out_dir / DESCRIPTION, record)   # first: a run starting now must see the folder as ours
    readme = out_dir / README
    if not readme.exists():
        write_atomically(readme, lambda temp: temp.write_text(README_TEXT.format(version=__version__),
                                                              encoding="utf-8"))
    return written


def sources(scan_image: str, scan_mask: str, scan_brainmask: Optional[str]) -> list[str]:
    """BIDS URIs of the files a filled image was made from (resolved by the DatasetLinks)."""
    found = [f"bids:raw:{scan_image}", f"bids:masks:{scan_mask}"]
    return found + ([f"bids:masks:{scan_brainmask}"] if scan_brainmask else [])


def fingerprint(record: dict[str, Any]) -> dict[str, Any]:
    """What decides a fill's result, from its sidecar: input hashes, model checksums and the settings its method
    reads (`core.methods.used_settings`: a sidecar of an earlier version, which recorded every setting, compares
    alike)."""
    from ..methods import METHODS, used_settings

    refiner = record.get("method", {}).get("refiner") or {}
    parameters = record.get("parameters")
    method = METHODS.get(parameters.get("method")) if isinstance(parameters, dict) else None
    return {
        "image": (record.get("input") or {}).get("sha256"),
        "mask": (record.get("mask") or {}).get("sha256"),
        "brainmask": (record.get("brainmask") or {}).get("sha256"),
        "dilate": record.get("mask_dilation_voxels"),
        "threshold": record.get("mask_threshold"),
        "keep_dtype": record.get("keep_dtype"),
        "parameters": used_settings(parameters) if isinstance(parameters, dict) else parameters,
        "model": (record.get("model") or {}).get("sha256") if method is None or method.needs_model else None,
        "refiner": refiner.get("sha256"),
        "plugin": (record.get("method") or {}).get("plugin"),   # a plug-in method's package and version
    }


_CHANGES = {"image": "the image changed", "mask": "the lesion mask changed", "brainmask": "the brain mask changed",
            "dilate": "the mask dilation changed", "threshold": "the mask threshold changed",
            "keep_dtype": "the output data type changed",
            "parameters": "the fill settings changed", "model": "the slice model changed",
            "refiner": "the 3D refiner changed", "plugin": "the plug-in method's package changed"}
COPY_DEPENDS = ("image", "mask", "threshold")  # all a no_lesion copy depends on: other settings would copy alike


def read_sidecar(path: Path) -> Optional[dict[str, Any]]:
    """A sidecar written by brain-inpaint, or None if missing, unreadable or someone else's."""
    try:
        record = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("tool") == TOOL else None


def changes(recorded: dict[str, Any], expected: dict[str, Any], keys: Optional[Iterable[str]] = None) -> list[str]:
    """What differs between two fingerprints in `keys` (default: all), in words (empty: the same fill)."""
    return [_CHANGES[k] for k in (keys or _CHANGES) if recorded.get(k) != expected.get(k)]


def write_table(out_dir: Path, rows: list[Row]) -> Path:
    """Write the scans table of exactly these rows (sorted by source; no output for a scan without one) and its
    column descriptions."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda row: row.source):
        values = dict(asdict(row), output="" if row.status in WITHOUT_OUTPUT else row.output)
        writer.writerow([value if value != "" else "n/a" for value in values.values()])
    text = buffer.getvalue()
    write_json(out_dir / Path(TABLE).with_suffix(".json"), data_dictionary(COLUMNS, LEVELS, UNITS))
    return write_atomically(out_dir / TABLE, lambda temp: temp.write_text(text, encoding="utf-8"))
