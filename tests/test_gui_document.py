"""The app's Qt-free document: RAS display order, coordinates back to file voxels, job holes, previews, files."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from core.errors import InpaintError
from core.fill import FillResult, FillSettings
from core.checkpoint import load_model
from core.jsonfiles import sha256_file
from core.volume import dilate_mask, load_mask, load_volume
from inpaint_gui.document import Document, JobResult, PreviewMap, compare_metrics, nifti_path


def oblique_order_file(tmp_path):
    """A volume stored in PSL voxel order (permuted and flipped), so display order differs from file order."""
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    affine = np.array([[0, 0, -1.5, 10], [-2.0, 0, 0, 20], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    path = tmp_path / "sub-x_T1w.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path, data


def test_display_is_ras_and_coordinates_map_back_to_file_voxels(tmp_path):
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    assert nib.aff2axcodes(doc.reo.ras_affine) == ("R", "A", "S")
    assert doc.shape == (7, 5, 6)
    for ras in [(0, 0, 0), (6, 4, 5), (3, 1, 2), (2, 4, 0)]:
        i, j, k = doc.file_index(ras)
        assert doc.original[ras] == data[i, j, k]
        # the scanner position of a voxel is the same through either affine
        assert np.allclose(doc.world(ras), (doc.volume.affine @ [i, j, k, 1])[:3])


def test_job_hole_is_in_file_order_and_scoped_to_a_slice(tmp_path):
    path, _ = oblique_order_file(tmp_path)
    doc = Document.open(path)
    with pytest.raises(InpaintError, match="mask is empty"):
        doc.job_hole("all", "axial", (0, 0, 0))
    doc.editor.brush_size = 1
    for z in (1, 3):
        doc.editor.begin_stroke((2, 2, z), 2)
        doc.editor.end_stroke()
    everything = doc.job_hole("all", "axial", (0, 0, 0))
    assert everything.shape == doc.volume.shape and everything.sum() == 2
    assert everything[doc.file_index((2, 2, 3))]
    one = doc.job_hole("slice", "axial", (0, 0, 3))
    assert one.sum() == 1 and one[doc.file_index((2, 2, 3))]
    with pytest.raises(InpaintError, match="axial slice has no painted voxels"):
        doc.job_hole("slice", "axial", (0, 0, 2))


def test_preview_map_places_values_at_their_display_voxels(tmp_path):
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    rng = np.random.default_rng(1)
    hole = rng.random(data.shape) < 0.2
    values = data.reshape(-1)[np.flatnonzero(hole)] + 1000  # the order fill_volume reports previews in
    target = np.zeros(doc.shape, dtype=np.float32)
    PreviewMap(hole, doc.reo).place(values, target)
    assert np.array_equal(target, doc.reo.apply(np.where(hole, data + 1000, 0)))


def test_layers_and_difference(tmp_path):
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.brush_size = 1
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    assert doc.available_layers() == ["original", "masked"]
    masked = doc.layer_slice("masked", 2, 2)
    assert masked[3, 2] == 0 and np.count_nonzero(masked != doc.original[:, :, 2]) == 1
    assert doc.difference_slice(2, 2) is None
    hole = doc.mask_in_file_order()
    filled = np.where(hole, np.float32(-1), data)
    fill = FillResult(filled=filled, generated_hole=filled[hole], hole=hole, axis="axial", final_loss={2: 0.5}, seconds=0.1,
                      device="cpu", settings=FillSettings())
    doc.set_result(JobResult(fill=fill, model=None, scope="all"), doc.editor.state)  # type: ignore[arg-type]
    assert doc.available_layers() == ["original", "masked", "generated", "blended"]
    diff = doc.difference_slice(2, 2)
    assert diff[3, 2] == -1 - doc.original[3, 2, 2] and np.count_nonzero(diff) == 1
    assert doc.layer_value("blended", (3, 2, 2)) == -1 and doc.layer_value("masked", (3, 2, 2)) == 0


def test_mask_save_and_import_round_trip_on_the_file_grid(tmp_path):
    path, _ = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.brush_size = 3
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    out = doc.save_mask(tmp_path / doc.default_name("mask"))
    assert out.name == "sub-x_label-lesion_mask.nii.gz" and not doc.editor.modified
    stored = nib.load(out)
    assert stored.get_data_dtype() == np.uint8 and np.allclose(stored.affine, doc.volume.affine)
    assert np.array_equal(load_mask(out, doc.volume), doc.mask_in_file_order())
    again = Document.open(path, mask=out)
    assert np.array_equal(again.editor.mask, doc.editor.mask) and not again.editor.modified


def test_import_mask_on_another_grid_is_refused(tmp_path):
    path, _ = oblique_order_file(tmp_path)
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), other)
    doc = Document.open(path)
    with pytest.raises(InpaintError, match="shape"):
        doc.import_mask(other)
    assert doc.editor.voxel_count == 0


def test_compare_metrics_scores_a_perfect_fill_above_the_baseline():
    rng = np.random.default_rng(0)
    image = (50 + 20 * rng.random((20, 20, 12))).astype(np.float32)
    hole = np.zeros(image.shape, dtype=bool)
    hole[8:12, 8:12, 2:4] = True
    metrics = compare_metrics(image, image.copy(), hole)
    assert metrics["model"]["mae"] == 0 and metrics["biharmonic-3d-mm"]["mae"] > 0
    assert compare_metrics(image[:, :, :6], image[:, :, :6], hole[:, :, :6]) == {"model": None,
                                                                                "biharmonic-3d-mm": None}


def test_export_writes_volume_sidecar_and_mask(tmp_path, tiny_vae):
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.brush_size = 1
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    hole = doc.mask_in_file_order()
    filled = np.where(hole, np.float32(7), data)
    fill = FillResult(filled=filled, generated_hole=filled[hole], hole=hole, axis="axial", final_loss={2: 0.5}, seconds=0.1,
                      device="cpu", settings=FillSettings(method="slices2d", iterations=3))
    metrics = {"model": {"ssim": 0.9, "psnr": 30.0, "mse": 1.0, "mae": 0.5}, "biharmonic-3d-mm": None}
    doc.set_result(JobResult(fill=fill, model=load_model(tiny_vae), scope="all", metrics=metrics), doc.editor.state)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert not doc.mask_file_matches_result(out_dir / doc.default_name("mask"))
    written = doc.export(out_dir / doc.default_name("inpainted"), out_dir / doc.default_name("mask"))
    volume_path, sidecar_path, mask_path = written
    assert volume_path.name == "sub-x_desc-inpainted_T1w.nii.gz" and sidecar_path.suffix == ".json"
    reloaded = load_volume(volume_path)
    assert np.array_equal(reloaded.data, filled) and np.allclose(reloaded.affine, doc.volume.affine)
    assert np.array_equal(load_mask(mask_path, doc.volume), hole)
    record = json.loads(sidecar_path.read_text())
    assert record["parameters"]["iterations"] == 3 and record["scope"] == "all"
    assert record["mask"]["path"] == str(mask_path.resolve()) and record["hole_voxels"] == 1
    # the CLI's flat metrics, the baseline beside them
    assert record["metrics"] == metrics["model"] and record["baseline_metrics"] == {"biharmonic-3d-mm": None}
    assert doc.result_saved and not doc.editor.modified  # the mask was saved too
    assert doc.mask_path is None  # ... as part of the export: Save mask asks where, it never writes the export's mask
    assert doc.mask_file_matches_result(mask_path)
    doc.editor.begin_stroke((1, 1, 1), 2)
    doc.editor.end_stroke()
    before = mask_path.read_bytes()
    with pytest.raises(InpaintError, match="is the mask of an export"):   # its sidecar holds the checksum
        doc.save_mask(mask_path)
    assert mask_path.read_bytes() == before and doc.editor.modified
    doc.save_mask(out_dir / "painted.nii.gz")
    assert not doc.editor.modified


def test_an_export_of_another_mask_than_the_painted_one_leaves_the_painting_unsaved(tmp_path, tiny_vae):
    """The job's mask was dilated (or lost voxels outside the brain): the export's mask is not the painted one, so the
    painted mask stays unsaved and Quit still asks (it used to count as saved and was lost)."""
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.brush_size = 1
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    hole = dilate_mask(doc.mask_in_file_order(), 1)              # what a fill with Dilate mask 1 fills
    fill = FillResult(filled=np.where(hole, np.float32(7), data), generated_hole=np.zeros(int(hole.sum()), np.float32),
                      hole=hole, axis="axial", final_loss={}, seconds=0.1, device="cpu", settings=FillSettings())
    doc.set_result(JobResult(fill=fill, model=load_model(tiny_vae), scope="all", dilate=1,
                             metrics={"model": None, "biharmonic-3d-mm": None}), doc.editor.state)
    doc.export(tmp_path / "filled.nii.gz", tmp_path / "filled_mask.nii.gz")
    assert doc.result_saved and doc.editor.modified


def test_the_export_names_the_imported_mask_the_painting_began_from(tmp_path, tiny_vae):
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    probabilities = np.zeros(data.shape, np.float32)
    probabilities[2:4, 1:3, 1:3] = 0.7
    probabilities[2, 1, 1] = 0.3
    nib.save(nib.Nifti1Image(probabilities, nib.load(path).affine), tmp_path / "lesion_prob.nii.gz")
    doc.import_mask(tmp_path / "lesion_prob.nii.gz", threshold=0.5)
    hole = doc.mask_in_file_order()
    fill = FillResult(filled=np.where(hole, np.float32(7), data), generated_hole=np.zeros(int(hole.sum()), np.float32),
                      hole=hole, axis="axial", final_loss={}, seconds=0.1, device="cpu", settings=FillSettings())
    doc.set_result(JobResult(fill=fill, model=load_model(tiny_vae), scope="all",
                             metrics={"model": None, "biharmonic-3d-mm": None}), doc.editor.state)
    doc.export(tmp_path / "filled.nii.gz", tmp_path / "filled_mask.nii.gz")
    source = json.loads((tmp_path / "filled.json").read_text())["mask_source"]
    assert source["path"] == str((tmp_path / "lesion_prob.nii.gz").resolve()) and source["threshold"] == 0.5
    assert source["sha256"] == sha256_file(tmp_path / "lesion_prob.nii.gz") and source["edited_after_import"] is False


def test_masks_are_saved_as_nifti_whatever_the_name(tmp_path):
    path, _ = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    assert doc.save_mask(tmp_path / "lesion.nrrd") == tmp_path / "lesion.nii.gz"
    assert nib.load(tmp_path / "lesion.nii.gz").get_data_dtype() == np.uint8
    assert doc.save_mask(tmp_path / "lesion") == tmp_path / "lesion.nii.gz"
    assert nifti_path(tmp_path / "a.nii") == tmp_path / "a.nii"
    assert nifti_path(tmp_path / "a.nrrd", keep_itk=True) == tmp_path / "a.nrrd"
    assert nifti_path(tmp_path / "a.v2") == tmp_path / "a.v2.nii.gz"


def test_a_probabilistic_brain_mask_loads_as_its_nonzero_voxels_as_with_brainmask(tmp_path):
    """Only lesion masks of fractions need a threshold; File > Load brain mask took the lesion mask's rules."""
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    brain = np.where(data > 20, 0.8, 0.0).astype(np.float32)
    nib.save(nib.Nifti1Image(brain, nib.load(path).affine), tmp_path / "brain_prob.nii.gz")
    doc.load_brain_mask(tmp_path / "brain_prob.nii.gz")
    assert np.array_equal(doc.brain, data > 20) and doc.protects(tmp_path / "brain_prob.nii.gz")


def test_an_export_refused_for_one_of_its_files_writes_none_of_them(tmp_path, tiny_vae):
    """The volume used to be written before the mask was refused, leaving a filled image without its sidecar."""
    path, data = oblique_order_file(tmp_path)
    doc = Document.open(path)
    doc.editor.begin_stroke((3, 2, 2), 2)
    doc.editor.end_stroke()
    hole = doc.mask_in_file_order()
    fill = FillResult(filled=np.where(hole, np.float32(7), data), generated_hole=np.zeros(int(hole.sum()), np.float32),
                      hole=hole, axis="axial", final_loss={}, seconds=0.1, device="cpu", settings=FillSettings())
    doc.set_result(JobResult(fill=fill, model=load_model(tiny_vae), scope="all",
                             metrics={"model": None, "biharmonic-3d-mm": None}), doc.editor.state)
    saved = doc.save_mask(tmp_path / "lesion.nii.gz")           # the mask's own file: never the export's
    before = saved.read_bytes()
    with pytest.raises(InpaintError, match="Refusing to write"):
        doc.export(tmp_path / "filled.nii.gz", saved)
    assert not (tmp_path / "filled.nii.gz").exists() and not (tmp_path / "filled.json").exists()
    assert saved.read_bytes() == before
