"""Issue 9 through the Python API: the same rules as the command line, finite results, safe writes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import synthetic_brain
from core import atomic
from core.checkpoint import load_model
from core.errors import InpaintError
from core.fill import FillSettings, fill_volume
from core.inputs import check_known_brain, hole_slab, prepare_fill_inputs
from core.networks import Architecture
from core.search import SearchSettings
from core.sidecar import write_sidecar
from core.volume import load_mask, load_volume, save_volume

LAS = np.diag([-2.0, 2.0, 2.0, 1.0])
FAST = FillSettings(method="slices2d", iterations=2, restarts=1, device="cpu")


def _case():
    image = synthetic_brain()
    hole = np.zeros(image.shape, bool)
    hole[16:22, 20:26, 15:18] = True
    return image, hole


@pytest.mark.parametrize("affine, words", [
    (np.diag([2.0, 2.0, 2.0]), "4x4"),
    (np.diag([2.0, 0.0, 2.0, 1.0]), "singular"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.array([[2.0, 0, 0, 0], [4.0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]), "singular"),
])
def test_bad_affines_are_one_sentence_errors(affine, words, tiny_vae) -> None:
    image, hole = _case()
    with pytest.raises(InpaintError, match=words):
        fill_volume(image, affine, hole, load_model(tiny_vae), FAST)


def test_wrong_shapes_and_empty_hole_are_clear(tiny_vae) -> None:
    image, hole = _case()
    model = load_model(tiny_vae)
    with pytest.raises(InpaintError, match="brain mask has shape"):
        fill_volume(image, LAS, hole, model, FAST, brain=np.ones((3, 3, 3), bool))
    with pytest.raises(InpaintError, match="hole has shape"):
        fill_volume(image, LAS, hole[:-1], model, FAST)
    with pytest.raises(InpaintError, match="3D array"):
        fill_volume(image[0], LAS, hole[0], model, FAST)
    with pytest.raises(InpaintError, match="nothing to fill"):
        fill_volume(image, LAS, np.zeros_like(hole), model, FAST)
    with pytest.raises(InpaintError, match="brain"):
        fill_volume(image, LAS, np.ones_like(hole), model, FAST)


def test_a_probability_map_or_an_object_of_the_wrong_kind_is_one_sentence(tiny_vae) -> None:
    image, hole = _case()
    model = load_model(tiny_vae)
    probabilities = np.where(hole, 0.9, 0.02)   # the CLI refuses this without --threshold; so does the API
    with pytest.raises(InpaintError, match="probability map"):
        fill_volume(image, LAS, probabilities, model, FAST)
    with pytest.raises(InpaintError, match="probability map, or NaN"):
        fill_volume(image, LAS, np.where(hole, np.nan, 0.0), model, FAST)
    labels = fill_volume(image, LAS, hole * 2.0, model, FAST)   # whole-number labels: their nonzero voxels
    assert np.array_equal(labels.hole, hole)
    for kwargs, words in (({"model": "vae_k3"}, "model must be a Model or None, not str; core.registry"),
                          ({"refiner": "resources/refiner3d_1mm"}, "refiner must be a Refiner or None, not str"),
                          ({"cancel": False}, "cancel must be a CancelToken or None, not bool"),
                          ({"progress": 5}, "progress must be a function")):
        with pytest.raises(InpaintError, match=words):
            fill_volume(image, LAS, hole, settings=FAST, **{"model": model, **kwargs})


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_the_result_holds_a_wide_input_exactly_outside_the_hole(dtype, tiny_vae) -> None:
    # float32 rounds float64 fractions and integers above 2**24: the result keeps the input's values
    image, hole = _case()
    wide = image.astype(np.float64) + 1e-7 if dtype == np.float64 else (image * 1e5).astype(np.int32) + 2 ** 25
    result = fill_volume(wide, LAS, hole, load_model(tiny_vae), FAST)
    assert result.filled.dtype == np.float64 and np.array_equal(result.filled[~hole], wide[~hole])
    assert not np.array_equal(np.float32(wide[~hole]).astype(np.float64), wide[~hole])   # float32 would have rounded
    assert np.isfinite(result.filled[hole]).all()


def test_fill_file_takes_str_paths_a_model_path_and_default_settings(brain_files, tiny_vae, tmp_path) -> None:
    from core.fill_file import fill_file

    image, mask, _ = brain_files
    done = fill_file(str(image), str(mask), str(tmp_path / "out.nii.gz"))   # as nipype or pydra pass them
    assert Path(done.output) == tmp_path / "out.nii.gz" and (tmp_path / "out.json").is_file()
    assert done.record["method"]["name"] == FillSettings().method
    done = fill_file(image, mask, tmp_path / "slices.nii.gz", FAST, model=Path(tiny_vae))   # a checkpoint's Path
    assert Path(done.output).is_file() and done.record["model"]["path"] == str(Path(tiny_vae))


def test_fill_file_stops_at_a_cancel_and_writes_nothing(brain_files, tiny_vae, tmp_path) -> None:
    """As fill_volume: a token cancelled from another thread (here: the progress callback) stops the fill."""
    from core.fill_file import fill_file
    from core.job import CancelToken, Cancelled

    image, mask, _ = brain_files
    token = CancelToken()
    settings = FillSettings(method="slices2d", iterations=50, restarts=1)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Cancelled):
        fill_file(image, mask, out / "filled.nii.gz", settings, model=tiny_vae, cancel=token,
                  progress=lambda p: token.cancel() if p.step >= 2 else None)
    assert list(out.iterdir()) == []


def test_a_cancel_at_the_last_step_or_before_the_start_leaves_no_result(brain_files, tmp_path) -> None:
    """biharmonic3d checks no token itself: a cancel before the fill, or after the method's last report, still
    stops it (the volume, sidecar and map were written)."""
    from core.fill_file import fill_file
    from core.job import CancelToken, Cancelled

    image, mask, _ = brain_files
    settings = FillSettings(method="biharmonic3d")
    token = CancelToken()
    with pytest.raises(Cancelled, match="cancelled"):
        fill_file(image, mask, tmp_path / "late.nii.gz", settings, cancel=token,
                  progress=lambda p: token.cancel() if p.stage != "done" and p.step == p.total else None)
    early = CancelToken()
    early.cancel()
    with pytest.raises(Cancelled):
        fill_volume(*_case()[:1], LAS, _case()[1], settings=settings, cancel=early)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesion.nii.gz", "sub-01_T1w.nii.gz"]


def test_the_result_keeps_its_own_copy_of_the_hole() -> None:
    image, hole = _case()
    result = fill_volume(image, LAS, hole, settings=FillSettings(method="biharmonic3d"))
    assert not np.shares_memory(result.hole, hole)
    hole[:] = False   # a painting loop reuses its mask array
    assert result.hole.sum() == 6 * 6 * 3 and result.generated.shape == image.shape


@pytest.mark.parametrize("keyword, value, words", [("dilate", 1.5, "whole number"), ("dilate", True, "whole number"),
                                                    ("dilate", -1, "whole number"), ("keep_dtype", "no", "True or False")])
def test_fill_file_options_of_the_wrong_kind_are_one_sentence(brain_files, tmp_path, keyword, value, words) -> None:
    from core.fill_file import fill_file

    image, mask, _ = brain_files
    with pytest.raises(InpaintError, match=words):   # dilate=1.5 dilated by 1 and recorded 1.5
        fill_file(image, mask, tmp_path / "out.nii.gz", FillSettings(method="biharmonic3d"), **{keyword: value})
    assert not (tmp_path / "out.nii.gz").exists()


def test_loading_networks_leaves_the_callers_random_stream_alone(tiny_vae) -> None:
    from core.refine3d import SHIPPED, load_refiner

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load_refiner(SHIPPED)
    load_model(tiny_vae)
    assert torch.equal(torch.rand(3), expected)


def test_reads_on_several_threads_restore_itk_s_warning_switch(brain_files) -> None:
    import threading

    import SimpleITK as sitk

    image, _, _ = brain_files
    sitk.ProcessObject.SetGlobalWarningDisplay(True)
    threads = [threading.Thread(target=lambda: [load_volume(image) for _ in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sitk.ProcessObject.GetGlobalWarningDisplay()


@pytest.mark.parametrize("field, value", [
    ("restarts", 0), ("iterations", 0), ("lr", float("inf")), ("lr", 1e30), ("lr", float("nan")), ("lr", 0.0),
    ("lam", float("inf")), ("lam", -1.0), ("lam", float("nan")), ("seed", 2 ** 70), ("seed", -1), ("window", 4),
    ("restarts", 2.5), ("prior", "no"), ("batch", 0),
])
def test_search_settings_follow_the_command_line_rules(field, value) -> None:
    with pytest.raises(InpaintError, match=field):
        SearchSettings(**{field: value})
    with pytest.raises(InpaintError, match=field):
        FillSettings(**{field: value})


@pytest.mark.parametrize("field, value", [("axis", "bogus"), ("device", ""), ("preview_every", -1), ("blend", 1)])
def test_fill_settings_fields_are_checked_too(field, value) -> None:
    with pytest.raises(InpaintError, match=field):
        FillSettings(**{field: value})


def test_largest_allowed_seed_is_accepted() -> None:
    assert FillSettings(seed=2 ** 63 - 1).seed == 2 ** 63 - 1


def test_nonfinite_voxels_are_background_and_never_reach_the_hole(tiny_vae) -> None:
    image, hole = _case()
    image[image == 0] = np.nan  # SPM-style background
    image[18, 30, 16] = np.inf  # next to the hole, inside the model's field
    image[17, 21, 16] = np.nan  # inside the hole
    result = fill_volume(image, LAS, hole, load_model(tiny_vae), FAST)
    assert np.isfinite(result.filled[hole]).all() and np.isfinite(result.generated[hole]).all()
    outside = ~hole
    same = (result.filled == image) | (np.isnan(result.filled) & np.isnan(image))
    assert same[outside].all()
    assert result.nonfinite_voxels == int(np.count_nonzero(~np.isfinite(image) & outside))


def test_prepare_does_not_copy_a_clean_float32_image() -> None:
    image, hole = _case()
    clean, count = prepare_fill_inputs(image, LAS, hole, type("M", (), {"axis": "axial"})(), FAST)
    assert clean is image and count == 0


def test_a_model_with_nonfinite_output_is_an_error_naming_it(tiny_vae) -> None:
    model = load_model(tiny_vae, name="poisoned")
    with torch.no_grad():
        model.decoder.blocks[1].weight.fill_(3e38)  # finite weights, overflowing activations
    image, hole = _case()
    with pytest.raises(InpaintError, match="poisoned"):
        fill_volume(image, LAS, hole, model, FAST)


@pytest.mark.parametrize("change", [
    {"latent": 10 ** 6}, {"latent": 10 ** 9}, {"latent": -5}, {"width": 10 ** 6}, {"latent": "8"}, {"kernel": 4},
    {"kernel": True}, {"size": 100}, {"kind": "diffusion"}, {"width": 1024, "latent": 4096},
])
def test_architecture_is_bounded_before_anything_is_allocated(change) -> None:
    with pytest.raises(ValueError):
        Architecture(**{**Architecture().to_dict(), **change})


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["model_space"].update(spacing_mm=0), "spacing_mm"),
    (lambda c: c["model_space"].update(spacing_mm="nan"), "spacing_mm"),
    (lambda c: c["model_space"].update(spacing_mm=float("inf")), "spacing_mm"),
    (lambda c: c["model_space"].update(spacing_mm=-2.0), "spacing_mm"),
    (lambda c: c["model_space"].update(axis="bogus"), "axis"),
    (lambda c: c.update(format_version="2"), "format version"),
    (lambda c: c.update(format_version=2), "upgrade"),
    (lambda c: c["architecture"].update(latent=10 ** 6), "latent"),
    (lambda c: c.pop("architecture"), "architecture"),
    (lambda c: c.update(latent_prior="cauchy"), "latent_prior"),
])
def test_tampered_config_is_one_sentence(edit, words, tiny_vae) -> None:
    config_path = tiny_vae / "config.json"
    config = json.loads(config_path.read_text())
    edit(config)
    config_path.write_text(json.dumps(config))
    with pytest.raises(InpaintError, match=words) as info:
        load_model(tiny_vae)
    assert str(config_path) in str(info.value)


def test_known_brain_check_names_the_file_at_fault() -> None:
    image, hole = _case()
    with pytest.raises(InpaintError, match="^The mask m.nii covers"):
        check_known_brain(image, np.ones_like(hole), image_name="the image i.nii", mask_name="the mask m.nii")
    with pytest.raises(InpaintError, match="^The image i.nii has no positive voxel"):
        check_known_brain(np.zeros_like(image), hole, image_name="the image i.nii")
    with pytest.raises(InpaintError, match="^The brain mask b.nii lies"):
        check_known_brain(image, hole, hole, brain_name="the brain mask b.nii")
    with pytest.raises(InpaintError, match="^The brain mask b.nii contains no brain voxel"):
        check_known_brain(image, hole, np.zeros_like(hole), brain_name="the brain mask b.nii")
    check_known_brain(image, hole)


def test_hole_slab_covers_exactly_the_touched_slices_in_file_order() -> None:
    hole = np.zeros((10, 12, 14), bool)
    hole[3:5, 6, 7:9] = True
    assert hole_slab(hole, np.diag([-2.0, 2.0, 2.0, 1.0]), "axial", margin=1) == (slice(None), slice(None), slice(6, 10))
    permuted = np.array([[0, 0, 2.0, 0], [2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])  # file axis 1 is superior
    assert hole_slab(hole, permuted, "axial") == (slice(None), slice(6, 7), slice(None))


# --- writing ------------------------------------------------------------------------------------------------


def _volume(folder: Path, name: str = "in.nii.gz"):
    image = nib.Nifti1Image(synthetic_brain((8, 9, 7)), LAS)
    nib.save(image, folder / name)
    return load_volume(folder / name)


def test_volume_and_sidecar_are_written_together(tmp_path: Path) -> None:
    like = _volume(tmp_path)
    out = save_volume(tmp_path / "out.nii.gz", like.data, like, sidecar={"tool": "brain-inpaint", "n": np.int64(3)})
    assert out.is_file() and json.loads((tmp_path / "out.json").read_text())["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "out.json", "out.nii.gz"]


def test_failed_sidecar_leaves_neither_file(tmp_path: Path) -> None:
    like = _volume(tmp_path)
    with pytest.raises(TypeError):
        save_volume(tmp_path / "out.nii.gz", like.data, like, sidecar={"bad": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]


def test_failed_rename_restores_the_replaced_pair(tmp_path: Path, monkeypatch) -> None:
    like = _volume(tmp_path)
    save_volume(tmp_path / "out.nii.gz", like.data, like, sidecar={"version": 1})
    before = {p: (tmp_path / p).read_bytes() for p in ("out.nii.gz", "out.json")}
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the sidecar went in, the volume's rename fails
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(InpaintError, match="No space left"):
        save_volume(tmp_path / "out.nii.gz", like.data + 1, like, force=True, sidecar={"version": 2})
    monkeypatch.undo()
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "out.json", "out.nii.gz"]


def test_inputs_and_their_sidecars_are_never_written(tmp_path: Path) -> None:
    like = _volume(tmp_path, "sub-01_T1w.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((8, 9, 7), np.uint8), LAS), tmp_path / "mask.nii.gz")
    (tmp_path / "sub-01_T1w.json").write_text("{}")
    for target, inputs in [(tmp_path / "mask.nii.gz", [tmp_path / "mask.nii.gz"]),
                           (tmp_path / "sub-01_T1w.nii", []),
                           (tmp_path / "mask.nii", [tmp_path / "mask.nii.gz"])]:
        with pytest.raises(InpaintError, match="Refusing"):
            save_volume(target, like.data, like, force=True, sidecar={}, inputs=inputs)
    with pytest.raises(InpaintError, match="sidecar of the input"):
        write_sidecar(tmp_path / "sub-01_T1w.nii", {"input": {"path": str(tmp_path / "sub-01_T1w.nii.gz")}})
    assert (tmp_path / "sub-01_T1w.json").read_text() == "{}"


def test_mhd_data_file_of_an_input_is_protected(tmp_path: Path) -> None:
    like = _volume(tmp_path)
    source = save_volume(tmp_path / "a.mhd", like.data, like)
    (tmp_path / "a.mhd").write_text((tmp_path / "a.mhd").read_text().replace("a.zraw", "b.zraw"))
    os.replace(tmp_path / "a.zraw", tmp_path / "b.zraw")
    mhd = load_volume(source)
    with pytest.raises(InpaintError, match="data file of the input"):
        save_volume(tmp_path / "b.mhd", mhd.data, mhd, force=True)


def test_mask_in_flipped_and_permuted_voxel_order_is_reordered_exactly(tmp_path: Path) -> None:
    like = _volume(tmp_path)
    labels = np.zeros(like.shape, np.uint8)
    labels[1:3, 2:6, 4] = 1
    flip = LAS @ np.array([[-1, 0, 0, like.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(labels[::-1].copy(), flip), tmp_path / "flipped.nii.gz")
    swap = LAS @ np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0).copy(), swap), tmp_path / "swapped.nii.gz")
    for name in ("flipped.nii.gz", "swapped.nii.gz"):
        assert np.array_equal(load_mask(tmp_path / name, like), labels > 0)


def test_a_probability_map_in_another_voxel_order_is_thresholded_on_its_own_voxels(tmp_path: Path) -> None:
    """The threshold applies before the reordering (the app thresholded the file's voxel order against the image's)."""
    like = _volume(tmp_path)
    probability = np.zeros(like.shape, np.float32)
    probability[1:3, 2:6, 4] = 0.9
    probability[4:6, 2:6, 4] = 0.3
    flip = LAS @ np.array([[-1, 0, 0, like.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(probability[::-1].copy(), flip), tmp_path / "flipped_prob.nii.gz")
    assert np.array_equal(load_mask(tmp_path / "flipped_prob.nii.gz", like, threshold=0.5), probability > 0.5)
    with pytest.raises(InpaintError, match=r"holds fractional values \(0.3 to 0.9\), like a probability map; pass "
                                           r"--threshold T to fill the voxels above T \(e.g. 0.5\), or binarise it.$"):
        load_mask(tmp_path / "flipped_prob.nii.gz", like)   # every voxel above 0 is rarely what was meant
    assert load_mask(tmp_path / "flipped_prob.nii.gz", like, kind="brain").sum() == 16  # a brain mask: nonzero
    with pytest.raises(InpaintError, match=r"^No voxel of flipped_prob.nii.gz is above 0.95; choose a lower "
                                           r"threshold.$"):
        load_mask(tmp_path / "flipped_prob.nii.gz", like, threshold=0.95)


@pytest.mark.parametrize("name, is_ours", [
    (".inpaint-tmp-abcd1234", True), (".inpaint-tmp-abcd12345", False), (".inpaint-tmp-ABCD1234", False),
    (".out.json.0123456789ab.tmp.json", True), (".out.nii.gz.0123456789ab.tmp.gz", True),
    (".out.json.0123456789ab.tmp.txt", False), (".out.json.0123456789a.tmp.json", False),
    ("inpaint-tmp-abcd1234", False), ("out.json", False),
])
def test_only_our_exact_temporary_names_are_cleaned(name: str, is_ours: bool, tmp_path: Path) -> None:
    path = tmp_path / name
    path.mkdir() if name.startswith(".inpaint-tmp") or name.startswith("inpaint-tmp") else path.write_text("x")
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert atomic.is_temp_name(name) == is_ours
    atomic.clean_stale_temps(tmp_path)
    assert path.exists() != is_ours


def test_recent_temporaries_and_links_are_left_alone(tmp_path: Path) -> None:
    recent = tmp_path / ".inpaint-tmp-abcd1234"
    recent.mkdir()
    old_with_new_content = tmp_path / ".inpaint-tmp-wxyz9876"
    old_with_new_content.mkdir()
    (old_with_new_content / "out.nii.gz").write_text("being written")
    old = time.time() - 3600
    os.utime(old_with_new_content, (old, old))
    link = tmp_path / ".inpaint-tmp-link0000"
    link.symlink_to(tmp_path)
    assert atomic.clean_stale_temps(tmp_path) == []
    assert recent.exists() and old_with_new_content.exists() and link.exists()


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("with_brain", [False, True])
def test_volume_context_equals_the_whole_volume_computation(axis: str, with_brain: bool) -> None:
    from core.inputs import volume_context
    from core.modelspace import Reorientation, SliceGrid
    from core.normalize import estimate_brain, intensity_scale

    image, hole = _case()
    affine = np.array([[0, 0, 2.0, 0], [-2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])  # permuted and flipped
    brain = image > 30 if with_brain else None
    reo = Reorientation.of(affine, image.shape)
    voided, hole_r = reo.apply(np.where(hole, np.float32(0), image)), reo.apply(hole)
    brain_r = (reo.apply(brain) if with_brain else estimate_brain(voided)) | hole_r
    scale, center, brain_voxels, known_range = volume_context(image, affine, hole, axis, brain)
    assert scale == intensity_scale(voided, brain_r, hole_r) and brain_voxels == int(brain_r.sum())
    known = voided[brain_r & ~hole_r]
    assert known_range == (float(known.min()), float(known.max()))
    assert center == SliceGrid.for_volume(brain_r, reo.ras_affine, axis, 24, 8.0).center


def test_a_negative_zero_border_is_recorded_as_background_0() -> None:
    """The sidecar's `background` once read -0.0 for a scan whose border voxels are -0.0."""
    from core.inputs import background_value

    image = np.full((8, 8, 8), -0.0, np.float32)
    image[3:5, 3:5, 3:5] = 7
    assert str(background_value(image)) == "0.0"


