"""`inpaint bids` on a small BIDS cohort made from the shared brains: outputs, resume, failures, parallel runs,
concurrent participant runs into one folder and the group level."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.cli import main
from core.cohort.derivatives import COLUMNS, Row, output_name, uncertainty_name
from core.cohort.layout import find_scans, name_entities
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _measure_bids():
    return load_script("measure_bids")


MEASURE = _measure_bids()
SCANS = MEASURE.EXAMPLE_SCANS


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, Path]:
    """Three subjects (the second with two sessions); sub-01 and sub-02 ses-2 keep the skull and have a brain mask."""
    return MEASURE.build_cohort(tmp_path_factory.mktemp("cohort"), SCANS, crop=MEASURE.EXAMPLE_CROP)


@pytest.fixture
def copy(cohort, tmp_path) -> tuple[Path, Path]:
    """A private copy of the cohort for tests that change it."""
    bids, masks = cohort
    return Path(shutil.copytree(bids, tmp_path / "bids")), Path(shutil.copytree(masks, tmp_path / "masks"))


def _bids(capsys, bids: Path, out: Path, masks: Path, *extra) -> tuple[int, str]:
    code = main(["bids", str(bids), str(out), "participant", "--masks", str(masks), *map(str, extra)])
    return code, capsys.readouterr().err


def _group(capsys, bids: Path, out: Path, *extra) -> tuple[int, str]:
    code = main(["bids", str(bids), str(out), "group", *map(str, extra)])
    return code, capsys.readouterr().err


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "desc-filled_scans.tsv", encoding="utf-8") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def _digests(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file()}


def _filled(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): np.asanyarray(nib.load(p).dataobj) for p in sorted(out.rglob("*.nii.gz"))}


@pytest.fixture(scope="module")
def by_fill(cohort, tmp_path_factory) -> dict[str, np.ndarray]:
    """Every scan filled by `inpaint fill` (same default settings and seed) with its uncertainty map, named like the
    derivatives."""
    bids, masks = cohort
    out = tmp_path_factory.mktemp("fill")
    for scan in SCANS:
        folder = "/".join(scan.split("_")) + "/anat"
        brain = masks / folder / f"{scan}_desc-brain_mask.nii.gz"
        target = out / output_name(f"{folder}/{scan}_T1w.nii.gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        code = main(["fill", str(bids / folder / f"{scan}_T1w.nii.gz"),
                     str(masks / folder / f"{scan}_label-lesion_mask.nii.gz"), "-o", str(target), "--quiet",
                     "--uncertainty", str(out / uncertainty_name(str(target.relative_to(out)))),
                     *(["--brainmask", str(brain)] if brain.exists() else [])])
        assert code == 0
    return _filled(out)


def _brain_range(bids: Path, masks: Path, row: dict[str, str]) -> float:
    """hi - lo of the intensity scale a fill of the row's scan normalises with (`core.normalize`: known brain voxels)."""
    from core.normalize import intensity_scale

    image = np.asarray(nib.load(bids / row["source"]).dataobj, dtype=np.float32)
    hole = np.asarray(nib.load(masks / row["mask"]).dataobj) > 0
    brain = None if row["brainmask"] == "n/a" else np.asarray(nib.load(masks / row["brainmask"]).dataobj) > 0
    scale = intensity_scale(np.where(hole, 0, image), brain, hole)
    return scale.hi - scale.lo


def _check_dataset(out: Path, bids: Path, masks: Path) -> None:
    """Structure, names, dataset_description, sidecars and the scans table of a complete run."""
    expected = {f"{'/'.join(s.split('_'))}/anat/{s}_desc-filled_T1w.nii.gz" for s in SCANS}
    assert set(_filled(out)) == expected | {uncertainty_name(name) for name in expected}
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    generated = description["GeneratedBy"][0]
    assert generated["Name"] == "brain-inpaint" and generated["Version"] and "method=refine3d" in generated["Description"]
    assert description["DatasetLinks"] == {"raw": bids.resolve().as_uri(), "masks": masks.resolve().as_uri()}
    rows = _table(out)
    assert [r["output"] for r in rows] == sorted(expected)
    assert list(rows[0]) == list(COLUMNS) and set(json.loads((out / "desc-filled_scans.json").read_text())) == set(COLUMNS)
    for row in rows:
        assert row["status"] in ("filled", "skipped") and row["message"] in ("n/a", "Already filled from the same "
                                                                             "inputs with the same settings.")
        side = json.loads((out / row["output"].replace(".nii.gz", ".json")).read_text())
        assert side["Sources"][0] == f"bids:raw:{row['source']}" and side["Sources"][1] == f"bids:masks:{row['mask']}"
        assert side["input"]["sha256"] == row["image_sha256"] == hashlib.sha256((bids / row["source"]).read_bytes()).hexdigest()
        assert side["mask"]["sha256"] == row["mask_sha256"] and side["method"]["name"] == "refine3d"
        assert int(row["lesion_voxels"]) == side["hole_voxels"] > 0
        assert float(row["lesion_ml"]) == pytest.approx(side["hole_voxels"] * 8 / 1000, abs=1e-3)  # 2 mm voxels
        assert int(row["slices"]) == side["filled_slices"] > 0 and float(row["seconds"]) >= 0
        assert float(row["uncertainty"]) == pytest.approx(side["uncertainty"]["mean_sd"], rel=1e-3)
        assert float(row["uncertainty"]) > 0
        share = side["uncertainty"]["mean_sd_share"]
        assert share == pytest.approx(side["uncertainty"]["mean_sd"] / _brain_range(bids, masks, row), rel=1e-4)
        assert float(row["uncertainty_share"]) == pytest.approx(share, rel=1e-3) and 0 < share < 1
        assert row["participant_id"] == "sub-" + name_entities(Path(row["source"]).name)["sub"]
        # BIDS derivatives: SkullStripped is REQUIRED, and the predicted-error map has a sidecar of its own
        sd_side = json.loads((out / uncertainty_name(row["output"]).replace(".nii.gz", ".json")).read_text())
        assert side["SkullStripped"] is True and sd_side["SkullStripped"] is True and side["Description"]
        assert sd_side["Sources"] == side["Sources"] and "standard deviation" in sd_side["Description"]
        assert (row["brainmask"] != "n/a") == (side["brainmask"] is not None)
    assert sorted(r["session_id"] for r in rows) == ["n/a", "n/a", "ses-1", "ses-2"]


