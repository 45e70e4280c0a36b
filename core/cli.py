"""The `inpaint` command: fill, models, train, bench."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import InpaintError


class _Parser(argparse.ArgumentParser):
    """argparse with one-sentence errors (no usage block), exit status 2 like every user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; run '{self.prog} --help' for the options.\n")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _int_range(low: int, high: int):
    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text}")
        return value
    return parse


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, not {text}")
    return value


def _odd_window(text: str) -> int:
    value = _whole(text)
    if value < 1 or value % 2 == 0 or value > 255:
        raise argparse.ArgumentTypeError(f"must be an odd number of pixels such as 3 or 7, not {text}")
    return value


def _learning_rate(text: str) -> float:
    from .search import LR_MAX

    value = _real(text)
    if not 0 < value <= LR_MAX:
        raise argparse.ArgumentTypeError(f"must be greater than 0 and at most {LR_MAX:g}, not {text}")
    return value


def _prior_weight(text: str) -> float:
    from .search import LAMBDA_MAX

    value = _real(text)
    if not 0 <= value <= LAMBDA_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to {LAMBDA_MAX:g}, not {text}")
    return value


def _add_fill(sub: argparse._SubParsersAction) -> None:
    from .fill import METHODS, FillSettings
    from .search import LIMITS, SEED_MAX

    d = FillSettings()
    p = sub.add_parser("fill", help="fill the lesion of a brain MRI volume",
                       description="Fill the voxels of MASK in IMAGE with a generative model and Poisson blending. "
                                   "IMAGE should be brain-extracted (or pass --brainmask), like the training data.")
    p.add_argument("image", type=Path, help="brain MRI volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder)")
    p.add_argument("mask", type=Path, help="lesion mask on the same grid; nonzero voxels are filled")
    p.add_argument("-o", "--output", type=Path, required=True, help="output volume (e.g. out.nii.gz)")
    p.add_argument("--method", choices=list(METHODS), default=d.method,
                   help="; ".join(f"{k}: {v}" for k, v in METHODS.items()) + f" (default {d.method})")
    p.add_argument("--model", default=None,
                   help="shipped slice model name or checkpoint path for slices2d/poisson3d (default: see 'inpaint models')")
    p.add_argument("--axis", choices=["axial", "coronal", "sagittal"], default=None,
                   help="plane of the slices to fill (default: the model's plane)")
    p.add_argument("--iterations", type=_int_range(*LIMITS["iterations"]), default=d.iterations, help=f"Adam steps on z (default {d.iterations})")
    p.add_argument("--restarts", type=_int_range(*LIMITS["restarts"]), default=d.restarts, help=f"candidates per slice (default {d.restarts})")
    p.add_argument("--lr", type=_learning_rate, default=d.lr, help=f"Adam learning rate on z (default {d.lr})")
    p.add_argument("--lambda", dest="lam", type=_prior_weight, default=d.lam,
                   help=f"weight of the prior loss (default {d.lam})")
    p.add_argument("--window", type=_odd_window, default=d.window, help=f"context-weight window (default {d.window})")
    p.add_argument("--dilate", type=_int_range(0, 100), default=0,
                   help="dilate the mask by N voxels in 3D first")
    p.add_argument("--brainmask", type=Path, default=None, help="brain mask on the image grid (default: estimated)")
    p.add_argument("--seed", type=_int_range(0, SEED_MAX), default=d.seed, help="random seed (same seed on CPU: same output)")
    p.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--no-prior", action="store_true", help="ablation: context loss only")
    p.add_argument("--no-weighting", action="store_true", help="ablation: binary mask instead of context weights")
    p.add_argument("--no-blend", action="store_true", help="ablation: paste G(z) into the hole without Poisson blending")
    p.add_argument("--no-encoder-start", action="store_true", help="VAE: start every restart at random")
    p.add_argument("--keep-dtype", action="store_true", help="write the input's data type (rounded and clipped)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output and its sidecar (never an input)")
    p.add_argument("--reference", type=Path, default=None, help="ground truth on the same grid: record metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_fill)


def _run_fill(args: argparse.Namespace) -> int:
    """Check every input and target first, fill, then write the volume and its sidecar together (both or neither)."""
    from .fill import FillSettings
    from .fill_file import fill_file
    from .progress import ProgressBar

    settings = FillSettings(iterations=args.iterations, restarts=args.restarts, lr=args.lr, lam=args.lam,
                            window=args.window, prior=not args.no_prior, weighting=not args.no_weighting,
                            blend=not args.no_blend, encoder_start=not args.no_encoder_start, axis=args.axis,
                            seed=args.seed, device=args.device, method=args.method)
    bar = None if args.quiet else ProgressBar("fill")
    try:
        done = fill_file(args.image, args.mask, args.output, settings, model=args.model, brainmask=args.brainmask,
                         dilate=args.dilate, reference=args.reference, keep_dtype=args.keep_dtype, force=args.force,
                         progress=bar.report if bar else None)
    finally:
        if bar:
            bar.close()
    if done.nonfinite_voxels:
        print(f"inpaint: note: {done.nonfinite_voxels} voxels of {args.image} are NaN or infinite; the fill treated "
              "them as background (0) and wrote them back unchanged (recorded in the sidecar).", file=sys.stderr)
    if not args.quiet:
        print(f"filled {done.hole_voxels} voxels in {done.slices} {done.axis} slices in "
              f"{done.seconds:.1f} s on {done.device}; wrote {done.output} and {done.sidecar}", file=sys.stderr)
        if done.metrics:
            print("metrics vs reference: " + ", ".join(f"{k} {v:.4f}" for k, v in done.metrics.items()
                                                       if v is not None), file=sys.stderr)
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from .fill import FillSettings
    from .refine3d import SHIPPED, default_refiner
    from .registry import MODELS_DIR, default_model_name, list_models

    method = FillSettings().method
    print(f"default fill method: {method}")
    if SHIPPED.is_dir():
        refiner = default_refiner()
        print(f"3D refiner (refine3d): {refiner.path} (sha256 {refiner.checksum[:12]}...)")
    models = list_models()
    if not models:
        print(f"no shipped model in {MODELS_DIR}; pass --model PATH to a checkpoint folder")
        return 0
    default = default_model_name()
    print("slice models (slices2d, poisson3d):")
    print(f"{'name':<10} {'kind':<5} {'kernel':>6} {'input':>9} {'spacing':>8} {'plane':<9} source")
    for m in models:
        mark = "  (default)" if m.name == default else ""
        print(f"{m.name:<10} {m.kind:<5} {m.kernel:>6} {m.size:>4}x{m.size:<4} {m.spacing:>6.1f}mm {m.axis:<9} "
              f"{m.path}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inpaint", description="Fill lesions in brain MRI with deep generative models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fill(sub)
    _add_models(sub)
    from .training.command import register as register_train
    from .bench.command import register as register_bench

    register_train(sub)
    register_bench(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `inpaint`; user errors print one sentence and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InpaintError as exc:
        print(f"inpaint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inpaint: interrupted; no output was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
