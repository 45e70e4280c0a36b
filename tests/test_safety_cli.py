"""Issue 9 as the user meets it: every adversarial `inpaint` case, run by the real command in a child process.

Starting Python with torch costs several seconds on a 2-core machine, so the cases run in one
child process (`core.cli.main(argv)`, the `inpaint` entry point, with stderr captured per case),
plus a few cases that need a process of their own (the real `python -m core.cli`, SIGKILL).
Each case has its own folder with tiny volumes and a tiny model; every check is on the files
left behind and on the single line printed to stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import make_tiny_model, synthetic_brain

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--method", "slices2d", "--iterations", "2", "--restarts", "1", "--quiet"]
AFFINE = np.array([[-2.0, 0, 0, 40], [0, 2.0, 0, -48], [0, 0, 2.0, -36], [0, 0, 0, 1]])

DRIVER = r"""
import contextlib, io, json, sys, traceback
from core.cli import main
results = {}
for name, argv in json.load(open(sys.argv[1])).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    results[name] = {"code": code, "err": err.getvalue()}
json.dump(results, open(sys.argv[2], "w"))
"""


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    return path


def _lesion(shape) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[16:22, 20:26, 15:18] = 1
    return mask


def _model_variant(base: Path, target: Path, *, config=None, tensors=None) -> Path:
    """A copy of the tiny model with its config edited (`config(dict)`) or its tensors edited (`tensors(dict)`)."""
    target.mkdir()
    cfg = json.loads((base / "config.json").read_text())
    weights = load_file(str(base / "model.safetensors"))
    if config:
        config(cfg)
    if tensors:
        tensors(weights)
    (target / "config.json").write_text(json.dumps(cfg))
    save_file(weights, str(target / "model.safetensors"))
    return target


def _set(section: str, key: str, value):
    def edit(cfg: dict) -> None:
        (cfg if section == "" else cfg[section])[key] = value
    return edit


def _poison(value: float, key: str = "decoder.project.weight"):
    def edit(weights: dict) -> None:
        weights[key] = torch.full_like(weights[key], value)
    return edit


class Case:
    """One `inpaint` invocation: `argv` built from its folder, then the files it must leave as they were."""

    def __init__(self, argv, code: int, expect: str = "", kept=(), absent=(), model: str = "tiny"):
        self.argv, self.code, self.expect, self.kept, self.absent, self.model = argv, code, expect, kept, absent, model


TAMPERED = {
    "spacing_zero": _set("model_space", "spacing_mm", 0),
    "spacing_nan_text": _set("model_space", "spacing_mm", "nan"),
    "spacing_negative": _set("model_space", "spacing_mm", -8.0),
    "latent_million": _set("architecture", "latent", 10 ** 6),
    "latent_billion": _set("architecture", "latent", 10 ** 9),
    "width_million": _set("architecture", "width", 10 ** 6),
    "latent_negative": _set("architecture", "latent", -5),
    "latent_text": _set("architecture", "latent", "8"),
    "kernel_huge": _set("architecture", "kernel", 10 ** 5 + 1),
    "size_huge": _set("architecture", "size", 6 * 2 ** 20),
    "axis_bogus": _set("model_space", "axis", "bogus"),
    "format_version_text": _set("", "format_version", "2"),
    "format_version_future": _set("", "format_version", 2),
}

def _cases() -> dict[str, Case]:
    img, les = "sub-01_T1w.nii.gz", "lesion.nii.gz"
    base = [img, les, "-o"]
    c = {
        # data loss: no input of any kind is ever written, with or without --force
        "out_is_mask_force": Case(base + [les, "--force"], 2, "lesion.nii.gz", kept=[les]),
        "out_is_mask": Case(base + [les], 2, "lesion.nii.gz", kept=[les]),
        "out_is_image_force": Case(base + [img, "--force"], 2, "input", kept=[img]),
        "out_is_brainmask_force": Case(base + ["brain.nii.gz", "--brainmask", "brain.nii.gz", "--force"], 2,
                                       "brain.nii.gz", kept=["brain.nii.gz"]),
        "out_is_reference_force": Case(base + ["ref.nii.gz", "--reference", "ref.nii.gz", "--force"], 2,
                                       "ref.nii.gz", kept=["ref.nii.gz"]),
        "out_hardlink_to_mask_force": Case(base + ["alias.nii.gz", "--force"], 2, "input", kept=[les, "alias.nii.gz"]),
        "out_symlink_to_image_force": Case(base + ["link.nii.gz", "--force"], 2, "input", kept=[img]),
        "bids_sidecar_of_input": Case(base + ["sub-01_T1w.nii"], 2, "sub-01_T1w.json", kept=["sub-01_T1w.json"],
                                      absent=["sub-01_T1w.nii"]),
        "bids_sidecar_of_input_force": Case(base + ["sub-01_T1w.nii", "--force"], 2, "sub-01_T1w.json",
                                            kept=["sub-01_T1w.json"], absent=["sub-01_T1w.nii"]),
        "mask_sidecar_force": Case(base + ["lesion.nii", "--force"], 2, "lesion.json", kept=["lesion.json"],
                                   absent=["lesion.nii"]),
        "unrelated_sidecar_exists": Case(base + ["keep.nii.gz"], 2, "keep.json", kept=["keep.json"],
                                         absent=["keep.nii.gz"]),
        "unrelated_sidecar_force": Case(base + ["keep.nii.gz", "--force"] + FAST, 0),
        "sidecar_is_folder": Case(base + ["out.nii.gz", "--force"], 2, "folder", absent=["out.nii.gz"]),
        "output_is_folder": Case(base + ["outdir.nii.gz", "--force"], 2, "folder"),
        "output_folder_missing": Case(base + ["nowhere/out.nii.gz"], 2, "does not exist"),
        # checked before the fill: the broken model would be reported if the fill had started
        "unsupported_extension": Case(base + ["out.png"] + FAST, 2, "extension", absent=["out.png"],
                                      model="nan_weights"),
        "zraw_beside_mhd": Case(base + ["out.mhd"] + FAST, 2, "out.zraw", kept=["out.zraw"], absent=["out.mhd"],
                                model="nan_weights"),
        # silent wrong results
        "nan_and_inf_in_image": Case(["nan.nii.gz", les, "-o", "out.nii.gz"] + FAST, 0),
        "nan_and_inf_in_image_refine3d": Case(["nan.nii.gz", les, "-o", "out.nii.gz", "--quiet"], 0),
        "lr_inf": Case(base + ["out.nii.gz", "--lr", "inf"], 2, "--lr", absent=["out.nii.gz"]),
        "lr_huge": Case(base + ["out.nii.gz", "--lr", "1e30"], 2, "--lr", absent=["out.nii.gz"]),
        "lr_nan": Case(base + ["out.nii.gz", "--lr", "nan"], 2, "--lr", absent=["out.nii.gz"]),
        "lambda_inf": Case(base + ["out.nii.gz", "--lambda", "inf"], 2, "--lambda", absent=["out.nii.gz"]),
        "lambda_nan": Case(base + ["out.nii.gz", "--lambda", "nan"], 2, "--lambda", absent=["out.nii.gz"]),
        "seed_2_pow_70": Case(base + ["out.nii.gz", "--seed", str(2 ** 70)] + FAST, 2, "--seed", absent=["out.nii.gz"]),
        "seed_negative": Case(base + ["out.nii.gz", "--seed", "-1"] + FAST, 2, "--seed", absent=["out.nii.gz"]),
        "restarts_zero": Case(base + ["out.nii.gz", "--restarts", "0"], 2, "--restarts", absent=["out.nii.gz"]),
        "nan_weights": Case(base + ["out.nii.gz"] + FAST, 2, "NaN", absent=["out.nii.gz"], model="nan_weights"),
        "model_output_not_finite": Case(base + ["out.nii.gz"] + FAST, 2, "exploding", absent=["out.nii.gz"],
                                        model="exploding"),
        # no known brain voxels: which file, what to do
        "mask_all_ones": Case([img, "ones.nii.gz", "-o", "out.nii.gz"] + FAST, 2, "ones.nii.gz"),
        "image_all_zero": Case(["zero.nii.gz", les, "-o", "out.nii.gz"] + FAST, 2, "zero.nii.gz"),
        "mask_is_the_image": Case([img, img, "-o", "out.nii.gz"] + FAST, 2, "check that it is the mask"),
        "brainmask_is_the_lesion": Case(base + ["out.nii.gz", "--brainmask", les] + FAST, 2, "brain mask"),
        "probability_mask_everywhere": Case([img, "prob.nii.gz", "-o", "out.nii.gz"] + FAST, 2, "prob.nii.gz"),
        # misleading messages
        "brainmask_all_zero": Case(base + ["out.nii.gz", "--brainmask", "zero_mask.nii.gz"] + FAST, 2, "brain mask"),
        "lesion_marked_with_nan": Case([img, "nanmask.nii.gz", "-o", "out.nii.gz"] + FAST, 2, "NaN"),
        "mask_flipped_voxel_order": Case([img, "flipped.nii.gz", "-o", "out.nii.gz"] + FAST, 0),
        "mask_permuted_voxel_order": Case([img, "permuted.nii.gz", "-o", "out.nii.gz"] + FAST, 0),
        "mask_on_another_grid": Case([img, "shifted.nii.gz", "-o", "out.nii.gz"] + FAST, 2, "resample"),
        # precision: values float32 cannot hold are written exactly (float64), or refused in one sentence
        "float64_image": Case(["precise.nii.gz", les, "-o", "out.nii.gz"] + FAST, 0),
        "int32_beyond_2_to_24": Case(["precise.nii.gz", les, "-o", "out.nii.gz"] + FAST, 0),
        "float64_beyond_float32": Case(["huge.nii.gz", les, "-o", "out.nii.gz"] + FAST, 2, "rescale",
                                       absent=["out.nii.gz"]),
    }
    for name in TAMPERED:
        c[f"config_{name}"] = Case(base + ["out.nii.gz"] + FAST, 2, "config.json", absent=["out.nii.gz"], model=name)
        c[f"bench_{name}"] = Case(["bench", "--image", img, "--models", f"@{name}", "--quick", "--quiet"], 2,
                                  "config.json", model=name)
    return c


CASES = _cases()


def _prepare_folder(folder: Path, name: str) -> None:
    """The inputs every case sees, plus the obstacles its name asks for."""
    image = synthetic_brain()
    lesion = _lesion(image.shape)
    _nifti(folder / "sub-01_T1w.nii.gz", image)
    _nifti(folder / "lesion.nii.gz", lesion)
    (folder / "sub-01_T1w.json").write_text('{"RepetitionTime": 2.3}\n')  # BIDS sidecar of the input
    (folder / "lesion.json").write_text('{"Description": "lesion"}\n')
    _nifti(folder / "brain.nii.gz", (image > 0).astype(np.uint8))
    _nifti(folder / "ref.nii.gz", image)
    if name == "out_hardlink_to_mask_force":
        os.link(folder / "lesion.nii.gz", folder / "alias.nii.gz")
    if name == "out_symlink_to_image_force":
        (folder / "link.nii.gz").symlink_to(folder / "sub-01_T1w.nii.gz")
    if name.startswith("unrelated_sidecar"):
        (folder / "keep.json").write_text('{"mine": true}\n')
    if name == "sidecar_is_folder":
        (folder / "out.json").mkdir()
    if name == "output_is_folder":
        (folder / "outdir.nii.gz").mkdir()
    if name == "zraw_beside_mhd":
        (folder / "out.zraw").write_bytes(b"someone else's data")
    if name.startswith("nan_and_inf_in_image"):
        spm = image.copy()
        spm[spm == 0] = np.nan  # SPM-style NaN background
        spm[18, 30, 16] = np.nan  # a NaN inside a masked slice, in the model's field
        spm[24, 18, 17] = np.inf
        _nifti(folder / "nan.nii.gz", spm)
    if name == "mask_all_ones":
        _nifti(folder / "ones.nii.gz", np.ones(image.shape, np.uint8))
    if name == "image_all_zero":
        _nifti(folder / "zero.nii.gz", np.zeros(image.shape, np.float32))
    if name == "probability_mask_everywhere":
        _nifti(folder / "prob.nii.gz", np.full(image.shape, 1e-4, np.float32))
    if name == "brainmask_all_zero":
        _nifti(folder / "zero_mask.nii.gz", np.zeros(image.shape, np.uint8))
    if name == "lesion_marked_with_nan":
        _nifti(folder / "nanmask.nii.gz", np.where(lesion > 0, np.nan, 0).astype(np.float32))
    if name == "mask_flipped_voxel_order":  # same voxels, stored with the first and third axes reversed
        flip = AFFINE @ np.array([[-1, 0, 0, image.shape[0] - 1], [0, 1, 0, 0], [0, 0, -1, image.shape[2] - 1],
                                  [0, 0, 0, 1]])
        _nifti(folder / "flipped.nii.gz", lesion[::-1, :, ::-1].copy(), flip)
    if name == "mask_permuted_voxel_order":  # same voxels, stored with the first two axes swapped
        swap = AFFINE @ np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        _nifti(folder / "permuted.nii.gz", lesion.transpose(1, 0, 2).copy(), swap)
    if name == "float64_image":
        _nifti(folder / "precise.nii.gz", image.astype(np.float64) * 1.000123456789 + 0.1 * (image > 0))
    if name == "int32_beyond_2_to_24":
        _nifti(folder / "precise.nii.gz", (image.astype(np.float64) * 400_001).astype(np.int32))
    if name == "float64_beyond_float32":
        _nifti(folder / "huge.nii.gz", image.astype(np.float64) * 1e40)
    if name == "mask_on_another_grid":
        shifted = AFFINE.copy()
        shifted[0, 3] += 3.0
        _nifti(folder / "shifted.nii.gz", lesion, shifted)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    """Prepare every case's folder, run all cases in one child process, return codes, stderr and file states."""
    root = tmp_path_factory.mktemp("safety_cli")
    models = {"tiny": make_tiny_model(root / "models" / "tiny")}
    base = models["tiny"]
    models["nan_weights"] = _model_variant(base, root / "models" / "nan_weights", tensors=_poison(float("nan")))
    # finite weights whose first convolution overflows: G(z) is NaN for every z
    models["exploding"] = _model_variant(base, root / "models" / "exploding", tensors=_poison(3e38, "decoder.blocks.1.weight"))
    for name, edit in TAMPERED.items():
        models[name] = _model_variant(base, root / "models" / name, config=edit)
    argvs, before = {}, {}
    for name, case in CASES.items():
        folder = root / name
        folder.mkdir()
        _prepare_folder(folder, name)
        model = str(models[case.model])
        argv = [a.replace(f"@{case.model}", model) for a in case.argv]
        argv = [str(folder / a) if (folder / a).exists() or a.endswith((".gz", ".nii", ".png", ".mhd")) else a
                for a in argv]
        if argv[0] != "bench":  # the slice model for a method that reads one (refine3d refuses --model)
            argv = ["fill"] + argv + (["--model", model] if "--method" in argv else [])
        argvs[name] = argv
        before[name] = {k: (folder / k).read_bytes() for k in case.kept}
    cases_file, results_file = root / "cases.json", root / "results.json"
    cases_file.write_text(json.dumps(argvs))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", DRIVER, str(cases_file), str(results_file)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(results_file.read_text())
    for name in CASES:
        results[name]["folder"] = root / name
        results[name]["before"] = before[name]
    return results


