"""`inpaint bids` as BIDS App users expect it: lesion-free scans (empty masks) copied unchanged, a probability map
without --threshold named, an unwritable OUT_DIR refused in one sentence, and plain progress lines in logs."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.review import read_table
from test_bids import MEASURE, SCANS, _bids, _group, _statuses, _table

THREE = "sub-03/anat/sub-03_T1w.nii.gz"
THREE_OUT = "sub-03/anat/sub-03_desc-filled_T1w.nii.gz"


@pytest.fixture
def copy(tmp_path) -> tuple[Path, Path]:
    """A fresh cohort of two scans (sub-01 and sub-03) for each test."""
    return MEASURE.build_cohort(tmp_path / "cohort", [SCANS[0], SCANS[3]], crop=MEASURE.EXAMPLE_CROP)


def _empty(mask: Path, data: np.ndarray | None = None) -> None:
    """Rewrite `mask` on its grid with no voxel marked (or with `data`)."""
    image = nib.load(mask)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8) if data is None else data, image.affine), mask)


def test_an_empty_lesion_mask_is_no_lesion_and_its_image_is_copied_unchanged(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--quiet")[0] == 0  # filled first: the copy must replace this fill
    assert (out / THREE_OUT.replace("desc-filled", "desc-uncertainty")).exists()
    mask = masks / "sub-03/anat/sub-03_label-lesion_mask.nii.gz"
    _empty(mask)
    code, err = _bids(capsys, bids, out, masks)
    assert code == 0 and "2 scans: 0 filled, 1 skipped, 0 failed, 0 no mask, 1 no lesion" in err, err
    assert "inpaint: " not in err and "\r" not in err and "bids: 2/2 " in err  # plain progress lines, not a bar
    row = {r["source"]: r for r in _table(out)}[THREE]
    why = ("The lesion mask sub-03_label-lesion_mask.nii.gz marks no voxel (a lesion-free scan), so nothing was filled "
           "and the image was copied unchanged.")
    assert (row["status"], row["output"], row["lesion_voxels"], row["message"]) == ("no_lesion", THREE_OUT, "0", why)
    assert (out / THREE_OUT).read_bytes() == (bids / THREE).read_bytes()
    assert not (out / THREE_OUT.replace("desc-filled", "desc-uncertainty")).exists()  # the earlier fill's map
    assert not (out / THREE_OUT.replace("desc-filled", "desc-uncertainty").replace(".nii.gz", ".json")).exists()
    sidecar = json.loads((out / THREE_OUT.replace(".nii.gz", ".json")).read_text())
    assert sidecar["hole_voxels"] == 0 and sidecar["not_filled_because"] == why and sidecar["tool"] == "brain-inpaint"
    assert isinstance(sidecar["SkullStripped"], bool) and sidecar["Description"]
    assert sidecar["Sources"] == [f"bids:raw:{THREE}", "bids:masks:sub-03/anat/sub-03_label-lesion_mask.nii.gz"]
    assert sidecar["input"]["sha256"] == row["image_sha256"] and sidecar["mask"]["sha256"] == row["mask_sha256"]
    assert json.loads((out / "logs/sub-03_desc-filled_T1w.json").read_text())["status"] == "no_lesion"

    stamp = (out / THREE_OUT).stat().st_mtime_ns
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "03", "--mirror", "0.3")  # other settings
    row = {r["source"]: r for r in _table(out)}[THREE]
    assert code == 0 and row["status"] == "skipped" and (out / THREE_OUT).stat().st_mtime_ns == stamp, err
    assert row["message"] == "Already copied unchanged from the same inputs (its lesion mask marks no voxel)."
    code, err = _group(capsys, bids, out)
    assert code == 0 and "2 scans: 1 filled, 0 failed, 0 no mask, 1 no lesion;" in err and "sub-03" not in err, err
    assert _statuses(out)[THREE] == "no_lesion"

    (out / THREE_OUT).write_bytes((out / THREE_OUT).read_bytes()[:-10])  # group and resume check the copy too
    code, err = _group(capsys, bids, out)
    assert code == 1 and _statuses(out)[THREE] == "damaged", err
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "03", "--quiet")
    assert code == 0 and _statuses(out)[THREE] == "no_lesion" and err == ""
    assert (out / THREE_OUT).read_bytes() == (bids / THREE).read_bytes()


def test_an_uncompressed_source_is_copied_gzipped_and_a_map_with_nothing_above_the_threshold_is_no_lesion(
        copy, tmp_path, capsys) -> None:
    bids, masks = copy
    source = bids / THREE
    plain = source.with_name("sub-03_T1w.nii")
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    source.unlink()
    mask = masks / "sub-03/anat/sub-03_label-lesion_mask.nii.gz"
    probability = np.asarray(nib.load(mask).dataobj).astype(np.float32) * 0.4  # lesion-like, all below 0.5
    nib.save(nib.Nifti1Image(probability, nib.load(mask).affine), mask.with_name("sub-03_label-lesion_probseg.nii.gz"))
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "03", "--threshold", "0.5", "--quiet")
    row = {r["source"]: r for r in _table(out)}["sub-03/anat/sub-03_T1w.nii"]
    assert code == 0 and row["status"] == "no_lesion" and "marks no voxel above 0.5" in row["message"], err
    assert gzip.decompress((out / THREE_OUT).read_bytes()) == plain.read_bytes()
    header = (out / THREE_OUT).read_bytes()[:10]   # no file name (FLG bit 3) and mtime 0: nothing of the host leaks
    assert header[3] & 0x08 == 0 and header[4:8] == b"\0\0\0\0"


def test_a_probability_map_without_threshold_is_named_and_the_output_column_is_empty_without_output(
        copy, tmp_path, capsys) -> None:
    bids, masks = copy
    mask = masks / "sub-03/anat/sub-03_label-lesion_mask.nii.gz"
    probseg = mask.with_name("sub-03_label-lesion_probseg.nii.gz")
    probability = np.asarray(nib.load(mask).dataobj).astype(np.float32) * 0.9
    nib.save(nib.Nifti1Image(probability, nib.load(mask).affine), probseg)
    mask.unlink()
    (masks / "sub-01/anat/sub-01_label-lesion_mask.nii.gz").unlink()
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks)
    rows = {r["source"]: r for r in _table(out)}
    message = ("No lesion mask (_mask or _roi) with label-lesion was found for this scan, only the lesion probability "
               "map sub-03/anat/sub-03_label-lesion_probseg.nii.gz; pass --threshold T (e.g. 0.5) to fill its voxels "
               "above T.")
    assert code == 1 and rows[THREE]["status"] == "failed" and rows[THREE]["message"] == message
    assert f"inpaint: {THREE}: {message}" in err
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"]["status"] == "no_mask"
    assert {r["output"] for r in rows.values()} == {"n/a"}  # neither has an output
    assert {scan.output for scan in read_table(out)[0]} == {"sub-01/anat/sub-01_desc-filled_T1w.nii.gz", THREE_OUT}
    code, err = _bids(capsys, bids, out, masks, "--threshold", "0.5", "--quiet")
    assert code == 0 and _statuses(out)[THREE] == "filled", err
    assert {r["source"]: r["output"] for r in _table(out)}[THREE] == THREE_OUT


def test_an_unwritable_output_folder_is_one_sentence_naming_it(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    targets = [blocker / "out"]
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        (locked / "empty").mkdir(parents=True)
        locked.chmod(0o555)
        (locked / "empty").chmod(0o555)
        targets += [locked / "out", locked / "empty"]
    try:
        for out in targets:
            code, err = _bids(capsys, bids, out, masks)
            assert code == 2 and err.count("\n") == 1, err
            assert err.startswith(f"inpaint: error: The output folder {out.resolve()} is not writable (")
    finally:
        for folder in targets[2:]:
            folder.chmod(0o755)
            folder.parent.chmod(0o755)
    if os.geteuid() != 0:
        out = tmp_path / "done"
        assert _bids(capsys, bids, out, masks, "--participant-label", "03", "--quiet")[0] == 0
        out.chmod(0o555)
        try:
            code, err = _group(capsys, bids, out)
        finally:
            out.chmod(0o755)
        assert code == 2 and f"The output folder {out.resolve()} is not writable" in err and err.count("\n") == 1
