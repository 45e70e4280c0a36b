import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import make_tiny_model, synthetic_brain
from core.bench import command, runner
from core.bench.lesions import periventricular
from core.bench.masks import FAMILIES, Periventricular, make_cases, small_balls
from core.bench.report import METRICS, OPTIONAL_METRICS, speed_comparison
from core.bench.runner import CaseResult, load_bench_data
from core.checkpoint import load_model
from core.cli import main
from core.errors import InpaintError
from core.fill import FillSettings
from core.resources import DEMO_BRAIN, MNI152_T1

SHAPE = (48, 56, 44)


@pytest.fixture(scope="module")
def brain():
    return synthetic_brain(SHAPE) > 0


def _slices(hole):
    return np.flatnonzero(hole.any(axis=(0, 1)))


@pytest.mark.parametrize("family, edge", [("cube8", 4), ("cube16", 8), ("cube32", 16)])
def test_cubes_have_their_size_and_lie_in_the_brain(brain, family, edge):
    for case in make_cases(brain, (2.0, 2.0, 2.0), [family], per_family=3, seed=1):
        assert case.voxels == edge ** 3
        assert [int(n) for n in np.ptp(np.argwhere(case.hole), axis=0) + 1] == [edge] * 3
        assert not (case.hole & ~brain).any()


def test_cube_edges_follow_the_voxel_size(brain):
    (case,) = make_cases(brain, (1.0, 1.0, 2.0), ["cube16"], per_family=1)
    assert [int(n) for n in np.ptp(np.argwhere(case.hole), axis=0) + 1] == [16, 16, 8]


def test_white_matter_cube_lies_mostly_in_white_matter(brain):
    wm = np.zeros(SHAPE, dtype=bool)
    wm[20:34, 14:30, 10:30] = True
    for case in make_cases(brain, (2.0, 2.0, 2.0), ["cube16_wm"], per_family=2, wm=wm):
        assert case.voxels == 512 and (case.hole & wm).sum() >= 0.8 * 512


def test_blobs_are_connected_lesion_sized_and_inside_the_brain(brain):
    for case in make_cases(brain, (2.0, 2.0, 2.0), ["blob"], per_family=4, seed=2):
        assert 0.5 <= case.voxels * 0.008 <= 10.0
        assert ndimage.label(case.hole, structure=np.ones((3, 3, 3)))[1] == 1
        assert not (case.hole & ~brain).any()
        assert 0 < case.voxels < (np.ptp(np.argwhere(case.hole), axis=0) + 1).prod()  # not a box


def test_edge_blobs_are_ten_mm_lesions_touching_the_brains_edge(brain):
    distance = ndimage.distance_transform_edt(brain, sampling=2.0)
    deep = make_cases(brain, (2.0, 2.0, 2.0), ["blob10"], per_family=3, seed=4)
    for case in make_cases(brain, (2.0, 2.0, 2.0), ["edge10"], per_family=3, seed=4):
        sphere_ml = np.pi / 6 * 10.0 ** 3 / 1000
        assert 0.65 * sphere_ml <= case.voxels * 0.008 <= 1.35 * sphere_ml and not (case.hole & ~brain).any()
        assert ndimage.label(case.hole, structure=np.ones((3, 3, 3)))[1] == 1
        assert distance[case.hole].min() <= 2.0            # it reaches the brain's outermost voxels
    assert all(distance[case.hole].min() > 8.0 for case in deep)   # the deep ones never do


def test_periventricular_blobs_are_ten_mm_lesions_against_the_ventricle_wall(brain):
    ventricles = np.zeros(SHAPE, dtype=bool)
    ventricles[22:26, 20:34, 16:26] = True
    to_ventricles = ndimage.distance_transform_edt(~ventricles, sampling=2.0)
    peri = Periventricular(zone=brain & ~ventricles & (to_ventricles <= 5.0), ventricles=ventricles)
    with pytest.raises(ValueError, match="needs the ventricles"):
        make_cases(brain, (2.0, 2.0, 2.0), ["peri10"], per_family=1)
    for case in make_cases(brain, (2.0, 2.0, 2.0), ["peri10"], per_family=3, seed=4, peri=peri):
        sphere_ml = np.pi / 6 * 10.0 ** 3 / 1000
        assert 0.65 * sphere_ml <= case.voxels * 0.008 <= 1.35 * sphere_ml
        assert not (case.hole & ~brain).any() and not (case.hole & ventricles).any()  # beside it, not in it
        assert ndimage.label(case.hole, structure=np.ones((3, 3, 3)))[1] == 1
        assert to_ventricles[case.hole].min() <= 2.0          # its edge is the ventricle's wall


