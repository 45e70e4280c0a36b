"""`inpaint bench`: score the shipped models, their ablations and classical baselines on held-out holes."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional


from ..baselines import estimate_white_matter
from ..errors import InpaintError
from ..fill import FillSettings
from ..paths import SHARED_DATA
from ..progress import ProgressBar
from ..refine3d import default_refiner, load_refiner
from ..registry import default_model_name, list_models, resolve_model
from ..resources import DEMO_BRAIN
from ..search import select_device
from .cohort import COHORT_FAMILIES, ONE_SCAN, SPLITS, format_mean_se, run_cohort
from .lesions import periventricular
from .masks import FAMILIES, make_cases
from .outputs import check_outputs
from .views import write_ortho_figures
from .report import build_report, write_figures, write_markdown, write_results_json
from .runner import (BASELINES, PIPELINES, Method, baseline_methods, default_method_name, load_bench_data,
                     model_free_methods, model_methods, run_bench)

HELDOUT = SHARED_DATA / "heldout_subject"
HELDOUT_IMAGE, HELDOUT_MASK = HELDOUT / "t1_2mm.nii.gz", HELDOUT / "brainmask_2mm.nii.gz"
QUICK_FAMILIES = ("blob10", "cube16", "large")
METHOD_NAMES = ("default",) + tuple(PIPELINES) + tuple(BASELINES)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    p = subparsers.add_parser(
        "bench", help="benchmark models, ablations and classical baselines on a held-out brain",
        description="Cut seeded holes (cubes, blobs, large masks) into a brain the models never saw, fill them with "
                    "every method and report BraTS in-hole and whole-slice metrics and seconds per slice.")
    p.add_argument("--image", type=Path, default=None,
                   help="brain-extracted evaluation image (default: the held-out subject, else the bundled demo brain)")
    p.add_argument("--brainmask", type=Path, default=None,
                   help="brain mask on the image grid (default: the held-out subject's mask, else nonzero voxels)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    p.add_argument("--out", type=Path, default=None, help="folder for results.md, results.json and PNG figures")
    p.add_argument("--quick", action="store_true",
                   help=f"a few minutes: default model, default pipeline and baselines, one case of "
                        f"{', '.join(QUICK_FAMILIES)}, no speed comparison")
    p.add_argument("--families", type=_names, default=None, help=f"comma-separated subset of {', '.join(FAMILIES)}")
    p.add_argument("--methods", type=_names, default=None, help=f"comma-separated subset of {', '.join(METHOD_NAMES)}")
    p.add_argument("--models", type=_names, default=None,
                   help="comma-separated model names or checkpoint paths (default: every shipped model)")
    p.add_argument("--cases", type=int, default=None, help="cases per family (default 4; with --cohort 3; with --quick 1)")
    p.add_argument("--speed-cases", type=int, default=None,
                   help="cases (the first of the run) also filled with the reference settings (default 1, quick 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the masks and of the fills")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cohort", type=Path, default=None,
                   help="bench every scan of this cohort folder (*_T1w with *_brainmask, one subfolder per dataset) "
                        f"at its native voxel size, figures +/- their standard error over scans (default families "
                        f"{','.join(COHORT_FAMILIES)}, 3 cases each)")
    p.add_argument("--split", choices=SPLITS, default="all",
                   help="with --cohort: all scans (a held-out cohort), or of a training cohort the validation part "
                        "that training keeps aside (for choosing between training runs) or the training part "
                        "(classical fills only: a network is not benched on scans it learned from)")
    p.add_argument("--refiner", type=Path, default=None,
                   help="3D refiner folder for refine3d (default: the shipped one)")
    p.add_argument("--downstream", action="store_true",
                   help="downstream test instead: simulated lesions in both held-out brains (or --image, or every "
                        "scan of --cohort), filled by every baseline and model, tissue-segmented (GMM, HMRF) and "
                        "compared with the original's segmentation; writes downstream.json/.md and figures to --out "
                        "(default docs/results/downstream)")
    p.add_argument("--registration", action="store_true",
                   help="with --downstream: also register every image to the MNI152 template (affine, then demons) "
                        "and report how far each fill's registration lies from the original image's, in mm")
    p.set_defaults(func=run)


def _data_paths(args: argparse.Namespace) -> tuple[Path, Optional[Path]]:
    if args.image is not None:
        return args.image, args.brainmask
    if HELDOUT_IMAGE.is_file():
        return HELDOUT_IMAGE, args.brainmask or (HELDOUT_MASK if HELDOUT_MASK.is_file() else None)
    return DEMO_BRAIN, args.brainmask


def _choose(given: Optional[list[str]], allowed, default, what: str) -> list[str]:
    chosen = list(default) if given is None else given
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise InpaintError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}.")
    return chosen


def reference_work_ratio() -> float:
    """Iterations x restarts of the `reference` pipeline over those of the default settings."""
    default, reference = FillSettings(), PIPELINES["reference"]  # reference: slices2d at the authors' budget
    return reference["iterations"] * reference["restarts"] / (default.iterations * default.restarts)


def _methods(args: argparse.Namespace, notes: list[str]) -> tuple[list[Method], dict, Optional[str]]:
    default_names = ("default",) + tuple(BASELINES) if args.quick else METHOD_NAMES
    names = _choose(args.methods, METHOD_NAMES, default_names, "method")
    names = list(dict.fromkeys(FillSettings().method if n == "default" else n for n in names))
    pipelines = [n for n in names if n in PIPELINES]
    if args.models is not None:
        model_names = args.models
    elif not pipelines:
        model_names = []
    elif not list_models():
        model_names = []
        notes.append("no shipped model is installed: only the baselines ran (pass --models PATH).")
    else:
        model_names = [default_model_name()] if args.quick else [m.name for m in list_models()]
    models = {}
    for given in model_names:
        model = resolve_model(given)
        models[model.name] = model
    default_method = None
    if list_models() and default_model_name() in models:
        default_method = default_method_name(default_model_name())
    methods = [m for name in models for m in model_methods(name, pipelines)]
    if models:
        methods += model_free_methods(default_model_name() if default_model_name() in models else next(iter(models)),
                                      pipelines)
    methods += baseline_methods([n for n in names if n in BASELINES])
    return methods, models, default_method


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the exit status."""
    if args.cohort is not None and args.image is not None:
        raise InpaintError("--cohort benches every scan of its folder and --image one scan: pass one of them.")
    if args.split != "all" and args.cohort is None:
        raise InpaintError(f"--split {args.split} chooses scans of a cohort: pass --cohort FOLDER with it.")
    if args.registration and not args.downstream:
        raise InpaintError("--registration is a part of the downstream test: pass --downstream with it.")
    if args.downstream:
        from .downstream_report import run as run_downstream
        return run_downstream(args)
    per_family = args.cases if args.cases is not None else (3 if args.cohort is not None else 1 if args.quick else 4)
    if per_family < 1:
        raise InpaintError(f"--cases must be at least 1, not {per_family}.")
    notes: list[str] = []
    started = time.perf_counter()
    families = _families(args)
    image_path, mask_path = _data_paths(args)
    check_outputs(args.json, args.out, _out_files(args, families), [image_path, mask_path])
    select_device(args.device)  # an unavailable device fails now, not after loading everything
    if args.cohort is not None:
        return _run_cohort(args, families, per_family, notes)
    data = load_bench_data(image_path, mask_path)
    methods, models, default_method = _methods(args, notes)
    if not methods:
        raise InpaintError("no method left to run; check --methods and --models.")
    try:
        wm = estimate_white_matter(data.image, ~data.brain) if "cube16_wm" in families else None
        peri = periventricular(data.image, data.brain, data.affine) if "peri10" in families else None
        cases = make_cases(data.brain, data.voxel_mm, families, per_family, args.seed, wm, peri)
    except ValueError as exc:
        raise InpaintError(f"cannot cut test holes into {mask_path or image_path}: {exc}; "
                           f"choose other --families or a larger brain.") from None
    n_speed = args.speed_cases if args.speed_cases is not None else (0 if args.quick else 1)
    speed_cases = [c.id for c in cases[:max(0, n_speed)]]
    if not speed_cases or not any(m.pipeline == "reference" for m in methods):
        methods = [m for m in methods if m.pipeline != "reference"]  # it runs only on speed cases
        notes.append("speed comparison not run: it needs the 'reference' method and --speed-cases 1 or more "
                     f"(off in --quick: the reference settings do {reference_work_ratio():.0f} times the default "
                     "search work).")
    settings = FillSettings(seed=args.seed, device=args.device)

    bar = None if args.quiet else ProgressBar("bench")
    clock = time.perf_counter()

    def progress(fraction: float, label: str) -> None:
        if bar is not None:
            elapsed = time.perf_counter() - clock
            eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
            bar.update(fraction, label, eta, force=fraction >= 1.0)

    try:
        results = run_bench(data, cases, methods, models, settings, set(speed_cases), progress,
                            refiner=load_refiner(args.refiner) if args.refiner else None)
    finally:
        if bar is not None:
            bar.close()
    method_names = [m.name for m in methods]
    notes.append(f"bench wall time {time.perf_counter() - started:.1f} s.")
    report = build_report(data=data, cases=cases, results=results, methods=method_names, families=families,
                          default_method=default_method,
                          models={name: model.checksum for name, model in models.items()},
                          settings={"default": settings.to_dict(), "pipelines": PIPELINES,
                                    "speed_cases": speed_cases, "cases_per_family": per_family,
                                    "slice_axis": "axial"},
                          seed=args.seed, device=args.device, quick=args.quick, notes=notes)
    if any(m.pipeline == "refine3d" for m in methods):
        refiner = load_refiner(args.refiner) if args.refiner else default_refiner(data.voxel_mm)
        report["refiner"] = {"name": refiner.name, "sha256": refiner.checksum}
    if args.json is not None:
        write_results_json(args.json, report)
    if args.out is not None:
        figures = write_figures(args.out, data, cases, results, method_names, families)
        write_ortho_figures(args.out, data, cases, results, method_names, families)
        write_results_json(args.out / "results.json", report)
        write_markdown(args.out / "results.md", report, figures)
    _print_summary(report)
    return 0


