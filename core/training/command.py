"""`inpaint train`: train a GAN or VAE slice model (also runs under `torchrun --nproc_per_node N`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch

from ..argtypes import at_least, non_negative, number_range, positive
from ..atomic import check_writable, recover_commits
from ..checkpoint import SPACING_RANGE_MM
from ..errors import EXIT_INTERRUPTED, InpaintError
from ..networks import LIMITS
from ..normalize import MAX_BRAIN_ML
from ..search import SEED_MAX
from .augment import GROUPS
from .cohort import split_text
from .data import TrainingData
from .distributed import setup, teardown
from .trainer import (STATE_JSON, Trainer, TrainSettings, clean_run_folder, damaged, describe_command,
                      read_state)

CHOICES: dict[str, tuple] = {"kind": ("gan", "vae"), "kernel": (3, 7), "axis": ("axial", "coronal", "sagittal"),
                             "augment": GROUPS}
RESUMABLE = ("steps", "minutes", "checkpoint_every")   # settings a --resume may change (and --threads)
NUMBERS: dict[str, Callable[[str], Any]] = {
    **{name: number_range(*LIMITS[name]) for name in ("size", "latent", "width", "base")},
    "spacing": number_range(*SPACING_RANGE_MM, "a pixel size in mm "), "steps": at_least(1), "batch_size": at_least(1),
    "checkpoint_every": at_least(1), "lr": positive, "kl": non_negative, "minutes": positive,
    "seed": number_range(0, SEED_MAX)}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command to the `inpaint` parser."""
    p = subparsers.add_parser(
        "train", help="train a GAN or VAE model on brain slices",
        description="Train a slice model on brain-extracted healthy T1 images (default: the bundled MNI152 "
                    "template with tissue-map contrast synthesis). The output folder is a model folder "
                    "usable with 'inpaint fill --model'.")
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options; the run's settings default to None, so that a --resume sees which were given."""
    d = TrainSettings()
    p.add_argument("--kind", choices=CHOICES["kind"], help=f"model kind (default: {d.kind})")
    p.add_argument("--kernel", type=int, choices=CHOICES["kernel"], help=f"convolution kernel size (default: {d.kernel})")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="NIfTI files or folders of them (brain-extracted healthy T1); in folders, files named as "
                        "masks or label maps (_brainmask, _mask, _roi, _seg, _dseg, _probseg, _label, _lesion, "
                        "_label-) are left out, and a *_T1w scan with a *_brainmask beside it is skull-stripped with "
                        "it; gm.nii.gz/wm.nii.gz beside an image enable tissue contrast synthesis (default: bundled "
                        "MNI152 template)")
    p.add_argument("--cohort", nargs="+", metavar="FOLDER",
                   help="cohort folders of *_T1w scans with their *_brainmask (one subfolder per dataset): their "
                        "training split is added, skull-stripped with the masks; a tenth of each dataset's scans "
                        "(at least 2, never all) is kept aside for validation, and the run says how many")
    p.add_argument("--axis", choices=CHOICES["axis"], help=f"slice plane (default: {d.axis})")
    p.add_argument("--size", type=NUMBERS["size"], help=f"model grid size in pixels (default: {d.size})")
    p.add_argument("--spacing", type=NUMBERS["spacing"], help=f"model pixel size in mm (default: {d.spacing})")
    p.add_argument("--latent", type=NUMBERS["latent"], help=f"latent size (default: {d.latent})")
    p.add_argument("--width", type=NUMBERS["width"], help=f"network width (default: {d.width})")
    p.add_argument("--base", type=NUMBERS["base"], help=f"decoder start resolution (default: {d.base})")
    p.add_argument("--steps", type=NUMBERS["steps"], help=f"optimisation steps (default: {d.steps})")
    p.add_argument("--minutes", type=NUMBERS["minutes"],
                   help="wall-clock budget; stops cleanly with a final checkpoint")
    p.add_argument("--batch-size", type=NUMBERS["batch_size"], help=f"slices per step and process (default: {d.batch_size})")
    p.add_argument("--lr", type=NUMBERS["lr"], help="Adam learning rate (default: 2e-4 GAN, 1e-3 VAE)")
    p.add_argument("--kl", type=NUMBERS["kl"], help=f"VAE KL weight: loss = MSE + kl * KL / pixels (default: {d.kl})")
    p.add_argument("--augment", choices=CHOICES["augment"], help=f"augmentation groups (default: {d.augment})")
    p.add_argument("--seed", type=NUMBERS["seed"], help=f"random seed; a CPU run repeats exactly (default: {d.seed})")
    p.add_argument("--out", type=Path, help="output model folder (default: runs/<kind>_k<kernel>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped (only --steps, --minutes, --checkpoint-every "
                        "and --threads may differ from the run's)")
    p.add_argument("--init", metavar="MODEL",
                   help="start from this model folder's weights (same architecture and grid; fresh optimisers), "
                        "e.g. to retrain a shipped model on new data")
    p.add_argument("--checkpoint-every", type=NUMBERS["checkpoint_every"],
                   help=f"steps between checkpoints (default: {d.checkpoint_every})")
    p.add_argument("--threads", type=number_range(0, 1024), help="CPU threads for torch (default 0: torch's choice)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, paths resolved as the run stores them."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainSettings) if getattr(args, f.name, None) is not None}
    for name in ("data", "cohort"):
        if name in given:
            given[name] = [str(Path(p).resolve()) for p in given[name]]
    if "init" in given:
        given["init"] = str(Path(given["init"]))
    return given


