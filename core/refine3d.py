"""Learned 3D lesion fill: a biharmonic fill corrected by a small 3D network trained on healthy brains.

The network sees the whole 3D neighbourhood of a lesion - the slices above and below as well
as the lesion's own slices - on a 2 mm isotropic grid (inputs at other voxel sizes are
resampled around each lesion, anti-aliased, and the prediction comes back by linear
interpolation). Its input is the biharmonic 3D fill of the masked crop (the strongest
classical fill) and the hole mask; its output is a correction added inside the hole. The
biharmonic base makes the fill continuous with every known neighbour; the correction adds what interpolation cannot know
(tissue boundaries, sulci, texture), learned from healthy brains.

Checkpoints are `model.safetensors` + `config.json` (nothing is unpickled); every number of
the config is validated before anything is allocated.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from .blend3d import biharmonic_fill_3d
from .errors import InpaintError
from .mirror import WEIGHT as MIRROR_WEIGHT
from .mirror import align_mirror, mirror_detail
from .normalize import IntensityScale
from .uncertainty import Predictor, lesion_features, load_uncertainty
from .resources import REFINER as SHIPPED   # the default refiner's folder (1 mm grid)
from .resources import REFINERS
from .jsonfiles import parse_json

FORMAT = "brain-inpaint-refiner3d"
FORMAT_VERSION = 1
MARGIN_MM = 16.0
_FACE = ndimage.generate_binary_structure(3, 1)
_FULL = ndimage.generate_binary_structure(3, 3)


@dataclass(frozen=True)
class RefinerConfig:
    """Architecture and grid of a 3D refiner: a three-level U-Net of `width`, 2x`width`, 4x`width` channels.

    `mirror_inputs`: the network also sees the mirrored hemisphere (`Refiner3D`) and learns its share.
    """

    width: int = 12
    spacing_mm: float = 2.0
    mirror_inputs: bool = False

    def validate(self, source: str) -> None:
        """Bound every number before anything is allocated; InpaintError names `source`."""
        ok = (isinstance(self.width, int) and not isinstance(self.width, bool) and 1 <= self.width <= 64
              and isinstance(self.spacing_mm, (int, float)) and math.isfinite(self.spacing_mm)
              and 0.25 <= self.spacing_mm <= 8.0 and isinstance(self.mirror_inputs, bool))
        if not ok:
            raise InpaintError(f"{source} has an invalid 3D refiner architecture ({asdict(self)}); "
                               f"use a checkpoint written by 'python -m core.training.refiner'.")


class Conv3d(nn.Conv3d):
    """`nn.Conv3d` that, for inference on the CPU, always runs oneDNN's convolution.

    PyTorch sends one volume whose batch x channels x depth x height is at most 20480 to its reference
    kernel instead: at the refiner's width of 12 that is every crop under 42 voxels a side, and the deeper
    layers of larger ones, at 1.2-6x the time (docs/performance.md). The results agree to float rounding.
    Training (gradients on) and other devices take the usual path; the weights are the same parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and self.padding_mode == "zeros" and torch.backends.mkldnn.is_available()
                and torch.backends.mkldnn.enabled and hasattr(torch, "mkldnn_convolution")):
            return torch.mkldnn_convolution(x.contiguous(), self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)
        return super().forward(x)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(Conv3d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1))


