"""Training the 3D refiner: a few steps on a synthetic brain give a loadable checkpoint, and resume continues."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import synthetic_brain
from core.errors import InpaintError
from core.refine3d import Refiner3D, RefinerConfig, load_refiner, widened
from core.training.refiner import LOG_FLOOR, hole_mse, train
from core.training.refiner_patches import Brain, deformation, random_hole, sample


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


def test_lesion_loss_weighs_every_hole_the_same() -> None:
    truth = torch.zeros(2, 1, 4, 4, 4)
    hole = torch.zeros(2, 1, 4, 4, 4)
    hole[0, 0, 0, 0, 0] = 1.0          # a one-voxel hole with error 1
    hole[1, 0, :2] = 1.0               # a 32-voxel hole with no error
    pred = torch.zeros_like(truth)
    pred[0, 0, 0, 0, 0] = 1.0
    assert hole_mse(pred, truth, hole, "lesion").item() == 0.5
    assert abs(hole_mse(pred, truth, hole, "voxel").item() - 1 / 33) < 1e-7


def test_log_loss_is_the_mean_of_each_holes_error_in_decibels() -> None:
    truth = torch.zeros(2, 1, 4, 4, 4)
    hole = torch.zeros(2, 1, 4, 4, 4)
    hole[0, 0, 0] = 1.0                # 16 voxels, error 0.1 on each: mean squared error 0.01
    hole[1, 0, 1] = 1.0                # 16 voxels, error 0.01 on each: 1e-4
    pred = torch.zeros_like(truth)
    pred[0, 0, 0] = 0.1
    pred[1, 0, 1] = 0.01
    expected = (10 * math.log10(0.01 + LOG_FLOOR) + 10 * math.log10(1e-4 + LOG_FLOOR)) / 2
    assert abs(hole_mse(pred, truth, hole, "log").item() - expected) < 1e-4
    pred.requires_grad_(True)
    hole_mse(pred, truth, hole, "log").backward()
    # each hole's pull is its error over its mean squared error: the nearly right hole pulls harder per voxel
    assert pred.grad[1, 0, 1].abs().mean() > pred.grad[0, 0, 0].abs().mean()


def test_a_run_can_start_from_another_runs_weights(tmp_path: Path) -> None:
    image = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), image)
    config = RefinerConfig(width=2)
    train([(image, None, 1.0)], tmp_path / "first", minutes=5, steps=2, batch_size=2, config=config, log_every=1)
    train([(image, None, 1.0)], tmp_path / "second", minutes=5, steps=1, batch_size=2, lr=0.0, config=config,
          loss_kind="lesion", init=tmp_path / "first", log_every=1)
    first, second = load_refiner(tmp_path / "first"), load_refiner(tmp_path / "second")
    for key, value in first.network.state_dict().items():
        assert torch.equal(value, second.network.state_dict()[key])  # learning rate 0: the initial weights
    record = json.loads((tmp_path / "second" / "config.json").read_text())["training"]
    assert record["init"]["sha256"] == first.checksum and record["loss"] == "lesion"


def test_deformation_rotates_scales_and_warps_within_its_bounds() -> None:
    coords = deformation(np.random.default_rng(3), 16)
    grid = np.indices((16,) * 3, dtype=np.float64) - 7.5
    shift = np.linalg.norm(coords - grid, axis=0)
    assert shift.max() > 0.5                                  # not the identity
    corner = np.linalg.norm(grid[:, 0, 0, 0])                 # farthest point from the centre
    # rotation keeps distances, scaling changes them by <= 10%, the warp adds <= 1.5 voxels per axis
    assert np.linalg.norm(coords, axis=0).max() <= corner * 1.1 + 1.5 * np.sqrt(3) + 1e-9


def test_deformed_patches_are_brain_tissue_from_the_source() -> None:
    image = np.full((48, 48, 48), -1.0, dtype=np.float32)
    brain = np.zeros(image.shape, dtype=bool)
    brain[4:44, 4:44, 4:44] = True
    image[brain] = 0.25
    source = Brain(image=image, brain=brain, centres=np.array([[24, 24, 24]]))
    rng = np.random.default_rng(0)
    for _ in range(5):
        base, hole, truth = sample(rng, [source], np.array([1.0]), deform=1.0)
        assert truth.shape == (32, 32, 32) and hole.any()
        inside = truth > -1.0
        assert inside.mean() > 0.5 and np.all(np.abs(truth[inside]) <= 1.0)
        assert not (hole.astype(bool) & ~inside).any()        # holes stay inside the (deformed) brain


def test_the_card_names_every_earlier_run_and_the_deformation(tmp_path: Path) -> None:
    image = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), image)
    config = RefinerConfig(width=2)
    train([(image, None, 1.0)], tmp_path / "first", minutes=5, steps=1, batch_size=2, config=config, log_every=1)
    train([(image, None, 1.0)], tmp_path / "second", minutes=5, steps=1, batch_size=2, config=config,
          init=tmp_path / "first", deform=0.5, log_every=1)
    train([(image, None, 1.0)], tmp_path / "third", minutes=5, steps=1, batch_size=2, config=config,
          init=tmp_path / "second", log_every=1)
    card = (tmp_path / "third" / "MODEL_CARD.md").read_text()
    assert f"`{tmp_path / 'second'}`" in card and f"which started from `{tmp_path / 'first'}`" in card
    assert "50% of patches deformed" in card                        # the second run's setting, in its stage
    assert "of the patches are also rotated" not in card             # the third run itself did not deform
    assert "50% of the patches are also rotated" in (tmp_path / "second" / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="share of patches"):
        train([(image, None, 1.0)], tmp_path / "fourth", minutes=5, steps=1, config=config, deform=1.5)


def test_the_training_command_explains_its_options(capsys) -> None:
    from core.training.refiner import main

    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0 and "--deform" in capsys.readouterr().out


def test_intensity_remap_keeps_the_order_and_the_ends_and_moves_tissue_contrast() -> None:
    from core.training.refiner_patches import REMAP_SHIFT, intensity_remap

    unit = np.linspace(0.0, 1.0, 1001, dtype=np.float32)
    moved = []
    for seed in range(20):
        out = intensity_remap(np.random.default_rng(seed), unit)
        assert out.dtype == unit.dtype and out[0] == 0.0 and out[-1] == 1.0
        assert np.all(np.diff(out) >= 0)                               # tissues keep their order
        assert np.abs(out - unit).max() <= REMAP_SHIFT + 1e-6
        moved.append(np.abs(out - unit).max())
    assert max(moved) > REMAP_SHIFT / 2                                 # it does change the contrast


def test_remapped_patches_stay_in_model_range() -> None:
    image = np.full((48, 48, 48), -1.0, dtype=np.float32)
    brain = np.zeros(image.shape, dtype=bool)
    brain[4:44, 4:44, 4:44] = True
    image[brain] = np.linspace(-0.9, 0.9, int(brain.sum()), dtype=np.float32)
    source = Brain(image=image, brain=brain, centres=np.array([[24, 24, 24]]))
    rng = np.random.default_rng(1)
    for _ in range(3):
        _, _, truth = sample(rng, [source], np.array([1.0]), remap=1.0)
        assert np.all(np.abs(truth) <= 1.0) and (truth > -1.0).any()


@pytest.mark.parametrize("option, share, own, later", [
    ("remap", 0.4, "40% of the patches get a random tissue contrast", "40% with a random tissue contrast"),
    ("blur", 0.3, "30% of the patches are smoothed by a Gaussian of 0-1 voxels", "30% smoothed"),
    ("slabs", 0.3, "30% of the patches are seen through thick slices", "30% in thick slices"),
])
def test_the_card_names_an_augmentation_in_its_run_and_in_later_stages(tmp_path: Path, option, share, own,
                                                                      later) -> None:
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    config = RefinerConfig(width=2)
    train([(path, None, 1.0)], tmp_path / "run", minutes=5, steps=1, batch_size=2, config=config,
          log_every=1, **{option: share})
    assert own in (tmp_path / "run" / "MODEL_CARD.md").read_text()
    train([(path, None, 1.0)], tmp_path / "next", minutes=5, steps=1, batch_size=2, config=config,
          init=tmp_path / "run", log_every=1)
    assert later in (tmp_path / "next" / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="share of patches"):
        train([(path, None, 1.0)], tmp_path / "bad", minutes=5, steps=1, config=config, **{option: -0.1})


def test_a_run_adds_the_noise_it_is_given_and_its_card_and_later_stages_say_so(tmp_path: Path) -> None:
    image = np.full((40, 40, 40), -1.0, dtype=np.float32)
    brain = np.zeros(image.shape, dtype=bool)
    brain[4:36, 4:36, 4:36] = True
    image[brain] = 0.2
    source = Brain(image=image, brain=brain, centres=np.array([[20, 20, 20]]))
    spreads = {}
    for sd in (0.0, 0.006, 0.03):
        rng = np.random.default_rng(3)
        truths = [sample(rng, [source], np.array([1.0]), patch=24, noise_sd=sd)[2] for _ in range(20)]
        spreads[sd] = max(float(t[6:18, 6:18, 6:18].std()) for t in truths) / 2.0   # model range -> unit range
    assert spreads[0.0] < 1e-6 and 0.002 < spreads[0.006] <= 0.0065 and 0.012 < spreads[0.03] <= 0.033
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    config = RefinerConfig(width=2)
    train([(path, None, 1.0)], tmp_path / "run", minutes=5, steps=1, batch_size=2, config=config, log_every=1,
          noise_sd=0.006)
    assert "Gaussian noise in the brain\n(SD 0-0.006 of the" in (tmp_path / "run" / "MODEL_CARD.md").read_text()
    train([(path, None, 1.0)], tmp_path / "run", minutes=5, steps=2, batch_size=2, log_every=1, resume=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"]["noise_sd"] == 0.006
    train([(path, None, 1.0)], tmp_path / "next", minutes=5, steps=1, batch_size=2, config=config,
          init=tmp_path / "run", log_every=1)
    card = (tmp_path / "next" / "MODEL_CARD.md").read_text()
    assert "noise SD 0-0.006" in card and "Gaussian noise in the brain\n(SD 0-0.03 of the" in card
    with pytest.raises(ValueError, match="an SD of the intensity range"):
        train([(path, None, 1.0)], tmp_path / "bad", minutes=5, steps=1, config=config, noise_sd=-0.1)


def test_the_training_command_refuses_a_share_outside_0_to_1(capsys) -> None:
    from core.training.refiner import main

    for option in ("--deform", "--remap", "--blur", "--slabs"):
        with pytest.raises(SystemExit) as stop:
            main(["--data", "x.nii.gz", "--out", "unused", option, "1.5"])
        assert stop.value.code == 2 and "must be a share of patches from 0 to 1, not 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--data", "x.nii.gz", "--out", "unused", "--noise", "1.5"])
    assert stop.value.code == 2 and "must be an SD of the intensity range from 0 to 1, not 1.5" in capsys.readouterr().err



@pytest.mark.parametrize("option, value, says", [
    ("--threads", "0", "must be a number of threads from 1 to 1024, not 0"),
    ("--minutes", "-1", "must be a number of at least 0, not -1"),
    ("--steps", "0", "must be a whole number of at least 1, not 0"),
    ("--seed", "-3", "must be a whole number of at least 0, not -3"),
    ("--centre-depth", "-5", "not -5"),
])
def test_the_training_command_refuses_counts_and_times_out_of_range_in_one_sentence(option, value, says, capsys):
    """`--threads 0` ended in torch's traceback; the others were taken as given."""
    from core.training.refiner import main

    with pytest.raises(SystemExit) as stop:
        main(["--data", "x.nii.gz", "--out", "unused", option, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and "Traceback" not in err

def test_random_blur_smooths_each_axis_by_its_own_amount_and_keeps_the_mean() -> None:
    from core.training.refiner_patches import random_blur

    unit = np.random.default_rng(0).uniform(0.2, 0.8, size=(24, 24, 24)).astype(np.float32)
    rough = [np.abs(np.diff(unit, 2, axis=a)).mean() for a in range(3)]
    ratios = []
    for seed in range(8):
        out = random_blur(np.random.default_rng(seed), unit)
        assert out.dtype == unit.dtype and out.shape == unit.shape
        assert abs(float(out.mean()) - float(unit.mean())) < 1e-3      # smoothing, not a change of level
        assert out.min() >= unit.min() - 1e-6 and out.max() <= unit.max() + 1e-6
        ratios.append([np.abs(np.diff(out, 2, axis=a)).mean() / rough[a] for a in range(3)])
    ratios = np.array(ratios)
    assert ratios.max() <= 1.0 + 1e-6 and ratios.min() < 0.5             # never sharper; some axes much smoother
    assert np.ptp(ratios, axis=1).max() > 0.2                            # axes drawn separately (anisotropic)


def as_slabs(line: np.ndarray, thick: int, phase: int) -> np.ndarray:
    """`line` averaged in slabs of `thick` voxels starting `phase` voxels early, then interpolated between their
    centres (constant beyond the end ones): what a 1 mm resampling of a thick-slice scan shows."""
    edges = [0] + list(range(thick - phase if phase else thick, len(line), thick)) + [len(line)]
    centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    means = [line[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]
    return np.interp(np.arange(len(line)), centres, means)


def test_thick_slices_average_along_one_axis_and_interpolate_between_the_slab_centres() -> None:
    from core.training.refiner_patches import thick_slices

    line = np.random.default_rng(0).uniform(0.2, 0.8, size=30).astype(np.float32)
    rough = np.abs(np.diff(line, 2)).mean()
    thinned = set()
    for along in range(3):
        shape = [6, 6, 6]
        shape[along] = 30
        volume = np.broadcast_to(line.reshape([-1 if a == along else 1 for a in range(3)]), shape).copy()
        for seed in range(16):
            out = thick_slices(np.random.default_rng(seed), volume)
            assert out.dtype == volume.dtype and out.shape == volume.shape
            if np.allclose(out, volume, atol=1e-6):   # averaged across `along`: the volume is constant there
                continue
            thinned.add(along)
            profile = np.moveaxis(out, along, 0)[:, 0, 0].astype(np.float64)
            assert np.allclose(np.moveaxis(out, along, 0), profile[:, None, None], atol=1e-6)
            assert any(np.allclose(profile, as_slabs(line, thick, phase), atol=1e-5)
                       for thick in range(2, 6) for phase in range(thick))
            assert profile.min() >= line.min() - 1e-6 and profile.max() <= line.max() + 1e-6
            assert np.abs(np.diff(profile, 2)).mean() < 0.7 * rough
            assert abs(profile.mean() - line.mean()) < 0.05
    assert thinned == {0, 1, 2}                          # every axis is drawn


def test_patch_making_processes_give_the_batches_of_the_training_process(tmp_path: Path) -> None:
    from core.training.refiner_patches import batch_stream

    image = synthetic_brain((44, 48, 44))
    brain = image > 0
    source = Brain(image=np.where(brain, image / image.max() * 2 - 1, -1).astype(np.float32), brain=brain,
                   centres=np.array([[22, 24, 22], [21, 23, 22]]))
    args = ([source], np.array([1.0]), 2, 7, 3, 6)
    serial = list(batch_stream(*args, workers=0, deform=0.5, blur=0.5))
    ahead = list(batch_stream(*args, workers=2, deform=0.5, blur=0.5))
    assert len(serial) == len(ahead) == 3
    for one, other in zip(serial, ahead):
        for a, b in zip(one, other):
            assert torch.equal(a, b)
    assert not torch.equal(serial[0][2], serial[1][2])                  # each step draws its own patches


PATCH_PROCESSES_IGNORING_SIGTERM = """
import signal, sys
import numpy as np
sys.path.insert(0, "tests")
from conftest import synthetic_brain
from core.training.refiner_patches import Brain, batch_stream

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # as a launcher may leave it: spawned workers inherit it
    image = synthetic_brain((44, 48, 44))
    brain = image > 0
    source = Brain(image=np.where(brain, image / image.max() * 2 - 1, -1).astype(np.float32), brain=brain,
                   centres=np.array([[22, 24, 22]]))
    assert len(list(batch_stream([source], np.array([1.0]), 2, 7, 0, 3, workers=2))) == 3
    stream = batch_stream([source], np.array([1.0]), 2, 7, 0, 6, workers=2)
    next(stream)
    stream.close()   # an early stop: the pool terminates its workers
    print("done")
"""


def test_patch_making_processes_end_when_the_trainer_ignores_sigterm(tmp_path: Path) -> None:
    """A CI run hung for ever at the pool's exit: its workers had inherited an ignored SIGTERM, so terminate()
    could not end them (they waited for more tasks)."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "patches.py"
    script.write_text(PATCH_PROCESSES_IGNORING_SIGTERM)
    root = Path(__file__).resolve().parents[1]
    run = subprocess.Popen([sys.executable, str(script)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        out, err = run.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the patch-making pool did not end")
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)   # the script and its workers: never left behind
        except ProcessLookupError:
            pass
    assert run.returncode == 0 and out.strip() == "done", err[-2000:]


def test_a_run_with_patch_making_processes_says_so_on_its_card(tmp_path: Path) -> None:
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    train([(path, None, 1.0)], tmp_path / "run", minutes=5, steps=2, batch_size=2, config=RefinerConfig(width=2),
          log_every=1, workers=1)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"]["steps"] == 2
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert "thread, with 1 patch-making process (torch" in card


def test_a_run_keeps_its_starting_runs_width_and_refuses_another_in_one_sentence(tmp_path: Path, capsys) -> None:
    from core.training.refiner import main

    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    base = ["--data", str(path), "--steps", "1", "--batch-size", "2"]
    assert main(base + ["--out", str(tmp_path / "first"), "--width", "3"]) == 0
    assert main(base + ["--out", str(tmp_path / "second"), "--init", str(tmp_path / "first")]) == 0
    assert load_refiner(tmp_path / "second").config.width == 3                   # taken from --init
    assert main(base + ["--out", str(tmp_path / "third"), "--init", str(tmp_path / "first"), "--width", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'first'} holds a refiner of width 3 on a 2 mm grid, not width 2 on 2 mm; "
                   "leave out --width and --spacing (or start from it with a larger --width)."]
    assert not (tmp_path / "third").exists()
    assert main(base + ["--out", str(tmp_path / "first"), "--resume", "--steps", "2", "--width", "4"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'first'} holds a refiner of width 3 on a 2 mm grid, not width 4 on 2 mm; "
        "leave out --width and --spacing."]
    assert main(base + ["--out", str(tmp_path / "wide"), "--init", str(tmp_path / "first"), "--width", "4"]) == 0
    assert load_refiner(tmp_path / "wide").config.width == 4                     # a larger width widens the start


def test_a_widened_refiner_fills_exactly_like_its_source_and_its_new_channels_learn() -> None:
    torch.manual_seed(0)
    config = RefinerConfig(width=3, spacing_mm=1.0, mirror_inputs=True)
    narrow = Refiner3D(config)
    for parameter in narrow.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    wide = Refiner3D(RefinerConfig(width=5, spacing_mm=1.0, mirror_inputs=True))
    wide.load_state_dict(widened(narrow.state_dict(), config, 5))
    base, hole = torch.rand(1, 1, 20, 22, 18) * 2 - 1, (torch.rand(1, 1, 20, 22, 18) > 0.7).float()
    mirror = torch.randn(1, 2, 20, 22, 18)
    with torch.no_grad():
        for before, after in zip(narrow.parts(base, hole, mirror), wide.parts(base, hole, mirror)):
            assert torch.allclose(before, after, rtol=1e-4, atol=1e-4 * float(before.abs().max()))
    wide(base, hole, mirror).square().sum().backward()
    for name, parameter in wide.named_parameters():   # every new channel's own weights get a gradient
        if name.endswith("weight") and parameter.shape[0] > 1:
            assert float(parameter.grad[parameter.shape[0] * 3 // 5:].abs().sum()) > 0, name
    with pytest.raises(ValueError, match="never narrowed"):
        widened(wide.state_dict(), RefinerConfig(width=5, spacing_mm=1.0, mirror_inputs=True), 3)


@pytest.mark.parametrize("device, says", [
    ("gpu", "error: --device 'gpu' is not a device name; use auto, cpu, cuda, cuda:N or mps."),
    pytest.param("cuda", "error: --device 'cuda' is not available on this machine; use auto or cpu.",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_the_training_command_refuses_a_device_it_cannot_use_in_one_sentence(device, says, tmp_path, capsys) -> None:
    from core.training.refiner import main

    assert main(["--data", "x.nii.gz", "--out", str(tmp_path / "run"), "--device", device]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [says]
    assert not (tmp_path / "run").exists()


def test_the_card_gives_the_command_that_started_the_run_and_a_resume_keeps_it(tmp_path: Path) -> None:
    from core.training.refiner import main

    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    first = ["--data", str(path), "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "2", "--width", "2"]
    assert main(first) == 0
    started = f"Command: `python -m core.training.refiner --data {path} --out {tmp_path / 'run'} --steps 1"
    assert started in (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert main(["--data", str(path), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2",
                 "--resume"]) == 0
    card = (tmp_path / "run" / "MODEL_CARD.md").read_text()
    assert started in card and "Resumed with `python -m core.training.refiner --data" in card and "--resume`." in card
    train([(path, None, 1.0)], tmp_path / "api", minutes=5, steps=1, batch_size=2, config=RefinerConfig(width=2))
    assert "Command: not recorded" in (tmp_path / "api" / "MODEL_CARD.md").read_text()


def _cohort(root: Path, counts: dict[str, int]) -> None:
    """Cohort folders of tiny scans with brain masks (one subfolder per dataset)."""
    for dataset, count in counts.items():
        (root / dataset).mkdir(parents=True)
        for i in range(1, count + 1):
            image = synthetic_brain((30, 34, 30))
            nib.save(nib.Nifti1Image(image, np.diag([1.0, 1.33, 1.33, 1.0])), root / dataset / f"sub-{i:02d}_T1w.nii.gz")
            nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), np.diag([1.0, 1.33, 1.33, 1.0])),
                     root / dataset / f"sub-{i:02d}_brainmask.nii.gz")


def test_cohort_split_keeps_a_tenth_of_each_dataset_aside_and_never_trains_on_it(tmp_path: Path) -> None:
    from core.training.cohort import find_scans, split

    _cohort(tmp_path, {"big": 30, "small": 5})
    training, validation = split(find_scans(tmp_path))
    assert [(s.dataset, s.image.name) for s in validation] == [
        ("big", "sub-06_T1w.nii.gz"), ("big", "sub-16_T1w.nii.gz"), ("big", "sub-26_T1w.nii.gz"),
        ("small", "sub-02_T1w.nii.gz"), ("small", "sub-04_T1w.nii.gz")]
    assert len(training) == 30 and not {s.image for s in training} & {s.image for s in validation}
    assert all(s.brainmask.name == s.image.name.replace("T1w", "brainmask") for s in training + validation)


def test_cohort_scan_without_brain_mask_is_refused_in_one_sentence(tmp_path: Path) -> None:
    from core.training.cohort import find_scans

    _cohort(tmp_path, {"a": 2})
    (tmp_path / "a" / "sub-02_brainmask.nii.gz").unlink()
    with pytest.raises(InpaintError, match=r"sub-02_T1w.nii.gz has no brain mask beside it"):
        find_scans(tmp_path)


def test_trainer_takes_a_cohort_on_a_1mm_grid_and_records_its_validation_scans(tmp_path: Path) -> None:
    from core.training.refiner import main

    _cohort(tmp_path / "cohort", {"ds": 4})
    out = tmp_path / "run"
    assert main(["--cohort", str(tmp_path / "cohort"), "--spacing", "1.0", "--patch", "16", "--width", "2",
                 "--steps", "2", "--batch-size", "1", "--out", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["architecture"] == {"width": 2, "spacing_mm": 1.0}
    assert [Path(p).name for p in record["training"]["validation"]] == ["sub-02_T1w.nii.gz", "sub-04_T1w.nii.gz"]
    assert sorted(Path(p).name for p in record["training"]["data"]) == ["sub-01_T1w.nii.gz", "sub-03_T1w.nii.gz"]
    assert record["training"]["patch"] == 16


def test_holes_keep_their_size_in_millimetres_on_a_finer_grid() -> None:
    from core.training.refiner_patches import random_hole

    def mean_ml(size: int, scale: float, voxel_mm: float) -> float:
        rng = np.random.default_rng(3)
        brain = np.ones((size,) * 3, bool)
        return float(np.mean([random_hole(rng, brain, "box", scale).sum() for _ in range(40)])) * voxel_mm ** 3 / 1000

    coarse, fine = mean_ml(32, 1.0, 2.0), mean_ml(64, 2.0, 1.0)
    assert 0.7 < fine / coarse < 1.3


def test_patches_can_be_centred_deep_in_the_brain(tmp_path: Path) -> None:
    from core.training.refiner_patches import load_brain

    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([1.0, 1.0, 1.0, 1.0])), path)
    shallow, deep = load_brain(path, None, 1.0), load_brain(path, None, 1.0, centre_depth_mm=10.0)
    assert 0 < len(deep.centres) < len(shallow.centres)
    outside = ~ndimage.binary_erosion(deep.brain, iterations=10)
    assert not outside[tuple(deep.centres.T.astype(int))].any()


def _run_args(tmp_path: Path, out: str, *more: str) -> list[str]:
    """A tiny refiner run on a synthetic brain (written once), as on the command line."""
    path = tmp_path / "brain.nii.gz"
    if not path.exists():
        nib.save(nib.Nifti1Image(synthetic_brain((44, 48, 44)), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return ["--data", str(path), "--out", str(tmp_path / out), "--patch", "16", "--width", "2", "--batch-size", "2",
            "--log-every", "1", *more]


def test_the_trainer_refuses_to_overwrite_a_run_without_resume(tmp_path: Path, capsys) -> None:
    from core.training.refiner import main

    assert main(_run_args(tmp_path, "run", "--steps", "2")) == 0
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("loss.csv", "model.safetensors")}
    capsys.readouterr()
    assert main(_run_args(tmp_path, "run", "--steps", "2")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'run'} already holds a training run; pass --resume to continue it or choose another --out."]
    assert before == {name: (tmp_path / "run" / name).read_bytes() for name in before}
    (tmp_path / "empty").mkdir()
    assert main(_run_args(tmp_path, "empty", "--steps", "1")) == 0              # an empty folder is fine
    (tmp_path / "file").write_text("")
    assert main(_run_args(tmp_path, "file", "--steps", "1")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --out {tmp_path / 'file'} is a file, not a folder; choose a folder for the run.")


def test_a_resume_keeps_the_stored_options_refuses_others_and_continues_exactly(tmp_path: Path, capsys) -> None:
    from core.training.refiner import main

    options = ("--lr", "1e-3", "--seed", "3", "--deform", "0.5", "--loss", "lesion")
    assert main(_run_args(tmp_path, "straight", "--steps", "3", *options)) == 0
    assert main(_run_args(tmp_path, "run", "--steps", "3", "--minutes", "0", *options)) == 0   # stops at step 0
    for given, says in ((("--lr", "5e-4"), "trained with --lr 0.001, not 0.0005; leave out --lr to resume it"),
                        (("--seed", "4"), "trained with --seed 3, not 4"), (("--loss", "voxel"), "--loss lesion, not voxel"),
                        (("--deform", "0"), "--deform 0.5, not 0.0"), (("--data", "other.nii.gz"), "on other --data")):
        capsys.readouterr()
        assert main(_run_args(tmp_path, "run", "--resume", *options) + list(given)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "run"), "--resume", "--steps", "3", "--log-every", "2", "--workers", "1"]) == 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())["training"]
    assert (record["steps"], record["lr"], record["seed"], record["deform"], record["loss"]) == (3, 1e-3, 3, 0.5, "lesion")
    straight, resumed = (load_refiner(tmp_path / name).network.state_dict() for name in ("straight", "run"))
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)


@pytest.mark.parametrize("bad, says", [
    (["--data", "img@abc"], "argument --data: must be IMAGE[:BRAINMASK][@WEIGHT] with a positive number as the weight, "
                            "not 'img@abc'"),
    (["--data", "img@1@2"], "not 'img@1@2'"), (["--data", "img@0"], "not 'img@0'"), (["--data", "img@nan"], "not 'img@nan'"),
    (["--data", "img@inf"], "not 'img@inf'"), (["--data", "img@-1", "other@2"], "not 'img@-1'"),
    (["--data", "img", "--batch-size", "0"], "argument --batch-size: must be a number of patches from 1 to 4096, not 0"),
    (["--data", "img", "--lr", "-1"], "argument --lr: must be a number above 0, not -1"),
    (["--data", "img", "--lr", "nan"], "argument --lr: must be a finite number, not nan"),
    (["--data", "img", "--spacing", "0"], "argument --spacing: must be a grid spacing in mm from 0.25 to 8, not 0"),
])
def test_the_training_command_refuses_bad_numbers_in_one_sentence(bad, says, tmp_path: Path, capsys) -> None:
    from core.training.refiner import main

    with pytest.raises(SystemExit) as stop:
        main(bad + ["--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "run").exists()


class _Trap:
    """Unpickling it would leave a file behind: a checkpoint must never be unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _damage(run: Path, how: str) -> None:
    from safetensors.torch import load_file, save_file

    config, optimiser = run / "config.json", run / "optimizer.safetensors"
    record = json.loads(config.read_text())
    if how == "pickle":
        torch.save({"state": _Trap(run / "unpickled")}, optimiser)
    elif how == "missing":
        optimiser.unlink()
    elif how == "keys":
        state = load_file(str(optimiser))
        save_file({("x" + key if key.startswith("0.") else key): value for key, value in state.items()}, str(optimiser))
    elif how == "steps":
        record["training"]["steps"] = "x"
    elif how == "record":
        del record["training"]
    config.write_text(json.dumps(record))


@pytest.mark.parametrize("how, reason", [
    ("pickle", "optimizer.safetensors is not a safetensors file"), ("missing", "optimizer.safetensors is missing"),
    ("keys", "optimizer.safetensors does not hold Adam's state for its refiner"),
    ("steps", "config.json's training record has no whole number of steps"),
    ("record", "config.json holds no readable training record"),
])
def test_a_resume_refuses_a_damaged_checkpoint_in_one_sentence(how, reason, tmp_path: Path, capsys) -> None:
    from core.training.refiner import main

    assert main(_run_args(tmp_path, "run", "--steps", "1")) == 0
    _damage(tmp_path / "run", how)
    capsys.readouterr()
    assert main(_run_args(tmp_path, "run", "--steps", "2", "--resume")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'run'}'s checkpoint is damaged ({reason}); restore it or start a new run elsewhere."]
    assert not (tmp_path / "run" / "unpickled").exists()


def test_ctrl_c_says_which_checkpoint_was_kept_and_exits_130(tmp_path: Path, capsys, monkeypatch) -> None:
    import core.training.refiner as refiner

    calls = []
    original = refiner.hole_mse

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 4:   # two calls a step: Ctrl-C during step 3, after the checkpoint of step 2
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(refiner, "hole_mse", interrupted)
    try:
        code = refiner.main(_run_args(tmp_path, "run", "--steps", "5"))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended the trainer with a traceback")
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        f"interrupted: {tmp_path / 'run'} keeps its checkpoint of step 2 (--resume continues it)."]
    assert len((tmp_path / "run" / "loss.csv").read_text().splitlines()) == 2


def test_ctrl_c_waits_until_a_checkpoint_is_written_whole() -> None:
    import os
    import signal

    from core.training.refiner import _uninterrupted

    finished = False
    with pytest.raises(KeyboardInterrupt):
        with _uninterrupted():
            os.kill(os.getpid(), signal.SIGINT)
            finished = True
    assert finished
