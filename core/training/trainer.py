"""GAN and VAE training loops with exact resume, checkpoints, previews, loss CSV and DDP.

Reproducibility: every step draws its data and noise from an RNG derived from
(seed, rank, step) only, and the optimiser state is checkpointed, so a resumed CPU run
reproduces the uninterrupted run's weights bit for bit. The output folder is itself a
model folder (`model.safetensors` + `config.json`, discriminator/encoder included) plus
`train_state.safetensors`/`train_state.json` (optimisers, step), `losses.csv` and
`previews/step_NNNNNN.png`. Nothing is pickled. A checkpoint's four files are staged and placed
together (`core.atomic.commit_files`), and `read_state` checks on --resume that they belong together.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import shutil
import socket
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from ..atomic import commit_files, is_temp_name, make_staging
from ..paths import shown_path
from ..checkpoint import CONFIG, WEIGHTS, load_model, save_model
from ..jsonfiles import parse_json, sha256_file
from ..errors import InpaintError
from ..networks import Architecture, build_networks
from ..progress import ProgressBar
from .augment import AugmentConfig, random_holes
from .cohort import find_scans, split
from .data import TrainingData
from .distributed import Context, any_rank, average

STATE_WEIGHTS = "train_state.safetensors"
STATE_JSON = "train_state.json"
LOSSES = "losses.csv"
CHECKPOINT = (WEIGHTS, CONFIG, STATE_WEIGHTS, STATE_JSON)   # placed together; train_state.json names the step
_TEMP_OF = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp.*")   # `core.atomic.write_atomically`'s temporaries


def damaged(out: Path, what: str) -> InpaintError:
    """The one-sentence refusal of a run folder whose checkpoint cannot be resumed."""
    return InpaintError(f"{out}'s checkpoint is damaged ({what}); restore it or start a new run in another folder.")


def clean_run_folder(out: Path) -> None:
    """Remove the temporaries of the run's own files that a killed run left (any age: call it once the folder is
    this process's run, after `recover_commits`); other files and folders are left alone."""
    if not out.is_dir():
        return
    ours = set(CHECKPOINT) | {LOSSES}

    def of_run(name: str) -> bool:
        match = _TEMP_OF.fullmatch(name)
        return bool(match) and match.group("name") in ours

    for entry in out.iterdir():
        if not is_temp_name(entry.name) or entry.is_symlink():
            continue
        try:
            if entry.is_dir():   # a staging folder of `save`: the checkpoint's files, their temporaries, backups
                if all(f.name in ours or f.name == "journal" or f.name.startswith("backup-") or of_run(f.name)
                       for f in entry.iterdir()):
                    shutil.rmtree(entry)
            elif of_run(entry.name):
                entry.unlink()
        except OSError:
            continue


