"""Finding the scans of a BIDS dataset and the masks that go with them (pybids does the BIDS parsing).

A lesion mask belongs to a T1w scan when it lies in the masks dataset, carries the mask entities
(default `label-lesion`), has the suffix `mask` or `roi`, and has exactly the scan's identifying
entities (sub, ses, acq, ce, rec, run, ...); derivative entities (`space`, `desc`, `res`, `den`)
may be added. With `probabilities` (a threshold was given), a `probseg` file of the same kind
(a lesion probability map) is taken first; without, a scan that has such a map but no mask is a
problem that says to pass --threshold. A brain mask is a `desc-brain_mask` file with the scan's
identifying entities.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InpaintError
from .derivatives import output_name
from ..jsonfiles import parse_json

NIFTI = [".nii", ".nii.gz"]
REQUIRED_FIELDS = ("Name", "BIDSVersion")  # of dataset_description.json, as pybids validates them
DERIVATIVE_KEYS = {"space", "desc", "res", "den", "label"}
_PAIR = re.compile(r"^[a-zA-Z0-9]+-[a-zA-Z0-9]+$")


@dataclass(frozen=True)
class Scan:
    """One T1w scan to fill, with the masks found for it (paths relative to their dataset roots)."""

    image: str
    mask: Optional[str]
    brainmask: Optional[str]
    subject: str
    session: Optional[str]
    problem: Optional[str] = None  # why the masks found cannot be used (several match, a map without threshold)


def name_entities(filename: str) -> dict[str, str]:
    """The key-value pairs of a BIDS file name (`sub-01_ses-a_T1w.nii.gz` -> {sub: 01, ses: a})."""
    parts = filename.split(".", 1)[0].split("_")[:-1]
    return dict(part.split("-", 1) for part in parts if "-" in part)


def parse_entities(text: str) -> dict[str, str]:
    """`--mask-entity` text such as `label-lesion` or `label-lesion_desc-lstai` as key-value pairs."""
    pairs = text.split("_")
    if not text or not all(_PAIR.match(pair) for pair in pairs):
        raise InpaintError(f"The mask entities {text!r} are not BIDS key-value pairs such as 'label-lesion' or "
                           "'label-lesion_desc-manual'; write them that way.")
    return dict(pair.split("-", 1) for pair in pairs)


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def check_description(root: Path, what: str) -> None:
    """Refuse a dataset whose dataset_description.json is missing, unreadable, not JSON or lacks a required field."""
    path = root / "dataset_description.json"
    if not path.is_file():
        raise InpaintError(f"The {what} {root} has no dataset_description.json; a BIDS dataset needs one at its "
                           "top level.")
    try:
        description = parse_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InpaintError(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    except ValueError as exc:  # also a file that is not UTF-8
        raise InpaintError(f"{path} is not valid JSON ({exc}); fix it (a BIDS dataset_description.json is an "
                           'object such as {"Name": "my study", "BIDSVersion": "1.10.0"}).') from None
    lacking = [key for key in REQUIRED_FIELDS if not isinstance(description, dict) or key not in description]
    if lacking:
        raise InpaintError(f"{path} lacks the required field{'s' if len(lacking) > 1 else ''} "
                           f"{' and '.join(lacking)}; add {'them' if len(lacking) > 1 else 'it'} "
                           '(e.g. "Name": "my study", "BIDSVersion": "1.10.0").')


def _open(root: Path, what: str, derivative: bool):
    from bids import BIDSLayout
    from bids.exceptions import BIDSValidationError

    if not root.is_dir():
        raise InpaintError(f"The {what} {root} is not a folder; check the path.")
    if not derivative:
        check_description(root, what)
    try:
        if derivative:
            return BIDSLayout(root, validate=False, config=["bids", "derivatives"])
        return BIDSLayout(root, validate=True)
    except BIDSValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise InpaintError(f"The {what} {root} is not a valid BIDS dataset ({first}); fix it.") from None


def _matches(scan: dict[str, str], candidate: dict[str, str], wanted: dict[str, str]) -> bool:
    if any(candidate.get(k) != v for k, v in wanted.items()):
        return False
    keys = (set(scan) | set(candidate)) - DERIVATIVE_KEYS - set(wanted)
    return all(scan.get(k) == candidate.get(k) for k in keys)


@dataclass(frozen=True)
class Found:
    """The scans chosen to fill, and every T1w scan of the dataset (relative paths), which the table lists."""

    scans: list[Scan]
    sources: list[str]


def _t1w(raw, **query) -> list:
    return sorted(raw.get(suffix="T1w", extension=NIFTI, **query), key=lambda f: f.relpath)


def dataset_sources(bids_dir: Path) -> list[str]:
    """Every T1w scan of the BIDS dataset, relative to it."""
    return [image.relpath for image in _t1w(_open(bids_dir, "BIDS dataset", derivative=False))]


def _telling_entities(masks: Sequence[str], mask_entities: str) -> Optional[str]:
    """`mask_entities` with the first entity that tells the matching `masks` apart (`label-lesion_space-orig`), or
    None when no entity does (e.g. a `_mask` and a `_roi` of the same name)."""
    entities = [name_entities(Path(m).name) for m in masks]
    for own in entities:
        for key, value in own.items():
            if any(other.get(key) != value for other in entities):
                return f"{mask_entities}_{key}-{value}"
    return None


def _refuse_twins(scans: list[Scan]) -> None:
    """A scan stored twice (`.nii` and `.nii.gz`) would be filled twice into one output: each copy gets a problem."""
    by_output: dict[str, list[int]] = {}
    for index, scan in enumerate(scans):
        by_output.setdefault(output_name(scan.image), []).append(index)
    for indices in by_output.values():
        if len(indices) > 1:
            names = " and ".join(scans[i].image for i in indices)
            for i in indices:
                scans[i] = dataclasses.replace(scans[i], mask=None, brainmask=None,
                                               problem=f"this scan is stored twice ({names}); keep one file")


def find_scans(bids_dir: Path, masks_dir: Path, *, participants: Sequence[str] = (),
               sessions: Sequence[str] = (), mask_entities: str = "label-lesion",
               probabilities: bool = False) -> Found:
    """Every T1w scan of `bids_dir` (filtered by participant and session labels) with its masks in `masks_dir`
    (with `probabilities`, a lesion `probseg` map before a `mask` or `roi`), and all its T1w scans."""
    wanted = parse_entities(mask_entities)
    raw = _open(bids_dir, "BIDS dataset", derivative=False)
    derivs = _open(masks_dir, "masks dataset", derivative=True)
    subjects = [_strip(p, "sub-") for p in participants]
    if any(not s.strip() for s in subjects):
        raise InpaintError("--participant-label got an empty label (e.g. a job array's index past the last "
                           "participant); give labels such as 01.")
    known = set(raw.get_subjects())
    missing = [s for s in subjects if s not in known]
    if missing:
        raise InpaintError(f"The participant label(s) {', '.join(missing)} are not in {bids_dir}; "
                           f"choose from {', '.join(sorted(known)) or 'none'}.")
    query: dict = {}
    if subjects:
        query["subject"] = subjects
    if sessions:
        query["session"] = [_strip(s, "ses-") for s in sessions]
    masks = [f for f in derivs.get(extension=NIFTI, suffix=["mask", "roi"])]
    maps = [f for f in derivs.get(extension=NIFTI, suffix="probseg")]
    scans = []
    for image in _t1w(raw, **query):
        entities = name_entities(image.filename)
        lesion_maps = sorted(f.relpath for f in maps if _matches(entities, name_entities(f.filename), wanted))
        lesion = (lesion_maps if probabilities else []) or \
            sorted(f.relpath for f in masks if _matches(entities, name_entities(f.filename), wanted))
        brain = sorted(f.relpath for f in masks if f.entities["suffix"] == "mask"
                       and _matches(entities, name_entities(f.filename), {"desc": "brain"}))
        problem = None
        if len(lesion) > 1:
            telling = _telling_entities(lesion, mask_entities)
            problem = (f"{len(lesion)} masks with {mask_entities} match this scan ({', '.join(lesion)}); keep one"
                       + (f", or choose one with --mask-entity (e.g. {telling})" if telling else ""))
        elif not lesion and lesion_maps:
            problem = (f"no lesion mask (_mask or _roi) with {mask_entities} was found for this scan, only the lesion "
                       f"probability map {' and '.join(lesion_maps)}; pass --threshold T (e.g. 0.5) to fill its voxels "
                       "above T")
        elif len(brain) > 1:
            problem = f"{len(brain)} brain masks match this scan ({', '.join(brain)}); keep one"
        scans.append(Scan(image=image.relpath, mask=lesion[0] if len(lesion) == 1 else None,
                          brainmask=brain[0] if len(brain) == 1 else None, subject=entities["sub"],
                          session=entities.get("ses"), problem=problem))
    _refuse_twins(scans)
    if not scans:
        chosen = " for the chosen participants and sessions" if subjects or sessions else ""
        raise InpaintError(f"No T1w scan (*_T1w.nii[.gz]) found in {bids_dir}{chosen}; check the dataset.")
    return Found(scans=scans, sources=[image.relpath for image in _t1w(raw)])