def _one_sentence(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("inpaint"), err
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name: str, outcomes) -> None:
    case, got = CASES[name], outcomes[name]
    folder: Path = got["folder"]
    assert got["code"] == case.code, got["err"]
    if case.code == 2:
        line = _one_sentence(got["err"])
        assert case.expect.lower() in line.lower(), line
    for kept, content in got["before"].items():
        assert (folder / kept).read_bytes() == content, f"{kept} was written"
    for absent in case.absent:
        assert not (folder / absent).exists(), f"{absent} was created"
    if case.code == 2:  # nothing half-written either
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _filled(folder: Path, name: str = "out.nii.gz") -> tuple[np.ndarray, dict]:
    data = nib.load(folder / name).get_fdata(dtype=np.float32)
    return data, json.loads((folder / (name.split(".")[0] + ".json")).read_text())


@pytest.mark.parametrize("case", ["float64_image", "int32_beyond_2_to_24"])
def test_values_float32_cannot_hold_are_written_exactly_outside_the_hole(outcomes, case: str) -> None:
    folder = outcomes[case]["folder"]
    source, out = nib.load(folder / "precise.nii.gz"), nib.load(folder / "out.nii.gz")
    before, after = source.get_fdata(), out.get_fdata()
    hole = nib.load(folder / "lesion.nii.gz").get_fdata() > 0
    assert not np.array_equal(before, before.astype(np.float32))   # the case is one float32 would round
    assert out.get_data_dtype() == np.float64
    assert np.array_equal(after[~hole], before[~hole])             # bit-identical outside the lesion
    assert not np.array_equal(after[hole], before[hole])           # and filled inside it


