"""`inpaint fill` / `inpaint models` as a user runs them: outputs, geometry, exit codes, messages."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.cli import main

FAST = ["--method", "slices2d", "--iterations", "3", "--restarts", "2", "--quiet"]


@pytest.fixture(autouse=True)
def _sigint_kept():
    """`main(None)` (the program) ignores Ctrl+C once its work is done: children that later tests start would
    inherit that, so the test process gets its handler back."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_fill_writes_volume_and_sidecar_with_input_geometry(brain_files, tiny_vae, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    out = tmp_path / "out" / "filled.nii.gz"
    out.parent.mkdir()
    before = image_path.read_bytes()
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--model", tiny_vae, *FAST)
    assert code == 0, err
    assert image_path.read_bytes() == before
    src, res = nib.load(image_path), nib.load(out)
    assert res.shape == src.shape and res.get_data_dtype() == np.float32
    assert np.array_equal(res.affine, src.affine)
    assert int(res.header["qform_code"]) == 4 and int(res.header["sform_code"]) == 4
    a, b = src.get_fdata(dtype=np.float32), res.get_fdata(dtype=np.float32)
    assert np.array_equal(a[~hole], b[~hole])
    side = json.loads((tmp_path / "out" / "filled.json").read_text())  # the sidecar is <stem>.json
    assert side["parameters"]["iterations"] == 3 and side["model"]["sha256"]
    assert side["nonfinite_input_voxels"] == 0
    assert len(side["input"]["sha256"]) == 64 and len(side["final_loss_per_slice"]) == 4


def test_default_fill_is_the_3d_refiner_and_the_sidecar_says_so(brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--quiet")
    assert code == 0, err
    a, b = nib.load(image_path).get_fdata(dtype=np.float32), nib.load(out).get_fdata(dtype=np.float32)
    assert np.array_equal(a[~hole], b[~hole]) and np.isfinite(b).all()
    side = json.loads((tmp_path / "filled.json").read_text())
    assert side["method"]["name"] == "refine3d" == side["parameters"]["method"]
    assert len(side["method"]["refiner"]["sha256"]) == 64
    assert side["parameters"]["mirror"] == 0.5
    mirror = side["method"]["refiner"]["mirror"]  # the mid-sagittal map, voxel to voxel
    assert np.array(mirror["reflection"]).shape == (3, 4) and mirror["reflection"][0][0] < -0.9
    assert mirror["correlation"] >= 0.5 and mirror["share"] == 0.5 and mirror["learned_share"] is True   # the 1 mm refiner


def test_mirror_zero_leaves_the_other_hemisphere_out(brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--quiet", "--mirror", "0")
    assert code == 0, err
    side = json.loads((tmp_path / "filled.json").read_text())
    assert side["parameters"]["mirror"] == 0 and "mirror" not in side["method"]["refiner"]


def test_reference_records_metrics_and_dilate_grows_the_hole(brain_files, tiny_vae, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--model", tiny_vae, "--dilate", "1",
                     "--reference", image_path, *FAST)
    assert code == 0, err
    side = json.loads((tmp_path / "filled.json").read_text())
    assert side["hole_voxels"] > hole.sum()
    assert {"ssim", "psnr", "mse", "mae", "psnr_slice", "ssim_slice"} <= set(side["metrics"])


def test_a_probability_map_needs_a_threshold_and_the_sidecar_records_it(brain_files, tmp_path, capsys) -> None:
    """A lesion probability map (as LST writes) used to be filled wherever it was above 0: here 27 times the lesion."""
    from scipy import ndimage

    image_path, _, hole = brain_files
    source = nib.load(image_path)
    probability = ndimage.gaussian_filter(hole.astype(np.float32), 2.0)   # smooth, with long tails
    probability /= probability.max()
    path = tmp_path / "sub-01_label-lesion_probseg.nii.gz"
    nib.save(nib.Nifti1Image(probability, source.affine), path)
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image_path, path, "-o", out, "--quiet", "--mirror", "0")
    assert code == 2 and not out.exists()
    fractions = probability[(probability > 0) & (probability < 1)]
    assert err.strip().splitlines() == [f"inpaint: error: The mask {path} holds fractional values "
                                        f"({fractions.min():.3g} to {fractions.max():.3g}), like a probability map; "
                                        "pass --threshold T to fill the voxels above T (e.g. 0.5), or binarise it."]
    code, err = _run(capsys, "fill", image_path, path, "-o", out, "--quiet", "--mirror", "0", "--threshold", "0.5")
    assert code == 0, err
    filled = nib.load(out).get_fdata(dtype=np.float32)
    changed = filled != source.get_fdata(dtype=np.float32)
    assert not changed[probability <= 0.5].any() and changed.sum() == (probability > 0.5).sum() < 2 * hole.sum()
    side = json.loads((tmp_path / "filled.json").read_text())
    assert side["mask_threshold"] == 0.5 and side["hole_voxels"] == int((probability > 0.5).sum())


def test_a_skull_on_image_without_a_brain_mask_gets_a_note_and_the_sidecar_the_brain_volume(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    head = (100 + 10 * rng.standard_normal((80, 80, 80))).astype(np.float32)  # 4.1 l of "tissue" at 2 mm
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    image = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(head, affine), image)
    hole = np.zeros(head.shape, np.uint8)
    hole[40:44, 40:44, 40:44] = 1
    nib.save(nib.Nifti1Image(hole, affine), tmp_path / "lesion.nii.gz")
    brain = np.zeros(head.shape, np.uint8)
    brain[20:60, 20:60, 20:60] = 1                                            # 0.5 l
    nib.save(nib.Nifti1Image(brain, affine), tmp_path / "brain.nii.gz")
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image, tmp_path / "lesion.nii.gz", "-o", out, "--quiet", "--mirror", "0")
    assert code == 0 and err.strip().splitlines() == [
        f"inpaint: note: {image} holds 4.1 l of tissue, more than a brain: it looks skull-on, and the models know "
        "brain-extracted images only; pass --brainmask or a skull-stripped image."]
    assert json.loads((tmp_path / "filled.json").read_text())["brain_ml"] == pytest.approx(4096.0, abs=0.1)
    code, err = _run(capsys, "fill", image, tmp_path / "lesion.nii.gz", "-o", out, "--quiet", "--mirror", "0",
                     "--force", "--brainmask", tmp_path / "brain.nii.gz")
    assert code == 0 and err == ""
    assert json.loads((tmp_path / "filled.json").read_text())["brain_ml"] == pytest.approx(512.0, abs=0.1)


