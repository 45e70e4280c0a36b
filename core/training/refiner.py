"""Training of the 3D refiner (`core.refine3d`) on healthy brain-extracted T1 volumes.

Each step cuts random patches (on the refiner's grid, 32^3 voxels by default) from the training brains,
augments them (flips, axis order, gamma, contrast, noise), punches a random lesion-like hole
inside the brain (irregular blob, box or thin slab), fills it with the biharmonic fill that
inference uses as the network's base, and minimises the mean squared error inside the hole
(Adam, gradient norm clipped at 1, learning rate decaying on a cosine over the planned steps).
The error is averaged over all hole voxels of a batch (`voxel`: large holes dominate) or per
hole, then over the batch (`lesion`: every lesion counts the same, as in the benchmark).
A run may start from another run's weights (`--init`) with a fresh optimiser and schedule.
Runs stop cleanly at a wall-clock budget, write `model.safetensors` + `config.json`
(loadable by `core.refine3d.load_refiner`) and resume exactly where they stopped.
The patches and their augmentations: `refiner_patches`; the run's model card: `refiner_card`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..argtypes import at_least, non_negative, number_range, positive
from ..atomic import write_atomically
from ..errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, InpaintError
from ..jsonfiles import parse_json
from ..refine3d import Refiner, Refiner3D, RefinerConfig, load_refiner, save_refiner, widened, with_mirror_inputs
from ..search import select_device
from .cohort import find_scans, split
from .refiner_card import write_card
from .refiner_patches import (BLUR_MAX_SIGMA, DEFORM_MAX_DEGREES, DEFORM_SCALE, NOISE_SD, PATCH, REMAP_KNOTS,
                              REMAP_SHIFT, SLAB_VOXELS, batch_stream, load_brain)

CLIP_NORM = 1.0


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done: a checkpoint is never left half written (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _save(out: Path, network: Refiner3D, optimiser: torch.optim.Optimizer, step: int, meta: dict) -> None:
    opt = optimiser.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in opt["state"].items() for k, v in s.items()
               if isinstance(v, torch.Tensor)}
    save_refiner(out, network, {"training": {**meta, "steps": step}})
    write_card(out, network, meta, step)
    write_atomically(out / "optimizer.safetensors", lambda p: save_file(tensors, str(p)))


RUN_FILES = ("model.safetensors", "config.json", "optimizer.safetensors", "loss.csv")   # what a run writes to --out
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")


def _damaged(out: Path, reason: str) -> InpaintError:
    return InpaintError(f"{out}'s checkpoint is damaged ({reason}); restore it or start a new run elsewhere.")


def training_record(out: Path) -> dict:
    """The training record of the run in `out` (its config.json), to resume; InpaintError when none or damaged."""
    if not (out / "config.json").is_file():
        raise InpaintError(f"{out} holds no training run to resume; run without --resume to start one.")
    try:
        record = parse_json((out / "config.json").read_text(encoding="utf-8"))["training"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(out, "config.json holds no readable training record") from None
    if not isinstance(record, dict) or type(record.get("steps")) is not int or record["steps"] < 0:
        raise _damaged(out, "config.json's training record has no whole number of steps")
    data, weights = record.get("data"), record.get("weights")
    if not (isinstance(data, list) and isinstance(weights, list) and len(data) == len(weights) > 0
            and all(isinstance(d, str) for d in data) and all(type(w) in (int, float) for w in weights)
            and type(record.get("wall_time_s", 0.0)) in (int, float)):
        raise _damaged(out, "config.json's training record lacks its data, weights or wall time")
    return record


def resumed_refiner(out: Path) -> Refiner:
    """The refiner of the run in `out`, to resume; InpaintError when there is none or it is damaged."""
    training_record(out)
    try:
        return load_refiner(out)
    except InpaintError:
        raise _damaged(out, "model.safetensors or config.json does not hold its refiner") from None


def _load_optimiser(out: Path, optimiser: torch.optim.Optimizer, step: int) -> None:
    """Adam's state from `out`'s optimizer.safetensors (none before the first step); InpaintError when damaged."""
    try:
        saved = load_file(str(out / "optimizer.safetensors"))
    except FileNotFoundError:
        raise _damaged(out, "optimizer.safetensors is missing") from None
    except Exception:  # safetensors raises several types for damaged files
        raise _damaged(out, "optimizer.safetensors is not a safetensors file") from None
    params = optimiser.param_groups[0]["params"]
    shapes = {f"{i}.{k}": (() if k == "step" else p.shape) for i, p in enumerate(params) for k in ADAM_STATE}
    if (saved or step) and {k: tuple(v.shape) for k, v in saved.items()} != {k: tuple(v) for k, v in shapes.items()}:
        raise _damaged(out, "optimizer.safetensors does not hold Adam's state for its refiner")
    opt = optimiser.state_dict()
    for key, value in saved.items():
        index, name = key.split(".", 1)
        opt["state"].setdefault(int(index), {})[name] = value
    optimiser.load_state_dict(opt)


LOSSES = ("voxel", "lesion", "log")
LOG_FLOOR = 1e-4  # squared error added before the logarithm of the `log` loss (the holes' error is about 0.02)


def hole_mse(pred: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor, loss: str) -> torch.Tensor:
    """Squared error inside the holes, averaged over all hole voxels (`voxel`) or per hole (`lesion`), or per
    hole in decibels (`log`: 10 log10 of each hole's mean squared error, then the mean - what the bench's
    per-lesion PSNR scores, with the sign turned)."""
    squared = ((pred - truth) ** 2) * hole
    if loss == "voxel":
        return squared.sum() / hole.sum().clamp(min=1.0)
    dims = tuple(range(1, pred.dim()))
    per_hole = squared.sum(dim=dims) / hole.sum(dim=dims).clamp(min=1.0)
    if loss == "log":
        return (10.0 * torch.log10(per_hole + LOG_FLOOR)).mean()
    return per_hole.mean()


def train(data: Sequence[tuple[Path, Optional[Path], float]], out: Path, *, minutes: float, steps: int,
          batch_size: int = 6, lr: float = 5e-4, seed: int = 0, resume: bool = False, loss_kind: str = "voxel",
          init: Optional[Path] = None, config: Optional[RefinerConfig] = None, log_every: int = 50,
          deform: float = 0.0, remap: float = 0.0, blur: float = 0.0, device: str = "cpu",
          workers: int = 0, command: Optional[str] = None, patch: int = PATCH,
          validation: Sequence[Path] = (), centre_depth_mm: Optional[float] = None, mirror: float = 0.0,
          mirror_lesions: float = 0.0, slabs: float = 0.0, noise_sd: Optional[float] = None) -> None:
    """Train (or resume) a refiner on `data` = [(image, brain mask or None, sampling weight)].

    `init`: a run folder whose weights start this run (fresh optimiser and schedule); `deform`: the
    share of patches randomly rotated, scaled and warped (`deformation`); `remap`: the share whose
    tissue contrast is changed (`intensity_remap`); `blur`: the share smoothed (`random_blur`); `slabs`:
    the share seen through thick slices (`thick_slices`); `noise_sd`: the largest SD of the added white noise
    (default NOISE_SD; a resumed run keeps its own). `device`: where the network trains (a torch device
    name); `workers`: processes making the patches ahead (`batch_stream`; the same patches with any number).
    `config`: the architecture (default: the resumed or `init` run's, else `RefinerConfig()`); one that differs from theirs is refused, except
    a larger width than the `init` run's (its weights are `core.refine3d.widened`: the start fills alike).
    `command`: the command line that started the run, for its card (a resumed run keeps its first).
    `patch`: voxels a side of the training patches (holes keep their size in mm on every grid);
    `validation`: scans kept aside for choosing between runs, recorded in the config; `centre_depth_mm`:
    how deep in the brain patches (and so their holes) are centred (default: 3 grid voxels); `mirror`:
    the share of patches with mirror inputs (`sample`), for a refiner with them (an `init` run without
    them is widened: `core.refine3d.with_mirror_inputs`); `mirror_lesions`: the share of those whose
    mirror shows an unpainted lesion (`plant_mirror_lesion`). An `out` that holds a run is refused unless `resume`;
    a damaged one is refused on `resume` (InpaintError).
    """
    _check_options(out, resume, loss_kind, deform, remap, blur, slabs, noise_sd)
    stored = resumed_refiner(out) if resume else None
    config = _architecture(out if resume else init, stored, config, mirror, resume)
    torch.manual_seed(seed)
    brains = [load_brain(img, msk, config.spacing_mm, centre_depth_mm, mirror=bool(mirror)) for img, msk, _ in data]
    weights = np.array([w for _, _, w in data], dtype=np.float64)
    weights /= weights.sum()
    target = torch.device(device)
    network = Refiner3D(config).to(target)
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    step = 0
    meta = {"data": [str(p) for p, _, _ in data], "masks": [str(m) if m else None for _, m, _ in data],
            "weights": weights.tolist(), "batch_size": batch_size,
            "lr": lr, "seed": seed, "patch": patch, "loss": loss_kind, "deform": deform, "remap": remap, "blur": blur, "torch": torch.__version__,
            "hardware": _hardware(target, workers), "command": command, "wall_time_s": 0.0,
            "validation": [str(v) for v in validation], "centre_depth_mm": centre_depth_mm, "mirror": mirror,
            **({"mirror_lesions": mirror_lesions} if mirror_lesions else {}), **({"slabs": slabs} if slabs else {}),
            **({"noise_sd": noise_sd} if noise_sd is not None else {})}
    if init is not None and not resume:
        _start_from(init, network, config, meta, mirror, seed)
    if stored is not None:
        step = _restore(out, stored, network, optimiser, meta, command)
        mirror_lesions, slabs, noise_sd = meta.get("mirror_lesions", 0.0), meta.get("slabs", 0.0), meta.get("noise_sd")
    out.mkdir(parents=True, exist_ok=True)
    stream = batch_stream(brains, weights, batch_size, seed, step, steps, workers, deform=deform, remap=remap,
                          blur=blur, patch=patch, hole_scale=2.0 / config.spacing_mm, mirror=mirror,
                          **({"mirror_lesions": mirror_lesions} if mirror_lesions else {}),
                          **({"slabs": slabs} if slabs else {}),
                          **({"noise_sd": noise_sd} if noise_sd is not None else {}))
    try:
        step = _loop(stream, network, optimiser, out, meta, step, steps=steps, minutes=minutes, lr=lr,
                     loss_kind=loss_kind, log_every=log_every, target=target)
    finally:
        stream.close()
    with _uninterrupted():
        _save(out, network, optimiser, step, meta)


def _check_options(out: Path, resume: bool, loss_kind: str, deform: float, remap: float, blur: float, slabs: float,
                   noise_sd: Optional[float]) -> None:
    """Refuse settings out of range (ValueError) and an `out` that is a file or holds a run not resumed."""
    if loss_kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss_kind!r}")
    for name, share in (("deform", deform), ("remap", remap), ("blur", blur), ("slabs", slabs)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} is a share of patches, from 0 to 1, not {share}")
    if noise_sd is not None and not 0.0 <= noise_sd <= 1.0:
        raise ValueError(f"noise_sd is an SD of the intensity range, from 0 to 1, not {noise_sd}")
    if out.exists() and not out.is_dir():
        raise InpaintError(f"--out {out} is a file, not a folder; choose a folder for the run.")
    if not resume and any((out / name).exists() for name in RUN_FILES):
        raise InpaintError(f"{out} already holds a training run; pass --resume to continue it or choose another --out.")


def _architecture(earlier: Optional[Path], stored: Optional[Refiner], config: Optional[RefinerConfig], mirror: float,
                  resume: bool) -> RefinerConfig:
    """The run's architecture: the `earlier` run's (resumed, or `--init`; widened by a larger `config` width or
    given mirror inputs when it starts a run), else `config`, else the default."""
    if earlier is not None:
        found = (stored or load_refiner(earlier)).config
        if mirror and not resume:
            found = RefinerConfig(found.width, found.spacing_mm, mirror_inputs=True)
        wider = (not resume and config is not None and config.width > found.width
                 and replace(config, width=found.width) == found)
        if config is not None and config != found and not wider:
            raise InpaintError(f"{earlier} holds a refiner of width {found.width} on a {found.spacing_mm:g} mm grid, "
                               f"not width {config.width} on {config.spacing_mm:g} mm; leave out --width and --spacing"
                               f"{'' if resume else ' (or start from it with a larger --width)'}.")
        config = config if wider else found
    config = config or RefinerConfig(mirror_inputs=bool(mirror))
    if bool(mirror) != config.mirror_inputs:
        raise InpaintError("a refiner with mirror inputs trains with --mirror above 0, one without them with --mirror 0; "
                           "pass --mirror to match the run's refiner.")
    return config


def _start_from(init: Path, network: Refiner3D, config: RefinerConfig, meta: dict, mirror: float, seed: int) -> None:
    """Load the `init` run's weights into `network` (given mirror inputs, widened to `config`) and record it."""
    start_from = load_refiner(init)
    state = start_from.network.state_dict()
    if mirror and not start_from.config.mirror_inputs:
        state = with_mirror_inputs(state)
    if config.width > start_from.config.width:
        state = widened(state, replace(config, width=start_from.config.width), config.width, seed)
    network.load_state_dict(state)
    meta["init"] = {"path": str(init), "sha256": start_from.checksum,
                    "training": parse_json((init / "config.json").read_text(encoding="utf-8")).get("training")}


def _restore(out: Path, stored: Refiner, network: Refiner3D, optimiser: torch.optim.Optimizer, meta: dict,
             command: Optional[str]) -> int:
    """Continue the run in `out`: its weights, optimiser, step, time and history, and the augmentation it trained
    with where this call gives none (written into `meta`); returns its step."""
    record = training_record(out)
    network.load_state_dict(stored.network.state_dict())
    step = record["steps"]
    if "init" in record:
        meta["init"] = record["init"]
    meta["wall_time_s"] = float(record.get("wall_time_s", 0.0))
    meta["command"] = record.get("command") or command
    meta["resumed"] = list(record.get("resumed", [])) + ([command] if command else [])
    for name in ("mirror_lesions", "slabs"):   # a resume keeps the run's augmentation
        if not meta.get(name) and record.get(name):
            meta[name] = float(record[name])
    if "noise_sd" not in meta and "noise_sd" in record:
        meta["noise_sd"] = float(record["noise_sd"])
    _load_optimiser(out, optimiser, step)
    return step


def _loop(stream, network: Refiner3D, optimiser: torch.optim.Optimizer, out: Path, meta: dict, step: int, *,
          steps: int, minutes: float, lr: float, loss_kind: str, log_every: int, target: torch.device) -> int:
    """Train on `stream`'s batches until `steps` or the run's `minutes` (its earlier time included) are spent,
    logging and checkpointing every `log_every` steps; returns the step reached (`meta`'s time updated)."""
    start = time.perf_counter()
    spent = meta["wall_time_s"]
    log = out / "loss.csv"
    running = []
    for tensors in stream:
        if spent + time.perf_counter() - start >= minutes * 60:
            break
        base, hole, truth, *inputs = (t.to(target) for t in tensors)
        pred = network(base, hole, *inputs)
        loss = hole_mse(pred, truth, hole, loss_kind)
        logged = loss if loss_kind != "log" else hole_mse(pred.detach(), truth, hole, "lesion")
        base_loss = hole_mse(base, truth, hole, "lesion" if loss_kind == "log" else loss_kind)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), CLIP_NORM)
        for group in optimiser.param_groups:  # cosine decay over the planned steps
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))
        optimiser.step()
        step += 1
        running.append((logged.item(), base_loss.item()))
        if step % log_every == 0:
            m = np.mean(running, axis=0)
            running = []
            meta["wall_time_s"] = spent + time.perf_counter() - start
            with _uninterrupted():   # the log line and the checkpoint of this step, both or neither
                with open(log, "a", encoding="utf-8") as f:
                    f.write(f"{step},{m[0]:.6f},{m[1]:.6f},{meta['wall_time_s']:.1f}\n")
                _save(out, network, optimiser, step, meta)
            print(f"step {step} mse {m[0]:.5f} biharmonic {m[1]:.5f}", flush=True)
    meta["wall_time_s"] = spent + time.perf_counter() - start
    return step


