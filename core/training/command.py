"""`inpaint train`: train a GAN or VAE slice model (also runs under `torchrun --nproc_per_node N`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ..errors import InpaintError
from .augment import GROUPS
from .data import TrainingData
from .distributed import setup, teardown
from .trainer import STATE_JSON, Trainer, TrainSettings, describe_command


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
    d = TrainSettings()
    p.add_argument("--kind", choices=("gan", "vae"), default=d.kind, help="model kind (default: %(default)s)")
    p.add_argument("--kernel", type=int, choices=(3, 7), default=d.kernel, help="convolution kernel size")
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="NIfTI files or folders of them (brain-extracted healthy T1); gm.nii.gz/wm.nii.gz "
                        "beside an image enable tissue contrast synthesis (default: bundled MNI152 template)")
    p.add_argument("--cohort", nargs="+", metavar="FOLDER",
                   help="cohort folders of *_T1w scans with their *_brainmask (one subfolder per dataset): their "
                        "training split (core.training.cohort keeps a tenth of each dataset aside) is added, "
                        "skull-stripped with the masks")
    p.add_argument("--axis", choices=("axial", "coronal", "sagittal"), default=d.axis, help="slice plane")
    p.add_argument("--size", type=int, default=d.size, help="model grid size in pixels (default: %(default)s)")
    p.add_argument("--spacing", type=float, default=d.spacing, help="model pixel size in mm (default: %(default)s)")
    p.add_argument("--latent", type=int, default=d.latent, help="latent size (default: %(default)s)")
    p.add_argument("--width", type=int, default=d.width, help="network width (default: %(default)s)")
    p.add_argument("--base", type=int, default=d.base, help="decoder start resolution (default: %(default)s)")
    p.add_argument("--steps", type=int, help=f"optimisation steps (default: {d.steps})")
    p.add_argument("--minutes", type=float, help="wall-clock budget; stops cleanly with a final checkpoint")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="slices per step and process")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 2e-4 GAN, 1e-3 VAE)")
    p.add_argument("--kl", type=float, default=d.kl,
                   help="VAE KL weight: loss = MSE + kl * KL / pixels (default: %(default)s)")
    p.add_argument("--augment", choices=GROUPS, default=d.augment, help="augmentation groups (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed; a CPU run repeats exactly")
    p.add_argument("--out", type=Path, help="output model folder (default: runs/<kind>_k<kernel>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--init", metavar="MODEL",
                   help="start from this model folder's weights (same architecture and grid; fresh optimisers), "
                        "e.g. to retrain a shipped model on new data")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--threads", type=int, help="CPU threads for torch")


def settings_from_args(args: argparse.Namespace, out: Path) -> TrainSettings:
    """New-run settings from the arguments, or the stored ones for --resume (steps/minutes may change)."""
    state_file = out / STATE_JSON
    if args.resume:
        if not state_file.is_file():
            raise InpaintError(f"{out} holds no training state ({STATE_JSON}): run without --resume to start one.")
        stored = json.loads(state_file.read_text(encoding="utf-8"))["settings"]
        settings = TrainSettings(**{f.name: stored[f.name] for f in fields(TrainSettings) if f.name in stored})
        if args.steps is not None:
            settings.steps = args.steps
        if args.minutes is not None:
            settings.minutes = args.minutes
        return settings
    if state_file.exists():
        raise InpaintError(f"{out} already holds a training run: pass --resume to continue it or choose another --out.")
    values = {f.name: getattr(args, f.name) for f in fields(TrainSettings) if getattr(args, f.name, None) is not None}
    values["data"] = [str(Path(p).resolve()) for p in (args.data or [])]
    values["cohort"] = [str(Path(p).resolve()) for p in (args.cohort or [])]
    if args.init:
        values["init"] = str(Path(args.init))
    settings = TrainSettings(**values)
    for name in ("steps", "batch_size", "checkpoint_every", "size", "latent", "width"):
        if getattr(settings, name) < 1:
            raise InpaintError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(settings, name)}.")
    try:
        settings.arch
    except ValueError as exc:
        raise InpaintError(f"invalid model shape: {exc}.") from None
    return settings


def run(args: argparse.Namespace) -> int:
    """Train (or resume) a model; returns the exit status."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / f"{args.kind}_k{args.kernel}"
    settings = settings_from_args(args, out)
    ctx = setup()
    try:
        data = TrainingData.load(settings.data or None, settings.axis, settings.size, settings.spacing,
                                 settings.cohort)
        trainer = Trainer(settings, data, out, ctx, command=describe_command(), threads=torch.get_num_threads())
        if args.resume:
            trainer.load()
        trainer.run()
        step, elapsed = trainer.step, trainer.elapsed
        del trainer   # its DistributedDataParallel modules go before the process group (`teardown`)
    finally:
        teardown(ctx)
    if ctx.main:
        print(f"model written to {out} after {step} steps ({elapsed / 60:.1f} min)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inpaint train")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except InpaintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