def test_keep_dtype_writes_the_input_type(tmp_path, tiny_vae, capsys) -> None:
    from conftest import synthetic_brain

    data = np.round(synthetic_brain()).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    mask = np.zeros(data.shape, np.uint8)
    mask[15:20, 20:25, 15:18] = 1
    nib.save(img, tmp_path / "t1.nii.gz")
    nib.save(nib.Nifti1Image(mask, img.affine), tmp_path / "m.nii.gz")
    code, err = _run(capsys, "fill", tmp_path / "t1.nii.gz", tmp_path / "m.nii.gz", "-o", tmp_path / "o.nii.gz",
                     "--model", tiny_vae, "--keep-dtype", *FAST)
    assert code == 0, err
    res = nib.load(tmp_path / "o.nii.gz")
    assert res.get_data_dtype() == np.int16
    raw = np.asanyarray(res.dataobj)
    assert np.array_equal(raw[mask == 0], data[mask == 0])


@pytest.mark.parametrize("problem", ["missing_image", "grid", "empty_mask", "exists", "input_as_output", "model"])
def test_user_errors_exit_2_with_one_sentence(problem, brain_files, tiny_vae, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    out = tmp_path / "o.nii.gz"
    extra = []
    if problem == "missing_image":
        image_path = tmp_path / "nope.nii.gz"
    elif problem == "grid":
        nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), tmp_path / "small.nii.gz")
        mask_path = tmp_path / "small.nii.gz"
    elif problem == "empty_mask":
        nib.save(nib.Nifti1Image(np.zeros(hole.shape, np.uint8), nib.load(image_path).affine), tmp_path / "e.nii.gz")
        mask_path = tmp_path / "e.nii.gz"
    elif problem == "exists":
        out.write_bytes(b"keep me")
    elif problem == "input_as_output":
        out, extra = image_path, ["--force"]
    model = tmp_path / "no_such_model" if problem == "model" else tiny_vae
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--model", model, *FAST, *extra)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("inpaint: error: ") and "Traceback" not in err
    if problem == "exists":
        assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("option", [["--window", "4"], ["--lr", "inf"], ["--lr", "1e30"], ["--lambda", "nan"],
                                    ["--seed", str(2 ** 70)], ["--restarts", "0"], ["--iterations", "x"],
                                    ["--mirror", "1.5"]])
