"""A tiny synthetic `inpaint bids` output for the review tests: raw and masks datasets, filled scans, the table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import synthetic_brain
from core.cohort.derivatives import DESCRIPTION, FAILED, FILLED, TABLE, TOOL, Row, output_name, write_table
from core.normalize import intensity_scale

SHAPE = (16, 18, 14)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
LESIONS = ((slice(4, 6), slice(5, 7), slice(4, 6)), (slice(9, 12), slice(10, 12), slice(8, 10)))  # two per scan


def _save(data: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), path)


def write_cohort(root: Path, scans: int, failed: int = 0, missing: int = 0, uncertainty: bool = False,
                 shares: bool = True) -> Path:
    """OUT_DIR of `scans` scans (two lesions each): the last `failed` failed, the `missing` before them lost their
    filled image; with `uncertainty`, every filled scan has a desc-uncertainty map and every row its mean SD (0.1 per
    scan: 0.10, 0.20...) and that as a share of the scan's brain intensity range; without `shares` the table is an
    older version's, which has no uncertainty_share column."""
    raw, masks, out = root / "raw", root / "masks", root / "out"
    rows = []
    for index in range(scans):
        name = f"sub-{index + 1:02d}"
        source = f"{name}/anat/{name}_T1w.nii.gz"
        mask_name = f"{name}/anat/{name}_label-lesion_mask.nii.gz"
        image = synthetic_brain(SHAPE, seed=index)
        hole = np.zeros(SHAPE, dtype=np.uint8)
        for box in LESIONS:
            hole[box] = 1
        _save(image, raw / source)
        _save(hole, masks / mask_name)
        output = output_name(source)
        row = Row(participant_id=name, session_id="", source=source, mask=mask_name, brainmask="", output=output,
                  status=FILLED, lesion_voxels=str(int(hole.sum())))
        if uncertainty:
            scale = intensity_scale(np.where(hole > 0, 0, image), hole=hole > 0)
            row.uncertainty = f"{0.1 * (index + 1):.2f}"
            row.uncertainty_share = f"{0.1 * (index + 1) / (scale.hi - scale.lo):.4g}"
        if index >= scans - failed:
            row.status, row.output, row.message = FAILED, output, "The lesion mask is empty; draw the lesion."
        elif index < scans - failed - missing:
            filled = np.where(hole > 0, np.float32(55.0 + index), image).astype(np.float32)
            _save(filled, out / output)
            sidecar = {"tool": TOOL, "mask_dilation_voxels": 0, "hole_voxels": int(hole.sum()),
                       "Sources": [f"bids:raw:{source}", f"bids:masks:{mask_name}"]}
            (out / output).with_name(output.rsplit("/", 1)[-1].replace(".nii.gz", ".json")).write_text(
                json.dumps(sidecar))
            if uncertainty:
                _save(hole * np.float32(0.1 * (index + 1)),
                      out / output.replace("_desc-filled_", "_desc-uncertainty_"))
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    (out / DESCRIPTION).write_text(json.dumps({
        "Name": "review test", "BIDSVersion": "1.10.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": TOOL}],
        "DatasetLinks": {"raw": raw.resolve().as_uri(), "masks": masks.resolve().as_uri()}}))
    write_table(out, rows)
    if not shares:
        lines = [line.split("\t") for line in (out / TABLE).read_text().splitlines()]
        drop = lines[0].index("uncertainty_share")
        (out / TABLE).write_text("".join("\t".join(c for i, c in enumerate(cells) if i != drop) + "\n"
                                         for cells in lines))
    return out


def checksums(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file()}
