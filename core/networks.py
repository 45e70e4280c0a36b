"""DCGAN generator/discriminator and VAE encoder/decoder for square single-channel slices.

Both model kinds share the decoder architecture (latent -> image in [-1, 1]), so that the
GAN/VAE comparison isolates the training objective. Convolution kernel size (3 or 7, as in
the original study), latent size and width are configurable. No layer keeps batch
statistics, so every sample of a batch is computed independently (latent-search restarts
never influence one another).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


LIMITS = {"kernel": (1, 15), "latent": (1, 4096), "width": (1, 1024), "size": (2, 1024), "base": (1, 64)}
MAX_PARAMETERS = 100_000_000  # per network; the shipped models have well under one million


@dataclass(frozen=True)
class Architecture:
    """Shape of a model; stored in the checkpoint's JSON config. Every field is type- and range-checked
    (ValueError) before any network is built, so a tampered config cannot allocate gigabytes."""

    kind: str = "vae"  # "gan" or "vae"
    kernel: int = 3
    latent: int = 64
    width: int = 8
    size: int = 96
    base: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in ("gan", "vae"):
            raise ValueError(f"model kind must be 'gan' or 'vae', not {self.kind!r}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        if self.kernel % 2 != 1:
            raise ValueError(f"kernel size must be odd, not {self.kernel}")
        levels = math.log2(self.size / self.base)
        if self.size % self.base or levels != int(levels) or levels < 1:
            raise ValueError(f"image size {self.size} must be base {self.base} times a power of two")
        if self.parameter_estimate() > MAX_PARAMETERS:
            raise ValueError(f"latent {self.latent}, width {self.width}, size {self.size} and kernel {self.kernel} "
                             f"make about {self.parameter_estimate():.3g} parameters per network, more than "
                             f"{MAX_PARAMETERS:.0e}")

    def parameter_estimate(self) -> int:
        """Parameters of the largest network (decoder or encoder), computed without building it."""
        k2 = self.kernel * self.kernel
        convs = sum(self.channels(level - 1) * self.channels(level) * k2 for level in range(1, self.levels + 1))
        dense = self.channels(0) * self.base * self.base * 2 * self.latent
        return int(convs + dense + 2 * self.channels(self.levels) * k2)

    @property
    def levels(self) -> int:
        """Doublings from the base resolution to the slice size."""
        return int(math.log2(self.size / self.base))

    def channels(self, level: int) -> int:
        """Feature channels at resolution base * 2**level."""
        return self.width * 2 ** min(self.levels - level, 3)

    def to_dict(self) -> dict:
        """The architecture as JSON-able values (a checkpoint's config.json)."""
        return asdict(self)


class PixelNorm(nn.Module):
    """Normalises each pixel's feature vector to unit mean square (per sample, no statistics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Decoder(nn.Module):
    """Generator G(z): latent vector -> image in [-1, 1] of shape (1, size, size)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        c0 = arch.channels(0)
        self.project = nn.Linear(arch.latent, c0 * arch.base * arch.base)
        blocks = []
        for level in range(1, arch.levels + 1):
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(arch.channels(level - 1), arch.channels(level), arch.kernel, padding=arch.kernel // 2),
                PixelNorm(),
                nn.LeakyReLU(0.2),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(arch.channels(arch.levels), 1, arch.kernel, padding=arch.kernel // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = self.arch
        x = self.project(z).view(z.shape[0], a.channels(0), a.base, a.base)
        x = nn.functional.leaky_relu(PixelNorm()(x), 0.2)
        return torch.tanh(self.out(self.blocks(x)))


class _Downsampler(nn.Module):
    """Strided convolutions from (in_channels, size, size) down to a flat feature vector."""

    def __init__(self, arch: Architecture, in_channels: int, outputs: int, spectral: bool) -> None:
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        layers = []
        channels = in_channels
        for level in range(arch.levels, 0, -1):
            nxt = arch.channels(level - 1)
            layers += [wrap(nn.Conv2d(channels, nxt, arch.kernel, stride=2, padding=arch.kernel // 2)),
                       nn.LeakyReLU(0.2)]
            channels = nxt
        self.features = nn.Sequential(*layers)
        self.head = wrap(nn.Linear(channels * arch.base * arch.base, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Discriminator(nn.Module):
    """D(x): image -> real/fake logit, spectrally normalised for stable training."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.net = _Downsampler(arch, 1, 1, spectral=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class Encoder(nn.Module):
    """q(z | x): (image with hole set to 0, known-voxel mask) -> (mean, log-variance)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.latent = arch.latent
        self.net = _Downsampler(arch, 2, 2 * arch.latent, spectral=False)

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([image * known, known], dim=1))
        return out[:, :self.latent], out[:, self.latent:].clamp(-12.0, 8.0)


def build_networks(arch: Architecture) -> dict[str, nn.Module]:
    """The networks of a model kind: decoder plus discriminator (GAN) or encoder (VAE)."""
    nets: dict[str, nn.Module] = {"decoder": Decoder(arch)}
    if arch.kind == "gan":
        nets["discriminator"] = Discriminator(arch)
    else:
        nets["encoder"] = Encoder(arch)
    return nets