def test_the_ventricles_of_a_real_brain_are_found_for_periventricular_holes() -> None:
    data = load_bench_data(DEMO_BRAIN, None)
    peri = periventricular(data.image, data.brain, data.affine)
    ml = float(np.prod(data.voxel_mm)) / 1000
    assert 5 <= peri.ventricles.sum() * ml <= 80 and 5 <= peri.zone.sum() * ml   # lateral ventricles: 7-50 ml
    centre = np.argwhere(data.brain).mean(axis=0)
    assert np.abs(np.argwhere(peri.ventricles).mean(axis=0) - centre).max() * max(data.voxel_mm) < 25  # central
    # the demo brain lies in MNI space: the lateral ventricles only - none at the midline (the third ventricle, the
    # fissure), none below the foramina (the cisterns around the midbrain) - and both of them
    x, _, z = (np.argwhere(peri.ventricles) @ data.affine[:3, :3].T + data.affine[:3, 3]).T
    assert np.abs(x).min() >= 2.0 and z.min() >= -6.0
    assert 0.35 <= (x < 0).mean() <= 0.65
    (case,) = make_cases(data.brain, data.voxel_mm, ["peri10"], per_family=1, peri=peri)
    assert not (case.hole & peri.ventricles).any()


def test_small_balls_are_many_small_lesions_centred_in_white_matter(brain):
    wm = np.zeros(SHAPE, dtype=bool)
    wm[14:34, 14:42, 12:32] = True
    hole = small_balls(brain, (2.0, 2.0, 2.0), wm, count=12, seed=3)
    labels, count = ndimage.label(hole, structure=np.ones((3, 3, 3)))
    assert 8 <= count <= 12                                   # balls may merge, never more than drawn
    assert not (hole & ~brain).any()
    assert hole.sum() <= 12 * (4 / 3 * np.pi * 2.0 ** 3 + 1)  # radius at most 4 mm: 2 voxels of 2 mm
    centres = np.round(ndimage.center_of_mass(hole, labels, range(1, count + 1))).astype(int)
    assert wm[tuple(centres.T)].mean() >= 0.8
    assert np.array_equal(hole, small_balls(brain, (2.0, 2.0, 2.0), wm, count=12, seed=3))


def test_large_masks_cover_thirty_percent_of_each_slice(brain):
    for case in make_cases(brain, (2.0, 2.0, 2.0), ["large"], per_family=3, seed=3):
        slices = _slices(case.hole)
        assert len(slices) == 3
        for z in slices:
            assert case.hole[:, :, z].sum() >= 0.3 * brain[:, :, z].sum()
        assert not (case.hole & ~brain).any()


def test_cases_spread_over_axial_levels(brain):
    cases = make_cases(brain, (2.0, 2.0, 2.0), ["cube8"], per_family=4)
    levels = [c.level for c in cases]
    assert levels == sorted(levels) and levels[0] < 0.3 and levels[-1] > 0.7


def test_seeds_reproduce_and_families_are_independent(brain):
    wm = brain.copy()
    ventricles = np.zeros(SHAPE, dtype=bool)
    ventricles[22:26, 20:34, 16:26] = True
    peri = Periventricular(zone=ndimage.binary_dilation(ventricles, iterations=2) & ~ventricles, ventricles=ventricles)
    a = make_cases(brain, (2.0, 2.0, 2.0), FAMILIES, per_family=2, seed=5, wm=wm, peri=peri)
    b = make_cases(brain, (2.0, 2.0, 2.0), FAMILIES, per_family=2, seed=5, wm=wm, peri=peri)
    assert [c.id for c in a] == [c.id for c in b]
    assert all(np.array_equal(x.hole, y.hole) for x, y in zip(a, b))
    c = make_cases(brain, (2.0, 2.0, 2.0), FAMILIES, per_family=2, seed=6, wm=wm, peri=peri)
    assert not all(np.array_equal(x.hole, y.hole) for x, y in zip(a, c))
    blobs = make_cases(brain, (2.0, 2.0, 2.0), ["blob"], per_family=2, seed=5)
    assert all(np.array_equal(x.hole, y.hole) for x, y in zip(blobs, [k for k in a if k.family == "blob"]))