def test_bad_parameter_values_are_refused_by_the_parser_in_one_sentence(option, brain_files, tmp_path,
                                                                         capsys) -> None:
    image_path, mask_path, _ = brain_files
    with pytest.raises(SystemExit) as exc:
        main(["fill", str(image_path), str(mask_path), "-o", str(tmp_path / "o.nii.gz"), *option])
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("inpaint fill: error: argument " + option[0])
    assert not (tmp_path / "o.nii.gz").exists()


def test_command_runs_as_a_module_and_lists_models() -> None:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "core.cli", "models"], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_a_skipped_mirror_is_one_note(brain_files, tmp_path, capsys, monkeypatch) -> None:
    import core.methods.refine3d
    from core.mirror import NoReflection

    def no_reflection(*_args):
        raise NoReflection("too little known tissue to find the mid-sagittal plane (12 blocks of 4 mm, 200 needed)")

    monkeypatch.setattr(core.methods.refine3d, "scan_reflection", no_reflection)
    image_path, mask_path, _ = brain_files
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "f.nii.gz", "--quiet")
    assert code == 0
    assert err.strip() == ("inpaint: note: the other hemisphere was not used: too little known tissue to find the "
                           "mid-sagittal plane (12 blocks of 4 mm, 200 needed); the fill is the refiner's alone "
                           "(recorded in the sidecar).")
    side = json.loads((tmp_path / "f.json").read_text())
    assert side["method"]["refiner"]["mirror"].startswith("not used: too little known tissue")


def test_a_reference_on_another_grid_is_refused_before_the_fill_runs(brain_files, tmp_path, capsys,
                                                                     monkeypatch) -> None:
    import core.fill_file

    image_path, mask_path, _ = brain_files
    img = nib.load(image_path)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:-1], img.affine), tmp_path / "ref.nii.gz")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the fill ran before the reference's grid was checked")

    monkeypatch.setattr(core.fill_file, "fill_volume", must_not_run)
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "out.nii.gz",
                     "--reference", tmp_path / "ref.nii.gz")
    assert code == 2 and "The reference" in err and "the reference must be drawn on the image's voxel grid" in err
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("as_program", [True, False])
def test_an_interrupt_ends_the_program_at_once_with_status_130(monkeypatch, capsys, as_program: bool) -> None:
    import os

    import core.cli

    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)   # the program ends here, before any interpreter shutdown
    monkeypatch.setattr(sys, "argv", ["inpaint", "models"])

    def interrupted(args) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(core.cli, "_run_models", interrupted)
    assert core.cli.main(None if as_program else ["models"]) == 130
    assert exits == ([130] if as_program else [])   # called from Python (argv given), it returns
    assert capsys.readouterr().err.strip() == "inpaint: interrupted; no output was written."


@pytest.mark.parametrize("option, line", [
    (["--iterations", "300"], "--iterations is read only by --method slices2d or poisson3d, not by refine3d (the "
                              "default); drop it or choose one of those methods with --method."),
    (["--method", "slices2d", "--mirror", "0.3"], "--mirror is read only by --method refine3d, not by slices2d; drop "
                                                  "it or use --method refine3d."),
    (["--no-blend"], "--no-blend is read only by --method slices2d, not by refine3d (the default); drop it or use "
                     "--method slices2d."),
    (["--method", "poisson3d", "--no-blend"], "--no-blend is read only by --method slices2d, not by poisson3d; drop "
                                              "it or use --method slices2d."),
    (["--model", "vae_k3"], "--model is read only by --method slices2d or poisson3d, not by refine3d (the default); "
                            "drop it or choose one of those methods with --method."),
    (["--axis", "coronal"], "--axis is read only by --method slices2d or poisson3d, not by refine3d (the default); "
                            "drop it or choose one of those methods with --method."),
    (["--seed", "3"], "--seed is read only by --method slices2d or poisson3d, not by refine3d (the default); drop it "
                      "or choose one of those methods with --method.")])