@pytest.mark.parametrize("case", ["nan_and_inf_in_image", "nan_and_inf_in_image_refine3d"])
def test_nan_and_inf_are_background_for_the_fill_and_kept_outside_the_hole(outcomes, case: str) -> None:
    got = outcomes[case]
    folder = got["folder"]
    source = nib.load(folder / "nan.nii.gz").get_fdata(dtype=np.float32)
    hole = _lesion(source.shape) > 0
    filled, side = _filled(folder)
    assert np.isfinite(filled[hole]).all()
    same = (filled == source) | (np.isnan(filled) & np.isnan(source))
    assert same[~hole].all()  # outside the hole every voxel, NaN and inf included, is as it was
    count = int(np.count_nonzero(~np.isfinite(source) & ~hole))
    assert side["nonfinite_input_voxels"] == count > 0
    notes = [line for line in got["err"].splitlines() if line.strip()]
    assert len(notes) == 1 and str(count) in notes[0] and "NaN" in notes[0], got["err"]


@pytest.mark.parametrize("name", ["mask_flipped_voxel_order", "mask_permuted_voxel_order"])
def test_mask_in_another_voxel_order_fills_exactly_the_same_voxels(name: str, outcomes) -> None:
    folder = outcomes[name]["folder"]
    source = nib.load(folder / "sub-01_T1w.nii.gz").get_fdata(dtype=np.float32)
    filled, side = _filled(folder)
    hole = _lesion(source.shape) > 0
    assert side["hole_voxels"] == int(hole.sum())
    assert np.array_equal(filled[~hole], source[~hole]) and not np.array_equal(filled[hole], source[hole])


