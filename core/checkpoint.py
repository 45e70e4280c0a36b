"""Model checkpoints: a safetensors weights file plus a JSON config; nothing is unpickled.

A model directory holds `model.safetensors` (tensors named `<network>.<parameter>`),
`config.json` (format tag, architecture, model space, normalisation, training record)
and optionally `MODEL_CARD.md`. A single `.safetensors` path may be given instead of the
directory when its `config.json` lies beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import write_atomically
from .errors import InpaintError
from .networks import Architecture, build_networks
from .jsonfiles import parse_json, sha256_file

FORMAT = "brain-inpaint-model"
FORMAT_VERSION = 1
PLANES = ("axial", "coronal", "sagittal")
SPACING_RANGE_MM = (0.05, 50.0)
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class Model:
    """A loaded model: its networks (eval mode), architecture and model-space settings."""

    name: str
    arch: Architecture
    networks: dict[str, torch.nn.Module]
    spacing: float
    axis: str
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    checksum: str = ""

    @property
    def decoder(self) -> torch.nn.Module:
        return self.networks["decoder"]

    @property
    def uniform_prior(self) -> bool:
        """GAN latents are uniform on [-1, 1], VAE latents standard normal (config 'latent_prior')."""
        default = "uniform" if self.arch.kind == "gan" else "normal"
        return self.config.get("latent_prior", default) == "uniform"

    def to(self, device: Union[str, torch.device]) -> "Model":
        for net in self.networks.values():
            net.to(device)
        return self


def save_model(directory: Union[str, Path], arch: Architecture, networks: dict[str, torch.nn.Module],
               spacing: float, axis: str, extra: dict[str, Any] | None = None) -> Path:
    """Write weights and config into `directory` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{key}": value.detach().cpu().contiguous()
               for name, net in networks.items() for key, value in net.state_dict().items()}
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": arch.to_dict(),
              "model_space": {"size": arch.size, "spacing_mm": spacing, "axis": axis,
                              "intensity": "0 -> -1, 99.5th percentile of brain -> +1 (core.normalize)"}}
    config.update(extra or {})
    write_atomically(directory / WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    write_atomically(directory / CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8"))
    return directory


def _resolve(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / WEIGHTS, path / CONFIG
    if path.suffix == ".safetensors":
        return path, path.with_name(CONFIG)
    if path.name == CONFIG:
        return path.with_name(WEIGHTS), path
    raise InpaintError(f"{path} is not a model: give a model folder or its .safetensors file.")


def _default_name(path: Path) -> str:
    return path.parent.name if path.is_file() else path.name


def check_config(config: Any, config_path: Path) -> tuple[Architecture, float, str]:
    """Validate a parsed config.json before anything is allocated; InpaintError (one sentence) on any problem."""
    def bad(what: str) -> InpaintError:
        return InpaintError(f"{config_path} {what}; restore the file from the model's source or retrain the model.")

    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise bad(f"is not a {FORMAT} config (missing 'format': '{FORMAT}')")
    version = config.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"has format version {version!r}, which is not a version this program knows ({FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise InpaintError(f"{config_path} has format version {version}, newer than this program reads "
                           f"({FORMAT_VERSION}); upgrade brain-inpaint.")
    architecture, space = config.get("architecture"), config.get("model_space")
    if not isinstance(architecture, dict) or not isinstance(space, dict):
        raise bad("lacks its 'architecture' or 'model_space' section")
    try:
        arch = Architecture(**architecture)
    except (TypeError, ValueError) as exc:
        raise bad(f"has an invalid architecture ({exc})") from None
    spacing, axis = space.get("spacing_mm"), space.get("axis")
    low, high = SPACING_RANGE_MM
    if (not isinstance(spacing, (int, float)) or isinstance(spacing, bool) or not math.isfinite(spacing)
            or not low <= spacing <= high):
        raise bad(f"has model_space.spacing_mm {spacing!r}; it must be a finite number of millimetres from "
                  f"{low} to {high}")
    if axis not in PLANES:
        raise bad(f"has model_space.axis {axis!r}; it must be one of {', '.join(PLANES)}")
    if "size" in space and space["size"] != arch.size:
        raise bad(f"has model_space.size {space['size']!r} but architecture size {arch.size}")
    prior = config.get("latent_prior", "uniform" if arch.kind == "gan" else "normal")
    if prior not in ("uniform", "normal"):
        raise bad(f"has latent_prior {prior!r}; it must be 'uniform' or 'normal'")
    return arch, float(spacing), str(axis)


def load_model(path: Union[str, Path], name: str | None = None) -> Model:
    """Load and validate a checkpoint; every problem is an InpaintError naming the file."""
    path = Path(path).absolute()   # "." names its folder in the model's name and record
    if not path.exists():
        raise InpaintError(f"{path} does not exist: give a model folder, its .safetensors file, or a name from 'inpaint models'.")
    weights, config_path = _resolve(path)
    for needed in (weights, config_path):
        if not needed.is_file():
            raise InpaintError(f"{needed} is missing: a model needs both {WEIGHTS} and {CONFIG} in its folder.")
    try:
        config = parse_json(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InpaintError(f"{config_path} is not valid JSON ({exc}); restore it from the model's source.") from None
    arch, spacing, axis = check_config(config, config_path)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InpaintError(f"{weights} is not a readable safetensors file ({exc}); the download or copy may be corrupt.") from None
    with torch.random.fork_rng(devices=[]):   # the initial weights are replaced: leave the caller's stream
        networks = build_networks(arch)
    stray = sorted(k for k in tensors if not k.startswith(tuple(f"{n}." for n in networks)))
    if stray:
        raise InpaintError(f"{weights} does not match its config: it holds tensors of no network of a {arch.kind} "
                           f"model ({', '.join(stray[:3])}), so restore the file from the model's source.")
    for net_name, net in networks.items():
        prefix = net_name + "."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = net.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise InpaintError(f"{weights} does not match its config: {net_name} is missing "
                               f"{missing[:3]} and has unexpected {unexpected[:3]}.")
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise InpaintError(f"{weights} does not match its config: {net_name}.{key} has shape "
                                   f"{tuple(value.shape)}, the architecture needs {tuple(expected[key].shape)}.")
            if value.is_floating_point() != expected[key].is_floating_point():
                raise InpaintError(f"{weights} does not match its config: {net_name}.{key} holds "
                                   f"{str(value.dtype).removeprefix('torch.')} values, not the "
                                   f"{str(expected[key].dtype).removeprefix('torch.')} the architecture needs, so "
                                   "restore the file from the model's source.")
        for key, value in state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise InpaintError(f"{weights} holds NaN or infinite values in {net_name}.{key}, so the model "
                                   f"{name or _default_name(path)} is corrupt; retrain it or restore the file "
                                   "from the model's source.")
        net.load_state_dict(state)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
    return Model(name=name or _default_name(path), arch=arch, networks=networks,
                 spacing=spacing, axis=axis, config=config, path=path, checksum=sha256_file(weights))