def test_an_option_the_method_does_not_read_is_refused_in_one_sentence(option, line, brain_files, tmp_path,
                                                                       capsys) -> None:
    """They were accepted and recorded, and changed nothing: refine3d's output with --iterations 300 was the
    default's, bit for bit."""
    image_path, mask_path, _ = brain_files
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "o.nii.gz", *option)
    assert code == 2 and err.splitlines() == [f"inpaint: error: {line}"]
    assert not (tmp_path / "o.nii.gz").exists()


def test_a_3d_fill_records_only_what_it_reads_and_counts_lesions_not_slices(brain_files, tmp_path, capsys) -> None:
    from scipy import ndimage

    image_path, mask_path, hole = brain_files
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "o.nii.gz", "--mirror", "0.25")
    assert code == 0, err
    lesions = ndimage.label(hole, structure=np.ones((3, 3, 3)))[1]
    assert lesions == 1
    assert re.fullmatch(rf"filled {hole.sum()} voxels \(1 lesion\) in \d+\.\d s on cpu; wrote \S+o\.nii\.gz and "
                        r"\S+o\.json", err.splitlines()[-1].split("\r")[-1].strip()), err
    side = json.loads((tmp_path / "o.json").read_text())
    assert side["parameters"] == {"method": "refine3d", "mirror": 0.25, "device": "auto"}
    assert not {"model", "axis", "final_loss_per_slice"} & set(side)   # no slice model, plane or slices
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "s.nii.gz", *FAST)
    side = json.loads((tmp_path / "s.json").read_text())
    assert code == 0 and side["model"]["sha256"] and side["axis"] == "axial" and side["final_loss_per_slice"]
    assert "mirror" not in side["parameters"] and side["parameters"]["iterations"] == 3


def test_library_warnings_do_not_come_before_the_one_sentence(tmp_path, capfd) -> None:
    """ITK printed 'WARNING: In .../itkGDCMSeriesFileNames.cxx ... No Series were found' for a folder without DICOM
    files, numpy 'RuntimeWarning: invalid value encountered in divide' for a constant image."""
    import warnings

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    constant = np.zeros((40, 48, 36), np.float32)
    constant[4:36, 4:44, 4:32] = 100      # block means all 100: the mirror's correlation divides by 0
    hole = np.zeros(constant.shape, np.uint8)
    hole[18:22, 22:26, 16:19] = 1
    nib.save(nib.Nifti1Image(constant, affine), tmp_path / "constant.nii.gz")
    nib.save(nib.Nifti1Image(hole, affine), tmp_path / "mask.nii.gz")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no DICOM here")
    (tmp_path / "empty").mkdir()
    runs = {"notes": [tmp_path / "notes", tmp_path / "mask.nii.gz"],
            "empty": [tmp_path / "constant.nii.gz", tmp_path / "empty"]}
    for name, inputs in runs.items():
        assert main(["fill", *map(str, inputs), "-o", str(tmp_path / "o.nii.gz")]) == 2
        assert capfd.readouterr().err.splitlines() == [
            f"inpaint: error: {tmp_path / name} is a folder with no DICOM series; choose a folder holding exactly one "
            "DICOM series, or a NIfTI/NRRD/MHA file."]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fill", str(tmp_path / "constant.nii.gz"), str(tmp_path / "mask.nii.gz"), "-o",
                     str(tmp_path / "o.nii.gz"), "--quiet"]) == 0
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert capfd.readouterr().err.startswith("inpaint: note: the other hemisphere was not used")