def test_forced_unrelated_sidecar_is_replaced_together_with_the_volume(outcomes) -> None:
    folder = outcomes["unrelated_sidecar_force"]["folder"]
    _, side = _filled(folder, "keep.nii.gz")
    assert side["tool"] == "brain-inpaint" and side["input"]["path"].endswith("sub-01_T1w.nii.gz")


def _child(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_real_command_refuses_to_overwrite_the_mask_with_force(brain_files, tiny_vae, tmp_path) -> None:
    image_path, mask_path, _ = brain_files
    before = mask_path.read_bytes()
    run = subprocess.run([sys.executable, "-m", "core.cli", "fill", str(image_path), str(mask_path), "-o",
                          str(mask_path), "--force", "--model", str(tiny_vae), *FAST], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert run.returncode == 2 and mask_path.read_bytes() == before
    assert _one_sentence(run.stderr).startswith("inpaint: error: Refusing to write")


KILLED_WRITER = r"""
import sys, time
from pathlib import Path
import numpy as np
from core.atomic import write_atomically
from core.volume import load_volume, _stage
folder = Path(sys.argv[1])
def stall(target):
    Path(target).write_bytes(b"partial")
    print("staged", flush=True)
    time.sleep(60)
if sys.argv[2] == "volume":
    _stage(folder / "out.nii.gz", load_volume(folder / "in.nii.gz"), False, stall).commit()
else:
    write_atomically(folder / "out.json", stall)
"""


@pytest.mark.parametrize("kind", ["volume", "json"])
def test_temporaries_left_by_sigkill_are_removed_by_the_next_write(kind: str, tmp_path: Path) -> None:
    from core.atomic import is_temp_name
    from core.volume import load_volume, save_volume

    _nifti(tmp_path / "in.nii.gz", synthetic_brain((8, 9, 7)))
    child = _child(KILLED_WRITER, str(tmp_path), kind)
    try:
        assert child.stdout.readline().strip() == "staged", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    left = [p for p in tmp_path.iterdir() if is_temp_name(p.name)]
    assert len(left) == 1 and not (tmp_path / ("out.nii.gz" if kind == "volume" else "out.json")).exists()
    fresh = save_volume(tmp_path / "first.nii.gz", load_volume(tmp_path / "in.nii.gz").data,
                        load_volume(tmp_path / "in.nii.gz"))
    assert left[0].exists()  # a recent temporary may belong to a write still running: kept
    old = time.time() - 3600
    os.utime(left[0], (old, old))
    for inner in (left[0].iterdir() if left[0].is_dir() else []):
        os.utime(inner, (old, old))
    save_volume(tmp_path / "second.nii.gz", load_volume(fresh).data, load_volume(tmp_path / "in.nii.gz"))
    assert not left[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.nii.gz", "in.nii.gz", "second.nii.gz"]
