"""Training cohorts: folders of `*_T1w` scans with their `*_brainmask`, and the validation split.

A cohort folder holds one subfolder per dataset (e.g. `ds002748/`, `ds000011/`), each with
`sub-XX_T1w.nii.gz` and `sub-XX_brainmask.nii.gz` on the same grid. Every choice made while
training (architecture, grid, phases, the mirror's share, the default) is made on the validation
scans, which the training never draws a patch from; the held-out brains stay for the final check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InpaintError

SOURCES = {   # path fragment: what model cards say of the scans' source and licence
    "mni152": "The ICBM 2009a template: Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, "
              "Montreal Neurological Institute, McGill University (see resources/mni152/NOTICE.md).",
    "robex": "The ROBEX subject: `ROBEX/ref_vols/atlas.nii.gz` with its expert brain mask, ROBEX v1.2 (Iglesias et "
             "al., IEEE TMI 2011), BSD license, Copyright (c) 2010 Juan Eugenio Iglesias.",
    "ds002748": "ds002748: OpenNeuro ds002748 v1.0.5 (Bezmaternykh, Melnikov, Savelov, Petrovskii; "
                "doi:10.18112/openneuro.ds002748.v1.0.5; Bezmaternykh et al., Neural Plasticity 2021, 8846097), "
                "CC0, skull-stripped by the dataset's authors.",
    "ds000011": "ds000011: OpenfMRI ds000011 (Foerde, Knowlton, Poldrack; PNAS 2006, 103(31):11778-83), Public "
                "Domain Dedication and License 1.0; we acknowledge the OpenfMRI project and NSF grant OCI-1131441. "
                "Skull-stripped with brain masks made by deepbet 1.0.2.",
}


def licences(paths) -> list[str]:
    """The SOURCES sentences of every known source among `paths`."""
    return [text for key, text in SOURCES.items() if any(key in str(p).lower() for p in paths)]


def subjects_text(paths: Sequence[str]) -> str:
    """Scans grouped by folder (for model cards): `folder` (N: sub-01, sub-02, ...)."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(str(Path(path).parent), []).append(Path(path).name.split("_T1w")[0].split(".nii")[0])
    return "; ".join(f"`{folder}` ({len(names)}: {', '.join(names)})" if len(names) > 1 else f"`{folder}/{names[0]}`"
                     for folder, names in groups.items())


VALIDATION_SHARE = 0.1   # of each dataset's scans, at least VALIDATION_MIN of them
VALIDATION_MIN = 2


@dataclass(frozen=True)
class Scan:
    """One cohort scan: the image, its brain mask and the dataset (folder) it belongs to."""

    image: Path
    brainmask: Path
    dataset: str


def find_scans(folder: Path) -> list[Scan]:
    """Every `*_T1w.nii[.gz]` under `folder` with its `*_brainmask` beside it, sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InpaintError(f"{folder} is not a folder; pass a cohort folder of *_T1w.nii.gz scans with their "
                           f"*_brainmask.nii.gz.")
    scans = []
    for image in sorted(folder.rglob("*_T1w.nii*")):
        stem = image.name.split("_T1w")[0]
        masks = sorted(image.parent.glob(f"{stem}_brainmask.nii*"))
        if not masks:
            raise InpaintError(f"{image} has no brain mask beside it ({stem}_brainmask.nii.gz); add one or move "
                               f"the scan out of the cohort folder.")
        scans.append(Scan(image=image, brainmask=masks[0], dataset=image.parent.relative_to(folder).as_posix()))
    if not scans:
        raise InpaintError(f"{folder} holds no *_T1w.nii.gz scan; pass a cohort folder.")
    return scans


def split(scans: Sequence[Scan]) -> tuple[list[Scan], list[Scan]]:
    """(training, validation): in each dataset, evenly spaced scans of the sorted list are kept aside.

    VALIDATION_SHARE of each dataset's scans (at least VALIDATION_MIN, never all) go to validation,
    taken at even steps through the sorted names so that the split does not depend on anything
    but the file names.
    """
    training, validation = [], []
    for dataset in sorted({s.dataset for s in scans}):
        members = [s for s in scans if s.dataset == dataset]
        count = min(len(members) - 1, max(VALIDATION_MIN, round(VALIDATION_SHARE * len(members))))
        step = len(members) / max(count, 1)
        chosen = {int(step * i + step / 2) for i in range(count)}
        for index, scan in enumerate(members):
            (validation if index in chosen else training).append(scan)
    return training, validation


def split_text(folder: Path) -> str:
    """How `split` divides a cohort folder, per dataset: `ds000011: 6 scans train, 2 kept aside for validation`."""
    training, validation = split(find_scans(Path(folder)))
    parts = []
    for dataset in sorted({s.dataset for s in training + validation}):
        train = sum(s.dataset == dataset for s in training)
        kept = sum(s.dataset == dataset for s in validation)
        parts.append(f"{Path(folder).name if dataset == '.' else dataset}: {train} scan{'s' * (train != 1)} train, "
                     f"{kept} kept aside for validation")
    return "; ".join(parts)