def _read_json(out: Path, name: str) -> Any:
    try:
        return parse_json((out / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(out, f"{name} is missing") from None
    except (OSError, ValueError):
        raise damaged(out, f"{name} is not readable JSON") from None


def read_state(out: Path) -> dict[str, Any]:
    """train_state.json of the run in `out`, checked against the other files of its checkpoint (InpaintError)."""
    state, config = _read_json(out, STATE_JSON), _read_json(out, CONFIG)
    if not isinstance(state, dict):
        raise damaged(out, f"{STATE_JSON} holds no training state")
    step, elapsed = state.get("step"), state.get("elapsed_s")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise damaged(out, f"{STATE_JSON} has step {step!r}")
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) or not math.isfinite(elapsed) or elapsed < 0:
        raise damaged(out, f"{STATE_JSON} has elapsed_s {elapsed!r}")
    for key in ("settings", "param_groups", "losses"):
        if not isinstance(state.get(key, {}), dict):
            raise damaged(out, f"{STATE_JSON} has no valid '{key}'")
    training = config.get("training") if isinstance(config, dict) else None
    if not isinstance(training, dict) or training.get("steps") != step:
        raise damaged(out, f"{CONFIG} is not of step {step} like {STATE_JSON}")
    try:
        with safe_open(str(out / STATE_WEIGHTS), "pt") as handle:
            stored = (handle.metadata() or {}).get("step", str(step))
    except (SafetensorError, OSError):
        raise damaged(out, f"{STATE_WEIGHTS} is missing or not a safetensors file") from None
    if stored != str(step):
        raise damaged(out, f"{STATE_WEIGHTS} is of step {stored}, {STATE_JSON} of step {step}")
    if not (out / WEIGHTS).is_file():
        raise damaged(out, f"{WEIGHTS} is missing")
    if "model_sha256" in state and sha256_file(out / WEIGHTS) != state["model_sha256"]:
        raise damaged(out, f"{WEIGHTS} is not the one saved with {STATE_JSON}")
    return state


@dataclass
class TrainSettings:
    """Everything that determines a training run (stored in train_state.json for --resume)."""

    kind: str = "vae"
    kernel: int = 3
    axis: str = "axial"
    size: int = 96
    spacing: float = 2.0
    latent: int = 64
    width: int = 12
    base: int = 6
    steps: int = 2000
    batch_size: int = 32
    lr: float | None = None
    kl: float = 0.05
    seed: int = 0
    augment: str = "all"
    data: list[str] = field(default_factory=list)
    cohort: list[str] = field(default_factory=list)   # cohort folders: their training split, with brain masks
    init: str | None = None   # a model folder whose weights start the run (fresh optimisers); same architecture
    checkpoint_every: int = 250
    minutes: float | None = None

    @property
    def arch(self) -> Architecture:
        return Architecture(kind=self.kind, kernel=self.kernel, latent=self.latent, width=self.width,
                            size=self.size, base=self.base)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.kind == "gan" else 1e-3)


