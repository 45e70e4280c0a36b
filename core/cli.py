"""The `inpaint` command: fill, models, train, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from .errors import InpaintError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, not {text}")
    return value


def _odd_window(text: str) -> int:
    value = int(text)
    if value < 1 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be an odd number of pixels such as 3 or 7, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _add_fill(sub: argparse._SubParsersAction) -> None:
    from .fill import FillSettings

    d = FillSettings()
    p = sub.add_parser("fill", help="fill the lesion of a brain MRI volume",
                       description="Fill the voxels of MASK in IMAGE with a generative model and Poisson blending. "
                                   "IMAGE should be brain-extracted (or pass --brainmask), like the training data.")
    p.add_argument("image", type=Path, help="brain MRI volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder)")
    p.add_argument("mask", type=Path, help="lesion mask on the same grid; nonzero voxels are filled")
    p.add_argument("-o", "--output", type=Path, required=True, help="output volume (e.g. out.nii.gz)")
    p.add_argument("--model", default=None, help="shipped model name or checkpoint path (default: see 'inpaint models')")
    p.add_argument("--axis", choices=["axial", "coronal", "sagittal"], default=None,
                   help="plane of the slices to fill (default: the model's plane)")
    p.add_argument("--iterations", type=_positive_int, default=d.iterations, help=f"Adam steps on z (default {d.iterations})")
    p.add_argument("--restarts", type=_positive_int, default=d.restarts, help=f"candidates per slice (default {d.restarts})")
    p.add_argument("--lr", type=_positive_float, default=d.lr, help=f"Adam learning rate on z (default {d.lr})")
    p.add_argument("--lambda", dest="lam", type=_non_negative_float, default=d.lam,
                   help=f"weight of the prior loss (default {d.lam})")
    p.add_argument("--window", type=_odd_window, default=d.window, help=f"context-weight window (default {d.window})")
    p.add_argument("--dilate", type=_non_negative_int, default=0, help="dilate the mask by N voxels in 3D first")
    p.add_argument("--brainmask", type=Path, default=None, help="brain mask on the image grid (default: estimated)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (same seed on CPU: same output)")
    p.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--no-prior", action="store_true", help="ablation: context loss only")
    p.add_argument("--no-weighting", action="store_true", help="ablation: binary mask instead of context weights")
    p.add_argument("--no-blend", action="store_true", help="ablation: paste G(z) into the hole without Poisson blending")
    p.add_argument("--no-encoder-start", action="store_true", help="VAE: start every restart at random")
    p.add_argument("--keep-dtype", action="store_true", help="write the input's data type (rounded and clipped)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output (never the input)")
    p.add_argument("--reference", type=Path, default=None, help="ground truth on the same grid: record metrics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_fill)


def _run_fill(args: argparse.Namespace) -> int:
    from .fill import FillSettings, fill_volume
    from .progress import ProgressBar
    from .registry import resolve_model
    from .sidecar import build_sidecar, write_sidecar
    from .volume import dilate_mask, load_mask, load_volume, save_volume

    image = load_volume(args.image)
    hole = load_mask(args.mask, image)
    if args.dilate:
        hole = dilate_mask(hole, args.dilate)
    brain = load_mask(args.brainmask, image) if args.brainmask else None
    reference = load_volume(args.reference) if args.reference else None
    if reference is not None:
        _check_reference(image, reference)
    _check_output(args.output, args.image, args.force)
    model = resolve_model(args.model)
    settings = FillSettings(iterations=args.iterations, restarts=args.restarts, lr=args.lr, lam=args.lam,
                            window=args.window, prior=not args.no_prior, weighting=not args.no_weighting,
                            blend=not args.no_blend, encoder_start=not args.no_encoder_start, axis=args.axis,
                            seed=args.seed, device=args.device)
    bar = None if args.quiet else ProgressBar("fill")
    try:
        result = fill_volume(image.data, image.affine, hole, model, settings, brain=brain,
                             progress=bar.report if bar else None)
    finally:
        if bar:
            bar.close()
    metrics = _metrics(result, reference.data, image) if reference is not None else None
    out = save_volume(args.output, result.filled, image, keep_dtype=args.keep_dtype, force=args.force)
    record = build_sidecar(result, model, image_path=args.image, mask_path=args.mask, output_path=out,
                           dilate=args.dilate, brainmask_path=args.brainmask, keep_dtype=args.keep_dtype,
                           metrics=metrics)
    side = write_sidecar(out, record)
    if not args.quiet:
        print(f"filled {int(hole.sum())} voxels in {len(result.final_loss)} {result.axis} slices in "
              f"{result.seconds:.1f} s on {result.device}; wrote {out} and {side}", file=sys.stderr)
        if metrics:
            print("metrics vs reference: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), file=sys.stderr)
    return 0


def _check_output(output: Path, image_path: Path, force: bool) -> None:
    """Fail before the long search rather than after it."""
    if output.exists() and output.resolve() == image_path.resolve():
        raise InpaintError(f"{output} is the input image; choose another output path (inputs are never overwritten).")
    if output.exists() and not force:
        raise InpaintError(f"{output} already exists; choose another output path or pass --force to replace it.")
    if not output.parent.resolve().is_dir():
        raise InpaintError(f"the folder of {output} does not exist; create it or choose another output path.")


def _check_reference(image, reference) -> None:
    import numpy as np

    if reference.data.shape != image.data.shape or not np.allclose(reference.affine, image.affine, atol=1e-3):
        raise InpaintError(f"reference {reference.path} (shape {reference.data.shape}) is not on the grid of "
                           f"{image.path} (shape {image.data.shape}); resample it onto the image first.")


def _metrics(result, reference, image) -> dict[str, float]:
    import numpy as np

    from .metrics import hole_metrics, slice_metrics
    from .modelspace import Reorientation

    voided = np.where(result.hole, np.float32(0), image.data)
    values = dict(hole_metrics(result.filled, reference, result.hole, voided))
    reo = Reorientation.of(image.affine, image.data.shape)
    values.update(slice_metrics(reo.apply(result.filled), reo.apply(reference), reo.apply(result.hole),
                                reo.apply(voided), result.axis))
    return {k: float(v) for k, v in values.items()}


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from .registry import MODELS_DIR, default_model_name, list_models

    models = list_models()
    if not models:
        print(f"no shipped model in {MODELS_DIR}; pass --model PATH to a checkpoint folder")
        return 0
    default = default_model_name()
    print(f"{'name':<10} {'kind':<5} {'kernel':>6} {'input':>9} {'spacing':>8} {'plane':<9} source")
    for m in models:
        mark = "  (default)" if m.name == default else ""
        print(f"{m.name:<10} {m.kind:<5} {m.kernel:>6} {m.size:>4}x{m.size:<4} {m.spacing:>6.1f}mm {m.axis:<9} "
              f"{m.path}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaint", description="Fill lesions in brain MRI with deep generative models.")
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
