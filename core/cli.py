"""The `inpaint` command: fill, bids, models, train, bench."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from . import __version__
from .argtypes import at_least, number_range, real
from .errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, InpaintError

if TYPE_CHECKING:
    from .fill_file import FileFill
    from .methods import Parameter


class _Parser(argparse.ArgumentParser):
    """argparse with one-sentence errors (no usage block), exit status 2 like every user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; run '{self.prog} --help' for the options.\n")


def _output_file(text: str) -> Path:
    """An output file name; one ending in a path separator names a folder."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} names a folder; give the output's file name, e.g. "
                                         f"{text}filled.nii.gz")
    return Path(text)


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """--method, --model, every registered method's parameters (`core.methods`), --axis, --dilate, --threshold.

    The options a method may not read default to None, so that `_settings` sees which were given."""
    from .fill import FillSettings
    from .methods import METHODS, parameters, users

    d = FillSettings()
    p.add_argument("--method", choices=list(METHODS), default=d.method,
                   help="; ".join(f"{k}: {m.description}" for k, m in METHODS.items()) + f" (default {d.method})")
    slice_methods = "/".join(users("model"))
    p.add_argument("--model", default=None,
                   help=f"{slice_methods}: shipped slice model name or checkpoint path (default: see 'inpaint models')")
    for parameter in parameters().values():
        _add_parameter(p, parameter, "/".join(users(parameter.name)))
    p.add_argument("--axis", choices=["axial", "coronal", "sagittal"], default=None,
                   help=f"{slice_methods}: plane of the slices to fill (default: the model's plane)")
    p.add_argument("--dilate", type=number_range(0, 100), default=0,
                   help="dilate the mask by N voxels in 3D first")
    p.add_argument("--threshold", type=real, default=None, metavar="T",
                   help="the mask is a probability map: fill the voxels above T (e.g. 0.5); without it a mask "
                        "of fractional values is refused")


def _add_parameter(p: argparse.ArgumentParser, parameter: Parameter, methods: str) -> None:
    """One method parameter as an option: a number, or a switch (`--no-NAME` when it is on by default); None when
    not given."""
    if isinstance(parameter.default, bool):
        p.add_argument(parameter.flag, dest=parameter.name, action="store_false" if parameter.default else "store_true",
                       default=None, help=f"{methods}: {'do not ' if parameter.default else ''}{parameter.help}")
    else:
        p.add_argument(parameter.flag, dest=parameter.name, type=parameter.parse, default=None,
                       metavar=parameter.flag[2:].upper(),
                       help=f"{methods}: {parameter.help} (default {parameter.default:g})")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    from .fill import FillSettings
    from .methods import users
    from .search import SEED_MAX

    d = FillSettings()
    p.add_argument("--seed", type=number_range(0, SEED_MAX), default=None,
                   help=f"{'/'.join(users('seed'))}: random seed of the latent search (same seed and torch threads on CPU: same output; "
                        f"default {d.seed})")
    p.add_argument("--device", default=d.device, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--keep-dtype", action="store_true", help="write the input's data type (rounded and clipped)")


def _settings(args: argparse.Namespace):
    """The FillSettings of the fill options shared by `fill` and `bids` (the chosen method's own parameters in
    `extra`); an option given that the method does not read (`FillMethod.reads`) is refused in one sentence."""
    from .fill import FillSettings
    from .methods import METHODS, parameters, users

    method = METHODS[args.method]
    flags = {name: parameter.flag for name, parameter in parameters().items()}
    flags.update(model="--model", axis="--axis", seed="--seed")
    given = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    for name in given:
        if name not in method.reads:
            chosen = f"{args.method}{' (the default)' if args.method == FillSettings().method else ''}"
            others = users(name)
            switch = f"use --method {others[0]}" if len(others) == 1 else "choose one of those methods with --method"
            raise InpaintError(f"{flags[name]} is read only by --method {' or '.join(others)}, not by {chosen}; "
                               f"drop it or {switch}.")
    fields = {name: value for name, value in given.items() if hasattr(FillSettings, name)}
    extra = tuple((p.name, given.get(p.name, p.default)) for p in method.parameters
                  if not hasattr(FillSettings, p.name))
    return FillSettings(device=args.device, method=args.method, extra=extra, **fields)


def _add_fill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fill", help="fill the lesion of a brain MRI volume",
                       description="Fill the voxels of MASK in IMAGE with healthy-looking tissue learned from healthy brains "
                                   "(--method: the default 3D refiner or the original study's latent search). "
                                   "IMAGE should be brain-extracted (or pass --brainmask), like the training data.")
    p.add_argument("image", type=Path, help="brain MRI volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder)")
    p.add_argument("mask", type=Path, help="lesion mask on the same grid; nonzero voxels are filled")
    p.add_argument("-o", "--output", type=_output_file, required=True, help="output volume (e.g. out.nii.gz)")
    _add_method_options(p)
    p.add_argument("--brainmask", type=Path, default=None, help="brain mask on the image grid (default: estimated)")
    _add_run_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output and its sidecar (never an input)")
    p.add_argument("--reference", type=Path, default=None, help="ground truth on the same grid: record metrics")
    p.add_argument("--uncertainty", type=Path, default=None, metavar="PATH",
                   help="also write the fill's predicted error (one SD per voxel, in the image's intensity units, "
                        "zero outside the mask; refine3d)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_fill)


def _run_fill(args: argparse.Namespace) -> int:
    """Check every input and target first, fill, then write the volume and its sidecar together (both or neither)."""
    start = time.time()
    try:
        return _fill_and_report(args)
    except KeyboardInterrupt:
        output = Path(args.output)
        if not (output.is_file() and output.stat().st_mtime >= start - 1):   # 1 s: coarse file-system clocks
            raise   # nothing of this run was written
        print(f"inpaint: interrupted after {output} and its sidecar were written; both are complete.",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _fill_and_report(args: argparse.Namespace) -> int:
    from .fill_file import fill_file
    from .inputs import other_contrast
    from .methods import METHODS
    from .progress import ProgressBar

    settings = _settings(args)
    method = METHODS[settings.method]
    contrast = other_contrast(args.image)
    if contrast and (method.needs_model or method.needs_refiner):
        print(f"inpaint: note: {args.image} is named as a {contrast} image; the networks learned T1-weighted brains "
              "and may fill it worse than the classical fill: --method biharmonic3d fills without them.",
              file=sys.stderr)
    bar = None if args.quiet else ProgressBar("fill")
    try:
        done = fill_file(args.image, args.mask, args.output, settings, model=args.model, brainmask=args.brainmask,
                         dilate=args.dilate, threshold=args.threshold, reference=args.reference,
                         keep_dtype=args.keep_dtype, force=args.force,
                         progress=bar.report if bar else None, uncertainty=args.uncertainty)
    finally:
        if bar:
            bar.close()
    if done.skull_on:
        print(f"inpaint: note: {args.image} holds {done.brain_ml / 1000:.1f} l of tissue, more than a brain: it looks "
              "skull-on, and the models know brain-extracted images only; pass --brainmask or a skull-stripped "
              "image.", file=sys.stderr)
    if done.nonfinite_voxels:
        print(f"inpaint: note: {done.nonfinite_voxels} voxels of {args.image} are NaN or infinite; the fill treated "
              "them as background (0) and wrote them back unchanged (recorded in the sidecar).", file=sys.stderr)
    if done.outside_brain_voxels:
        where = "outside the brain mask" if args.brainmask else "on the background around the brain"
        print(f"inpaint: note: {done.outside_brain_voxels} voxels of the mask lie {where}; they were left as they "
              "were, not filled with tissue (recorded in the sidecar).", file=sys.stderr)
    trained = (done.record.get("model") or {}).get("trained_axis")
    if trained and trained != done.axis:
        print(f"inpaint: warning: the model learned {trained} slices and filled {done.axis} ones here, a plane it "
              f"never saw, so expect a worse fill (leave --axis out to fill {trained} slices).", file=sys.stderr)
    mirror = (done.record["method"].get("refiner") or {}).get("mirror")
    if isinstance(mirror, str):
        print(f"inpaint: note: the other hemisphere was {mirror}; the fill is the refiner's alone "
              "(recorded in the sidecar).", file=sys.stderr)
    if not args.quiet:
        print(f"filled {done.hole_voxels} voxels {_where(args.method, done)} in {done.seconds:.1f} s on "
              f"{done.device}; wrote {done.output} and {done.sidecar}", file=sys.stderr)
        if done.uncertainty is not None:
            share = "" if done.uncertainty_share is None else f" ({done.uncertainty_share:.1%} of the brain's intensity range)"
            print(f"wrote {done.uncertainty}: predicted error, mean SD {done.uncertainty_mean:.4g}{share} over the "
                  "filled voxels", file=sys.stderr)
        if done.metrics:
            print("metrics vs reference: " + ", ".join(f"{k} {v:.4f}" for k, v in done.metrics.items()
                                                       if v is not None), file=sys.stderr)
    return 0


def _where(method: str, done: FileFill) -> str:
    """Where the fill worked: its slices for a method that fills slices of a plane, else its lesions."""
    from .methods import fills_slices

    if fills_slices(method):
        return f"in {done.slices} {done.axis} slices"
    return f"({done.lesions} lesion{'' if done.lesions == 1 else 's'})"


def _add_bids(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bids", help="fill every T1w scan of a BIDS dataset into a BIDS derivatives dataset",
                       description="A BIDS App. participant: fill the lesion of every T1w scan of BIDS_DIR with its "
                                   "lesion mask from --masks and write a BIDS derivatives dataset to OUT_DIR, a "
                                   "sidecar per scan, and the table desc-filled_scans.tsv; scans already filled from "
                                   "the same inputs with the same settings are skipped, and several runs (one per "
                                   "participant) may write into one OUT_DIR at once. group: rebuild the table from "
                                   "everything in OUT_DIR and print a summary. Exit status 1 when a scan of a "
                                   "participant run failed (see the table) or, at the group level, a scan's outputs "
                                   "are missing or damaged; 2 for a user error; 130 when interrupted (Ctrl+C, SIGTERM).")
    p.add_argument("--version", action="version", version=f"inpaint bids {__version__}")   # as BIDS Apps answer
    p.add_argument("bids_dir", type=Path, help="BIDS dataset (read only)")
    p.add_argument("out_dir", type=Path, help="derivatives folder to write (new, empty or of an earlier run)")
    p.add_argument("analysis_level", choices=["participant", "group"],
                   help="participant: fill the scans; group: rebuild the scans table of OUT_DIR (fills nothing)")
    p.add_argument("--participant-label", "--participant_label", nargs="+", action="extend", default=[],
                   metavar="LABEL",
                   help="only these participants (01 or sub-01; default: all)")
    p.add_argument("--session", "--session-label", "--session_label", nargs="+", action="extend", default=[],
                   metavar="LABEL",
                   help="only these sessions (a or ses-a)")
    p.add_argument("--masks", type=Path, default=None, metavar="DERIV_DIR",
                   help="derivatives folder with the lesion masks (and optional desc-brain_mask brain masks); "
                        "needed at the participant level")
    p.add_argument("--mask-entity", default="label-lesion", metavar="ENTITIES",
                   help="entities that mark a lesion mask, suffix _mask or _roi (default label-lesion)")
    _add_method_options(p)
    _add_run_options(p)
    p.add_argument("--jobs", type=at_least(1), default=1, help="scans filled at once on this machine (processes)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="fill on the workers of this Dask distributed scheduler (e.g. tcp://10.0.0.1:8786)")
    p.add_argument("--threads", type=at_least(0), default=0,
                   help="torch threads per scan (default 0: the free cores shared among the scans run at once)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=_run_bids)


def _run_bids(args: argparse.Namespace) -> int:
    """Fill the cohort (exit status 1 if any scan failed) or, at the group level, rebuild its table."""
    from .cohort.derivatives import FAILED
    from .cohort.run import CohortOptions, run_cohort

    if args.analysis_level == "group":
        return _run_group(args)
    if args.masks is None:
        raise InpaintError("The participant level needs --masks DERIV_DIR, the derivatives folder with the lesion "
                           "masks; add it.")
    if args.scheduler and args.jobs != 1:
        raise InpaintError("--jobs and --scheduler exclude each other: the Dask workers decide how many scans "
                           "run at once; drop --jobs.")
    options = CohortOptions(bids_dir=args.bids_dir, out_dir=args.out_dir, masks_dir=args.masks,
                            settings=_settings(args), participants=tuple(args.participant_label),
                            sessions=tuple(args.session), mask_entities=args.mask_entity, model=args.model,
                            dilate=args.dilate, threshold=args.threshold, keep_dtype=args.keep_dtype, jobs=args.jobs,
                            scheduler=args.scheduler, threads=args.threads, quiet=args.quiet)
    try:
        summary = run_cohort(options)
    except KeyboardInterrupt:
        print("inpaint: interrupted; the scans filled so far are kept and listed in the table; run the same "
              "command again to go on.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if summary.count(FAILED) else 0


def _run_group(args: argparse.Namespace) -> int:
    """Rebuild the scans table of OUT_DIR (status 1 only when recorded outputs are missing or damaged; the failures
    it lists are the participant runs' own)."""
    from .cohort.group import damaged, run_group

    if args.participant_label or args.session:
        raise InpaintError("--participant-label and --session choose scans to fill at the participant level; the "
                           "group level always tabulates every scan in OUT_DIR, so drop them.")
    return 1 if damaged(run_group(args.out_dir, args.bids_dir, quiet=args.quiet)) else 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from .fill import FillSettings
    from .methods import METHODS, PLUGINS
    from .refine3d import shipped_refiners
    from .registry import MODELS_DIR, default_model_name, list_models

    method = FillSettings().method
    print(f"default fill method: {method}")
    print("fill methods: " + ", ".join(f"{name} (plug-in from {PLUGINS.sources[name]})" if name in PLUGINS.sources
                                       else name for name in METHODS))
    for refiner in shipped_refiners():
        print(f"3D refiner (refine3d) on a {refiner.config.spacing_mm:g} mm grid: {refiner.path} "
              f"(sha256 {refiner.checksum[:12]}...{', learns the mirror share' if refiner.config.mirror_inputs else ''})")
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
    parser = _Parser(prog="inpaint", description="Fill lesions in brain MRI with healthy-looking tissue: by default 3D "
                                                 "biharmonic inpainting corrected by a network learned from healthy "
                                                 "brains; the original study's generative slice models on request.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_fill(sub)
    _add_bids(sub)
    _add_models(sub)
    from .training.command import register as register_train
    from .bench.command import register as register_bench

    register_train(sub)
    register_bench(sub)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (`inpaint fill`, ...)."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `inpaint`; user errors (a fill's outputs that cannot be written included) print one sentence
    and exit with status 2, any other file the system could not read or write (e.g. a record of `inpaint bids` on a
    full disk) one sentence and status 1, an interrupt (Ctrl+C, SIGTERM) status 130 (called without `argv`, as the
    program, at once: `os._exit`)."""
    if argv is None:   # the program: `kill` (SIGTERM, as SLURM's scancel and timeouts send) ends it as Ctrl+C does
        signal.signal(signal.SIGTERM, _terminated)
    try:
        parser = build_parser()   # the subcommands' imports (torch) take a while: Ctrl+C may come
        from .methods import PLUGINS

        for problem in PLUGINS.problems:
            print(f"inpaint: note: {problem}", file=sys.stderr)
        args, extra = parser.parse_known_args(argv)
        if extra:   # said by the subcommand's parser, whose --help lists its options
            _subcommand_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
        code = int(args.func(args) or 0)
    except InpaintError as exc:
        print(f"inpaint: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:   # e.g. the disk filled while `inpaint bids` wrote a record or its table
        where = f" {exc.filename}" if exc.filename else ""
        print(f"inpaint: error: could not write or read{where}: {exc.strerror or exc}; free space or fix the "
              "folder's permissions and run the command again (what was written is recognised).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("inpaint: interrupted; no output was written.", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if argv is None:   # the program's work is done: a Ctrl+C now would only kill the interpreter on its way out
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED and argv is None:
        # the `inpaint` program: end now, before the interpreter shuts down under C++ threads (SimpleITK's) an
        # interrupt left running, which aborts
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    return code


if __name__ == "__main__":
    sys.exit(main())