def test_jobs_2_writes_the_derivatives_of_inpaint_fill_and_a_rerun_skips_everything(cohort, by_fill, tmp_path,
                                                                                      capsys) -> None:
    bids, masks = cohort
    before = _digests(bids, masks)
    out = tmp_path / "derivatives"
    code, err = _bids(capsys, bids, out, masks, "--jobs", "2")
    assert code == 0, err
    assert "4 scans: 4 filled, 0 skipped, 0 failed, 0 no mask" in err
    _check_dataset(out, bids, masks)
    filled = _filled(out)
    assert all(np.array_equal(filled[name], by_fill[name]) for name in by_fill)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivatives"]  # nothing written beside OUT_DIR
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("sub-*/**/*") if p.is_file()}
    code, err = _bids(capsys, bids, out, masks, "--jobs", "2")
    assert code == 0 and "0 filled, 4 skipped" in err, err
    assert {r["status"] for r in _table(out)} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    _check_dataset(out, bids, masks)
    assert _digests(bids, masks) == before


def test_a_local_dask_cluster_gives_the_same_volumes(cohort, by_fill, tmp_path, capsys) -> None:
    import distributed

    bids, masks = cohort
    out = tmp_path / "derivatives"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  local_directory=str(tmp_path / "dask")) as cluster:
        code, err = _bids(capsys, bids, out, masks, "--scheduler", cluster.scheduler_address, "--quiet")
    assert code == 0, err
    _check_dataset(out, bids, masks)
    filled = _filled(out)
    assert all(np.array_equal(filled[name], by_fill[name]) for name in by_fill)


def test_concurrent_participant_runs_keep_every_row_and_group_rebuilds_the_table(cohort, tmp_path, capsys) -> None:
    bids, masks = cohort
    out = tmp_path / "derivatives"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen([sys.executable, "-m", "core.cli", "bids", str(bids), str(out), "participant", "--masks",
                              str(masks), "--participant-label", *labels, "--quiet"], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True) for labels in (["01", "03"], ["02"])]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
        run.stderr.close()
    _check_dataset(out, bids, masks)
    table = (out / "desc-filled_scans.tsv").read_text()
    # the validator would read the table as a scans file: ignored with the logs
    assert (out / ".bidsignore").read_text() == "logs/\ndesc-filled_scans.tsv\ndesc-filled_scans.json\n"
    assert not list(out.rglob(".*.tmp*"))
    (out / "desc-filled_scans.tsv").unlink()
    (out / "desc-filled_scans.json").unlink()
    staging = shutil.copytree(out / "sub-01" / "anat", out / "sub-01" / "anat" / ".inpaint-tmp-abcd1234")  # a write
    code, err = _group(capsys, bids, out)
    assert code == 0 and (out / "desc-filled_scans.tsv").read_text() == table
    shutil.rmtree(staging)
    ml = sum(float(r["lesion_ml"]) for r in _table(out))
    assert f"4 scans: 4 filled, 0 failed, 0 no mask; {ml:.3f} ml filled in total; wrote" in err
    _check_dataset(out, bids, masks)


def test_a_run_starting_while_another_sets_up_the_folder_is_never_refused(cohort, tmp_path, capsys,
                                                                          monkeypatch) -> None:
    """Every state the output folder passes through while a run sets it up is one a second run accepts."""
    import core.cohort.run as run
    from core.cohort.derivatives import check_out_dir

    bids, masks = cohort
    out = tmp_path / "derivatives"
    seen = []

    def then_check(step):
        def wrapped(*args, **kwargs):
            result = step(*args, **kwargs)
            check_out_dir(out, bids, masks)  # what a participant run starting at this moment checks first
            seen.append(sorted(p.name for p in out.iterdir()))
            return result
        return wrapped

    import core.cohort.derivatives as derivatives

    monkeypatch.setattr(run, "make_out_dir", then_check(run.make_out_dir))
    monkeypatch.setattr(run, "write_description", then_check(run.write_description))
    # and every file the description step writes (a README written before dataset_description.json once made a run
    # starting at that moment refuse the folder as someone else's)
    monkeypatch.setattr(derivatives, "write_json", then_check(derivatives.write_json))
    monkeypatch.setattr(derivatives, "write_atomically", then_check(derivatives.write_atomically))
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "02", "--quiet")
    assert code == 0, err
    assert seen[0] == [] and ["dataset_description.json"] in seen and "logs" in seen[-1]