def step_generators(seed: int, rank: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The data RNG and torch noise generator of one step, derived from (seed, rank, step) only."""
    rng = np.random.default_rng([seed, rank, step])
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2 ** 62)))
    return rng, gen


class _VAE(nn.Module):
    """Encoder + decoder as one module (one DDP wrapper): masked image -> full-image reconstruction."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, image: torch.Tensor, known: torch.Tensor, eps: torch.Tensor):
        mu, logvar = self.encoder(image, known)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    state = opt.state_dict()
    tensors = {f"{prefix}.{index}.{key}": value.detach().cpu().contiguous()
               for index, entry in state["state"].items() for key, value in entry.items()}
    return tensors, state["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        head, index, key = name.split(".", 2)
        if head == prefix:
            state.setdefault(int(index), {})[key] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    for param in (p for group in opt.param_groups for p in group["params"]):   # Adam would fail at its first step
        for key in ("exp_avg", "exp_avg_sq"):
            if key in opt.state[param] and opt.state[param][key].shape != param.shape:
                raise ValueError(f"{prefix} {key} has shape {tuple(opt.state[param][key].shape)}")


def _grid_png(images: np.ndarray, columns: int, path: Path) -> None:
    """Save (n, size, size) model-space slices as a PNG grid, anterior up, right on the right."""
    n, size = images.shape[0], images.shape[-1]
    rows = -(-n // columns)
    canvas = np.full((rows * (size + 2), columns * (size + 2)), -1.0, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (size + 2):r * (size + 2) + size, c * (size + 2):c * (size + 2) + size] = img.T[::-1]
    pixels = ((np.clip(canvas, -1, 1) + 1) * 127.5).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


class Trainer:
    """One training run (one process of a DDP group); `run()` trains until steps or minutes are spent."""

    def __init__(self, settings: TrainSettings, data: TrainingData, out: Path, ctx: Context,
                 command: str = "", threads: int | None = None) -> None:
        self.s, self.data, self.out, self.ctx = settings, data, Path(out), ctx
        self.command, self.threads = command, threads
        self.augment = AugmentConfig.for_group(settings.augment)
        torch.manual_seed(settings.seed)
        self.nets = build_networks(settings.arch)
        self.init = self._start_from(settings.init) if settings.init else None
        self.validation = [shown_path(scan.image) for folder in settings.cohort   # the cohorts' kept-aside scans
                           for scan in split(find_scans(Path(folder)))[1]]
        for net in self.nets.values():
            net.to(ctx.device).train()
        lr = settings.learning_rate
        betas = (0.5, 0.999) if settings.kind == "gan" else (0.9, 0.999)
        if settings.kind == "gan":
            self.optims = {"decoder": torch.optim.Adam(self.nets["decoder"].parameters(), lr, betas),
                           "discriminator": torch.optim.Adam(self.nets["discriminator"].parameters(), lr, betas)}
            self.gen = self._wrap(self.nets["decoder"])
            self.disc = self._wrap(self.nets["discriminator"])
        else:
            vae = _VAE(self.nets["encoder"], self.nets["decoder"])
            self.optims = {"vae": torch.optim.Adam(vae.parameters(), lr, betas)}
            self.vae = self._wrap(vae)
        cuda = ctx.device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=cuda and self.amp_dtype == torch.float16)
                        for k in self.optims}
        self.step = 0
        self.elapsed = 0.0
        self.losses: dict[str, float] = {}

    def _start_from(self, folder: str) -> dict[str, Any]:
        """Copy a model folder's weights into the new networks; returns its record for the config."""
        model = load_model(folder)
        if model.arch != self.s.arch or model.spacing != self.s.spacing or model.axis != self.s.axis:
            raise InpaintError(f"{folder} has architecture {model.arch.to_dict()} on a {model.spacing} mm "
                               f"{model.axis} grid, not this run's: --init needs the same model shape and grid.")
        missing = sorted(set(self.nets) - set(model.networks))
        if missing:
            raise InpaintError(f"{folder} lacks the {', '.join(missing)} this run trains: --init needs a model "
                               "saved by 'inpaint train' with every network.")
        for name, net in self.nets.items():
            net.load_state_dict(model.networks[name].state_dict())
        return {"path": shown_path(folder), "sha256": model.checksum, "training": model.config.get("training")}

    def _wrap(self, net: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return net
        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def _update(self, name: str, loss: torch.Tensor) -> None:
        opt, scaler = self.optims[name], self.scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    # ---- one step -------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimisation step on this rank's batch for step `self.step`."""
        rng, gen = step_generators(self.s.seed, self.ctx.rank, self.step)
        dev = self.ctx.device
        real = torch.from_numpy(self.data.batch(rng, self.s.batch_size, self.augment)).to(dev)
        b, latent = real.shape[0], self.s.latent
        if self.s.kind == "gan":
            z = (torch.rand(b, latent, generator=gen) * 2 - 1).to(dev)
            with self._autocast():
                fake = self.gen(z)
                logits = self.disc(torch.cat([real, fake.detach()])).float()
                loss_d = F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()
            self._update("discriminator", loss_d)
            with self._autocast():
                loss_g = F.softplus(-self.disc(fake).float()).mean()
            self._update("decoder", loss_g)
            losses = {"d_loss": loss_d.item(), "g_loss": loss_g.item(),
                      "d_real": torch.sigmoid(logits[:b]).mean().item(), "d_fake": torch.sigmoid(logits[b:]).mean().item()}
        else:
            known = torch.from_numpy(random_holes(rng, b, self.s.size)[:, None]).to(dev)
            eps = torch.randn(b, latent, generator=gen).to(dev)
            with self._autocast():
                recon, mu, logvar = self.vae(real, known, eps)
            recon, mu, logvar = recon.float(), mu.float(), logvar.float()
            mse = (recon - real).pow(2).mean()
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
            loss = mse + self.s.kl * kl / (self.s.size * self.s.size)
            self._update("vae", loss)
            losses = {"loss": loss.item(), "mse": mse.item(), "kl": kl.item()}
        self.step += 1
        return losses

    # ---- state ----------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The training record stored in the model config's `extra`."""
        data = [{"path": shown_path(str(src.path)), "sha256": sha256_file(src.path),
                 **({"brainmask": shown_path(str(src.brainmask))} if src.brainmask else {})} for src in self.data.sources]
        record: dict[str, Any] = {"latent_prior": "uniform" if self.s.kind == "gan" else "normal"}
        if self.s.kind == "vae":
            record["encoder_input"] = "image with random holes zeroed + known mask; decoder reconstructs the full slice"
        record["training"] = {
                "command": self.command, "steps": self.step, "wall_time_s": round(self.elapsed, 1),
                "machine": f"{platform.node() or socket.gethostname()} {platform.machine()} {platform.processor()}".strip(),
                "device": str(self.ctx.device), "world_size": self.ctx.world, "threads": self.threads,
                "torch": torch.__version__, "python": platform.python_version(),
                "final_losses": self.losses, "data": data,
                "augmentation": {"group": self.s.augment, **self.augment.to_dict(),   # tissue: where maps were
                                 "tissue_images": sum(src.tissues is not None for src in self.data.sources)},
                "settings": self._settings(), "learning_rate": self.s.learning_rate,
        }
        if self.init is not None:
            record["training"]["init"] = self.init
        if self.validation:
            record["training"]["validation"] = self.validation
        return record

    def _settings(self) -> dict[str, Any]:
        """The settings as recorded in the model config: data, cohort and init paths as results name inputs."""
        settings = asdict(self.s)
        settings["data"] = [shown_path(p) for p in settings["data"]]
        settings["cohort"] = [shown_path(p) for p in settings["cohort"]]
        settings["init"] = shown_path(settings["init"])
        return settings

    def save(self) -> None:
        """Model folder, optimiser/step state and a preview PNG (rank 0 only)."""
        if not self.ctx.main:
            return
        tensors: dict[str, torch.Tensor] = {}
        groups = {}
        for name, opt in self.optims.items():
            t, g = _optimizer_tensors(opt, name)
            tensors.update(t)
            groups[name] = g
        state = {"step": self.step, "elapsed_s": self.elapsed, "settings": asdict(self.s), "param_groups": groups,
                 "scalers": {k: v.state_dict() for k, v in self.scalers.items() if v.is_enabled()},
                 "losses": self.losses}
        staging = make_staging(self.out)   # all four files are placed together (a kill: `recover_commits` completes it)
        try:
            save_model(staging, self.s.arch, self.nets, self.s.spacing, self.s.axis, extra=self.record())
            save_file(tensors, str(staging / STATE_WEIGHTS), metadata={"step": str(self.step)})
            state["model_sha256"] = sha256_file(staging / WEIGHTS)
            (staging / STATE_JSON).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
            commit_files([(staging / name, self.out / name) for name in CHECKPOINT], staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.preview(self.out / "previews" / f"step_{self.step:06d}.png")

    def load(self) -> None:
        """Restore weights, optimisers and step from the output folder (for --resume); InpaintError if damaged."""
        state = read_state(self.out)
        weights, tensors = self._tensors(WEIGHTS), self._tensors(STATE_WEIGHTS)
        try:
            for name, net in self.nets.items():
                prefix = name + "."
                net.load_state_dict({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
        except RuntimeError:
            raise damaged(self.out, f"{WEIGHTS} does not hold this run's networks") from None
        try:
            for name, opt in self.optims.items():
                _load_optimizer(opt, name, tensors, state["param_groups"][name])
            for name, scaler_state in state.get("scalers", {}).items():
                self.scalers[name].load_state_dict(scaler_state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
            raise damaged(self.out, f"{STATE_WEIGHTS} and {STATE_JSON} do not hold this run's optimiser state") from None
        self.step, self.elapsed, self.losses = state["step"], float(state["elapsed_s"]), state.get("losses", {})

    def _tensors(self, name: str) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(self.out / name))
        except (SafetensorError, OSError):
            raise damaged(self.out, f"{name} is missing or not a safetensors file") from None

    @torch.no_grad()
    def preview(self, path: Path) -> None:
        """GAN: 32 samples from fixed latents. VAE: rows of (input with hole, reconstruction, original)."""
        gen = torch.Generator().manual_seed(self.s.seed + 12345)
        decoder = self.nets["decoder"]
        decoder.eval()
        if self.s.kind == "gan":
            z = torch.rand(32, self.s.latent, generator=gen) * 2 - 1
            images = decoder(z.to(self.ctx.device)).float().cpu().numpy()[:, 0]
            _grid_png(images, 8, path)
        else:
            rng = np.random.default_rng([self.s.seed, 999])
            real = self.data.batch(rng, 8, AugmentConfig.for_group("none"))
            known = random_holes(rng, 8, self.s.size, empty=0.0)[:, None]
            self.nets["encoder"].eval()
            mu, _ = self.nets["encoder"](torch.from_numpy(real).to(self.ctx.device), torch.from_numpy(known).to(self.ctx.device))
            recon = decoder(mu).float().cpu().numpy()
            self.nets["encoder"].train()
            masked = np.where(known > 0, real, -1.0)
            _grid_png(np.concatenate([masked, recon, real])[:, 0], 8, path)
        decoder.train()

    # ---- loop -----------------------------------------------------------------------------
    def _log(self, writer, values: dict[str, float]) -> None:
        writer.writerow([self.step, round(self.elapsed, 2)] + [f"{values[k]:.6g}" for k in sorted(values)])

    def _open_log(self, keys: list[str]):
        path = self.out / LOSSES
        header = ["step", "time_s"] + sorted(keys)
        rows = []
        if path.exists():
            with open(path, newline="") as handle:
                rows = [r for r in csv.reader(handle)][1:]
            rows = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= self.step]
        handle = open(path, "w", newline="", buffering=1, encoding="utf-8")  # line-buffered: readable while training
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        return handle, writer

    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
        """Train until `steps` (or the `minutes` budget) is reached, checkpointing on the way."""
        s = self.s
        self.out.mkdir(parents=True, exist_ok=True)
        keys = ["d_loss", "g_loss", "d_real", "d_fake"] if s.kind == "gan" else ["loss", "mse", "kl"]
        handle, writer = self._open_log(keys) if self.ctx.main else (None, None)
        bar = ProgressBar(f"train {s.kind} k{s.kernel}") if self.ctx.main else None
        start_step, start_elapsed, t0 = self.step, self.elapsed, time.monotonic()
        budget = s.minutes * 60.0 if s.minutes else None
        try:
            while self.step < s.steps:
                t_step = time.monotonic()
                losses = self.train_step()
                self.elapsed = start_elapsed + time.monotonic() - t0
                self.losses = average(self.ctx, losses)  # identical on every rank, so all ranks stop together
                if not all(np.isfinite(v) for v in self.losses.values()):
                    raise InpaintError(f"training diverged at step {self.step} (losses {self.losses}); "
                                       f"lower --lr or resume from the last checkpoint in {self.out}.")
                if writer is not None:
                    self._log(writer, self.losses)
                if on_step is not None:
                    on_step(self.step, self.losses)
                done = self.step - start_step
                rate = (time.monotonic() - t0) / done
                out_of_time = budget is not None and self.elapsed + 1.5 * (time.monotonic() - t_step) > budget
                stop = any_rank(self.ctx, out_of_time)
                if self.step % s.checkpoint_every == 0 and not stop and self.step < s.steps:
                    if handle is not None:
                        handle.flush()
                    self.save()
                if bar is not None:
                    remaining = (s.steps - self.step) * rate
                    if budget is not None:
                        remaining = min(remaining, max(0.0, budget - self.elapsed))
                    text = f"{self.step}/{s.steps} " + " ".join(f"{k} {self.losses[k]:.4f}" for k in keys)
                    bar.update(self.step / s.steps, text, remaining)
                if stop:
                    break
            self.save()
        finally:
            if bar is not None:
                bar.close()
            if handle is not None:
                handle.close()


def describe_command(argv: list[str] | None = None) -> str:
    """The command line as typed (for the training record); `python -m` entry points spelled out."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return ""
    program = os.path.basename(argv[0])
    modules = {"cli.py": "python -m core.cli", "command.py": "python -m core.training.command"}
    return " ".join([modules.get(program, program)] + argv[1:])
