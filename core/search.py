"""Latent search (Yeh et al. 2017): z_hat = argmin_z L_context(z) + L_prior(z), per slice.

With M = 1 on known pixels and y the masked slice (model space):
- weights W_i = M_i * sum_{j in N(i)} (1 - M_j) / |N(i)| over a `window` x `window`
  neighbourhood (zero padding: pixels beyond the border count as known);
- context loss L_c(z) = || W * (G(z) - y) ||_1;
- prior loss: GAN lambda * log(1 - D(G(z))); VAE lambda * ||z||^2.
All restarts of all slices are optimised together in batches; losses are per sample and the
networks are in eval mode, so a restart never influences another. The best restart of each
slice is the one with the lowest final loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import Model
from .errors import InpaintError
from .job import CancelToken


LR_MAX = 10.0  # Adam's step on z is about lr per iteration; beyond this the latent leaves any sensible range
LAMBDA_MAX = 1000.0
SEED_MAX = 2 ** 63 - 1  # torch.Generator.manual_seed and numpy both take 0..2**63-1
PLANE_NAMES = ("axial", "coronal", "sagittal")
DEFAULT_AXIS = "axial"  # the plane of a fill that names none and uses no slice model (the shipped models' plane)
LIMITS = {"iterations": (1, 1_000_000), "restarts": (1, 1024), "batch": (1, 65536)}  # whole-number fields
WINDOW_MIN = 3   # a 1-pixel window sees no hole beside a known pixel: every context weight would be zero
WINDOW_MAX = 255


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _rule_text(name: str, value: Any) -> Optional[str]:
    """What is wrong with one settings field (None when fine); knows the fill pipeline's fields too."""
    if name in LIMITS:
        low, high = LIMITS[name]
        return None if _whole(value) and low <= value <= high else f"must be a whole number from {low} to {high}"
    if name == "window":
        ok = _whole(value) and WINDOW_MIN <= value <= WINDOW_MAX and value % 2 == 1
        return None if ok else f"must be an odd whole number from {WINDOW_MIN} to {WINDOW_MAX}, such as 3 or 7"
    if name == "lr":
        ok = _real(value) and math.isfinite(value) and 0 < value <= LR_MAX
        return None if ok else f"must be a finite number greater than 0 and at most {LR_MAX:g}"
    if name == "lam":
        ok = _real(value) and math.isfinite(value) and 0 <= value <= LAMBDA_MAX
        return None if ok else f"must be a finite number from 0 to {LAMBDA_MAX:g}"
    if name == "mirror":
        ok = _real(value) and math.isfinite(value) and 0 <= value <= 1
        return None if ok else "must be a finite number from 0 to 1 (0 leaves the other hemisphere out)"
    if name == "seed":
        return None if _whole(value) and 0 <= value <= SEED_MAX else f"must be a whole number from 0 to 2**63-1 ({SEED_MAX})"
    if name in ("prior", "weighting", "encoder_start", "blend"):
        return None if isinstance(value, (bool, np.bool_)) else "must be True or False"
    if name == "axis":
        return None if value is None or value in PLANE_NAMES else f"must be None or one of {', '.join(PLANE_NAMES)}"
    if name == "device":
        return None if isinstance(value, str) and value else "must be a non-empty string"
    if name == "preview_every":
        return None if _whole(value) and value >= 0 else "must be a whole number of at least 0"
    return None


OPTION_NAMES = {"lam": "lambda", "encoder_start": "encoder-start", "preview_every": "preview-every"}


def check_settings(settings: Any) -> None:
    """InpaintError naming the first invalid field of a settings dataclass (the same rules as the command line)."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        problem = _rule_text(f.name, value)
        if problem is not None:
            option = OPTION_NAMES.get(f.name, f.name)
            raise InpaintError(f"The setting {f.name} (--{option}) {problem}, not {value!r}; "
                               "choose a value in that range.")


@dataclass(frozen=True)
class SearchSettings:
    """Parameters of the latent search (defaults are the interactive settings); invalid values raise InpaintError."""

    iterations: int = 50
    restarts: int = 2
    lr: float = 0.05
    lam: float = 0.003
    window: int = 7
    prior: bool = True
    weighting: bool = True
    encoder_start: bool = True
    seed: int = 0
    batch: int = 64

    def __post_init__(self) -> None:
        check_settings(self)  # also checks the fields a subclass adds (FillSettings: axis, device, ...)


@dataclass
class SearchResult:
    """Best generated image (model space, [-1, 1]) and final loss of each slice."""

    images: np.ndarray
    losses: np.ndarray
    latents: np.ndarray


StepCallback = Callable[[int, int, np.ndarray, Optional[np.ndarray]], None]


def context_weights(known: torch.Tensor, window: int) -> torch.Tensor:
    """W = M * boxfilter(1 - M): emphasises known pixels close to the hole; zero inside it."""
    if window < WINDOW_MIN or window % 2 == 0:
        raise ValueError(f"window must be an odd number of at least {WINDOW_MIN}, not {window}")
    unknown = 1.0 - known
    box = F.avg_pool2d(unknown, window, stride=1, padding=window // 2, count_include_pad=True)
    return known * box


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an unavailable device is a user error."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise InpaintError(f"--device {name!r} is not a device name; use auto, cpu, cuda, cuda:N or mps.") from None
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
        if not available.get(device.type, False):
            raise InpaintError(f"--device {name!r} is not available on this machine; use auto or cpu.")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise InpaintError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s).")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _initial_latents(model: Model, targets: torch.Tensor, known: torch.Tensor, restarts: int,
                     settings: SearchSettings, generator: torch.Generator) -> torch.Tensor:
    n, latent = targets.shape[0], model.arch.latent
    if model.uniform_prior:
        z = torch.rand(n, restarts, latent, generator=generator) * 2.0 - 1.0
    else:
        z = torch.randn(n, restarts, latent, generator=generator)
    z = z.to(targets.device)
    if settings.encoder_start and "encoder" in model.networks:
        with torch.no_grad():
            mean, _ = model.networks["encoder"](targets, known)
        z[:, 0] = mean
    return z.reshape(n * restarts, latent)


def _losses(model: Model, z: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
            settings: SearchSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample total loss and the generated images."""
    images = model.decoder(z)
    loss = (weights * (images - target)).abs().flatten(1).sum(1)
    if settings.prior and settings.lam > 0:
        if model.arch.kind == "gan":
            logits = model.networks["discriminator"](images)
            loss = loss - settings.lam * F.softplus(logits)  # log(1 - sigmoid(l)) = -softplus(l)
        else:
            loss = loss + settings.lam * z.pow(2).sum(1)
    return loss, images