def test_a_failing_scan_is_recorded_and_kept_by_later_runs_of_other_participants(cohort, copy, tmp_path,
                                                                                  capsys) -> None:
    bids, masks = copy
    bad = masks / "sub-02/ses-1/anat/sub-02_ses-1_label-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), bad)  # not on the image's grid
    (masks / "sub-03/anat/sub-03_label-lesion_mask.nii.gz").unlink()
    annexed = bids / "sub-02/ses-3/anat/sub-02_ses-3_T1w.nii.gz"  # a DataLad file not fetched: a broken link
    annexed.parent.mkdir(parents=True)
    annexed.symlink_to(tmp_path / ".git/annex/objects/missing")
    (masks / "sub-02/ses-3/anat").mkdir(parents=True)
    shutil.copy(bad, masks / "sub-02/ses-3/anat/sub-02_ses-3_label-lesion_mask.nii.gz")
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "02", "sub-03")
    assert code == 1
    rows = {r["source"]: r for r in _table(out)}
    failed = rows["sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"]
    assert failed["status"] == "failed" and "has shape 4x4x4" in failed["message"]
    assert failed["message"].count(". ") == 0 and f"{failed['source']}: {failed['message']}" in err
    assert rows["sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"]["status"] == "filled"
    missing = rows["sub-02/ses-3/anat/sub-02_ses-3_T1w.nii.gz"]
    assert missing["status"] == "failed" and missing["message"].endswith("does not exist; check the path.")
    assert rows["sub-03/anat/sub-03_T1w.nii.gz"]["status"] == "no_mask"
    assert not (out / "sub-02/ses-1").exists() or not any((out / "sub-02/ses-1").rglob("*.nii.gz"))
    assert not (out / "sub-01").exists()  # participant filter
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"]["status"] == "pending"  # the table lists every scan of the dataset
    assert "4 scans: 1 filled, 0 skipped, 2 failed, 1 no mask" in err
    code, err = _bids(capsys, bids, out, masks, "--participant_label", "01", "--quiet")   # the BIDS Apps spelling
    assert code == 0 and err == ""  # the other participants' failures are recorded, not this run's
    later = {r["source"]: r for r in _table(out)}
    assert later["sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"] == failed and later["sub-01/anat/sub-01_T1w.nii.gz"]["status"] == "filled"
    assert later["sub-03/anat/sub-03_T1w.nii.gz"] == rows["sub-03/anat/sub-03_T1w.nii.gz"]
    code, err = _group(capsys, bids, out)
    assert code == 0 and "5 scans: 2 filled, 2 failed, 1 no mask;" in err and f"{failed['source']}: " in err
    assert {r["source"]: r for r in _table(out)} == later
    records = sorted(p.name for p in (out / "logs").glob("*.json"))
    assert records == [f"{name}_desc-filled_T1w.json"
                       for name in ("sub-01", "sub-02_ses-1", "sub-02_ses-2", "sub-02_ses-3", "sub-03")]
    shutil.copy(cohort[1] / bad.relative_to(masks), bad)  # the mask fixed: filled, and its record says so
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "02", "--session_label", "1", "--quiet")
    assert code == 0 and {r["source"]: r["status"] for r in _table(out)}[failed["source"]] == "filled"
    assert json.loads((out / "logs" / records[1]).read_text())["status"] == "filled"


def test_inside_the_bids_dataset_the_links_are_relative_and_resolve_after_the_dataset_moves(copy, tmp_path,
                                                                                               capsys) -> None:
    """BIDS puts derivatives in the dataset's derivatives/ folder; there the DatasetLinks are relative, so the sidecars'
    bids: URIs still resolve when the dataset is mounted elsewhere (a container) or moved. The dataset gets a README
    (kept once a user edits it) and its table a data dictionary with the statuses as Levels and Units."""
    bids, masks = copy
    inside = Path(shutil.move(masks, bids / "derivatives" / "masks"))
    out = bids / "derivatives" / "inpaint"
    code, err = _bids(capsys, bids, out, inside, "--participant-label", "01")
    assert code == 0, err
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetLinks"] == {"raw": "../..", "masks": "../masks"}
    assert [d["URL"] for d in description["SourceDatasets"]] == ["../..", "../masks"]
    moved = Path(shutil.move(bids, tmp_path / "moved"))
    out = moved / "derivatives" / "inpaint"
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    sidecar = json.loads((out / "sub-01" / "anat" / "sub-01_desc-filled_T1w.json").read_text())
    for uri in sidecar["Sources"]:
        _, name, relative = uri.split(":", 2)
        assert (out / links[name] / relative).is_file(), uri
    from core.review import CohortReview
    from core.review_scan import load_scan

    scan = load_scan(out, CohortReview(out).scans[0])   # the review finds the source and mask through the links
    assert scan.source.data.shape == scan.hole.shape and scan.hole.any()
    readme = (out / "README.md").read_text()
    assert "desc-filled_scans.tsv" in readme and "DatasetLinks" in readme
    dictionary = json.loads((out / "desc-filled_scans.json").read_text())
    assert set(dictionary["status"]["Levels"]) == {"filled", "skipped", "failed", "no_mask", "no_lesion", "running",
                                                  "pending", "missing", "damaged"}
    assert dictionary["lesion_ml"]["Units"] == "mL" and dictionary["seconds"]["Units"] == "s"
    (out / "README.md").write_text("Our notes on this run.\n")
    code, err = _bids(capsys, moved, out, moved / "derivatives" / "masks", "--participant-label", "03")
    assert code == 0, err
    assert (out / "README.md").read_text() == "Our notes on this run.\n"


