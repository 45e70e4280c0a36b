"""The fill's predicted error: features, the model and its file, the fit, the fill's map, its outputs and the bench."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import spearmanr

from conftest import synthetic_brain
from core.bench.cohort import uncertainty_summary, uncertainty_table
from core.checkpoint import load_model
from core.errors import InpaintError
from core.fill import FillSettings, fill_volume
from core.fill_file import fill_file
from core.normalize import intensity_scale
from core.refine3d import Refiner3D, RefinerConfig, load_refiner, save_refiner
from core.uncertainty import (FILE_NAME, UncertaintyModel, fit, lesion_features, lesion_rms, load_uncertainty,
                              one_sigma_share, to_json)

MODEL = UncertaintyModel(edge=0.2, deep=0.6, length_mm=3.0, spread_weight=0.5)


def _refiner(folder: Path, model: UncertaintyModel | None = MODEL) -> Path:
    """A tiny untrained refiner, with an uncertainty.json fitted for its weights unless `model` is None."""
    torch.manual_seed(0)
    save_refiner(folder, Refiner3D(RefinerConfig(width=2, spacing_mm=2.0)), {"training": {"steps": 0}})
    if model is not None:
        checksum = load_refiner(folder).checksum
        (folder / FILE_NAME).write_text(json.dumps(to_json(model, {"refiner_sha256": checksum})))
    return folder


def test_lesion_features_measure_the_shell_the_depth_and_the_spread() -> None:
    shape = (15, 15, 15)
    known = np.zeros(shape, dtype=np.float32)
    known[:, :, 8:] = 10.0   # two tissues: the shell around the cube sees both
    lesion = np.zeros(shape, dtype=bool)
    lesion[5:10, 5:10, 5:10] = True
    smooth = np.full(shape, 5.0, dtype=np.float32)
    refined = smooth + 2.0
    features = lesion_features(known, lesion, lesion, smooth, refined, (1.0, 1.0, 1.0))
    assert features.shape == (3,) + shape and not features[:, ~lesion].any()
    shell = (ndimage.distance_transform_edt(~lesion) <= 3.0) & ~lesion
    assert np.allclose(features[0][lesion], np.std(known[shell]))
    assert features[1][7, 7, 7] == pytest.approx(3.0) and features[1][5, 7, 7] == pytest.approx(1.0)
    assert np.allclose(features[2][lesion], 2.0)
    assert features[1][7, 7, 7] * 2 == pytest.approx(
        lesion_features(known, lesion, lesion, smooth, refined, (2.0, 2.0, 2.0))[1][7, 7, 7])  # in mm


def test_the_shell_reaches_one_voxel_on_voxels_coarser_than_its_radius() -> None:
    # at 4 mm no known voxel lies within SHELL_MM (3 mm) of the lesion: without a floor of one voxel
    # the shell would be empty and the predicted SD would lose its main term (seen on 4 mm scans)
    shape = (9, 9, 9)
    known = np.zeros(shape, dtype=np.float32)
    known[:, :, 5:] = 10.0
    lesion = np.zeros(shape, dtype=bool)
    lesion[3:6, 3:6, 3:6] = True
    same = np.zeros(shape, dtype=np.float32)
    features = lesion_features(known, lesion, lesion, same, same, (4.0, 4.0, 4.0))
    faces = (ndimage.distance_transform_edt(~lesion) <= 1.0) & ~lesion
    assert np.allclose(features[0][lesion], np.std(known[faces])) and np.std(known[faces]) > 0
    thick = lesion_features(known, lesion, lesion, same, same, (1.0, 1.0, 5.0))[0][lesion]   # 3 mm in-plane
    ring = (ndimage.distance_transform_edt(~lesion, sampling=(1.0, 1.0, 5.0)) <= 3.0) & ~lesion
    assert np.allclose(thick, np.std(known[ring]))


def test_the_predicted_sd_grows_with_depth_shell_and_spread() -> None:
    rows = np.array([[10.0, 0.0, 0.0], [10.0, 3.0, 0.0], [10.0, 100.0, 0.0], [20.0, 100.0, 0.0], [10.0, 0.0, 4.0]])
    sd = MODEL.predict(rows)
    assert sd.dtype == np.float32
    assert sd[0] == pytest.approx(2.0) and sd[2] == pytest.approx(8.0) and sd[3] == pytest.approx(16.0)
    assert sd[0] < sd[1] < sd[2] and sd[4] == pytest.approx(4.0)


def test_the_file_round_trips_and_follows_its_refiner(tmp_path: Path) -> None:
    folder = _refiner(tmp_path / "r")
    refiner = load_refiner(folder)
    assert refiner.uncertainty is not None and refiner.uncertainty.edge == MODEL.edge
    assert load_uncertainty(folder, "another refiner's checksum") is None   # retrained without recalibrating
    assert load_refiner(_refiner(tmp_path / "plain", None)).uncertainty is None


@pytest.mark.parametrize("change", [{"edge": -1.0}, {"deep": float("nan")}, {"length_mm": "3"}, {"format_version": 9},
                                    {"extra": 1.0}])
def test_a_damaged_file_is_one_sentence(tmp_path: Path, change: dict) -> None:
    folder = _refiner(tmp_path / "r")
    record = json.loads((folder / FILE_NAME).read_text())
    for key, value in change.items():
        (record if key == "format_version" else record["constants"])[key] = value
    (folder / FILE_NAME).write_text(json.dumps(record))
    with pytest.raises(InpaintError, match="calibrate_uncertainty"):
        load_refiner(folder)


def test_the_fit_reaches_the_one_sigma_share_and_ranks_the_lesions() -> None:
    rng = np.random.default_rng(0)
    lesion = np.repeat(np.arange(40), 50)
    shell = rng.uniform(2, 20, 40)[lesion]
    depth = np.tile(np.linspace(0.5, 6, 50), 40)
    spread = rng.uniform(0, 3, lesion.size)
    features = np.stack([shell, depth, spread], axis=1)
    error = rng.standard_normal(lesion.size) * MODEL.predict(features)
    fitted = fit(features, error, lesion)
    sd = fitted.predict(features)
    assert one_sigma_share(sd, error) == pytest.approx(0.6827, abs=0.01)
    assert spearmanr(lesion_rms(sd, lesion), lesion_rms(error, lesion))[0] > 0.9
    assert lesion_rms(np.array([3.0, 4.0, 2.0]), np.array([0, 0, 1])) == pytest.approx([np.sqrt(12.5), 2.0])


def test_a_refine3d_fill_predicts_its_error_in_the_hole(tiny_vae: Path, tmp_path: Path) -> None:
    image = synthetic_brain()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    hole = np.zeros(image.shape, dtype=bool)
    hole[16:22, 20:26, 15:19] = True
    hole[8:11, 30:33, 20:23] = True   # a second lesion
    model = load_model(tiny_vae)
    result = fill_volume(image, affine, hole, model, FillSettings(), refiner=load_refiner(_refiner(tmp_path / "r")))
    sd = np.zeros(image.shape, dtype=np.float32)
    sd[hole] = result.uncertainty
    assert result.uncertainty.shape == (hole.sum(),) and np.isfinite(result.uncertainty).all()
    assert (result.uncertainty > 0).all()
    assert sd[18, 22, 16] > sd[16, 20, 15]   # deeper in the lesion, less known around
    scale = intensity_scale(np.where(hole, 0, image), hole=hole)   # the normalisation, from the known brain
    assert (result.scale.lo, result.scale.hi) == pytest.approx((scale.lo, scale.hi), rel=1e-6)
    plain = fill_volume(image, affine, hole, model, FillSettings(), refiner=load_refiner(_refiner(tmp_path / "p", None)))
    assert plain.uncertainty is None and np.array_equal(plain.filled, result.filled)


def test_fill_file_writes_the_map_on_the_image_grid(brain_files, tiny_vae: Path, tmp_path: Path) -> None:
    image_path, mask_path, hole = brain_files
    refiner = load_refiner(_refiner(tmp_path / "r"))
    out, sd_path = tmp_path / "filled.nii.gz", tmp_path / "sd.nii.gz"
    done = fill_file(image_path, mask_path, out, FillSettings(), model=str(tiny_vae), refiner=refiner,
                     uncertainty=sd_path)
    written = nib.load(sd_path)
    data = written.get_fdata(dtype=np.float32)
    assert written.get_data_dtype() == np.float32
    assert np.allclose(written.affine, nib.load(image_path).affine) and written.header["sform_code"] == 4
    assert not data[~hole].any() and (data[hole] > 0).all()
    assert done.uncertainty_mean == pytest.approx(float(data[hole].mean()), rel=1e-5)
    assert json.loads(done.sidecar.read_text())["uncertainty"]["mean_sd"] == pytest.approx(done.uncertainty_mean,
                                                                                             rel=1e-3)
    image = nib.load(image_path).get_fdata(dtype=np.float32)
    scale = intensity_scale(np.where(hole, 0, image), hole=hole)   # the fill's normalisation: known brain voxels
    assert done.uncertainty_share == pytest.approx(done.uncertainty_mean / (scale.hi - scale.lo), rel=1e-6)
    assert json.loads(done.sidecar.read_text())["uncertainty"]["mean_sd_share"] == pytest.approx(
        done.uncertainty_share, rel=1e-5)
    assert 0 < done.uncertainty_share < 1
    with pytest.raises(InpaintError, match="already exists"):   # protected like every output: checked first
        fill_file(image_path, mask_path, tmp_path / "again.nii.gz", FillSettings(), model=str(tiny_vae), refiner=refiner,
                  uncertainty=sd_path)
    assert not (tmp_path / "again.nii.gz").exists()


def test_the_map_is_float32_without_the_input_s_meaning_and_finite_for_huge_values(brain_files, tmp_path: Path) -> None:
    """The map copied the input's intent (a t test), display window, description and extensions, came out float64
    for a scaled int16 input, and was all inf (with overflow warnings) for values near 1e25."""
    import warnings

    image_path, mask_path, hole = brain_files
    source = nib.load(image_path)
    refiner = load_refiner(_refiner(tmp_path / "r"))
    scaled = nib.Nifti1Image(np.round(source.get_fdata() / 0.37).astype(np.int16), source.affine, source.header)
    scaled.header.set_slope_inter(0.37, 0.0)
    scaled.header.set_intent("t test", (12,), name="tstat")
    scaled.header["cal_min"], scaled.header["cal_max"], scaled.header["descrip"] = 10, 200, b"a T1"
    scaled.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment"))
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    huge = nib.Nifti1Image(source.get_fdata() * 1e25, source.affine, source.header)
    huge.set_data_dtype(np.float64)
    nib.save(huge, tmp_path / "huge.nii.gz")
    for name in ("scaled", "huge"):
        sd_path = tmp_path / f"{name}_sd.nii.gz"
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            fill_file(tmp_path / f"{name}.nii.gz", mask_path, tmp_path / f"{name}_filled.nii.gz", FillSettings(),
                      refiner=refiner, uncertainty=sd_path)
        written = nib.load(sd_path)
        header = written.header
        assert written.get_data_dtype() == np.float32 and np.isfinite(written.get_fdata()).all()
        assert written.get_fdata()[hole].min() > 0
        assert header.get_intent()[0] == "none" and header["cal_min"] == header["cal_max"] == 0
        assert b"predicted error" in header["descrip"].tobytes() and not header.extensions
        assert np.array_equal(written.affine, source.affine) and header["qform_code"] == source.header["qform_code"]


@pytest.mark.parametrize("case", ["method", "uncalibrated", "same as output", "input"])
def test_an_impossible_uncertainty_map_is_refused_before_the_fill(brain_files, tiny_vae: Path, tmp_path: Path,
                                                                  case: str) -> None:
    image_path, mask_path, _ = brain_files
    out = tmp_path / "filled.nii.gz"
    settings = FillSettings(method="poisson3d") if case == "method" else FillSettings()
    refiner = load_refiner(_refiner(tmp_path / "r", None if case == "uncalibrated" else MODEL))
    target = {"same as output": out, "input": mask_path}.get(case, tmp_path / "sd.nii.gz")
    before = mask_path.read_bytes()
    with pytest.raises(InpaintError, match={"method": "refine3d", "uncalibrated": "calibrate_uncertainty",
                                            "same as output": "overwrite the filled output",
                                            "input": "never overwritten"}[case]):
        fill_file(image_path, mask_path, out, settings, model=str(tiny_vae), refiner=refiner, uncertainty=target)
    assert not out.exists() and mask_path.read_bytes() == before


def test_the_cohort_bench_summarises_the_predicted_error_per_dataset_and_family() -> None:
    records = [{"dataset": d, "method": "refine3d", "family": f, "voxels": v, "sd_rms": s, "error_rms": e,
                "one_sigma_share": c}
               for d, f, v, s, e, c in [("a", "blob6", 100, 1.0, 1.5, 0.6), ("a", "blob6", 300, 2.0, 2.5, 0.8),
                                        ("a", "blob6", 100, 3.0, 2.0, 0.7), ("b", "blob6", 100, 1.0, 1.0, 0.5)]]
    records.append({"dataset": "a", "method": "biharmonic-3d", "family": "blob6", "voxels": 100})
    summary = uncertainty_summary(records, ["refine3d", "biharmonic-3d"], ["blob6"])
    cell = summary["a"]["refine3d"]["blob6"]
    assert cell["lesions"] == 3 and cell["spearman"] == pytest.approx(0.5)
    assert cell["one_sigma_share"] == pytest.approx((60 + 240 + 70) / 500)
    assert summary["all"]["refine3d"]["lesion-sized"]["lesions"] == 4
    assert "biharmonic-3d" not in summary["a"] and summary["b"]["refine3d"]["blob6"]["spearman"] is None
    table = "\n".join(uncertainty_table(summary))
    assert "| a | refine3d | blob6 | 3 | 0.50 | 74.0% |" in table
    assert "| b | refine3d | blob6 | 1 | - | 50.0% |" in table   # one lesion: no correlation, no NaN


def test_every_shipped_refiner_predicts_its_error() -> None:
    from core.refine3d import shipped_refiners

    for refiner in shipped_refiners():   # an uncertainty.json fitted for exactly these weights
        assert refiner.uncertainty is not None, f"run scripts/calibrate_uncertainty.py --refiner {refiner.path}"


def test_the_single_brain_bench_reports_the_predicted_error(tmp_path: Path) -> None:
    from core.bench.masks import Case
    from core.bench.report import build_report, write_markdown
    from core.bench.runner import BenchData, CaseResult

    holes = [np.zeros((4, 4, 4), bool) for _ in range(3)]
    for i, hole in enumerate(holes):
        hole[: i + 1] = True
    cases = [Case("blob6", f"blob6-0{i}", hole, 0.5) for i, hole in enumerate(holes)]
    metrics = {"psnr_hole": 20.0, "ssim_hole": 0.9, "mse_hole": 0.1, "mae_hole": 0.1, "psnr_slice": 30.0,
               "ssim_slice": 0.99}
    results = [CaseResult("refine3d", "blob6", c.id, {**metrics, "sd_rms": sd, "error_rms": error,
                                                      "one_sigma_share": share}, 1.0, 1)
               for c, sd, error, share in zip(cases, (1.0, 2.0, 3.0), (1.0, 3.0, 2.0), (0.2, 0.5, 0.8))]
    data = BenchData(image=np.zeros((4, 4, 4), np.float32), brain=np.ones((4, 4, 4), bool), affine=np.eye(4),
                     image_path=tmp_path / "brain" / "t1.nii.gz", brainmask_path=None)
    report = build_report(data=data, cases=cases, results=results, methods=["refine3d"], families=["blob6"],
                          default_method="refine3d", models={}, settings={"default": {"seed": 0}}, seed=0,
                          device="cpu", quick=True, notes=[])
    cell = report["uncertainty"]["refine3d"]["all"]
    assert cell["spearman"] == pytest.approx(0.5) and cell["one_sigma_share"] == pytest.approx((3.2 + 16 + 38.4) / 96)
    text = write_markdown(tmp_path / "results.md", report, {}).read_text()
    assert "## Predicted error" in text and "| brain | refine3d | all | 3 | 0.50 | 60.0% | 2 | 2 |" in text