def _hardware(device: torch.device, workers: int) -> str:
    """What a run trains on, as its card says it."""
    if device.type == "cuda":
        where = f"one {torch.cuda.get_device_name(device)} GPU"
    else:
        threads = torch.get_num_threads()
        where = "one CPU thread" if threads == 1 else f"{threads} CPU threads"
    return where + (f", with {workers} patch-making process{'es' if workers > 1 else ''}" if workers > 0 else "")


def data_item(text: str) -> tuple[Path, Optional[Path], float]:
    """One --data item, IMAGE[:BRAINMASK][@WEIGHT], with a positive finite weight (default 1)."""
    spec, at, weight = text.partition("@")
    image, _, mask = spec.partition(":")
    try:
        value = float(weight) if at else 1.0
    except ValueError:
        value = math.nan
    if not image or not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be IMAGE[:BRAINMASK][@WEIGHT] with a positive number as the weight, "
                                         f"not {text!r}")
    return Path(image), Path(mask) if mask else None, value


# options a resumed run takes from its training record (option's dest: record key); the others may change
STORED = {"batch_size": "batch_size", "lr": "lr", "seed": "seed", "patch": "patch", "loss": "loss", "deform": "deform",
          "remap": "remap", "blur": "blur", "slabs": "slabs", "noise": "noise_sd", "centre_depth": "centre_depth_mm",
          "mirror": "mirror", "mirror_lesions": "mirror_lesions"}