def test_sessions_filter_and_a_changed_mask_is_filled_again(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--session", "ses-2", "--quiet")
    assert code == 0 and err == ""
    assert {r["source"]: r["status"] for r in _table(out) if r["status"] != "pending"} == \
        {"sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz": "filled"}
    mask_path = masks / "sub-02/ses-2/anat/sub-02_ses-2_label-lesion_mask.nii.gz"
    mask = nib.load(mask_path)
    data = np.asarray(mask.dataobj).copy()
    data[tuple(np.argwhere(data)[0])] = 0  # one lesion voxel less
    nib.save(nib.Nifti1Image(data, mask.affine, mask.header), mask_path)
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "sub-01", "--quiet")
    assert code == 0
    code, err = _bids(capsys, bids, out, masks, "--quiet")
    assert code == 0
    rows = {r["source"]: r for r in _table(out)}
    assert len(rows) == 4
    changed = rows["sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"]
    assert changed["status"] == "filled" and changed["message"] == "Filled again: the lesion mask changed."
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"]["status"] == "skipped"
    code, err = _bids(capsys, bids, out, masks, "--mirror", "0.25", "--participant-label", "01", "--quiet")
    assert {r["source"]: r for r in _table(out)}["sub-01/anat/sub-01_T1w.nii.gz"]["message"] == \
        "Filled again: the fill settings changed."
    code, err = _bids(capsys, bids, out, masks, "--mirror", "0.25", "--participant-label", "01", "--threshold", "0.5",
                      "--quiet")
    row = {r["source"]: r for r in _table(out)}["sub-01/anat/sub-01_T1w.nii.gz"]
    assert code == 0 and row["message"] == "Filled again: the mask threshold changed."
    assert json.loads((out / "sub-01/anat/sub-01_desc-filled_T1w.json").read_text())["mask_threshold"] == 0.5


def test_options_the_method_does_not_read_are_refused_and_outputs_of_the_previous_version_are_skipped(
        copy, tmp_path, capsys) -> None:
    """`--iterations 300` with refine3d was accepted and refilled every scan ("the fill settings changed") to the
    same result; sidecars of the previous version, which recorded every setting, still resume."""
    from core.cohort.records import record_path
    from core.fill import FillSettings

    bids, masks = copy
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--iterations", "300")
    assert code == 2 and not out.exists() and err.splitlines() == [
        "inpaint: error: --iterations is read only by --method slices2d or poisson3d, not by refine3d (the default); "
        "drop it or choose one of those methods with --method."]
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")
    assert code == 0, err
    name = "sub-01/anat/sub-01_desc-filled_T1w.json"
    sidecar = json.loads((out / name).read_text())
    assert sidecar["parameters"] == {"method": "refine3d", "mirror": 0.5, "device": "auto"} and "model" not in sidecar
    # as the previous version wrote it: every setting, the default slice model and the plane; its record to match
    sidecar.update(parameters=FillSettings().to_dict(), model={"name": "vae_k3", "sha256": "0" * 64}, axis="axial")
    (out / name).write_text(json.dumps(sidecar, indent=2) + "\n")
    log = record_path(out, name.replace(".json", ".nii.gz"))
    record = json.loads(log.read_text())
    del record["uncertainty_share"]  # a column the previous version's records lack
    stat = (out / name).stat()
    record["files"][name] = {"sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(), "size": stat.st_size,
                             "mtime_ns": stat.st_mtime_ns}
    log.write_text(json.dumps(record))
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")
    row = {r["source"]: r for r in _table(out)}["sub-01/anat/sub-01_T1w.nii.gz"]
    assert code == 0 and (row["status"], row["message"]) == ("skipped", "Already filled from the same inputs with "
                                                                        "the same settings."), err
    assert row["uncertainty_share"] == "n/a" and float(row["uncertainty"]) > 0