def _stored_value(name: str, value: Any) -> Any:
    """One stored setting, checked like its option (ValueError or ArgumentTypeError when it is not valid)."""
    if value is None and name in ("lr", "minutes", "init"):
        return None
    if name in NUMBERS:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(name)
        return NUMBERS[name](str(value))
    valid = {"init": isinstance(value, str),
             "data": isinstance(value, list) and all(isinstance(v, str) for v in value)}
    valid["cohort"] = valid["data"]
    if not valid.get(name, value in CHOICES.get(name, ())):
        raise ValueError(name)
    return value


def _stored_settings(out: Path, stored: dict[str, Any]) -> TrainSettings:
    """A run's stored settings, checked like the options (InpaintError naming the damaged run)."""
    values = {}
    for name in (f.name for f in fields(TrainSettings) if f.name in stored):
        try:
            values[name] = _stored_value(name, stored[name])
        except (ValueError, argparse.ArgumentTypeError):
            raise damaged(out, f"{STATE_JSON} has settings.{name} {stored[name]!r}") from None
    try:
        settings = TrainSettings(**values)
        settings.arch
    except ValueError as exc:
        raise damaged(out, f"{STATE_JSON} has an invalid model shape: {exc}") from None
    return settings


def settings_from_args(args: argparse.Namespace, out: Path) -> TrainSettings:
    """New-run settings from the arguments, or the stored ones for --resume: any other setting given than the
    run's is refused, except those of RESUMABLE, which the given values replace."""
    given = _given(args)
    if args.resume:
        if not (out / STATE_JSON).is_file():
            raise InpaintError(f"{out} holds no training state ({STATE_JSON}): run without --resume to start one.")
        settings = _stored_settings(out, read_state(out)["settings"])
        differ = []
        for name, value in given.items():
            stored = settings.learning_rate if name == "lr" else getattr(settings, name)
            if name == "init" and stored is not None:
                same = Path(value).resolve() == Path(stored).resolve()
            else:
                same = value == stored
            if name in RESUMABLE:
                setattr(settings, name, value)
            elif not same:
                shown = " ".join(stored) if isinstance(stored, list) else stored
                differ.append(f"{_flag(name)} {'(none)' if stored in (None, []) else shown}")
        if differ:
            raise InpaintError(f"{out} was trained with {', '.join(differ)}, not the values given; --resume continues "
                               "a run unchanged (only --steps, --minutes, --checkpoint-every and --threads may "
                               "change), so drop those options or start a new run in another --out.")
        return settings
    if (out / STATE_JSON).exists():
        raise InpaintError(f"{out} already holds a training run: pass --resume to continue it or choose another --out.")
    settings = TrainSettings(**given)
    try:
        settings.arch
    except ValueError as exc:
        raise InpaintError(f"invalid model shape: {exc}.") from None
    return settings