def parser(exit_on_error: bool = True) -> argparse.ArgumentParser:
    """The command line of `python -m core.training.refiner`."""
    p = argparse.ArgumentParser(description="Train the 3D refiner on healthy brain-extracted T1 volumes.",
                                exit_on_error=exit_on_error)
    p.add_argument("--data", type=data_item, nargs="+", default=[],
                   help="IMAGE[:BRAINMASK][@WEIGHT] for each training brain (mask default: nonzero voxels)")
    p.add_argument("--cohort", type=Path, nargs="+", default=[],
                   help="cohort folders of *_T1w scans with their *_brainmask (core.training.cohort): their training "
                        "split is added to --data, each scan with weight 1; the validation split is never drawn from")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=non_negative, default=30.0)   # 0: a checkpoint of the starting weights
    p.add_argument("--steps", type=at_least(1), default=2000, help="planned steps (the learning rate decays over them)")
    p.add_argument("--batch-size", type=number_range(1, 4096, "a number of patches "), default=6)
    p.add_argument("--width", type=number_range(1, 64), default=None,
                   help=f"channels of the U-Net's first level, the others 2x and 4x (default: the --init or resumed "
                        f"run's, else {RefinerConfig.width}; larger than the --init run's: its network widened, "
                        f"filling alike at the start)")
    p.add_argument("--spacing", type=number_range(0.25, 8.0, "a grid spacing in mm "), default=None,   # RefinerConfig's
                   help=f"grid of a new refiner in mm (default: the --init or resumed run's, else "
                        f"{RefinerConfig.spacing_mm:g})")
    p.add_argument("--patch", type=number_range(16, 128), default=PATCH,
                   help=f"voxels a side of the training patches (default {PATCH}; holes keep their size in mm)")
    p.add_argument("--centre-depth", type=non_negative, default=None, metavar="MM",
                   help="centre patches and their holes at least MM inside the brain (default: 3 grid voxels; "
                        "15 places holes like deep white-matter lesions)")
    p.add_argument("--lr", type=positive, default=5e-4)
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--threads", type=number_range(1, 1024, "a number of threads "), default=1)
    p.add_argument("--device", default="auto",
                   help="torch device to train on: auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--workers", type=number_range(0, 64, "a number of processes "), default=0,
                   help="processes making the patches ahead of the network (default 0: the training process)")
    p.add_argument("--log-every", type=number_range(1, 100000), default=50,
                   help="steps between loss log lines and checkpoints (default 50)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--loss", choices=LOSSES, default="voxel",
                   help="average the hole error over all hole voxels of a batch, per lesion, or per lesion in decibels "
                        "(log; the log records per-lesion errors) (default voxel)")
    p.add_argument("--init", type=Path, default=None, help="start from this run folder's weights (fresh optimiser)")
    p.add_argument("--deform", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches randomly rotated (+/-{DEFORM_MAX_DEGREES:g} deg), scaled "
                        f"(+/-{DEFORM_SCALE * 100:g}%%) and warped (default 0)")
    p.add_argument("--remap", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches whose tissue contrast changes: intensities {REMAP_KNOTS} move by up to "
                        f"{REMAP_SHIFT:g} on a random increasing curve (default 0)")
    p.add_argument("--blur", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches smoothed by a Gaussian of 0-{BLUR_MAX_SIGMA:g} voxels drawn for each axis "
                        f"(default 0)")
    p.add_argument("--slabs", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help=f"share of patches seen through thick slices: averaged along a random axis into slabs of "
                        f"{SLAB_VOXELS[0]}-{SLAB_VOXELS[1]} voxels and interpolated back, as the fill resamples a "
                        f"thick-slice scan (default 0)")
    p.add_argument("--noise", type=number_range(0.0, 1.0, "an SD of the intensity range "), default=None, metavar="SD",
                   help=f"largest SD of the white noise added in the brain, each patch drawing its own from 0 to it "
                        f"(of the intensity range; default {NOISE_SD:g}, or the resumed run's)")
    p.add_argument("--mirror", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help="share of patches given the mirrored hemisphere as the fill gives it, for a refiner with mirror "
                        "inputs that learns the mirror's share (default 0: a refiner without them; with --init from one "
                        "without them, it is widened to start from the same fill)")
    p.add_argument("--mirror-lesions", type=number_range(0.0, 1.0, "a share of patches "), default=0.0,
                   help="share of the mirrored patches whose mirror shows a dark lesion where it mirrors the hole (an "
                        "unpainted lesion on the other side, not to be copied) (default 0)")
    return p