def _families(args: argparse.Namespace) -> list[str]:
    """The mask families to run: --families, else the default of --cohort, --quick or the full bench."""
    default = COHORT_FAMILIES if args.cohort is not None else QUICK_FAMILIES if args.quick else FAMILIES
    return _choose(args.families, FAMILIES, default, "mask family")


def _out_files(args: argparse.Namespace, families: list[str]) -> list[str]:
    """The files the bench writes into --out."""
    figures = [] if args.cohort is not None else [f"{kind}_{f}.png" for f in families for kind in ("fig", "views")]
    return ["results.json", "results.md", *figures]


def _run_cohort(args: argparse.Namespace, families: list[str], per_family: int, notes: list[str]) -> int:
    """`--cohort`: every scan of the folder, summarised over scans (written to --out after each scan, --json at
    the end)."""
    methods, models, _ = _methods(args, notes)
    methods = [m for m in methods if m.pipeline != "reference"]
    if not methods:
        raise InpaintError("no method left to run; check --methods and --models.")
    bar = None if args.quiet else ProgressBar("bench")
    clock = time.perf_counter()

    def progress(fraction: float, label: str) -> None:
        if bar is not None:
            elapsed = time.perf_counter() - clock
            bar.update(fraction, label, elapsed * (1 - fraction) / fraction if fraction > 0.01 else None,
                       force=fraction >= 1.0)

    try:
        report = run_cohort(args.cohort, args.split, methods, models, FillSettings(seed=args.seed, device=args.device),
                            families, per_family, args.seed, args.out,
                            refiner=load_refiner(args.refiner) if args.refiner else None, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.json is not None:
        write_results_json(args.json, report)
    block = report["summary"]["all"]
    print(f"{'method':<28} {'lesion-sized PSNR':>20} {'vs biharmonic-3d':>18} {'scans':>5}")
    for method in report["methods"]:
        cell = block[method]["lesion-sized"]
        diff = format_mean_se(cell.get("psnr_vs_biharmonic-3d"), sign=True)
        print(f"{method:<28} {format_mean_se(cell['psnr_hole']):>20} {diff:>18} {cell['scans']:>5}")
    if len(report["scans"]) == 1:
        print(f"note: {ONE_SCAN}", file=sys.stderr)
    return 0


def _print_summary(report: dict) -> None:
    print(f"{'method':<28} {'PSNR hole':>9} {'SSIM hole':>9} {'PSNR slice':>10} {'s/slice':>8} {'n':>3}")
    for method in report["methods"]:
        row = report["summary"].get(method, {}).get("all")
        if row is None:
            continue
        mark = " *" if method == report["default_method"] else ""
        print(f"{method + mark:<28} {row['psnr_hole']:>9.2f} {row['ssim_hole']:>9.4f} {row['psnr_slice']:>10.2f} "
              f"{row['seconds_per_slice']:>8.3f} {row['n']:>3}")
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