def test_speed_comparison_pairs_slices2d_and_reference_on_the_same_cases():
    def result(method, case, seconds, slices, psnr):
        return CaseResult(method=method, family="cube8", case=case, metrics={"psnr_hole": psnr, "ssim_hole": 0.5},
                          seconds=seconds, slices=slices)

    results = [result("m/slices2d", "a", 2.0, 4, 20.0), result("m/reference", "a", 80.0, 4, 22.0),
               result("m/slices2d", "b", 3.0, 3, 10.0), result("n/reference", "a", 1.0, 1, 0.0)]
    speed = speed_comparison(results)
    assert list(speed) == ["m"] and speed["m"]["cases"] == ["a"]
    assert speed["m"]["default_seconds_per_slice"] == pytest.approx(0.5)
    assert speed["m"]["speedup"] == pytest.approx(40.0)
    assert (speed["m"]["default_psnr_hole"], speed["m"]["reference_psnr_hole"]) == (20.0, 22.0)


def _write_brain(tmp_path: Path) -> Path:
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain(SHAPE), affine), path)
    return path


def _check_summary(report, methods, families):
    assert report["methods"] == methods
    for method in methods:
        assert set(report["summary"][method]) == set(families) | {"all"}
        for family in families:
            entry = report["summary"][method][family]
            assert set(METRICS) | {"n"} <= set(entry) <= set(METRICS) | set(OPTIONAL_METRICS) | {"n"}
            assert 0 < entry["texture_ratio"] and 0 < entry["stripe_ratio"]
            assert entry["n"] == sum(c["family"] == family for c in report["cases"])
            assert entry["seconds_per_slice"] > 0 and 0 < entry["ssim_hole"] <= 1