def _resume_options(args: argparse.Namespace, given: set[str]) -> list[Path]:
    """Set `args` to the stored run's options for --resume, refusing given ones that differ; its validation scans."""
    out, record = args.out, training_record(args.out)
    try:
        stored = parser(exit_on_error=False).parse_args(
            ["--out", str(out)] + [f"--{dest.replace('_', '-')}={record[key]}" for dest, key in STORED.items()
                                   if record.get(key) is not None])
    except argparse.ArgumentError as exc:
        raise _damaged(out, f"config.json's training record: {exc}") from None
    stored.noise = NOISE_SD if stored.noise is None else stored.noise
    for dest in STORED:
        if dest in given and getattr(args, dest) != getattr(stored, dest):
            option = "--" + dest.replace("_", "-")
            raise InpaintError(f"{out}'s run was trained with {option} {getattr(stored, dest)}, not "
                               f"{getattr(args, dest)}; leave out {option} to resume it, or start a new run elsewhere.")
        setattr(args, dest, getattr(stored, dest))
    init = (record.get("init") or {}).get("path")
    if args.init is not None and str(args.init) != init:
        raise InpaintError(f"{out}'s run started from {init or 'no --init run'}, not {args.init}; "
                           "leave out --init to resume it.")
    if not args.data and not args.cohort:
        if not isinstance(record.get("masks"), list) or len(record["masks"]) != len(record["data"]):
            raise InpaintError(f"{out}'s run does not record its brain masks; pass its --data or --cohort again.")
        args.data = [(Path(i), Path(m) if m else None, w) for i, m, w in zip(record["data"], record["masks"],
                                                                           record["weights"])]
    return [Path(v) for v in record.get("validation", [])]


