"""A refiner with mirror inputs (`RefinerConfig.mirror_inputs`): it sees the mirrored hemisphere and learns its share."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from core.errors import InpaintError
from core.mirror import Reflection, find_reflection, mirrored_box
from core.normalize import IntensityScale
from core.refine3d import (Refiner3D, RefinerConfig, load_refiner, refine_fill, save_refiner,
                           with_mirror_inputs)
from core.training.refiner import train
from core.training.refiner_patches import Brain, sample
from test_mirror import _symmetric_brain

SCALE = IntensityScale(lo=0.0, hi=500.0)


def _refiners(folder: Path, spacing_mm: float) -> tuple:
    """A small trained-looking refiner (random last layer) and the same one widened to mirror inputs."""
    torch.manual_seed(0)
    narrow = Refiner3D(RefinerConfig(width=2, spacing_mm=spacing_mm))
    torch.nn.init.normal_(narrow.tail.weight, std=0.05)
    wide = Refiner3D(RefinerConfig(width=2, spacing_mm=spacing_mm, mirror_inputs=True))
    wide.load_state_dict(with_mirror_inputs(narrow.state_dict()))
    return (load_refiner(save_refiner(folder / "narrow", narrow)), load_refiner(save_refiner(folder / "wide", wide)))


def _lesioned_symmetric_brain():
    image = _symmetric_brain(21.5)
    hole = np.zeros(image.shape, dtype=bool)
    hole[10:16, 16:22, 14:20] = True
    voided = np.where(hole, 0, image).astype(np.float32)
    return image, hole, voided


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (1.6, 1.6, 1.6)])
def test_a_widened_refiner_fills_exactly_like_its_source_with_the_fixed_share(tmp_path: Path, spacing) -> None:
    narrow, wide = _refiners(tmp_path, 2.0)
    image, hole, voided = _lesioned_symmetric_brain()
    reflection = find_reflection(voided, hole, spacing, axis=0)
    mirror = mirrored_box(voided, hole, reflection, tuple(slice(0, n) for n in image.shape))
    kwargs = dict(mirror=mirror, mirror_weight=0.5)
    before = refine_fill(voided, hole, spacing, SCALE, narrow, torch.device("cpu"), **kwargs)
    after = refine_fill(voided, hole, spacing, SCALE, wide, torch.device("cpu"), **kwargs)
    assert np.abs(after - before)[hole].max() < 1e-3 * SCALE.hi          # the same fill, to float rounding
    assert np.array_equal(after[~hole], voided[~hole])                   # voxels outside the lesion untouched
    alone = refine_fill(voided, hole, spacing, SCALE, wide, torch.device("cpu"), mirror=mirror, mirror_weight=0.0)
    assert np.abs(alone - refine_fill(voided, hole, spacing, SCALE, narrow, torch.device("cpu")))[hole].max() < 1e-3 * SCALE.hi
    assert np.abs(after - alone)[hole].max() > 1.0                       # the mirror's detail is added


def test_the_mirror_inputs_round_trip_through_the_config(tmp_path: Path) -> None:
    _, wide = _refiners(tmp_path, 2.0)
    assert wide.config.mirror_inputs
    assert json.loads((tmp_path / "wide" / "config.json").read_text())["architecture"]["mirror_inputs"] is True
    assert "mirror_inputs" not in json.loads((tmp_path / "narrow" / "config.json").read_text())["architecture"]
    config = json.loads((tmp_path / "wide" / "config.json").read_text())
    config["architecture"]["mirror_inputs"] = "yes"
    (tmp_path / "wide" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InpaintError, match="invalid 3D refiner architecture"):
        load_refiner(tmp_path / "wide")


def _training_brain(reflection: Reflection, centre=(12, 20, 18)) -> Brain:
    """The symmetric brain in model range, patches centred at `centre` (default: off the midline, x = 21.5)."""
    unit = _symmetric_brain(21.5) / 400.0
    brain = unit > 0
    image = np.where(brain, np.clip(unit, 0, 1) * 2 - 1, -1).astype(np.float32)
    return Brain(image=image, brain=brain, centres=np.array([centre]), reflection=reflection)


def test_training_patches_get_the_mirror_as_the_fill_gives_it() -> None:
    image = _symmetric_brain(21.5)
    reflection = find_reflection(image, np.zeros(image.shape, dtype=bool), (2.0, 2.0, 2.0), axis=0)
    source = _training_brain(reflection)
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(6):
        base, hole, truth, inputs = sample(rng, [source], np.array([1.0]), patch=24, mirror=1.0, hole_kind="box")
        hole = hole.astype(bool)
        assert inputs.shape == (2,) + hole.shape and np.all(inputs[1][~hole] == 0)
        gains.append(np.abs(base - truth)[hole].mean() - np.abs(base + inputs[1] - truth)[hole].mean())
    assert np.mean(gains) > 0          # the mirror of a symmetric brain brings the fill closer to the truth
    base, hole, truth, inputs = sample(np.random.default_rng(1), [source], np.array([1.0]), patch=24, mirror=0.0001)
    assert not inputs.any()            # patches drawn without the mirror get zeros


def test_a_training_hole_never_shows_through_its_own_mirror() -> None:
    # an identity "reflection": every hole voxel mirrors itself, so the mirror must know nothing of the hole
    identity = Reflection(matrix=np.hstack([np.eye(3), np.zeros((3, 1))]), correlation=1.0)
    source = _training_brain(identity, centre=(22, 20, 18))
    rng = np.random.default_rng(2)
    for _ in range(6):   # random axis orders and flips: the hole is found in the source's own orientation
        base, hole, truth, inputs = sample(rng, [source], np.array([1.0]), patch=24, mirror=1.0, hole_kind="box")
        hole = hole.astype(bool)
        missed = np.abs(truth - base)[hole].mean()
        assert np.abs(inputs[1])[hole].mean() < 0.3 * missed


def test_a_run_widens_its_start_to_mirror_inputs_and_a_resume_keeps_them(tmp_path: Path) -> None:
    image = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(_symmetric_brain(21.5), np.diag([2.0, 2.0, 2.0, 1.0])), image)
    data = [(image, None, 1.0)]
    train(data, tmp_path / "first", minutes=5, steps=1, batch_size=2, config=RefinerConfig(width=2), log_every=1, patch=24)
    train(data, tmp_path / "second", minutes=5, steps=2, batch_size=2, init=tmp_path / "first", mirror=1.0,
          log_every=1, patch=24)
    second = load_refiner(tmp_path / "second")
    assert second.config.mirror_inputs and second.config.width == 2
    assert "Mirror inputs: 100% of the patches" in (tmp_path / "second" / "MODEL_CARD.md").read_text()
    train(data, tmp_path / "second", minutes=5, steps=3, batch_size=2, resume=True, mirror=1.0, log_every=1, patch=24)
    assert json.loads((tmp_path / "second" / "config.json").read_text())["training"]["steps"] == 3
    with pytest.raises(InpaintError, match="--mirror"):
        train(data, tmp_path / "second", minutes=5, steps=4, batch_size=2, resume=True, log_every=1, patch=24)


def test_a_planted_mirror_lesion_darkens_the_mirror_where_it_mirrors_the_hole_and_nothing_else() -> None:
    from core.training.refiner_patches import plant_mirror_lesion

    rng = np.random.default_rng(0)
    mirrored = rng.uniform(0.2, 0.8, (24, 24, 24)).astype(np.float32)
    mirrored[:4] = -1.0                      # outside the brain
    mirrored[10, 10, 10] = np.nan            # unknown
    hole = np.zeros(mirrored.shape, dtype=bool)
    hole[8:16, 8:16, 8:16] = True
    planted = plant_mirror_lesion(rng, mirrored, hole)
    tissue = mirrored > -1.0
    ratio = np.where(tissue, (planted + 1) / np.where(tissue, mirrored + 1, 1.0), np.nan)
    assert np.all(planted[:4] == -1.0) and np.isnan(planted[10, 10, 10])
    assert np.nanmax(ratio) <= 1.0 + 1e-6 and 0.5 <= np.nanmin(ratio) < 0.9   # 15-50% darker at the core
    far = np.ones(hole.shape, dtype=bool)
    far[4:20, 4:20, 4:20] = False
    assert np.allclose(planted[far], mirrored[far], equal_nan=True)   # nothing changes away from the hole


def test_training_with_planted_mirror_lesions_shows_them_in_the_detail_and_says_so(tmp_path: Path) -> None:
    image = _symmetric_brain(21.5)
    reflection = find_reflection(image, np.zeros(image.shape, dtype=bool), (2.0, 2.0, 2.0), axis=0)
    source = _training_brain(reflection)
    darker = []
    for seed in range(4):   # the same patch and hole with and without the lesion: only the mirror's detail differs
        plain = sample(np.random.default_rng(seed), [source], np.array([1.0]), patch=24, mirror=1.0, hole_kind="box")
        lesion = sample(np.random.default_rng(seed), [source], np.array([1.0]), patch=24, mirror=1.0, hole_kind="box",
                        mirror_lesions=1.0)
        hole = plain[1].astype(bool)
        assert all(np.array_equal(a, b) for a, b in zip(plain[:3], lesion[:3]))
        darker.append(plain[3][1][hole].mean() - lesion[3][1][hole].mean())
    assert min(darker) > 0
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    data = [(path, None, 1.0)]
    train(data, tmp_path / "run", minutes=5, steps=1, batch_size=2, config=RefinerConfig(width=2, mirror_inputs=True),
          mirror=1.0, mirror_lesions=0.5, log_every=1, patch=24)
    train(data, tmp_path / "run", minutes=5, steps=2, batch_size=2, resume=True, mirror=1.0, log_every=1, patch=24)
    record = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert record["mirror_lesions"] == 0.5 and record["steps"] == 2
    assert "In 50% of those the mirror shows a dark lesion" in (tmp_path / "run" / "MODEL_CARD.md").read_text()