def test_json_that_strict_readers_refuse_is_never_written_and_deep_nesting_is_a_value_error(tmp_path) -> None:
    """A sidecar held `"mean_sd": Infinity` for huge intensities; a config nested 100,000 deep gave a traceback."""
    from core.jsonfiles import parse_json, write_json

    path = write_json(tmp_path / "a.json", {"sd": float("inf"), "values": np.array([np.nan, 1.5], np.float32)})
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name)) == {"sd": None,
                                                                                        "values": [None, 1.5]}
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100000 + "]" * 100000)


@pytest.mark.parametrize("reader", ["refiner", "uncertainty", "slice model"])
def test_a_deeply_nested_json_file_is_one_sentence_for_every_reader(tmp_path, reader, tiny_vae) -> None:
    import shutil

    from core.refine3d import SHIPPED, load_refiner
    from core.uncertainty import load_uncertainty

    folder = tmp_path / "r"
    shutil.copytree(tiny_vae if reader == "slice model" else SHIPPED, folder)
    deep = "[" * 100000 + "]" * 100000
    name = "uncertainty.json" if reader == "uncertainty" else "config.json"
    (folder / name).write_text(deep)
    load = {"refiner": lambda: load_refiner(folder), "uncertainty": lambda: load_uncertainty(folder, "x"),
            "slice model": lambda: load_model(folder)}[reader]
    with pytest.raises(InpaintError, match=name):
        load()


def test_a_brain_probability_map_is_refused_like_a_hole_probability_map() -> None:
    """`brain=` took a probability map silently: every voxel above 0 became brain."""
    image, hole = _case()
    with pytest.raises(InpaintError, match="brain mask holds values other than whole numbers"):
        fill_volume(image, LAS, hole, settings=FillSettings(method="biharmonic3d"),
                    brain=np.where(image > 0, 0.7, 0.1).astype(np.float32))