def _same_data(record: dict, data: Sequence[tuple[Path, Optional[Path], float]]) -> bool:
    """Whether `data` is the stored run's: its scans, brain masks (where recorded) and sampling weights."""
    weights = np.array([w for _, _, w in data], dtype=np.float64)
    return ([str(p) for p, _, _ in data] == record["data"]
            and record.get("masks", [str(m) if m else None for _, m, _ in data])
            == [str(m) if m else None for _, m, _ in data]
            and np.allclose(weights / weights.sum(), record["weights"], rtol=1e-12, atol=0.0))


def _kept(out: Path) -> str:
    """What an interrupted run leaves in `out`, as a clause."""
    try:
        return f"{out} keeps its checkpoint of step {training_record(out)['steps']} (--resume continues it)"
    except InpaintError:
        return f"no checkpoint was written to {out}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p, unset = parser(), object()
    defaults = vars(p.parse_args(["--out", "."]))
    args = p.parse_args(argv, argparse.Namespace(**dict.fromkeys(defaults, unset)))
    given = {name for name, value in vars(args).items() if value is not unset}   # options the command line names
    for name in defaults.keys() - given:
        setattr(args, name, defaults[name])
    torch.set_num_threads(args.threads)
    try:
        validation = _resume_options(args, given) if args.resume else []
        data = list(args.data)
        for folder in args.cohort:
            training, kept = split(find_scans(folder))
            data += [(s.image, s.brainmask, 1.0) for s in training]
            validation += [] if args.resume else [s.image for s in kept]
        if args.resume and not _same_data(training_record(args.out), data):
            raise InpaintError(f"{args.out}'s run was trained on other --data/--cohort scans, masks or weights; leave "
                               "them out to resume it, or start a new run elsewhere.")
        config = None
        if args.width or args.spacing:   # what is not given comes from the run this one continues
            earlier = args.out if args.resume else args.init
            found = (resumed_refiner(earlier) if args.resume else load_refiner(earlier)).config \
                if earlier is not None else RefinerConfig()
            config = RefinerConfig(width=args.width or found.width, spacing_mm=args.spacing or found.spacing_mm,
                                   mirror_inputs=bool(args.mirror))
        if not data:
            raise InpaintError("no training data; pass --data IMAGE[:BRAINMASK] or --cohort FOLDER.")
        if config is not None:
            config.validate("--width/--spacing")
        device = str(select_device(args.device))
        train(data, args.out, minutes=args.minutes, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
              seed=args.seed, resume=args.resume, loss_kind=args.loss, init=args.init, deform=args.deform,
              remap=args.remap, blur=args.blur, device=device, workers=args.workers,
              config=config, patch=args.patch, validation=validation, log_every=args.log_every,
              centre_depth_mm=args.centre_depth, mirror=args.mirror, mirror_lesions=args.mirror_lesions,
              slabs=args.slabs, noise_sd=args.noise,
              command=shlex.join(["python", "-m", "core.training.refiner",
                                  *(sys.argv[1:] if argv is None else argv)]))
    except InpaintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: {_kept(args.out)}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
