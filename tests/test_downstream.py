import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.bench.downstream import (NO_FILL, TISSUES, GmmSegmenter, HmrfSegmenter, compare, fill_methods,
                                   lesion_ring, run_brain)
from core.bench.runner import BenchData
from core.fill import FillSettings
from test_lesions import CSF, GM, WM, synthetic_brain


def _labels(image, brain):
    return np.where(brain, np.digitize(image, [(CSF + GM) / 2, (GM + WM) / 2]) + 1, 0).astype(np.uint8)


def test_a_segmentation_equal_to_the_original_gives_no_change_and_full_agreement():
    image, brain, _ = synthetic_brain()
    original = _labels(image, brain)
    lesion = np.zeros_like(brain)
    lesion[20:24, 30:33, 20:23] = True
    got = compare(original.copy(), original, lesion, lesion_ring(lesion, brain))
    assert all(got["volume_change_pct"][t] == 0.0 for t in TISSUES)
    assert got["lesion_agreement"] == 1.0 and got["ring_agreement"] == 1.0
    for t in TISSUES:
        for key in ("dice_lesion", "dice_ring"):
            assert got[key][t] == 1.0 or math.isnan(got[key][t])  # nan: class absent from both


@pytest.mark.parametrize("segmenter", [GmmSegmenter, HmrfSegmenter])
def test_segmenters_find_the_three_tissues_and_a_fill_equal_to_the_original_changes_nothing(segmenter):
    image, brain, _ = synthetic_brain()
    seg = segmenter()
    original = seg(image, brain)
    again = seg(image.copy(), brain)
    assert np.array_equal(original, again)
    assert set(np.unique(original[brain])) == {1, 2, 3} and np.all(original[~brain] == 0)
    truth = _labels(image, brain)
    assert np.mean(original[brain] == truth[brain]) > 0.95  # labels ordered CSF < GM < WM by mean
    lesion = np.zeros_like(brain)
    lesion[20:24, 30:33, 20:23] = True
    got = compare(again, original, lesion, lesion_ring(lesion, brain))
    assert got["lesion_agreement"] == 1.0 and got["volume_change_pct"]["wm"] == 0.0


def test_no_fill_shifts_lesion_volume_from_white_to_grey_matter():
    image, brain, _ = synthetic_brain()
    lesion = np.zeros_like(brain)
    lesion[14:18, 18:34, 24:28] = True  # white matter
    lesion &= _labels(image, brain) == 3
    lesioned = image.copy()
    lesioned[lesion] = GM + np.random.default_rng(1).normal(0, 4, int(lesion.sum()))
    seg = GmmSegmenter()
    original = seg(image, brain)
    got = compare(seg(lesioned, brain), original, lesion, lesion_ring(lesion, brain))
    wm, gm = int((original == 3).sum()), int((original == 2).sum())
    n = int(lesion.sum())
    assert got["lesion_agreement"] < 0.1 and got["lesion_labels"]["gm"] > 0.9
    assert got["volume_change_pct"]["wm"] == pytest.approx(-100 * n / wm, rel=0.15)
    assert got["volume_change_pct"]["gm"] == pytest.approx(100 * n / gm, rel=0.15)
    assert got["dice_lesion"]["wm"] < 0.2


def _bench_data(tmp_path=None):
    image, brain, voxel = synthetic_brain()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return BenchData(image=image, brain=brain, affine=affine, image_path=Path("synthetic.nii.gz"),
                     brainmask_path=None)


def test_run_brain_scores_every_method_against_the_original():
    data = _bench_data()
    methods = fill_methods([], ["border-mean", "fsl-style"])
    result = run_brain("synthetic", data, methods, {}, FillSettings(seed=0, device="cpu"), None, count=4, seed=0)
    record = result.record
    assert set(record["fill"]) == {NO_FILL, "border-mean", "fsl-style"}
    for seg in ("gmm", "hmrf"):
        rows = record["segmenters"][seg]["methods"]
        assert set(rows) == {NO_FILL, "border-mean", "fsl-style"}
        assert rows["fsl-style"]["lesion_agreement"] > rows[NO_FILL]["lesion_agreement"]
        assert rows[NO_FILL]["volume_change_pct"]["wm"] < 0
    assert record["lesion_voxels"] == int(result.lesions.mask.sum()) > 0
    json.dumps(record)


def test_cli_writes_json_markdown_and_figure(tmp_path):
    from core.cli import main

    image, brain, _ = synthetic_brain()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "t1.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    out = tmp_path / "out"
    code = main(["bench", "--downstream", "--image", str(tmp_path / "t1.nii.gz"), "--brainmask",
                 str(tmp_path / "mask.nii.gz"), "--methods", "border-mean", "--out", str(out), "--quiet",
                 "--device", "cpu", "--json", str(tmp_path / "d.json")])
    assert code in (0, None)
    report = json.loads((out / "downstream.json").read_text())
    assert json.loads((tmp_path / "d.json").read_text()) == report
    assert report["methods"] == ["border-mean"] and list(report["brains"]) == ["t1"]
    text = (out / "downstream.md").read_text()
    assert "| no fill |" in text and "fig_t1.png" in text
    assert (out / "fig_t1.png").stat().st_size > 1000


def test_cli_on_a_cohort_summarises_over_brains_per_dataset(tmp_path):
    from core.cli import main

    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    for dataset, subject, seed in (("dsA", "sub-01", 0), ("dsA", "sub-02", 1), ("dsB", "sub-01", 2)):
        folder = tmp_path / "cohort" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        image, brain, _ = synthetic_brain(seed)
        nib.save(nib.Nifti1Image(image, affine), folder / f"{subject}_T1w.nii.gz")
        nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), folder / f"{subject}_brainmask.nii.gz")
    out = tmp_path / "out"
    args = ["bench", "--downstream", "--cohort", str(tmp_path / "cohort"), "--methods", "border-mean,biharmonic-3d",
            "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(args) in (0, None)
    report = json.loads((out / "downstream.json").read_text())
    assert list(report["brains"]) == ["dsA/sub-01", "dsA/sub-02", "dsB/sub-01"]
    assert report["command"] == f"inpaint bench --downstream --cohort {tmp_path / 'cohort'} --methods border-mean,biharmonic-3d"
    text = (out / "downstream.md").read_text()
    assert "### all (3 brains)" in text and "### dsA (2 brains)" in text and "### dsB (1 brain)" in text
    rows = {b: report["brains"][b]["segmenters"]["gmm"]["methods"] for b in report["brains"]}
    agree = [100 * rows[b]["border-mean"]["lesion_agreement"] for b in rows]
    paired = [100 * (rows[b]["border-mean"]["lesion_agreement"] - rows[b]["biharmonic-3d"]["lesion_agreement"])
              for b in rows]
    se = np.std(agree, ddof=1) / math.sqrt(3)
    row = next(line for line in text.splitlines() if line.startswith("| border-mean |"))   # the first: all brains
    assert row.split(" | ")[1] == f"{np.mean(agree):.1f} +/- {se:.1f} ({np.mean(paired):+.1f} +/- " \
                                  f"{np.std(paired, ddof=1) / math.sqrt(3):.1f})"
    assert (out / "fig_dsA_sub-01.png").is_file() and "fig_dsB_sub-01.png" in text
    assert main(args + ["--image", str(tmp_path / "cohort" / "dsA" / "sub-01_T1w.nii.gz")]) == 2
    assert main(["bench", "--downstream", "--split", "validation", "--quiet"]) == 2