def latent_search(model: Model, targets: np.ndarray, known: np.ndarray, settings: SearchSettings,
                  device: torch.device = torch.device("cpu"), on_step: Optional[StepCallback] = None,
                  preview_every: int = 0, cancel: Optional[CancelToken] = None) -> SearchResult:
    """Search the latent space for every slice of `targets` (N, H, W; model space, known where `known`).

    `on_step(step, total, best_loss_per_slice, best_images_or_None)` is called after every
    iteration; images are passed every `preview_every` iterations (0: never).
    """
    n, size = targets.shape[0], model.arch.size
    restarts = settings.restarts
    generator = torch.Generator().manual_seed(settings.seed)
    model.to(device)
    y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).view(n, 1, size, size).to(device)
    m = torch.from_numpy(np.ascontiguousarray(known, dtype=np.float32)).view(n, 1, size, size).to(device)
    y = y * m
    w = context_weights(m, settings.window) if settings.weighting else m
    z_all = _initial_latents(model, y, m, restarts, settings, generator)
    owner = torch.arange(n, device=device).repeat_interleave(restarts)

    best_loss = np.full(n, np.inf)
    best_images = np.zeros((n, size, size), dtype=np.float32)
    best_latents = np.zeros((n, model.arch.latent), dtype=np.float32)
    batch = max(restarts, settings.batch // restarts * restarts)
    chunks = [slice(s, min(s + batch, n * restarts)) for s in range(0, n * restarts, batch)]
    total = len(chunks) * settings.iterations
    step = 0
    for chunk in chunks:
        z = z_all[chunk].clone().requires_grad_(True)
        idx = owner[chunk]
        optimizer = torch.optim.Adam([z], lr=settings.lr)
        for it in range(settings.iterations + 1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            final = it == settings.iterations
            with torch.set_grad_enabled(not final):
                loss, images = _losses(model, z, y[idx], w[idx], settings)
            if final or (on_step and preview_every and (it + 1) % preview_every == 0):
                _keep_best(loss.detach(), images.detach(), z.detach(), idx, best_loss, best_images, best_latents)
            if final:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            if model.uniform_prior:
                with torch.no_grad():
                    z.clamp_(-1.0, 1.0)
            step += 1
            if on_step is not None:
                show = preview_every and (it + 1) % preview_every == 0
                on_step(step, total, best_loss.copy(), best_images.copy() if show else None)
    if not (np.isfinite(best_loss).all() and np.isfinite(best_images).all()):
        bad = int(np.count_nonzero(~np.isfinite(best_loss) | ~np.isfinite(best_images).reshape(n, -1).all(axis=1)))
        raise InpaintError(f"The model {model.name} ({model.path or 'in memory'}) produced NaN or infinite values "
                           f"for {bad} of {n} slices; its weights or the search settings (--lr {settings.lr:g}, "
                           f"--lambda {settings.lam:g}) are unusable: choose another model or smaller values.")
    return SearchResult(images=best_images, losses=best_loss, latents=best_latents)


def _keep_best(loss: torch.Tensor, images: torch.Tensor, z: torch.Tensor, idx: torch.Tensor,
               best_loss: np.ndarray, best_images: np.ndarray, best_latents: np.ndarray) -> None:
    """Record, for each slice in this chunk, its lowest-loss restart (all of a slice's restarts share a chunk)."""
    loss_np = loss.cpu().numpy()
    # a restart whose loss or image is not finite never wins (NaN would otherwise win argmin)
    finite = torch.isfinite(images.flatten(1)).all(dim=1).cpu().numpy()
    loss_np = np.where(np.isfinite(loss_np) & finite, loss_np, np.inf)
    idx_np = idx.cpu().numpy()
    for slice_index in np.unique(idx_np):
        members = np.nonzero(idx_np == slice_index)[0]
        pick = members[np.argmin(loss_np[members])]
        best_loss[slice_index] = loss_np[pick]
        best_images[slice_index] = images[pick, 0].cpu().numpy()
        best_latents[slice_index] = z[pick].cpu().numpy()
