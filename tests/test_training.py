"""Training loops on tiny nets: learning, checkpoints, exact resume, time budget, CLI, 2-process DDP."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import nibabel as nib
from safetensors.torch import load_file, save_file

from core.checkpoint import load_model
from core.training.command import main
from core.training.data import TrainingData
from core.training.distributed import Context, setup, teardown
from core.training.card import write_card
from core.training.trainer import STATE_JSON, Trainer, TrainSettings, describe_command, step_generators
from conftest import synthetic_brain
from test_augment import write_brain

CPU = Context(rank=0, world=1, device=torch.device("cpu"))
TINY = dict(size=24, base=6, width=2, latent=8, spacing=3.0, batch_size=4, checkpoint_every=2)


@pytest.fixture(scope="module")
def brain(tmp_path_factory) -> Path:
    return write_brain(tmp_path_factory.mktemp("data"))


def make_trainer(brain: Path, out: Path, ctx: Context = CPU, **overrides) -> Trainer:
    settings = TrainSettings(**{**TINY, **overrides})
    data = TrainingData.load([brain], settings.axis, settings.size, settings.spacing)
    return Trainer(settings, data, out, ctx)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}


def test_vae_loss_goes_down(brain, tmp_path):
    trainer = make_trainer(brain, tmp_path / "vae", kind="vae", width=4, steps=40, lr=3e-3, augment="none",
                           batch_size=8, checkpoint_every=100)
    mse: list[float] = []
    trainer.run(on_step=lambda step, losses: mse.append(losses["mse"]))
    assert len(mse) == 40
    assert np.mean(mse[-5:]) < 0.6 * np.mean(mse[:5])


def test_gan_discriminator_learns(brain, tmp_path):
    trainer = make_trainer(brain, tmp_path / "gan", kind="gan", steps=15, lr=2e-3, checkpoint_every=100)
    d_loss: list[float] = []
    trainer.run(on_step=lambda step, losses: d_loss.append(losses["d_loss"]))
    assert np.mean(d_loss[-3:]) < np.mean(d_loss[:3])


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_checkpoint_round_trip_and_outputs(brain, tmp_path, kind):
    out = tmp_path / kind
    trainer = make_trainer(brain, out, kind=kind, steps=3)
    trainer.run()
    model = load_model(out)
    assert set(model.networks) == set(trainer.nets)
    config = json.loads((out / "config.json").read_text())
    assert config["latent_prior"] == ("uniform" if kind == "gan" else "normal")
    assert config["training"]["steps"] == 3 and config["training"]["augmentation"]["group"] == "all"
    assert set(config["training"]["final_losses"]) == set(trainer.losses)
    z = torch.randn(5, TINY["latent"])
    for net in trainer.nets.values():
        net.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.decoder(z), trainer.nets["decoder"](z), rtol=0, atol=0)
        other = "discriminator" if kind == "gan" else "encoder"
        x = torch.rand(2, 1, 24, 24) * 2 - 1
        args = (x,) if kind == "gan" else (x, torch.ones_like(x))
        torch.testing.assert_close(model.networks[other](*args), trainer.nets[other](*args), rtol=0, atol=0)
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["step_000002.png", "step_000003.png"]
    rows = (out / "losses.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("step,time_s")


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_reproduces_uninterrupted_run(brain, tmp_path, kind):
    full = make_trainer(brain, tmp_path / "full", kind=kind, steps=5, seed=3)
    full.run()
    first = make_trainer(brain, tmp_path / "split", kind=kind, steps=2, seed=3)
    first.run()
    second = make_trainer(brain, tmp_path / "split", kind=kind, steps=5, seed=3)
    second.load()
    assert second.step == 2
    second.run()
    a, b = weights(full), weights(second)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = (tmp_path / "split" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5"]
    changed = make_trainer(brain, tmp_path / "other", kind=kind, steps=5, seed=4)
    changed.run()
    assert any(not torch.equal(a[k], v) for k, v in weights(changed).items())


def test_minutes_budget_stops_with_checkpoint(brain, tmp_path):
    trainer = make_trainer(brain, tmp_path / "budget", steps=1000, minutes=1e-6)
    trainer.run()
    assert trainer.step == 1
    assert json.loads((tmp_path / "budget" / STATE_JSON).read_text())["step"] == 1


def test_command_new_run_resume_and_errors(brain, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--kind", "vae", "--data", str(brain.parent), "--size", "24", "--spacing", "3", "--width", "2",
            "--latent", "8", "--batch-size", "2", "--steps", "2", "--out", str(out), "--threads", "1"]
    assert main(args) == 0
    assert load_model(out).arch.latent == 8
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args[:-6] + ["--steps", "3", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / STATE_JSON).read_text())["step"] == 3
    assert main(["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert main(["--data", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "x")]) == 2


def test_ranks_draw_different_data():
    a, _ = step_generators(0, 0, 7)
    b, _ = step_generators(0, 1, 7)
    assert a.integers(1 << 30) != b.integers(1 << 30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, brain: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = setup()
    try:
        _train_and_save(rank, ctx, brain, out)   # the trainer is gone before the group is left (`teardown`)
    finally:
        teardown(ctx)


def _train_and_save(rank: int, ctx: Context, brain: str, out: str) -> None:
    trainer = make_trainer(Path(brain), Path(out) / "model", ctx, kind="gan", steps=3)
    trainer.run()
    save_file({k: v.contiguous() for k, v in weights(trainer).items()}, str(Path(out) / f"rank{rank}.safetensors"))


def test_two_process_ddp_ends_with_identical_weights(brain, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(brain), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    for key in r0:
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=key)
    assert json.loads((tmp_path / "model" / STATE_JSON).read_text())["step"] == 3
    single = make_trainer(brain, tmp_path / "single", kind="gan", steps=3)
    single.run()
    assert any(not torch.equal(r0[k], v) for k, v in weights(single).items())  # both ranks' data were used


def test_model_card_from_record_keeps_held_out_section(brain, tmp_path):
    out = tmp_path / "card"
    make_trainer(brain, out, kind="vae", steps=1).run()
    card = write_card(out).read_text(encoding="utf-8")
    assert "# Model card: card" in card and "## Augmentation" in card and "steps: 1 of batch 4" in card
    assert f"Not measured yet: score it on brains it never saw with `inpaint bench --models {out}`." in card
    (out / "MODEL_CARD.md").write_text(card[:card.index("Not measured yet")] + "PSNR 30\n", encoding="utf-8")
    assert write_card(out).read_text(encoding="utf-8").endswith("PSNR 30\n")


def test_describe_command_spells_out_modules():
    assert describe_command(["/x/core/cli.py", "train", "--kind", "gan"]) == "python -m core.cli train --kind gan"
    assert describe_command(["/usr/bin/inpaint", "train"]) == "inpaint train"


def test_slice_training_takes_a_cohort_split_skull_stripped_with_its_masks(tmp_path: Path) -> None:
    from core.training.cohort import find_scans, split

    for i in range(1, 4):
        folder = tmp_path / "ds000011"
        folder.mkdir(exist_ok=True)
        image = synthetic_brain((40, 48, 36), seed=i)
        head = image + 30.0 * (image == 0)                       # "skull": nonzero outside the brain
        nib.save(nib.Nifti1Image(head, np.diag([2.0, 2.0, 2.0, 1.0])), folder / f"sub-0{i}_T1w.nii.gz")
        nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])),
                 folder / f"sub-0{i}_brainmask.nii.gz")
    data = TrainingData.load(None, "axial", 32, 2.0, cohorts=[tmp_path])
    training, _ = split(find_scans(tmp_path))
    assert [s.path for s in data.sources] == [s.image for s in training]
    assert all(s.brainmask is not None for s in data.sources)
    assert all(float(s.unit[:, 0, 0].max()) == 0.0 for s in data.sources)   # the skull is gone


def test_init_starts_from_a_models_weights_and_the_card_says_so(brain, tmp_path, capsys):
    first = tmp_path / "first"
    common = ["--kind", "vae", "--data", str(brain.parent), "--size", "24", "--spacing", "3", "--width", "2",
              "--latent", "8", "--batch-size", "2", "--threads", "1"]
    assert main(common + ["--steps", "2", "--out", str(first)]) == 0
    started = make_trainer(brain, tmp_path / "second", kind="vae", steps=1, init=str(first))
    before = load_model(first)
    for name, net in started.nets.items():   # before its first step the run holds the model's weights
        for key, value in net.state_dict().items():
            torch.testing.assert_close(value, before.networks[name].state_dict()[key], rtol=0, atol=0)
    started.run()
    config = json.loads((tmp_path / "second" / "config.json").read_text())
    assert config["training"]["init"]["sha256"] == before.checksum
    assert config["training"]["init"]["training"]["steps"] == 2
    assert f"It started from the weights of `{config['training']['init']['path']}`" in write_card(
        tmp_path / "second").read_text(encoding="utf-8")
    assert main(common[:-8] + ["--width", "4", "--latent", "8", "--size", "24", "--spacing", "3", "--steps", "1",
                               "--init", str(first), "--out", str(tmp_path / "third")]) == 2
    assert "--init needs the same model shape and grid" in capsys.readouterr().err


def test_a_shipped_model_has_half_precision_weights_that_load_as_float32(brain, tmp_path):
    from core.training.ship import ship

    run = tmp_path / "run"
    make_trainer(brain, run, kind="gan", steps=2).run()
    dest = ship(run, tmp_path / "shipped")
    stored = load_file(str(dest / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    assert (dest / "model.safetensors").stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    original, shipped = load_model(run), load_model(dest)
    assert all(p.dtype == torch.float32 for p in shipped.decoder.parameters())
    z = torch.rand(4, TINY["latent"], generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a, b = original.decoder(z), shipped.decoder(z)
    assert 0 < float((a - b).abs().max()) < 0.05   # rounded to float16, not retrained (outputs span [-1, 1])
    assert (dest / "MODEL_CARD.md").is_file() and (dest / "config.json").read_bytes() == (run / "config.json").read_bytes()


# ---- `inpaint train` refusals, damaged and half-written checkpoints, Ctrl+C, skull-on data -------------------------
TRAIN = ["train", "--kind", "vae", "--size", "24", "--spacing", "3", "--width", "2", "--latent", "8",
         "--batch-size", "2", "--threads", "1"]


def _inpaint(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `inpaint ARGV` (argparse's refusals included)."""
    from core.cli import main as inpaint

    capsys.readouterr()
    try:
        code = inpaint(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_sentence(err: str, *parts: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(part in err for part in parts), err


@pytest.fixture(scope="module")
def run2(brain, tmp_path_factory) -> Path:
    """A VAE run stopped at step 2 (checkpoints at 1 and 2); copy it before changing it."""
    out = tmp_path_factory.mktemp("run") / "run"
    from core.cli import main as inpaint

    assert inpaint(TRAIN + ["--data", str(brain), "--steps", "2", "--checkpoint-every", "1", "--out", str(out)]) == 0
    return out


def test_resume_refuses_other_settings_than_the_runs(run2, brain, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(run2, out)
    other = tmp_path / "other.nii.gz"
    shutil.copy(brain, other)
    code, err = _inpaint(["train", "--kind", "gan", "--lr", "0.01", "--seed", "5", "--data", str(other), "--resume",
                          "--out", str(out)], capsys)
    assert code == 2
    _one_sentence(err, "--kind vae", "--lr 0.001", "--seed 0", f"--data {brain}", "--steps, --minutes")
    assert json.loads((out / STATE_JSON).read_text())["step"] == 2
    # the run's own values, and those a resume may change, are taken
    code, err = _inpaint(TRAIN + ["--data", str(brain), "--lr", "0.001", "--seed", "0", "--steps", "3",
                                  "--checkpoint-every", "5", "--resume", "--out", str(out)], capsys)
    assert code == 0, err
    state = json.loads((out / STATE_JSON).read_text())
    assert state["step"] == 3 and state["settings"]["checkpoint_every"] == 5


@pytest.mark.parametrize("option", ["--lr nan", "--lr -1", "--threads -1", "--batch-size 0", "--spacing 0",
                                    "--spacing -6", "--spacing 100", "--kl -1", "--minutes -1", "--size 0",
                                    "--seed -1", "--steps 0"])
def test_bad_numbers_are_refused_in_one_sentence(option, tmp_path, capsys):
    name, value = option.split()
    code, err = _inpaint(TRAIN + [name, value, "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and not (tmp_path / "run").exists()
    _one_sentence(err, f"inpaint train: error: argument {name}: must be", f"not {value}")


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "run"):
        code, err = _inpaint(TRAIN + ["--steps", "1", "--out", str(out)], capsys)
        assert code == 2
        _one_sentence(err, f"{tmp_path / 'file'} is a file")


class _Bomb:
    """A pickle that leaves a file behind when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _damage(out: Path, how: str, marker: Path) -> None:
    import pickle

    name, change = how.split(":", 1)
    path = out / name
    if change == "pickle":
        path.write_bytes(pickle.dumps(_Bomb(marker)))
    elif change == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif change == "removed":
        path.unlink()
    elif change == "older":   # a config.json of an earlier step beside the state (a kill between renames)
        config = json.loads(path.read_text())
        config["training"]["steps"] -= 1
        path.write_text(json.dumps(config))
    elif change == "evil kind":
        state = json.loads(path.read_text())
        state["settings"]["kind"] = "evil"
        path.write_text(json.dumps(state))
    else:
        path.write_text(change)


@pytest.mark.parametrize("how", [
    "train_state.json:truncated", 'train_state.json:{"step": "abc"}', "train_state.json:[1, 2]",
    "train_state.json:evil kind", "model.safetensors:pickle", "model.safetensors:truncated", "model.safetensors:removed",
    "train_state.safetensors:pickle", "train_state.safetensors:truncated", "train_state.safetensors:removed",
    "config.json:older"])
def test_resume_of_a_damaged_checkpoint_is_refused_in_one_sentence(run2, tmp_path, capsys, how):
    out, marker = tmp_path / "run", tmp_path / "unpickled"
    shutil.copytree(run2, out)
    _damage(out, how, marker)
    code, err = _inpaint(["train", "--resume", "--steps", "3", "--threads", "1", "--out", str(out)], capsys)
    assert code == 2 and not marker.exists()
    _one_sentence(err, f"{out}'s checkpoint is damaged (", "restore it or start a new run in another folder.")


KILL_AT_SECOND_RENAME = """
import os, sys
from pathlib import Path
real = os.replace
def replace(src, dst):   # SIGKILL-like death once config.json of the step-2 checkpoint is placed in the run folder
    real(src, dst)
    placed = Path(src).parent.name.startswith(".inpaint-tmp-") and not Path(dst).parent.name.startswith(".inpaint-tmp-")
    if placed and Path(dst).name == "config.json" and '"steps": 2,' in Path(dst).read_text():
        os._exit(9)
os.replace = replace
from core.cli import main
main(sys.argv[1:])
"""


def test_a_kill_between_checkpoint_renames_is_completed_and_cleaned_on_resume(brain, tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = TRAIN + ["--data", str(brain), "--steps", "3", "--checkpoint-every", "1", "--out", str(out)]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_RENAME, *argv], cwd=repo, capture_output=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 9, done.stderr
    assert json.loads((out / STATE_JSON).read_text())["step"] == 1   # config.json is of step 2 already
    assert [p.name for p in out.iterdir() if p.name.endswith(".inpaint-journal")]
    stale = out / ".train_state.json.0123456789ab.tmp.json"
    stale.write_text("{")
    foreign = out / ".notes.txt.0123456789ab.tmp.txt"
    foreign.write_text("not ours")
    code, err = _inpaint(["train", "--resume", "--steps", "3", "--threads", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads((out / STATE_JSON).read_text())["step"] == 3
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [foreign.name]


def test_ctrl_c_says_which_checkpoint_is_kept(brain, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    step = Trainer.train_step

    def interrupted(self):
        if self.step == 3:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    code, err = _inpaint(TRAIN + ["--data", str(brain), "--steps", "5", "--checkpoint-every", "2", "--out", str(out)],
                         capsys)
    assert code == 130
    assert f"interrupted; the checkpoint of step 2 in {out} is kept; --resume continues it." in err
    assert "no output was written" not in err


def test_skull_on_training_data_gets_a_note(tmp_path, capsys):
    image = synthetic_brain((40, 48, 36))
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(image + 30.0 * (image == 0), affine), tmp_path / "head.nii.gz")
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "brain.nii.gz")
    code, err = _inpaint(TRAIN + ["--steps", "1", "--data", str(tmp_path / "head.nii.gz"), "--out", str(tmp_path / "a")],
                         capsys)
    assert code == 0
    _one_sentence(err.replace("\r", "\n").split("\n")[0], f"inpaint train: note: {tmp_path / 'head.nii.gz'} holds",
                  "skull-on")
    code, err = _inpaint(TRAIN + ["--steps", "1", "--data", str(tmp_path / "brain.nii.gz"), "--out", str(tmp_path / "b")],
                         capsys)
    assert code == 0 and "note:" not in err