class Refiner3D(nn.Module):
    """Small 3D U-Net: (biharmonic fill, hole) -> correction inside the hole.

    With `config.mirror_inputs` it also takes two mirror channels (`core.mirror.align_mirror`): the
    aligned mirror minus the biharmonic-filled crop (outside the hole: how well the mirror matches the
    known tissue) and the mirror's detail inside the hole; it then adds a learned share (0..1 per voxel)
    of that detail to its correction. The share starts at 0.5, the fixed share of a refiner without them.
    """

    def __init__(self, config: RefinerConfig):
        super().__init__()
        w = config.width
        self.config = config
        self.enc0 = nn.Sequential(_conv(4 if config.mirror_inputs else 2, w), _conv(w, w))
        self.enc1 = nn.Sequential(_conv(w, 2 * w, stride=2), _conv(2 * w, 2 * w))
        self.enc2 = nn.Sequential(_conv(2 * w, 4 * w, stride=2), _conv(4 * w, 4 * w), _conv(4 * w, 4 * w))
        self.up1 = _conv(4 * w, 2 * w)
        self.dec1 = _conv(4 * w, 2 * w)
        self.up0 = _conv(2 * w, w)
        self.dec0 = _conv(2 * w, w)
        self.tail = Conv3d(w, 1, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        if config.mirror_inputs:
            self.gate = Conv3d(w, 1, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def forward(self, base: torch.Tensor, hole: torch.Tensor, mirror: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`base` (N,1,D,H,W) in [-1, 1], `hole` (N,1,D,H,W) in {0, 1}, `mirror` (N,2,D,H,W) or None
        (no mirror: zeros); returns the corrected volume."""
        correction, share = self.parts(base, hole, mirror)
        if share is None or mirror is None:
            return base + correction
        return base + correction + share * mirror[:, 1:2]

    def parts(self, base: torch.Tensor, hole: torch.Tensor,
              mirror: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The correction inside the hole and, with mirror inputs, the share of the mirror's detail (else None)."""
        inputs = [base, hole]
        if self.config.mirror_inputs:
            inputs.append(mirror if mirror is not None else base.new_zeros((base.shape[0], 2) + base.shape[2:]))
        e0 = self.enc0(torch.cat(inputs, dim=1))
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        d1 = self.up1(F.interpolate(e2, size=e1.shape[2:], mode="trilinear", align_corners=False))
        d1 = self.dec1(torch.cat([d1, e1], dim=1))
        d0 = self.up0(F.interpolate(d1, size=e0.shape[2:], mode="trilinear", align_corners=False))
        d0 = self.dec0(torch.cat([d0, e0], dim=1))
        share = torch.sigmoid(self.gate(d0)) if self.config.mirror_inputs else None   # the detail is 0 outside
        return hole * self.tail(d0), share


def with_mirror_inputs(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of a refiner without mirror inputs, widened to one with them that fills exactly alike
    (the mirror channels' first weights zero, the share 0.5: a start for fine-tuning)."""
    state = dict(state)
    first = state["enc0.0.0.weight"]
    state["enc0.0.0.weight"] = torch.cat([first, torch.zeros_like(first[:, :2])], dim=1)
    state["gate.weight"] = torch.zeros_like(state["tail.weight"])
    state["gate.bias"] = torch.zeros_like(state["tail.bias"])
    return state


CONCATENATED = {"dec1.0.weight": 2, "dec0.0.weight": 2}   # convolutions whose input is two equal parts (skip joins)


def widened(state: dict[str, torch.Tensor], config: RefinerConfig, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights of a refiner of `config` carried to a wider one (`width` at its first level) that fills exactly alike.

    Every old weight keeps its place (in a skip join, within its own part); the new channels' own weights are
    zero, so they output 0 and change nothing, and the weights that read them start as a fresh network's
    (seeded; the output layers' too, which a fresh network zeroes), so training gives the new channels a
    gradient from the first step.
    """
    if width < config.width:
        raise ValueError(f"a refiner is widened, never narrowed: width {width} < {config.width}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = Refiner3D(replace(config, width=width))
        for layer in (network.tail, getattr(network, "gate", None)):
            if layer is not None:
                layer.reset_parameters()
    fresh = network.state_dict()
    out = {}
    for name, target in fresh.items():
        old = state[name]
        target = target.clone()
        if old.dim() > 1:   # a convolution: (out, in, 3, 3, 3)
            target[old.shape[0]:] = 0.0
            parts = CONCATENATED.get(name, 1)
            step_old, step_new = old.shape[1] // parts, target.shape[1] // parts
            for part in range(parts):
                target[:old.shape[0], part * step_new:part * step_new + step_old] = old[:, part * step_old:(part + 1) * step_old]
        else:               # a bias
            target.zero_()
            target[:old.shape[0]] = old
        out[name] = target
    return out


@dataclass
class Refiner:
    """A loaded refiner and where it came from."""

    network: Refiner3D
    config: RefinerConfig
    name: str
    path: Optional[Path]
    checksum: str
    uncertainty: Optional[Predictor] = None  # its folder's uncertainty.json (`core.uncertainty.UncertaintyModel`)


def config_from_json(raw: dict, source: str) -> RefinerConfig:
    """Validated `RefinerConfig` from a parsed config.json."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise InpaintError(f"{source} is not a version-{FORMAT_VERSION} 3D refiner config; "
                           f"use a checkpoint written by this version of brain-inpaint.")
    arch = raw.get("architecture")
    if not isinstance(arch, dict):
        raise InpaintError(f"{source} has no architecture section; use a checkpoint written by brain-inpaint.")
    config = RefinerConfig(width=arch.get("width"), spacing_mm=arch.get("spacing_mm"),
                           mirror_inputs=arch.get("mirror_inputs", False))
    config.validate(source)
    return config


def config_to_json(config: RefinerConfig, extra: Optional[dict] = None) -> dict:
    """The config.json of a refiner checkpoint."""
    record = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "architecture": {"width": config.width, "spacing_mm": config.spacing_mm}}
    if config.mirror_inputs:
        record["architecture"]["mirror_inputs"] = True
    record.update(extra or {})
    return record


def save_refiner(folder: Union[str, Path], network: Refiner3D, extra: Optional[dict] = None) -> Path:
    """Write `model.safetensors` + `config.json` atomically into `folder`."""
    from safetensors.torch import save_file

    from .atomic import write_atomically

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    write_atomically(folder / "model.safetensors", lambda p: save_file(state, str(p)))
    text = json.dumps(config_to_json(network.config, extra), indent=2)
    write_atomically(folder / "config.json", lambda p: p.write_text(text, encoding="utf-8"))
    return folder


def load_refiner(path: Union[str, Path], name: Optional[str] = None) -> Refiner:
    """Load a refiner folder (`model.safetensors` + `config.json`); never unpickles anything."""
    from .jsonfiles import sha256_file

    folder = Path(path)
    weights, cfg_path = folder / "model.safetensors", folder / "config.json"
    if not weights.is_file() or not cfg_path.is_file():
        raise InpaintError(f"{folder} is not a 3D refiner folder (model.safetensors + config.json); check the path.")
    try:
        raw = parse_json(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InpaintError(f"{cfg_path} cannot be read as JSON ({exc}); restore it from the release.") from None
    config = config_from_json(raw, str(cfg_path))
    with torch.random.fork_rng(devices=[]):   # the initial weights are replaced: leave the caller's stream
        network = Refiner3D(config)
    try:
        state = load_file(str(weights))
        network.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors raises several types for damaged files
        raise InpaintError(f"{weights} does not hold this refiner's weights ({type(exc).__name__}); "
                           f"restore it from the release.") from None
    whole = sorted(k for k, t in state.items() if not t.is_floating_point())   # every parameter is a real number
    if whole:
        raise InpaintError(f"{weights} holds {str(state[whole[0]].dtype).removeprefix('torch.')} values in "
                           f"{whole[0]}, not the real-valued weights of a refiner; restore it from the release.")
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise InpaintError(f"{weights} holds non-finite weights; restore the model from the release.")
    network.eval()
    checksum = sha256_file(weights)
    return Refiner(network=network, config=config, name=name or folder.name, path=folder, checksum=checksum,
                   uncertainty=load_uncertainty(folder, checksum))


_CACHE: dict[str, Refiner] = {}


def shipped_refiners() -> list[Refiner]:
    """Every shipped refiner (`resources/refiner3d*`, one per grid), each loaded once per process."""
    for folder in REFINERS:
        if folder.name not in _CACHE and (folder.is_dir() or folder == SHIPPED):
            _CACHE[folder.name] = load_refiner(folder, name=folder.name)
    return [_CACHE[f.name] for f in REFINERS if f.name in _CACHE]


def default_refiner(spacing: Optional[Sequence[float]] = None) -> Refiner:
    """The shipped refiner for voxels of `spacing` mm: the one whose grid is nearest their median size.

    Nearest on a log scale (with a 1 mm and a 2 mm grid, 1.41 mm lies between them). One grid ships today:
    the 1 mm refiner (`resources/refiner3d_1mm`) fills every scan, 2 mm ones on a 1 mm resampling of each
    lesion's crop, where it beat the 2 mm refiner it replaced (docs/training.md). Without `spacing`, the
    default refiner (`resources.REFINER`).
    """
    found = shipped_refiners()
    if spacing is None:
        return next(r for r in found if r.path == SHIPPED)
    size = float(np.median(np.asarray(spacing, dtype=np.float64)))
    return min(found, key=lambda r: abs(math.log(r.config.spacing_mm / size)))


def resample(volume: np.ndarray, factors: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Sample `volume` at voxel coordinates i * factors (anti-aliased when factors > 1)."""
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    if order == 1 and np.any(sigma > 0):
        volume = ndimage.gaussian_filter(volume, sigma=sigma, mode="nearest", truncate=3.0)
    coords = np.meshgrid(*[np.arange(n) * f for n, f in zip(shape, factors)], indexing="ij")
    return ndimage.map_coordinates(volume, coords, order=order, mode="nearest").astype(np.float32)


def clip_base(base: np.ndarray) -> np.ndarray:
    """The biharmonic base in model range, with overshoots beyond [-1.5, 1.5] clipped (network input)."""
    return np.clip(base, -1.5, 1.5).astype(np.float32)


def run_network(refiner: Refiner, base: np.ndarray, hole: np.ndarray, device: torch.device) -> np.ndarray:
    """The network on one model-grid crop (model range), returns the corrected crop."""
    correction, _ = run_parts(refiner, base, hole, None, device)
    return base + correction


def run_parts(refiner: Refiner, base: np.ndarray, hole: np.ndarray, mirror: Optional[np.ndarray],
              device: torch.device) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The network's correction on one model-grid crop and, with mirror inputs ((2,) + crop shape, or
    None), the share of the mirror's detail to add (`Refiner3D.parts`)."""
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(device)

    with torch.no_grad():
        correction, share = refiner.network.to(device).parts(
            tensor(base[None]), tensor(hole[None]), None if mirror is None else tensor(mirror))
    return correction[0, 0].cpu().numpy(), None if share is None else share[0, 0].cpu().numpy()


def lesion_crops(hole: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, list[tuple[slice, ...]]]:
    """The lesions of `hole` (26-connected labels 1..n) and the crop each is filled on: its box plus MARGIN_MM."""
    margin = np.ceil(MARGIN_MM / np.asarray(spacing, dtype=np.float64)).astype(int)
    labels, _ = ndimage.label(hole, structure=_FULL)
    return labels, [tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, n, m in zip(box, hole.shape, margin))
                    for box in ndimage.find_objects(labels)]


def refine_fill(voided: np.ndarray, hole: np.ndarray, spacing: Sequence[float], scale: IntensityScale,
                refiner: Refiner, device: torch.device, cancel=None, mirror: Optional[np.ndarray] = None,
                mirror_weight: float = 0.0, on_lesion: Optional[Callable[[int, int], None]] = None,
                features: Optional[np.ndarray] = None,
                lesions: Optional[tuple[np.ndarray, list[tuple[slice, ...]]]] = None) -> np.ndarray:
    """Fill `hole` of `voided` (RAS voxel order, hole zeroed) lesion by lesion; returns the filled volume.

    Each lesion (26-connected) is filled on its bounding box plus MARGIN_MM, where every hole voxel
    is unknown. On the refiner's grid the fill is the network's output; for other voxel sizes the
    biharmonic fill is computed at native resolution and the network's correction (its output minus
    its biharmonic input, on the refiner's grid) is interpolated back and added. With `mirror` (the
    mirrored image on the same voxels, `core.mirror.mirrored_box`), `mirror_weight` times its
    detail (`core.mirror.mirror_detail`) is added as well; a refiner with mirror inputs sees the
    aligned mirror and adds its own learned share of the detail, times `mirror_weight` / 0.5.
    `on_lesion(done, total)` is called after each lesion (done = 1..total); cancellation is checked
    before each one. `features` (shape (len(core.uncertainty.FEATURES),) + hole.shape), when given,
    receives each lesion's `core.uncertainty.lesion_features`. `lesions`: `lesion_crops(hole, spacing)`
    when the caller already has it.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    factors = refiner.config.spacing_mm / spacing           # native voxels per model voxel
    native_grid = bool(np.all(np.abs(factors - 1.0) < 0.05))
    learned_share = refiner.config.mirror_inputs
    filled = np.array(voided, dtype=np.float32, copy=True)
    labels, crops = lesion_crops(hole, spacing) if lesions is None else lesions
    count = len(crops)
    for index, crop in enumerate(crops, start=1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        part = labels[crop] == index
        unknown = hole[crop]
        known = np.where(unknown, -1.0, scale.to_model(voided[crop])).astype(np.float32)
        region = filled[crop]
        smooth = biharmonic_fill_3d(known, unknown, (1.0, 1.0, 1.0) if native_grid else spacing)
        if learned_share:
            pred = smooth + _learned_fill(refiner, device, smooth, known, unknown, factors, native_grid, spacing,
                                          None if mirror is None or not mirror_weight else scale.to_model(mirror[crop]),
                                          mirror_weight, cancel, part)
        else:
            if native_grid:
                pred = run_network(refiner, clip_base(smooth), unknown, device)
            else:
                small_base, small_hole = _model_grid(known, unknown, factors)
                correction = run_network(refiner, small_base, small_hole, device) - small_base
                pred = smooth + _back(correction, factors, part.shape)
            if mirror is not None and mirror_weight:
                if cancel is not None:  # the alignment costs as much as the rest of a lesion: stop before it
                    cancel.raise_if_cancelled()
                pred += mirror_weight * mirror_detail(smooth, scale.to_model(mirror[crop]), unknown, spacing, part)
        region[part] = scale.from_model(pred)[part]
        if features is not None:
            features[(slice(None),) + crop][:, part] = lesion_features(
                voided[crop], unknown, part, scale.from_model(smooth), region, spacing)[:, part]
        if on_lesion is not None:
            on_lesion(index, count)
    return filled


def _model_grid(known: np.ndarray, unknown: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A crop's clipped biharmonic base and hole on the refiner's grid."""
    shape = [max(2, int(math.floor((n - 1) / f)) + 1) for n, f in zip(unknown.shape, factors)]
    small_hole = resample(unknown.astype(np.float32), factors, shape) > 1e-3
    small_known = np.where(small_hole, -1.0, resample(known, factors, shape)).astype(np.float32)
    return clip_base(biharmonic_fill_3d(small_known, small_hole)), small_hole


def _back(values: np.ndarray, factors: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Model-grid `values` interpolated back to a native crop of `shape`."""
    coords = np.meshgrid(*[np.arange(n) / f for n, f in zip(shape, factors)], indexing="ij")
    return ndimage.map_coordinates(values, coords, order=1, mode="nearest")


def _learned_fill(refiner: Refiner, device: torch.device, smooth: np.ndarray, known: np.ndarray, unknown: np.ndarray,
                  factors: np.ndarray, native_grid: bool, spacing: np.ndarray, mirror: Optional[np.ndarray],
                  mirror_weight: float, cancel, lesion: np.ndarray) -> np.ndarray:
    """What a refiner with mirror inputs adds to the native biharmonic fill `smooth` of one crop, filled for
    `lesion` (the part of the crop's hole `unknown` it writes: the mirror is aligned around it)."""
    inputs = np.zeros((2,) + unknown.shape, dtype=np.float32)
    if mirror is not None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        aligned, detail = align_mirror(smooth, mirror, unknown, spacing, lesion)
        inputs = np.stack([aligned - smooth, detail])
    if native_grid:
        correction, share = run_parts(refiner, clip_base(smooth), unknown, inputs, device)
    else:
        small_base, small_hole = _model_grid(known, unknown, factors)
        small = np.stack([resample(c, factors, small_base.shape) for c in inputs])
        correction, share = run_parts(refiner, small_base, small_hole, small, device)
        correction = _back(correction, factors, unknown.shape)
    if mirror is None:
        return correction
    if not native_grid:
        share = _back(share, factors, unknown.shape)
    return correction + (mirror_weight / MIRROR_WEIGHT) * share * inputs[1]
