"""`inpaint bench --cohort`: every scan of a cohort benched at its voxel size, figures over scans."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import synthetic_brain
from core.bench.cohort import mean_se, measurable, per_scan, summarize, unmeasured, write_markdown
from core.cli import main


def _record(scan: str, dataset: str, method: str, family: str, psnr: float) -> dict:
    return {"scan": scan, "dataset": dataset, "method": method, "family": family, "psnr_hole": psnr,
            "ssim_hole": 0.9, "stripe_ratio": 1.0}


def test_figures_are_per_scan_means_with_the_standard_error_over_scans() -> None:
    records = [_record("a/1", "a", "refine3d", "blob6", 20.0), _record("a/1", "a", "refine3d", "blob6", 22.0),
               _record("a/1", "a", "biharmonic-3d", "blob6", 20.0), _record("a/1", "a", "biharmonic-3d", "blob6", 20.0),
               _record("b/2", "b", "refine3d", "blob6", 30.0), _record("b/2", "b", "biharmonic-3d", "blob6", 29.0)]
    summary = summarize(records, ["refine3d", "biharmonic-3d"], ["blob6"])
    cell = summary["all"]["refine3d"]["blob6"]
    assert cell["psnr_hole"] == pytest.approx((25.5, 4.5))                 # scans 21 and 30: SE = 9 / 2
    assert cell["psnr_vs_biharmonic-3d"] == pytest.approx((1.0, 0.0))      # +1 on each scan
    assert cell["scans"] == 2 and summary["a"]["refine3d"]["blob6"]["scans"] == 1
    assert math.isnan(summary["a"]["refine3d"]["blob6"]["psnr_hole"][1])   # one scan: no error
    assert per_scan(records, ["refine3d"], ["blob6"])["b/2"]["refine3d"] == {"psnr_hole": 30.0,
                                                                              "vs_biharmonic-3d": 1.0}
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)


def test_a_lesion_no_fill_can_be_scored_by_leaves_every_method_s_figure(tmp_path: Path) -> None:
    # a few-voxel hole whose truth lies above the BraTS range scores PSNR inf for a fill that clips there too
    # (written as null in results.json); dropping it for one method only would unpair the differences
    records = [dict(_record("a/1", "a", m, "blob6", v), case=c) for m, c, v in
               (("refine3d", "blob6-00", 24.0), ("biharmonic-3d", "blob6-00", 23.0),
                ("refine3d", "blob6-01", math.inf), ("biharmonic-3d", "blob6-01", 30.0),
                ("refine3d", "blob6-02", 26.0), ("biharmonic-3d", "blob6-02", None))]
    assert unmeasured(records) == {("a/1", "blob6-01"), ("a/1", "blob6-02")}
    kept = measurable(records)
    assert {r["case"] for r in kept} == {"blob6-00"} and len(kept) == 2
    summary = summarize(kept, ["refine3d", "biharmonic-3d"], ["blob6"])
    assert summary["all"]["refine3d"]["blob6"]["psnr_vs_biharmonic-3d"][0] == pytest.approx(1.0)
    report = {"cohort": "c", "split": "all", "scans": ["a/1"], "cases_per_family": 3, "seed": 0,
              "methods": ["refine3d", "biharmonic-3d"], "families": ["blob6"], "summary": summary,
              "per_scan": per_scan(kept, ["refine3d", "biharmonic-3d"], ["blob6"]),
              "left_out": ["a/1 blob6-01", "a/1 blob6-02"]}
    text = write_markdown(tmp_path / "results.md", report).read_text()
    assert "2 lesion(s)" in text and "a/1 blob6-01" in text and "inf" not in text.replace("infinite", "")


def test_cohort_bench_runs_every_scan_at_its_voxel_size(tmp_path: Path, capsys) -> None:
    for dataset, zooms in (("iso", (1.0, 1.0, 1.0)), ("aniso", (1.0, 1.33, 1.33))):
        (tmp_path / "cohort" / dataset).mkdir(parents=True)
        for i in (1, 2):
            image = synthetic_brain((48, 40, 40), seed=i)
            affine = np.diag([*zooms, 1.0])
            nib.save(nib.Nifti1Image(image, affine), tmp_path / "cohort" / dataset / f"sub-{i}_T1w.nii.gz")
            nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), affine),
                     tmp_path / "cohort" / dataset / f"sub-{i}_brainmask.nii.gz")
    out = tmp_path / "out"
    assert main(["bench", "--cohort", str(tmp_path / "cohort"), "--methods", "harmonic-3d,biharmonic-3d",
                 "--families", "cube8", "--cases", "2", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["scans"] == ["aniso/sub-1", "aniso/sub-2", "iso/sub-1", "iso/sub-2"]
    assert {tuple(r["voxel_mm"]) for r in report["cases"]} == {(1.0, 1.0, 1.0), (1.0, 1.33, 1.33)}
    assert len(report["cases"]) == 4 * 2 * 2
    assert report["summary"]["all"]["harmonic-3d"]["lesion-sized"]["scans"] == 4
    assert "| harmonic-3d |" in (out / "results.md").read_text()
    assert "harmonic-3d" in capsys.readouterr().out


def test_a_scan_without_ventricles_is_one_sentence_for_periventricular_holes(tmp_path: Path, capsys) -> None:
    (tmp_path / "cohort" / "iso").mkdir(parents=True)
    image = np.zeros((48, 40, 40), np.float32)
    image[8:40, 8:32, 8:32] = 100.0   # a brain of one tissue: no CSF, no ventricle
    for name, data in (("T1w", image), ("brainmask", (image > 0).astype(np.uint8))):
        nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "cohort" / "iso" / f"sub-1_{name}.nii.gz")
    code = main(["bench", "--cohort", str(tmp_path / "cohort"), "--methods", "biharmonic-3d", "--families", "peri10",
                 "--cases", "1", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot cut test holes into" in err and "sub-1_T1w.nii.gz" in err and "CSF" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _cohort(folder: Path, dataset: str, subjects) -> Path:
    (folder / dataset).mkdir(parents=True)
    for i in subjects:
        image = synthetic_brain((48, 40, 40), seed=i)
        nib.save(nib.Nifti1Image(image, np.eye(4)), folder / dataset / f"sub-{i:02d}_T1w.nii.gz")
        nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), np.eye(4)), folder / dataset / f"sub-{i:02d}_brainmask.nii.gz")
    return folder


@pytest.mark.parametrize("cases", ["0", "-2"])
def test_cohort_cases_below_one_are_one_sentence_and_write_nothing(tmp_path: Path, capsys, cases: str) -> None:
    cohort = _cohort(tmp_path / "cohort", "iso", (1,))
    code = main(["bench", "--cohort", str(cohort), "--methods", "biharmonic-3d", "--families", "cube8",
                 "--cases", cases, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and f"--cases must be at least 1, not {cases}." in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_network_is_not_benched_on_the_scans_it_learned_from(tmp_path: Path, capsys) -> None:
    # ds000011 sub-01 and sub-03 are in the shipped refiner's training data (its config.json)
    cohort = _cohort(tmp_path / "cohort", "ds000011", (1, 3))
    code = main(["bench", "--cohort", str(cohort), "--methods", "refine3d,biharmonic-3d", "--families", "cube8",
                 "--cases", "1", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "2 of the 2 scans" in err and "ds000011/sub-01_T1w.nii.gz" in err and "--split validation" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out" / "results.json").exists()
    # classical fills learned nothing: the same scans bench
    assert main(["bench", "--cohort", str(cohort), "--methods", "biharmonic-3d", "--families", "cube8",
                 "--cases", "1", "--out", str(tmp_path / "out"), "--quiet"]) == 0
