"""Finding the scans of a BIDS dataset and the masks that go with them (pybids does the BIDS parsing).

A lesion mask belongs to a T1w scan when it lies in the masks dataset, carries the mask entities
(default `label-lesion`), has the suffix `mask` or `roi`, and has exactly the scan's identifying
entities (sub, ses, acq, ce, rec, run, ...); derivative entities (`space`, `desc`, `res`, `den`)
may be added. With `probabilities` (a threshold was given), a `probseg` file of the same kind
(a lesion probability map) is taken first. A brain mask is a `desc-brain_mask` file with the
scan's identifying entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InpaintError

NIFTI = [".nii", ".nii.gz"]
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
    problem: Optional[str] = None  # why the masks found cannot be used (several match)


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


def _open(root: Path, what: str, derivative: bool):
    from bids import BIDSLayout
    from bids.exceptions import BIDSValidationError

    if not root.is_dir():
        raise InpaintError(f"The {what} {root} is not a folder; check the path.")
    try:
        if derivative:
            return BIDSLayout(root, validate=False, config=["bids", "derivatives"])
        return BIDSLayout(root, validate=True)
    except BIDSValidationError:
        raise InpaintError(f"The {what} {root} has no dataset_description.json; a BIDS dataset needs one at its "
                           "top level.") from None


def _matches(scan: dict[str, str], candidate: dict[str, str], wanted: dict[str, str]) -> bool:
    if any(candidate.get(k) != v for k, v in wanted.items()):
        return False
    keys = (set(scan) | set(candidate)) - DERIVATIVE_KEYS - set(wanted)
    return all(scan.get(k) == candidate.get(k) for k in keys)


def find_scans(bids_dir: Path, masks_dir: Path, *, participants: Sequence[str] = (),
               sessions: Sequence[str] = (), mask_entities: str = "label-lesion",
               probabilities: bool = False) -> list[Scan]:
    """Every T1w scan of `bids_dir` (filtered by participant and session labels) with its masks in `masks_dir`
    (with `probabilities`, a lesion `probseg` map before a `mask` or `roi`)."""
    wanted = parse_entities(mask_entities)
    raw = _open(bids_dir, "BIDS dataset", derivative=False)
    derivs = _open(masks_dir, "masks dataset", derivative=True)
    subjects = [_strip(p, "sub-") for p in participants]
    known = set(raw.get_subjects())
    missing = [s for s in subjects if s not in known]
    if missing:
        raise InpaintError(f"The participant label(s) {', '.join(missing)} are not in {bids_dir}; "
                           f"choose from {', '.join(sorted(known)) or 'none'}.")
    query: dict = {"suffix": "T1w", "extension": NIFTI}
    if subjects:
        query["subject"] = subjects
    if sessions:
        query["session"] = [_strip(s, "ses-") for s in sessions]
    masks = [f for f in derivs.get(extension=NIFTI, suffix=["mask", "roi"])]
    maps = [f for f in derivs.get(extension=NIFTI, suffix="probseg")] if probabilities else []
    scans = []
    for image in sorted(raw.get(**query), key=lambda f: f.relpath):
        entities = name_entities(image.filename)
        lesion = sorted(f.relpath for f in maps if _matches(entities, name_entities(f.filename), wanted)) or \
            sorted(f.relpath for f in masks if _matches(entities, name_entities(f.filename), wanted))
        brain = sorted(f.relpath for f in masks if f.entities["suffix"] == "mask"
                       and _matches(entities, name_entities(f.filename), {"desc": "brain"}))
        problem = None
        if len(lesion) > 1:
            problem = f"{len(lesion)} masks with {mask_entities} match this scan ({', '.join(lesion)}); keep one"
        elif len(brain) > 1:
            problem = f"{len(brain)} brain masks match this scan ({', '.join(brain)}); keep one"
        scans.append(Scan(image=image.relpath, mask=lesion[0] if len(lesion) == 1 else None,
                          brainmask=brain[0] if len(brain) == 1 else None, subject=entities["sub"],
                          session=entities.get("ses"), problem=problem))
    if not scans:
        chosen = " for the chosen participants and sessions" if subjects or sessions else ""
        raise InpaintError(f"No T1w scan (*_T1w.nii[.gz]) found in {bids_dir}{chosen}; check the dataset.")
    return scans
