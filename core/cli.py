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
    from .fill import FillSettings, fill_volume
    from .progress import ProgressBar
    from .registry import resolve_model
    from .sidecar import build_sidecar
    from .volume import (check_outputs, dilate_mask, load_mask, load_volume, on_image_grid, save_volume,
                         sidecar_path)

    settings = FillSettings(iterations=args.iterations, restarts=args.restarts, lr=args.lr, lam=args.lam,
                            window=args.window, prior=not args.no_prior, weighting=not args.no_weighting,
                            blend=not args.no_blend, encoder_start=not args.no_encoder_start, axis=args.axis,
                            seed=args.seed, device=args.device, method=args.method)
    inputs = [args.image, args.mask, args.brainmask, args.reference]
    for path in inputs:
        if path is not None and not path.exists():
            raise InpaintError(f"{path} does not exist; check the path.")
    check_outputs(args.output, inputs=inputs, force=args.force)  # before reading anything large
    image = load_volume(args.image)
    check_outputs(args.output, inputs=inputs, force=args.force, like=image, keep_dtype=args.keep_dtype)
    hole = load_mask(args.mask, image)
    if args.dilate:
        hole = dilate_mask(hole, args.dilate)
    brain = load_mask(args.brainmask, image, kind="brain") if args.brainmask else None
    reference = None
    if args.reference:
        reference = on_image_grid(load_volume(args.reference), image, "reference")
    model = resolve_model(args.model)
    nonfinite = _check_image_content(args, image.data, hole, brain)
    bar = None if args.quiet else ProgressBar("fill")
    try:
        result = fill_volume(image.data, image.affine, hole, model, settings, brain=brain,
                             progress=bar.report if bar else None)
    finally:
        if bar:
            bar.close()
    metrics = _metrics(result, reference, image) if reference is not None else None
    record = build_sidecar(result, model, image_path=args.image, mask_path=args.mask, output_path=args.output,
                           dilate=args.dilate, brainmask_path=args.brainmask, keep_dtype=args.keep_dtype,
                           metrics=metrics, reference_path=args.reference)
    out = save_volume(args.output, result.filled, image, keep_dtype=args.keep_dtype, force=args.force,
                      changed=result.hole, sidecar=record, inputs=inputs)
    if nonfinite:
        print(f"inpaint: note: {nonfinite} voxels of {args.image} are NaN or infinite; the fill treated them as "
              "background (0) and wrote them back unchanged (recorded in the sidecar).", file=sys.stderr)
    if not args.quiet:
        print(f"filled {int(hole.sum())} voxels in {len(result.slices)} {result.axis} slices in "
              f"{result.seconds:.1f} s on {result.device}; wrote {out} and {sidecar_path(out)}", file=sys.stderr)
        if metrics:
            print("metrics vs reference: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None),
                  file=sys.stderr)
    return 0


def _check_image_content(args: argparse.Namespace, data, hole, brain) -> int:
    """Count the image's non-finite known voxels and make sure known brain tissue is left, naming the files."""
    import numpy as np

    from .inputs import check_known_brain

    finite = np.isfinite(data)
    nonfinite = 0
    clean = data
    if not finite.all():
        nonfinite = int(np.count_nonzero(~finite & ~hole))
        clean = np.where(finite, data, np.float32(0))
    del finite
    dilated = f" (dilated by {args.dilate} voxels)" if args.dilate else ""
    check_known_brain(clean, hole, brain, image_name=f"the image {args.image}",
                      mask_name=f"the mask {args.mask}{dilated}", brain_name=f"the brain mask {args.brainmask}")
    return nonfinite


def _metrics(result, reference, image) -> dict[str, float | None]:
    import numpy as np

    from .metrics import hole_metrics, slice_metrics
    from .modelspace import Reorientation

    voided = np.where(result.hole, np.float32(0), image.data)
    values = dict(hole_metrics(result.filled, reference, result.hole, voided))
    reo = Reorientation.of(image.affine, image.data.shape)
    values.update(slice_metrics(reo.apply(result.filled), reo.apply(reference), reo.apply(result.hole),
                                reo.apply(voided), result.axis))
    return {k: float(v) if np.isfinite(v) else None for k, v in values.items()}


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