def _check_out(out: Path) -> None:
    """Refuse an --out that is (or lies inside) a file, or that cannot be written (nothing is created)."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise InpaintError(f"--out {out} cannot be a run folder because {existing} is a file; give a new folder "
                           "or the folder of a run.")
    try:
        check_writable(existing)
    except OSError as exc:
        raise InpaintError(f"--out {out} is not writable ({existing}: {exc.strerror or exc}); choose a folder you "
                           "may write or change its permissions.") from None


def _interrupted(out: Path) -> str:
    """What a Ctrl+C left: the last checkpoint, if any."""
    try:
        step = read_state(out)["step"]
    except InpaintError:
        return f"inpaint train: interrupted before the first checkpoint; {out} holds no run to resume."
    return f"inpaint train: interrupted; the checkpoint of step {step} in {out} is kept; --resume continues it."


def run(args: argparse.Namespace) -> int:
    """Train (or resume) a model; returns the exit status."""
    if args.threads:
        torch.set_num_threads(args.threads)
    d = TrainSettings()
    out = args.out or Path("runs") / f"{args.kind or d.kind}_k{args.kernel or d.kernel}"
    _check_out(out)
    recover_commits(out)   # first complete a checkpoint a killed run left half placed
    settings = settings_from_args(args, out)
    clean_run_folder(out)   # the folder is this run's now
    ctx = setup()
    try:
        if ctx.main:
            for folder in settings.cohort:
                print(f"inpaint train: --cohort {folder}: {split_text(Path(folder))}", file=sys.stderr)
        data = TrainingData.load(settings.data or None, settings.axis, settings.size, settings.spacing,
                                 settings.cohort)
        if ctx.main:
            if data.skipped:
                shown = ", ".join(f.name for f in data.skipped[:3]) + (", ..." if len(data.skipped) > 3 else "")
                print(f"inpaint train: note: {len(data.skipped)} files in the --data folders are named as masks or "
                      f"label maps and were left out as training images ({shown}); a *_T1w scan with a *_brainmask "
                      "beside it is skull-stripped with it.", file=sys.stderr)
            for src in data.sources:
                if src.brainmask is None and src.brain_ml > MAX_BRAIN_ML:
                    print(f"inpaint train: note: {src.path} holds {src.brain_ml / 1000:.1f} l of tissue, more than "
                          "a brain: it looks skull-on, and the models are meant for brain-extracted images; train "
                          "on a skull-stripped image (or a --cohort with brain masks).", file=sys.stderr)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InpaintError(f"--out {out} cannot be created ({exc.strerror}); choose a folder you may write.") from None
        trainer = Trainer(settings, data, out, ctx, command=describe_command(), threads=torch.get_num_threads())
        if args.resume:
            trainer.load()
        trainer.run()
        step, elapsed = trainer.step, trainer.elapsed
        del trainer   # its DistributedDataParallel modules go before the process group (`teardown`)
    except KeyboardInterrupt:
        if ctx.main:
            print(_interrupted(out), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        teardown(ctx)
    if ctx.main:
        print(f"model written to {out} after {step} steps ({elapsed / 60:.1f} min)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m core.training.command ...`: the same as `inpaint train ...`."""
    from ..cli import main as inpaint

    return inpaint(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