def test_output_folders_that_would_mix_with_inputs_or_other_data_are_refused(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    before = _digests(bids, masks)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for out, words in [(bids, "is the BIDS dataset itself"), (bids / "sub-01" / "out", "inside the BIDS dataset"),
                       (masks, "overlaps an input dataset"), (foreign, "is not empty")]:
        code, err = _bids(capsys, bids, out, masks)
        assert code == 2 and words in err and err.count("\n") == 1, err
    for out, words in [(foreign, "is not a dataset written by 'inpaint bids'"), (tmp_path / "o", "run the participant level")]:
        code, err = _group(capsys, bids, out)
        assert code == 2 and words in err and err.count("\n") == 1, err
    code, err = main(["bids", str(bids), str(tmp_path / "o"), "participant"]), capsys.readouterr().err
    assert code == 2 and "needs --masks" in err and err.count("\n") == 1
    code, err = _bids(capsys, bids, tmp_path / "o", masks, "--participant-label", "09")
    assert code == 2 and "09 are not in" in err
    code, err = _bids(capsys, bids, tmp_path / "o", masks, "--method", "slices2d", "--model", tmp_path / "none")
    assert code == 2 and "is neither a shipped model" in err
    code, err = _bids(capsys, bids, tmp_path / "o", masks, "--mask-entity", "lesion")
    assert code == 2 and "not BIDS key-value pairs" in err
    assert (foreign / "notes.txt").read_text() == "mine" and not (tmp_path / "o").exists()
    assert _digests(bids, masks) == before
    code, err = _bids(capsys, bids, bids / "derivatives" / "filled", masks, "--participant-label", "03", "--quiet")
    assert code == 0, err  # the BIDS Apps place for derivatives inside a dataset
    code, err = _group(capsys, bids, bids / "derivatives" / "filled", "--participant-label", "03")
    assert code == 2 and "drop them" in err and err.count("\n") == 1
    (bids / "dataset_description.json").unlink()
    code, err = _bids(capsys, bids, tmp_path / "o", masks)
    assert code == 2 and "has no dataset_description.json" in err


def test_masks_match_by_entities_and_ambiguity_is_a_failure(copy, tmp_path) -> None:
    bids, masks = copy
    anat = bids / "sub-03" / "anat"
    for name in ("sub-03_acq-fast_run-1_T1w.nii.gz", "sub-03_acq-fast_run-2_T1w.nii.gz"):
        shutil.copy(anat / "sub-03_T1w.nii.gz", anat / name)
    lesion = masks / "sub-03" / "anat"
    shutil.copy(lesion / "sub-03_label-lesion_mask.nii.gz", lesion / "sub-03_acq-fast_run-1_space-orig_label-lesion_roi.nii.gz")
    shutil.copy(lesion / "sub-03_label-lesion_mask.nii.gz", lesion / "sub-03_label-lesion_roi.nii.gz")
    for space in ("orig", "MNI"):   # two spaces: the problem says which --mask-entity picks one
        shutil.copy(lesion / "sub-03_label-lesion_mask.nii.gz",
                    lesion / f"sub-03_acq-fast_run-2_space-{space}_label-lesion_mask.nii.gz")
    scans = {s.image.split("/")[-1]: s for s in find_scans(bids, masks, participants=["03"]).scans}
    assert "or choose one with --mask-entity (e.g. label-lesion_space-" in scans["sub-03_acq-fast_run-2_T1w.nii.gz"].problem
    assert "--mask-entity" not in scans["sub-03_T1w.nii.gz"].problem   # a _mask and a _roi: no entity tells them apart
    assert scans["sub-03_acq-fast_run-1_T1w.nii.gz"].mask.endswith("sub-03_acq-fast_run-1_space-orig_label-lesion_roi.nii.gz")
    assert scans["sub-03_acq-fast_run-2_T1w.nii.gz"].mask is None
    assert scans["sub-03_T1w.nii.gz"].mask is None and "2 masks with label-lesion match" in scans["sub-03_T1w.nii.gz"].problem
    assert output_name("sub-03/anat/sub-03_acq-fast_run-1_T1w.nii") == "sub-03/anat/sub-03_acq-fast_run-1_desc-filled_T1w.nii.gz"
    assert [f.name for f in Row.__dataclass_fields__.values()] == list(COLUMNS)


def test_an_unexpected_error_becomes_one_line() -> None:
    from core.cohort.worker import one_sentence
    from core.errors import InpaintError

    assert one_sentence(InpaintError("The mask is empty; paint it.")) == "The mask is empty; paint it."
    assert one_sentence(MemoryError("out of memory\ntraceback")) == "Unexpected MemoryError: out of memory; please report it."


def test_models_are_loaded_once_per_process_not_per_scan(copy, tmp_path, capsys, monkeypatch) -> None:
    import core.refine3d
    import core.registry
    from core.cohort import worker

    loads = {"model": 0, "refiner": 0}

    def counted(name, function):
        def call(*args, **kwargs):
            loads[name] += 1
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(worker, "_MODELS", {})
    monkeypatch.setattr(core.refine3d, "_CACHE", {})
    monkeypatch.setattr(core.registry, "resolve_model", counted("model", core.registry.resolve_model))
    monkeypatch.setattr(core.refine3d, "load_refiner", counted("refiner", core.refine3d.load_refiner))
    bids, masks = copy
    code, err = _bids(capsys, bids, tmp_path / "out", masks, "--jobs", "1")
    assert code == 0 and "4 scans: 4 filled" in err, err
    # each shipped refiner once; no slice model, which refine3d does not read
    assert loads == {"model": 0, "refiner": len(core.refine3d.REFINERS)}


def test_with_a_threshold_a_lesion_probability_map_is_taken_before_the_binary_mask(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    lesion = masks / "sub-01" / "anat" / "sub-01_label-lesion_mask.nii.gz"
    binary = nib.load(lesion)
    probability = np.asarray(binary.dataobj).astype(np.float32) * 0.9
    probability[tuple(np.argwhere(probability)[0])] = 0.3          # one voxel below the threshold
    probseg = lesion.with_name("sub-01_label-lesion_probseg.nii.gz")
    nib.save(nib.Nifti1Image(probability, binary.affine), probseg)
    by_default = {s.subject: s for s in find_scans(bids, masks, participants=["01"]).scans}
    assert by_default["01"].mask.endswith("sub-01_label-lesion_mask.nii.gz")   # no threshold: the binary mask
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--threshold", "0.5", "--quiet")
    assert code == 0, err
    sidecar = json.loads((out / "sub-01/anat/sub-01_desc-filled_T1w.json").read_text())
    assert sidecar["mask"]["path"] == str(probseg.resolve()) and sidecar["mask_threshold"] == 0.5
    assert sidecar["hole_voxels"] == int((probability > 0.5).sum()) == int(np.asarray(binary.dataobj).sum()) - 1


def _statuses(out: Path) -> dict[str, str]:
    return {r["source"]: r["status"] for r in _table(out)}


def test_an_overlapping_run_leaves_the_scans_another_run_holds_to_it_and_takes_over_those_of_dead_runs(
        copy, tmp_path, capsys, monkeypatch) -> None:
    import fcntl

    import core.fill_file

    bids, masks = copy
    out = tmp_path / "out"
    real_fill, second = core.fill_file.fill_file, []

    def fill_while_another_run_starts(*args, **kwargs):
        if not second:  # while this run fills its first scan, a second run into the same OUT_DIR starts and ends
            second.append(None)
            second[0] = _bids(capsys, bids, out, masks)
        return real_fill(*args, **kwargs)

    monkeypatch.setattr(core.fill_file, "fill_file", fill_while_another_run_starts)
    code, err = _bids(capsys, bids, out, masks)
    (second_code, second_err), = second
    first = "sub-01/anat/sub-01_T1w.nii.gz"
    assert second_code == 0 and f"{first}: Being filled by another run (pid {os.getpid()} on host" in second_err
    assert "4 scans: 3 filled, 0 skipped, 0 failed, 0 no mask, 1 running" in second_err
    assert code == 0 and "4 scans: 1 filled, 3 skipped, 0 failed, 0 no mask" in err and "--force" not in err
    assert set(_statuses(out).values()) == {"filled", "skipped"}
    _check_dataset(out, bids, masks)
    monkeypatch.undo()

    lock = out / "logs" / "sub-01_desc-filled_T1w.lock"
    lock.write_text("pid 999999 on host gone\n")  # left by a killed run: its flock died with it
    (out / output_name(first)).unlink()
    with open(lock, "r+") as held:  # held by a live run
        fcntl.flock(held, fcntl.LOCK_EX)
        code, err = _group(capsys, bids, out)
        assert _statuses(out)[first] == "running" and "Being filled by another run (pid 999999 on host gone)" in err
    code, err = _bids(capsys, bids, out, masks, "--quiet")
    assert code == 0 and err == "" and _statuses(out)[first] == "filled" and (out / output_name(first)).is_file()


def test_deleted_or_changed_outputs_and_records_are_listed_as_missing_or_damaged_and_group_fails(
        copy, tmp_path, capsys) -> None:
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--quiet")[0] == 0
    (out / "sub-01/anat/sub-01_desc-filled_T1w.nii.gz").unlink()
    sidecar = out / "sub-02/ses-1/anat/sub-02_ses-1_desc-filled_T1w.json"
    sidecar.write_bytes(sidecar.read_bytes()[:100])
    record = out / "logs/sub-03_desc-filled_T1w.json"
    record.write_text("{")
    code, err = _group(capsys, bids, out)
    rows = {r["source"]: r for r in _table(out)}
    assert code == 1 and len(rows) == 4, err
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"]["status"] == "missing"
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"]["message"] == (
        "The file sub-01/anat/sub-01_desc-filled_T1w.nii.gz is missing; run the participant level again for sub-01 to "
        "fill it again.")
    damaged = rows["sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"]
    assert damaged["status"] == "damaged" and "no longer matches the SHA-256 recorded" in damaged["message"]
    unreadable = rows["sub-03/anat/sub-03_T1w.nii.gz"]
    assert unreadable["status"] == "damaged"
    assert "logs/sub-03_desc-filled_T1w.json cannot be read" in unreadable["message"]
    assert rows["sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"]["status"] == "filled"
    assert "4 scans: 1 filled, 0 failed, 0 no mask, 2 damaged, 1 missing;" in err
    assert "3 scans of" in err and err.count("\n") == 5
    code, err = _bids(capsys, bids, out, masks)
    assert code == 0 and "4 scans: 3 filled, 1 skipped" in err, err
    rows = {r["source"]: r["message"] for r in _table(out)}
    assert rows["sub-01/anat/sub-01_T1w.nii.gz"] == ("Filled again: the file sub-01/anat/sub-01_desc-filled_T1w.nii.gz "
                                                     "is missing.")
    assert rows["sub-03/anat/sub-03_T1w.nii.gz"].startswith("Filled again: the record logs/sub-03_desc-filled_T1w.json "
                                                            "cannot be read")
    assert _group(capsys, bids, out)[0] == 0
    _check_dataset(out, bids, masks)


def test_a_rerun_fills_again_a_filled_image_that_was_truncated_or_swapped(copy, by_fill, tmp_path, capsys) -> None:
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--quiet")[0] == 0
    one, two = out / "sub-01/anat/sub-01_desc-filled_T1w.nii.gz", out / "sub-03/anat/sub-03_desc-filled_T1w.nii.gz"
    swapped = one.read_bytes()
    one.write_bytes(two.read_bytes())           # a valid image of the same grid, but another scan's
    two.write_bytes(swapped[:len(swapped) // 2])  # truncated
    code, err = _bids(capsys, bids, out, masks)
    assert code == 0 and "4 scans: 2 filled, 2 skipped" in err, err
    rows = {r["output"]: r for r in _table(out)}
    for path in (one, two):
        name = str(path.relative_to(out))
        assert rows[name]["message"] == (f"Filled again: the file {name} no longer matches the SHA-256 recorded when it was "
                                         "written (it was truncated, changed or replaced).")
        assert np.array_equal(_filled(out)[name], by_fill[name])


def test_links_inside_the_output_folder_are_refused_and_nothing_is_written_through_them(copy, tmp_path,
                                                                                           capsys) -> None:
    bids, masks = copy
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _bids(capsys, bids, out, masks, "--participant-label", "03", "--quiet")[0] == 0
    (out / "sub-01").symlink_to(bids / "sub-01")
    (out / "sub-02").mkdir()
    (out / "sub-02" / "ses-1").symlink_to(masks / "sub-02" / "ses-1")
    before = _digests(bids, masks)
    code, err = _bids(capsys, bids, out, masks, "--quiet")
    assert code == 1 and _digests(bids, masks) == before
    rows = {r["source"]: r for r in _table(out)}
    for source, link in [("sub-01/anat/sub-01_T1w.nii.gz", out / "sub-01"),
                         ("sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz", out / "sub-02" / "ses-1")]:
        assert rows[source]["status"] == "failed" and rows[source]["message"].startswith(
            f"Refused to write {output_name(source)}: {link} is a symbolic link (to ")
        assert f"inpaint: {source}: Refused to write" in err
    assert rows["sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz"]["status"] == "filled"
    for name in ("logs", "desc-filled_scans.tsv"):
        shutil.move(out / name, elsewhere / name)
        (out / name).symlink_to(elsewhere / name)
        inside = _digests(elsewhere)
        code, err = _bids(capsys, bids, out, masks)
        assert code == 2 and err.count("\n") == 1 and f"{out / name} is a symbolic link" in err, err
        code, err = _group(capsys, bids, out)
        assert code == 2 and f"{out / name} is a symbolic link" in err
        assert _digests(elsewhere) == inside and _digests(bids, masks) == before
        (out / name).unlink()
        shutil.move(elsewhere / name, out / name)


def test_an_invalid_dataset_description_is_named_and_said_what_is_wrong(copy, tmp_path, capsys) -> None:
    bids, masks = copy
    description = bids / "dataset_description.json"
    for text, words in [('{"Name": "x",', f"{description} is not valid JSON (Expecting"),
                        ('{"Name": "x"}', f"{description} lacks the required field BIDSVersion; add it"),
                        ("[]", f"{description} lacks the required fields Name and BIDSVersion; add them")]:
        description.write_text(text)
        code, err = _bids(capsys, bids, tmp_path / "out", masks)
        assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_the_uncertainty_map_is_a_recorded_file_checked_by_group_and_resume(copy, by_fill, tmp_path,
                                                                             capsys) -> None:
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--participant-label", "01", "03", "--quiet")[0] == 0
    one, three = (output_name(f"sub-{n}/anat/sub-{n}_T1w.nii.gz") for n in ("01", "03"))
    record = json.loads((out / "logs/sub-01_desc-filled_T1w.json").read_text())
    assert record["files"][uncertainty_name(one)]["sha256"] == hashlib.sha256(
        (out / uncertainty_name(one)).read_bytes()).hexdigest()
    (out / uncertainty_name(one)).unlink()
    truncated = out / uncertainty_name(three)
    truncated.write_bytes(truncated.read_bytes()[:100])
    code, err = _group(capsys, bids, out)
    rows = {r["output"]: r for r in _table(out)}
    assert code == 1 and rows[one]["status"] == "missing" and rows[three]["status"] == "damaged", err
    assert rows[one]["message"].startswith(f"The file {uncertainty_name(one)} is missing;")
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "03", "--quiet")
    rows = {r["output"]: r for r in _table(out)}
    assert code == 0 and rows[one]["message"] == f"Filled again: the file {uncertainty_name(one)} is missing.", err
    assert rows[three]["message"].startswith(f"Filled again: the file {uncertainty_name(three)} no longer matches")
    for name in (one, three, uncertainty_name(one), uncertainty_name(three)):
        assert np.array_equal(_filled(out)[name], by_fill[name])
    assert _group(capsys, bids, out)[0] == 0
    sd_json = uncertainty_name(three).replace(".nii.gz", ".json")   # the map's BIDS sidecar is recorded too
    (out / sd_json).write_text('{"broken": ')
    code, err = _group(capsys, bids, out)
    assert code == 1 and _statuses(out)["sub-03/anat/sub-03_T1w.nii.gz"] == "damaged", err
    assert _bids(capsys, bids, out, masks, "--participant-label", "03", "--quiet")[0] == 0
    assert json.loads((out / sd_json).read_text())["SkullStripped"] is True and _group(capsys, bids, out)[0] == 0

    for name in (one, one.replace(".nii.gz", ".json"), "logs/sub-01_desc-filled_T1w.json"):
        (out / name).unlink()  # a map left without its image, sidecar and record
    assert _group(capsys, bids, out)[0] == 1 and _statuses(out)["sub-01/anat/sub-01_T1w.nii.gz"] == "damaged"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")
    assert code == 0 and _statuses(out)["sub-01/anat/sub-01_T1w.nii.gz"] == "filled", err
    assert np.array_equal(_filled(out)[uncertainty_name(one)], by_fill[uncertainty_name(one)])

    code, err = _bids(capsys, bids, out, masks, "--participant-label", "03", "--method", "poisson3d", "--quiet")
    assert code == 0 and not (out / uncertainty_name(three)).exists(), err  # an earlier fill's map is removed
    assert list(json.loads((out / "logs/sub-03_desc-filled_T1w.json").read_text())["files"]) == [
        three, three.replace(".nii.gz", ".json")]
    assert _group(capsys, bids, out)[0] == 0 and _statuses(out)["sub-03/anat/sub-03_T1w.nii.gz"] == "filled"


def test_a_full_disk_while_records_are_written_is_one_sentence_and_a_rerun_recovers(copy, tmp_path, capsys,
                                                                                     monkeypatch) -> None:
    """The disk filling while a record, the table or .bidsignore was written ended in an OSError traceback (a
    helper on a nearly full tmpfs); now one sentence naming the file, exit 1, and the next run fills what is left."""
    import errno

    import core.jsonfiles

    bids, masks = copy
    out = tmp_path / "out"
    write = core.jsonfiles.write_atomically

    def full_disk(path, fill):
        if "logs" in Path(path).parts:
            return write(path, lambda temp: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        return write(path, fill)

    monkeypatch.setattr(core.jsonfiles, "write_atomically", full_disk)
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")
    last = err.strip().splitlines()[-1]
    assert code == 1 and "Traceback" not in err, err
    assert last.startswith("inpaint: error: could not write or read ") and "/logs/" in last
    assert "No space left on device" in last and not [p for p in out.rglob(".*.tmp*")]
    monkeypatch.setattr(core.jsonfiles, "write_atomically", write)
    assert _group(capsys, bids, out)[0] == 1    # the filled image without a record: damaged, said by group
    assert _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")[0] == 0
    assert _statuses(out)["sub-01/anat/sub-01_T1w.nii.gz"] == "filled"


def _workers_of(pid: int) -> list[int]:
    """The spawned worker processes of `pid` (not its resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_inpaint_bids_stops_its_workers_and_a_rerun_completes(how, copy, tmp_path) -> None:
    """`kill` (SIGTERM, as SLURM's scancel sends) or `kill -9` of `inpaint bids --jobs 2` alone left its two workers
    filling scans nobody recorded and then waiting for ever (a helper's check); SIGTERM also died without a word."""
    import time

    bids, masks = copy
    out = tmp_path / "out"
    command = [sys.executable, "-m", "core.cli", "bids", str(bids), str(out), "participant", "--masks", str(masks),
               "--jobs", "2", "--method", "slices2d", "--quiet"]
    run = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while len(_workers_of(run.pid)) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = _workers_of(run.pid)
    try:
        assert len(workers) == 2 and run.poll() is None, run.stderr.read() if run.poll() is not None else "no workers"
        time.sleep(3)   # into the fills
        run.send_signal(how)
        err = run.communicate(timeout=60)[1]
        deadline = time.monotonic() + 20
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "workers outlived inpaint bids"
    finally:   # a failing run leaves nothing running
        for pid in [run.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if how == signal.SIGTERM:
        assert run.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    code = subprocess.run(command[:-5] + ["--quiet"], cwd=ROOT, capture_output=True, text=True).returncode
    assert code == 0 and set(_statuses(out).values()) == {"filled"}


def test_a_scan_whose_mask_was_withdrawn_loses_its_earlier_fill(copy, tmp_path, capsys) -> None:
    """The filled image stayed (its sidecar naming the removed mask) while the table said no_mask and n/a: a later
    pipeline globbing *_desc-filled_T1w.nii.gz took it for a current fill (a helper's cluster audit)."""
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")[0] == 0
    output = output_name("sub-01/anat/sub-01_T1w.nii.gz")
    written = [p for p in (out / "sub-01").rglob("*") if p.is_file()]
    assert (out / output).is_file() and len(written) >= 2
    for mask in (masks / "sub-01").rglob("*label-lesion*"):
        mask.unlink()
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "01", "--quiet")
    row = {r["source"]: r for r in _table(out)}["sub-01/anat/sub-01_T1w.nii.gz"]
    assert code == 0 and row["status"] == "no_mask" and "was removed" in row["message"], err
    assert not [p for p in (out / "sub-01").rglob("*") if p.is_file()] and _group(capsys, bids, out)[0] == 0


def test_a_scan_stored_twice_is_refused_not_filled_twice_into_one_output(copy, tmp_path, capsys) -> None:
    """sub-03_T1w as .nii beside .nii.gz was filled twice into the same output, listed once and refilled on every
    run (a helper's cluster audit)."""
    bids, masks = copy
    image = bids / "sub-03/anat/sub-03_T1w.nii.gz"
    nib.save(nib.load(image), bids / "sub-03/anat/sub-03_T1w.nii")
    out = tmp_path / "out"
    code, err = _bids(capsys, bids, out, masks, "--participant-label", "03", "--quiet")
    rows = _table(out)
    assert code == 1 and not (out / output_name("sub-03/anat/sub-03_T1w.nii.gz")).exists(), err
    assert any(r["status"] == "failed" and "stored twice" in r["message"] and "keep one file" in r["message"]
               for r in rows)


def test_an_empty_participant_label_is_one_sentence(copy, tmp_path, capsys) -> None:
    """A job array's index past the last participant gave 'The participant label(s)  are not in ...'."""
    bids, masks = copy
    code, err = _bids(capsys, bids, tmp_path / "out", masks, "--participant-label", "")
    assert code == 2 and "empty label" in err and err.count("\n") == 1, err


def test_participant_labels_given_twice_both_count(copy, tmp_path, capsys) -> None:
    """`--participant-label 01 --participant-label 03` filled 03 alone (argparse kept the last)."""
    bids, masks = copy
    out = tmp_path / "out"
    assert _bids(capsys, bids, out, masks, "--participant-label", "01", "--participant-label", "03", "--quiet")[0] == 0
    filled = {r["participant_id"] for r in _table(out) if r["status"] == "filled"}
    assert filled == {"sub-01", "sub-03"}


def test_inpaint_bids_answers_version_as_a_bids_app_does(capsys) -> None:
    """A container whose entry point is `inpaint bids` could not answer --version (the positionals were demanded)."""
    from core import __version__

    with pytest.raises(SystemExit) as stop:
        main(["bids", "--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"inpaint bids {__version__}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_started_by_process_1_lives_and_one_whose_parent_is_gone_ends() -> None:
    """The first version ended any worker whose parent was pid 1 - every worker of `inpaint bids` run as a
    container's entry point (pid 1)."""
    probe = "import os, sys; from core.cohort.worker import end_with_parent; end_with_parent({}); print('alive')"
    kept = subprocess.run([sys.executable, "-c", probe.format("os.getppid()")], cwd=ROOT, capture_output=True, text=True)
    ended = subprocess.run([sys.executable, "-c", probe.format("-5")], cwd=ROOT, capture_output=True, text=True)
    assert kept.returncode == 0 and kept.stdout.strip() == "alive", kept.stderr
    assert ended.returncode == 1 and not ended.stdout


def test_a_masks_folder_without_any_lesion_mask_is_said_even_quietly(copy, tmp_path, capsys) -> None:
    """--masks pointing at a folder with no lesion masks gave every scan no_mask and exit 0, without a word."""
    bids, _ = copy
    empty = tmp_path / "no_masks"
    empty.mkdir()
    (empty / "dataset_description.json").write_text(json.dumps({"Name": "none", "BIDSVersion": "1.8.0",
                                                                "DatasetType": "derivative"}))
    code, err = _bids(capsys, bids, tmp_path / "out", empty, "--quiet")
    assert code == 0 and set(_statuses(tmp_path / "out").values()) == {"no_mask"}
    assert err.strip().startswith("inpaint: note: No mask with label-lesion was found for any scan: check --masks")


def test_a_worker_can_be_terminated_even_when_inpaint_bids_was_started_ignoring_sigterm() -> None:
    """An ignored SIGTERM is inherited by spawned workers, and the pool's terminate on an interrupt then waited for
    ever (the same hang stopped a CI run in the refiner's patch-making pool)."""
    code = ("import os, signal\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "from core.cohort.worker import end_with_parent\n"
            "end_with_parent(os.getppid())\n"
            "print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr[-1000:]
