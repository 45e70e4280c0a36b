"""`inpaint train` and slice-model inputs from the training audit: masks in --data folders, deeply nested JSON,
malformed weights, unwritable run folders, truthful model cards, the cohort's split, the search window, the plane."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import make_tiny_model, synthetic_brain
from core.checkpoint import load_model
from core.errors import InpaintError
from core.training.card import model_card, write_card
from core.training.data import TrainingData
from core.training.trainer import STATE_JSON
from test_augment import write_brain
from test_safety_bounds import READ_ONLY, _child
from test_training import TRAIN, _inpaint, _one_sentence, brain, run2  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
DEEP = "[" * 100000 + "]" * 100000


def _pair(folder: Path, subject: str, seed: int) -> np.ndarray:
    """A skull-on `*_T1w` scan and its `*_brainmask` in `folder`; returns the brain."""
    folder.mkdir(parents=True, exist_ok=True)
    image = synthetic_brain((40, 48, 36), seed=seed)
    nib.save(nib.Nifti1Image(image + 30.0 * (image == 0), AFFINE), folder / f"{subject}_T1w.nii.gz")
    nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), AFFINE), folder / f"{subject}_brainmask.nii.gz")
    return image


# ---- 1: masks and label maps in --data folders ----------------------------------------------------------------------
def test_a_data_folder_of_t1w_scans_and_masks_trains_on_the_scans_skull_stripped_with_their_masks(tmp_path, capsys):
    folder = tmp_path / "pairs"
    for i in (1, 2):
        image = _pair(folder, f"sub-0{i}", i)
    lesion = np.zeros(image.shape, np.uint8)
    lesion[18:22, 20:24, 16:20] = 1
    for name in ("sub-01_label-lesion_mask", "sub-01_dseg", "sub-02_mask", "sub-02_desc-lesion_roi"):
        nib.save(nib.Nifti1Image(lesion, AFFINE), folder / f"{name}.nii.gz")
    data = TrainingData.load([folder], "axial", 24, 3.0)
    assert [s.path.name for s in data.sources] == ["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"]
    assert [s.brainmask.name for s in data.sources] == ["sub-01_brainmask.nii.gz", "sub-02_brainmask.nii.gz"]
    assert all(float(s.unit[:, 0, 0].max()) == 0.0 for s in data.sources)   # the skull is gone
    out = tmp_path / "run"
    code, err = _inpaint(TRAIN + ["--data", str(folder), "--steps", "1", "--out", str(out)], capsys)
    assert code == 0, err
    recorded = json.loads((out / "config.json").read_text())["training"]["data"]
    assert [Path(d["path"]).name for d in recorded] == ["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"]
    assert [Path(d["brainmask"]).name for d in recorded] == ["sub-01_brainmask.nii.gz", "sub-02_brainmask.nii.gz"]
    note = next(line for line in err.replace("\r", "\n").splitlines() if "left out" in line)
    assert "6 files" in note and "masks or label maps" in note


def test_masks_given_as_training_images_are_refused_in_one_sentence(tmp_path, capsys):
    folder = tmp_path / "masks"
    _pair(folder, "sub-01", 1)
    (folder / "sub-01_T1w.nii.gz").unlink()
    for data in (folder, folder / "sub-01_brainmask.nii.gz"):
        code, err = _inpaint(TRAIN + ["--data", str(data), "--steps", "1", "--out", str(tmp_path / "run")], capsys)
        assert code == 2 and not (tmp_path / "run").exists()
        _one_sentence(err, str(data), "--cohort")


# ---- 2: deeply nested JSON ------------------------------------------------------------------------------------------
def test_deeply_nested_json_is_refused_in_one_sentence(brain, run2, brain_files, tmp_path, capsys):
    model = make_tiny_model(tmp_path / "deep")
    (model / "config.json").write_text(DEEP)
    image, mask, _ = brain_files
    code, err = _inpaint(["fill", str(image), str(mask), "-o", str(tmp_path / "o.nii.gz"), "--model", str(model),
                          "--method", "slices2d", "--quiet"], capsys)
    assert code == 2, err
    _one_sentence(err, str(model / "config.json"))
    code, err = _inpaint(TRAIN + ["--data", str(brain), "--steps", "1", "--init", str(model),
                                  "--out", str(tmp_path / "init")], capsys)
    assert code == 2, err
    _one_sentence(err, str(model / "config.json"))
    for name in (STATE_JSON, "config.json"):
        out = tmp_path / f"resume_{name}"
        shutil.copytree(run2, out)
        (out / name).write_text(DEEP)
        code, err = _inpaint(["train", "--resume", "--steps", "3", "--threads", "1", "--out", str(out)], capsys)
        assert code == 2, err
        _one_sentence(err, f"{out}'s checkpoint is damaged ({name}")


# ---- 3: malformed weights -------------------------------------------------------------------------------------------
def _edit_weights(path: Path, edit) -> None:
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("how", ["stray network", "int64 weight"])
def test_weights_of_no_network_or_of_integer_type_are_refused(how, tmp_path):
    model = make_tiny_model(tmp_path / "model")
    key = "decoder.project.weight"

    def edit(tensors: dict) -> None:
        if how == "stray network":
            tensors["evil.payload"] = torch.zeros(3)
        else:
            tensors[key] = torch.ones_like(tensors[key], dtype=torch.int64)

    _edit_weights(model / "model.safetensors", edit)
    with pytest.raises(InpaintError, match="does not match its config") as exc:
        load_model(model)
    assert ("evil.payload" if how == "stray network" else "int64") in str(exc.value)
    assert len(str(exc.value).rstrip(".").split(". ")) == 1


def test_a_refiner_with_integer_weights_is_refused(tmp_path):
    from core.refine3d import Refiner3D, RefinerConfig, load_refiner, save_refiner

    folder = save_refiner(tmp_path / "refiner", Refiner3D(RefinerConfig(width=2, spacing_mm=2.0)))
    name = next(iter(load_file(str(folder / "model.safetensors"))))
    _edit_weights(folder / "model.safetensors",
                  lambda tensors: tensors.update({name: torch.ones_like(tensors[name], dtype=torch.int64)}))
    with pytest.raises(InpaintError, match="int64"):
        load_refiner(folder)


# ---- 4: an --out that cannot be written -----------------------------------------------------------------------------
@pytest.mark.parametrize("resume", [False, True])
def test_an_unwritable_out_is_refused_before_training(resume, brain, run2, tmp_path):
    out = tmp_path / "run"
    if resume:
        shutil.copytree(run2, out)
        argv = ["train", "--resume", "--steps", "3", "--threads", "1", "--out", str(out)]
    else:
        out.mkdir()
        argv = TRAIN + ["--data", str(brain), "--steps", "1", "--out", str(out)]
    before = sorted(p.name for p in out.iterdir())
    out.chmod(0o555)
    try:   # READ_ONLY drops root's capabilities that override permissions
        child = _child(READ_ONLY, *argv)
        _, err = child.communicate(timeout=300)
    finally:
        out.chmod(0o755)
    assert child.returncode == 2, err
    _one_sentence(err, f"--out {out} is not writable")
    assert sorted(p.name for p in out.iterdir()) == before


# ---- 5: the model card states the augmentations that were applied ---------------------------------------------------
def _shipped_config(name: str) -> dict:
    return json.loads((ROOT / "resources" / "models" / name / "config.json").read_text(encoding="utf-8"))


def test_cards_claim_contrast_synthesis_only_where_tissue_maps_were_used(tmp_path, capsys):
    synthesis = "T1-like contrast synthesised from the GM/WM maps"
    assert synthesis not in model_card("gan_k3", _shipped_config("gan_k3"))   # the cohort: no GM/WM maps
    assert synthesis in model_card("vae_k3", _shipped_config("vae_k3"))       # the template and its maps
    for with_tissues in (False, True):
        image = write_brain(tmp_path / f"data{with_tissues}", with_tissues=with_tissues)
        out = tmp_path / f"run{with_tissues}"
        code, err = _inpaint(TRAIN + ["--data", str(image), "--steps", "1", "--out", str(out)], capsys)
        assert code == 0, err
        card = write_card(out).read_text(encoding="utf-8")
        assert (synthesis in card) == with_tissues
        assert ("no T1-like contrast synthesis" in card) != with_tissues


# ---- 7: the cohort's split is said ----------------------------------------------------------------------------------
def test_a_cohort_run_says_how_many_scans_train_and_how_many_are_kept_aside(tmp_path, capsys):
    for i in range(1, 5):
        _pair(tmp_path / "cohort" / "ds000011", f"sub-0{i}", i)
    code, err = _inpaint(TRAIN + ["--cohort", str(tmp_path / "cohort"), "--steps", "1", "--out",
                                  str(tmp_path / "run")], capsys)
    assert code == 0, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "kept aside" in line]
    assert len(lines) == 1 and "ds000011: 2 scans train, 2 kept aside for validation" in lines[0], err
    from core.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "at least 2, never all" in " ".join(capsys.readouterr().out.split())


# ---- 8: the context-weight window ----------------------------------------------------------------------------------
def test_a_window_below_3_is_refused(brain_files, tmp_path, capsys):
    from core.fill import FillSettings
    from core.search import SearchSettings

    for settings in (SearchSettings, FillSettings):
        with pytest.raises(InpaintError, match="window"):
            settings(window=1)
        assert settings(window=3).window == 3
    image, mask, _ = brain_files
    code, err = _inpaint(["fill", str(image), str(mask), "-o", str(tmp_path / "o.nii.gz"), "--method", "slices2d",
                          "--window", "1"], capsys)
    assert code == 2
    _one_sentence(err, "argument --window", "not 1")


# ---- 9: a slice model used in another plane than it learned ----------------------------------------------------------
def test_a_fill_in_another_plane_than_the_models_warns(brain_files, tmp_path, capsys):
    model = make_tiny_model(tmp_path / "axial_model")
    image, mask, _ = brain_files
    fast = ["--method", "slices2d", "--iterations", "1", "--restarts", "1", "--quiet", "--model", str(model)]
    for axis, warned in (("coronal", True), ("axial", False)):
        out = tmp_path / f"{axis}.nii.gz"
        code, err = _inpaint(["fill", str(image), str(mask), "-o", str(out), "--axis", axis, *fast], capsys)
        assert code == 0 and out.is_file(), err
        lines = [line for line in err.splitlines() if "warning" in line]
        assert len(lines) == int(warned), err
        if warned:
            assert "axial" in lines[0] and "coronal" in lines[0]
