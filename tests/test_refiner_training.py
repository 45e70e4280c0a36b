"""Training the 3D refiner: a few steps on a synthetic brain give a loadable checkpoint, and resume continues."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import synthetic_brain
from core.refine3d import RefinerConfig, load_refiner
from core.training.refiner import random_hole, train


def test_random_holes_stay_inside_the_brain() -> None:
    rng = np.random.default_rng(0)
    brain = np.zeros((32, 32, 32), dtype=bool)
    brain[4:28, 4:28, 4:28] = True
    for _ in range(20):
        hole = random_hole(rng, brain)
        assert hole.any() and not (hole & ~brain).any()


def test_a_short_run_writes_a_refiner_and_resume_continues(tmp_path: Path) -> None:
    image = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), image)
    out = tmp_path / "run"
    config = RefinerConfig(width=2)
    train([(image, None, 1.0)], out, minutes=5, steps=2, batch_size=2, config=config, log_every=1)
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 2
    train([(image, None, 1.0)], out, minutes=5, steps=3, batch_size=2, config=config, resume=True, log_every=1)
    record = json.loads((out / "config.json").read_text())
    assert record["training"]["steps"] == 3
    assert len((out / "loss.csv").read_text().splitlines()) == 3
    assert load_refiner(out).config == config
    assert "3 steps of batch 2" in (out / "MODEL_CARD.md").read_text()