def test_an_existing_folder_as_output_is_named_a_folder(brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, _ = brain_files
    (tmp_path / "od").mkdir()
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "od")   # with a slash: the test below
    assert code == 2 and err.splitlines() == [f"inpaint: error: Cannot write {tmp_path / 'od'}: it is a folder; give "
                                              f"the output's file name, e.g. {tmp_path / 'od' / 'filled.nii.gz'}."]


def test_image_and_mask_swapped_are_said_to_be_swapped(brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, _ = brain_files
    integer = tmp_path / "t1.nii.gz"   # an integer scan: no fractional values to give the swap away
    source = nib.load(image_path)
    nib.save(nib.Nifti1Image(np.round(source.get_fdata()).astype(np.int16), source.affine), integer)
    code, err = _run(capsys, "fill", mask_path, integer, "-o", tmp_path / "o.nii.gz")
    assert code == 2 and err.splitlines() == [
        f"inpaint: error: The mask {integer} covers (almost) every nonzero voxel of the image {mask_path}, so no known "
        f"brain tissue is left to match the fill to (0 voxels); the image {mask_path} holds only the values 0, 1, "
        "like a mask, so the image and the mask may be swapped: give the image first, then the mask."]


def test_an_interrupt_while_the_commands_load_is_one_line(monkeypatch, capsys) -> None:
    import core.cli

    def loading():
        raise KeyboardInterrupt   # Ctrl+C while the subcommands import torch

    monkeypatch.setattr(core.cli, "build_parser", loading)
    assert core.cli.main(["models"]) == 130
    assert capsys.readouterr().err.strip() == "inpaint: interrupted; no output was written."


def test_an_output_name_ending_in_a_slash_is_refused_as_a_folder(brain_files, tmp_path, capsys) -> None:
    image, mask, _ = brain_files
    with pytest.raises(SystemExit) as stop:
        main(["fill", str(image), str(mask), "-o", f"{tmp_path}/new_folder/"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names a folder; give the output's file name" in err[0]
    assert not (tmp_path / "new_folder").exists()


def test_an_interrupt_after_the_output_is_written_says_it_is_complete(brain_files, tmp_path, monkeypatch,
                                                                      capsys) -> None:
    import core.cli
    import core.fill_file

    image_path, mask_path, _ = brain_files
    real = core.fill_file.fill_file

    def written_then_interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt   # Ctrl+C just after the volume and its sidecar were renamed into place

    monkeypatch.setattr(core.fill_file, "fill_file", written_then_interrupted)
    out = tmp_path / "filled.nii.gz"
    assert core.cli.main(["fill", str(image_path), str(mask_path), "-o", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == (f"inpaint: interrupted after {out} and its sidecar were written; "
                                               "both are complete.")
    assert out.is_file()
    before = tmp_path / "before.nii.gz"   # an older file of that name, not replaced: "no output was written"
    before.write_bytes(b"old")
    os.utime(before, (0, 0))
    monkeypatch.setattr(core.fill_file, "fill_file", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert core.cli.main(["fill", str(image_path), str(mask_path), "-o", str(before), "--force", "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == "inpaint: interrupted; no output was written."


def test_fill_reports_the_predicted_error_in_units_and_as_a_share(brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, _ = brain_files
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "o.nii.gz", "--uncertainty",
                     tmp_path / "sd.nii.gz")
    assert code == 0, err
    record = json.loads((tmp_path / "o.json").read_text())["uncertainty"]
    assert f"mean SD {record['mean_sd']:.4g} ({record['mean_sd_share']:.1%} of the brain's intensity range)" in err



def test_a_map_that_cannot_be_written_leaves_no_fill_behind(brain_files, tmp_path, capsys, monkeypatch) -> None:
    """A full disk while the predicted-error map was written left the filled volume and a sidecar naming a map that
    was not there (and, with --force over an earlier set, a new volume beside the old map): found by a helper on a
    full tmpfs."""
    import errno

    import core.volume

    image_path, mask_path, _ = brain_files
    out, sd = tmp_path / "o.nii.gz", tmp_path / "maps" / "sd.nii.gz"
    sd.parent.mkdir()
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--uncertainty", sd, "--mirror", "0")
    assert code == 0, err
    before = {p: p.read_bytes() for p in (out, tmp_path / "o.json", sd)}
    write = core.volume._write_nifti

    def full_disk(target, *args):
        if "sd" in Path(target).name:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(target, *args)

    monkeypatch.setattr(core.volume, "_write_nifti", full_disk)
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--uncertainty", sd, "--force")
    assert code == 2 and err.splitlines()[-1].startswith("inpaint: error: Could not write") and "No space left" in err
    assert {p: p.read_bytes() for p in before} == before   # the earlier volume, sidecar and map, as they were
    fresh = tmp_path / "fresh.nii.gz"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", fresh, "--uncertainty", tmp_path / "sd2.nii.gz")
    assert code == 2 and not fresh.exists() and not (tmp_path / "fresh.json").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "temporaries left behind"

@pytest.mark.parametrize("command", [["fill", "a.nii.gz", "b.nii.gz", "-o", "c.nii.gz"], ["models"],
                                     ["bids", "in", "out", "participant"]])
def test_an_unknown_option_points_to_its_subcommands_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--bogus", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err == f"inpaint {command[0]}: error: unrecognized arguments: --bogus 1; run 'inpaint {command[0]} --help' " \
                  "for the options.\n"


def test_once_the_program_is_done_an_interrupt_cannot_kill_it_on_its_way_out(monkeypatch, capsys) -> None:
    # a Ctrl+C in the last moment of `inpaint fill`, after both files were written, once killed the interpreter
    # during its shutdown: no message, status -SIGINT, for a run that had finished
    import core.cli

    monkeypatch.setattr(sys, "argv", ["inpaint", "models"])
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert core.cli.main(["models"]) == 0   # called from Python: the handlers are the caller's
        assert {s: signal.getsignal(s) for s in before} == before
        assert core.cli.main(None) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def test_a_model_given_as_the_current_folder_is_named_by_it_and_an_empty_name_is_refused(brain_files, tiny_vae,
                                                                                         tmp_path, capsys,
                                                                                         monkeypatch) -> None:
    """`--model .` from inside a checkpoint folder once crashed (the sidecar path of "."); the sidecar names the
    folder and the plane the model learned."""
    image_path, mask_path, _ = brain_files
    monkeypatch.chdir(tiny_vae)
    out = tmp_path / "filled.nii.gz"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", out, "--model", ".", *FAST)
    assert code == 0, err
    model = json.loads(out.with_name("filled.json").read_text())["model"]
    assert model["name"] == tiny_vae.name and model["path"] == str(tiny_vae) and model["trained_axis"] == "axial"
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "other.nii.gz", "--model", "", *FAST)
    assert code == 2 and err.strip() == ("inpaint: error: The model name is empty; give a name from 'inpaint "
                                         "models' or a checkpoint folder.")
    assert not (tmp_path / "other.nii.gz").exists()


def test_an_image_named_as_another_contrast_gets_a_note_pointing_to_the_classical_fill(brain_files, tmp_path,
                                                                                       capsys) -> None:
    """The networks learned T1-weighted brains: on a T2-like scan the default filled 35% worse than its own
    biharmonic base, silently. A FLAIR or T2w name now gets one note; the classical fill needs none."""
    image_path, mask_path, _ = brain_files
    flair = tmp_path / "sub-01_FLAIR.nii.gz"
    flair.write_bytes(image_path.read_bytes())
    code, err = _run(capsys, "fill", flair, mask_path, "-o", tmp_path / "a.nii.gz", "--quiet")
    assert code == 0 and ("inpaint: note: " + str(flair) + " is named as a FLAIR image; the networks learned "
                          "T1-weighted brains and may fill it worse than the classical fill: --method biharmonic3d "
                          "fills without them.") in err
    code, err = _run(capsys, "fill", flair, mask_path, "-o", tmp_path / "b.nii.gz", "--quiet", "--method",
                     "biharmonic3d")
    assert code == 0 and "note" not in err
    code, err = _run(capsys, "fill", image_path, mask_path, "-o", tmp_path / "c.nii.gz", "--quiet")
    assert code == 0 and "named as" not in err   # sub-01_T1w