def test_bench_end_to_end_writes_json_markdown_and_figures(tmp_path):
    model = make_tiny_model(tmp_path / "tiny")
    image = _write_brain(tmp_path)
    out = tmp_path / "report"
    code = main(["bench", "--image", str(image), "--models", str(model), "--families", "cube8,large", "--cases", "1",
                 "--methods", "slices2d,no-blend,reference,border-mean,biharmonic,fsl-style", "--speed-cases", "0",
                 "--json", str(tmp_path / "bench.json"), "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    methods = ["tiny/slices2d", "tiny/no-blend", "border-mean", "biharmonic", "fsl-style"]  # no speed case: no reference
    assert report["methods"] == methods and report["speed"] == {}
    _check_summary(report, methods, ["cube8", "large"])
    assert [c["id"] for c in report["cases"]] == ["cube8-00", "large-00"]
    assert set(report["cases"][0]["results"]) == set(methods)
    assert {"cpu", "torch_threads", "torch"} <= set(report["machine"])
    assert report["settings"]["default"]["iterations"] == FillSettings().iterations
    assert report["seeds"] == {"masks": 0, "fill": 0} and "default_method" in report
    assert json.loads((out / "results.json").read_text())["summary"] == report["summary"]
    markdown = (out / "results.md").read_text()
    assert all(m in markdown for m in methods) and "fig_cube8.png" in markdown
    with Image.open(out / "fig_cube8.png") as figure, Image.open(out / "fig_large.png") as other:
        assert figure.width > 7 * 60 and figure.height > 60  # 7 columns of zoomed brain tiles
        assert figure.width == other.width  # same brain box, same 7 columns (no empty reference column)


def test_quick_bench_runs_the_app_default_and_the_baselines(tmp_path, monkeypatch, capsys):
    path = make_tiny_model(tmp_path / "tiny")
    monkeypatch.setattr(command, "list_models", lambda: [object()])
    monkeypatch.setattr(command, "default_model_name", lambda: "tiny")
    monkeypatch.setattr(command, "resolve_model", lambda name: load_model(path))
    code = main(["bench", "--quick", "--image", str(_write_brain(tmp_path)), "--json", str(tmp_path / "q.json"),
                 "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["default_method"] == FillSettings().method == "refine3d" and report["quick"] is True
    _check_summary(report, ["refine3d", *runner.BASELINES], list(command.QUICK_FAMILIES))
    assert report["speed"] == {}
    assert "refine3d *" in capsys.readouterr().out


def test_bench_refuses_unknown_families_and_the_training_template(tmp_path, capsys):
    assert main(["bench", "--image", str(_write_brain(tmp_path)), "--families", "cube9", "--quiet"]) == 2
    assert "cube9" in capsys.readouterr().err
    with pytest.raises(InpaintError):
        load_bench_data(MNI152_T1, None)


def test_bench_refuses_a_skull_on_scan_without_its_brain_mask(tmp_path, capsys):
    # without a brain mask the brain is every nonzero voxel: on a head with skull the holes fell on bone and scalp
    head = tmp_path / "head.nii.gz"
    data = np.full((140, 170, 130), 50.0, np.float32)   # 3.1 l of nonzero voxels at 1 mm: more than any brain
    nib.save(nib.Nifti1Image(data, np.eye(4)), head)
    assert main(["bench", "--image", str(head), "--methods", "biharmonic-3d", "--families", "cube8", "--cases", "1",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{head} holds 3.1 l of nonzero voxels" in err and "--brainmask" in err


def test_reference_runs_only_on_speed_cases_and_figures_show_only_methods_that_ran(tmp_path, monkeypatch):
    monkeypatch.setitem(runner.PIPELINES, "reference",
                        {"method": "slices2d", "iterations": 2, "restarts": 2, "encoder_start": False})
    model = make_tiny_model(tmp_path / "tiny")
    out = tmp_path / "report"
    code = main(["bench", "--image", str(_write_brain(tmp_path)), "--models", str(model), "--families", "cube8,large",
                 "--cases", "1", "--methods", "slices2d,reference,biharmonic", "--speed-cases", "1",
                 "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report["cases"][0]["results"]) == {"tiny/slices2d", "tiny/reference", "biharmonic"}
    assert set(report["cases"][1]["results"]) == {"tiny/slices2d", "biharmonic"}
    assert report["speed"]["tiny"]["cases"] == ["cube8-00"]
    with Image.open(out / "fig_cube8.png") as with_reference, Image.open(out / "fig_large.png") as without:
        column = with_reference.width - without.width
        assert column > 0 and without.width == pytest.approx(4 * column, abs=5)  # original, masked and two fills


def test_the_refiner_alone_is_a_model_free_ablation_of_the_default():
    methods = runner.model_free_methods("tiny", ["refine3d", "refine3d-nomirror", "slices2d"])
    assert [m.name for m in methods] == ["refine3d", "refine3d-nomirror"]
    assert [m.name for m in runner.model_methods("tiny", ["refine3d-nomirror", "slices2d"])] == ["tiny/slices2d"]
    assert runner.PIPELINES["refine3d-nomirror"] == {"method": "refine3d", "mirror": 0.0}
    assert FillSettings().mirror > 0  # the default fill uses the mirror; the ablation turns it off


def test_the_ventricle_region_follows_the_brain_where_the_scanner_put_it() -> None:
    """Scanner space: the same brain 12 mm further right and 16 mm higher on its grid (nothing wraps round) gets
    the same ventricles there."""
    data = load_bench_data(DEMO_BRAIN, None)
    shift = (6, 0, 8)   # voxels of 2 mm; the brain spans x 8-82 of 91, z 0-78 of 91
    moved_image, moved_brain = (np.roll(a, shift, axis=(0, 1, 2)) for a in (data.image, data.brain))
    here = periventricular(data.image, data.brain, data.affine).ventricles
    there = periventricular(moved_image, moved_brain, data.affine).ventricles
    expected = np.roll(here, shift, axis=(0, 1, 2))
    assert 2 * (there & expected).sum() / (there.sum() + expected.sum()) >= 0.8


def test_a_brain_the_template_cannot_be_registered_to_gets_a_sentence_not_a_traceback() -> None:
    from core.bench.ventricles import lateral_ventricle_region

    with pytest.raises(ValueError, match="registration to the MNI152 template .* failed"):
        lateral_ventricle_region(np.zeros((20, 20, 20), dtype=np.float32), np.eye(4))   # nothing to register
