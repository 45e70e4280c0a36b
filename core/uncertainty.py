"""Predicted error of a lesion fill: a per-voxel standard deviation, in the image's intensity units.

Three quantities known at fill time, without the truth, describe each hole voxel (`FEATURES`):
- `shell_sd`: the standard deviation of the known voxels within SHELL_MM of the voxel's lesion, or
  within one voxel where the finest voxel is coarser than that (how varied the tissue around it is);
- `depth_mm`: the distance from the voxel to the nearest known voxel (errors grow away from the edge);
- `spread`: |refined fill - biharmonic fill| at the voxel (where two plausible fills disagree).

The predicted SD is `shell_sd * (edge + deep * (1 - exp(-depth_mm / length_mm))) + spread_weight * spread`.
Its four constants are fitted on the training cohort's validation split
(`scripts/calibrate_uncertainty.py`) and stored as `uncertainty.json` in the refiner's folder, so they
follow the refiner they were fitted for; every number is validated on load, nothing is unpickled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np
from scipy import ndimage

from .errors import InpaintError
from .jsonfiles import parse_json

FORMAT = "brain-inpaint-uncertainty"
FORMAT_VERSION = 1
FILE_NAME = "uncertainty.json"
SHELL_MM = 3.0
FEATURES = ("shell_sd", "depth_mm", "spread")
CONSTANTS = ("edge", "deep", "length_mm", "spread_weight")
_BOUNDS = {"edge": (0.0, 100.0), "deep": (0.0, 100.0), "length_mm": (0.1, 100.0), "spread_weight": (0.0, 100.0)}


MAP_DESCRIPTION = "predicted error SD of the fill (brain-inpaint)"   # the map's NIfTI descrip


class Predictor(Protocol):
    """Anything that maps hole-voxel features (n, len(FEATURES)) to a predicted SD per voxel."""

    def predict(self, features: np.ndarray) -> np.ndarray: ...


def lesion_features(known: np.ndarray, unknown: np.ndarray, lesion: np.ndarray, smooth: np.ndarray,
                    refined: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Features (FEATURES order, stacked on a first axis) of one lesion's crop, zero outside `lesion`.

    `known`: the crop in image intensities (values under `unknown` are never read); `unknown`: every
    hole voxel of the crop; `lesion`: this lesion's voxels; `smooth`, `refined`: the biharmonic and
    the final fill of the crop in image intensities; `spacing`: voxel size in mm.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    depth = ndimage.distance_transform_edt(unknown, sampling=spacing)
    radius = max(SHELL_MM, float(spacing.min()))   # on voxels coarser than SHELL_MM, the face neighbours
    shell = (ndimage.distance_transform_edt(~lesion, sampling=spacing) <= radius) & ~unknown
    shell_sd = float(np.std(known[shell], dtype=np.float64)) if shell.any() else 0.0   # no float32 overflow
    features = np.zeros((len(FEATURES),) + lesion.shape, dtype=np.float32)
    features[0][lesion] = shell_sd
    features[1][lesion] = depth[lesion]
    features[2][lesion] = np.abs(refined - smooth)[lesion]
    return features


@dataclass(frozen=True)
class UncertaintyModel:
    """The constants of the predicted SD (see the module's docstring) and where they came from."""

    edge: float
    deep: float
    length_mm: float
    spread_weight: float
    source: str = ""

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted SD (float32) of hole voxels from their features, shape (n, len(FEATURES))."""
        shell_sd, depth, spread = (np.asarray(features, dtype=np.float64)[:, i] for i in range(len(FEATURES)))
        growth = self.edge + self.deep * (1.0 - np.exp(-depth / self.length_mm))
        return (shell_sd * growth + self.spread_weight * spread).astype(np.float32)

    def validate(self, source: str) -> None:
        """Every constant finite and within its bounds, else InpaintError naming `source`."""
        for name in CONSTANTS:
            value = getattr(self, name)
            lo, hi = _BOUNDS[name]
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                    or not lo <= value <= hi):
                raise InpaintError(f"{source} has an invalid uncertainty constant {name}={value!r} (expected "
                                   f"{lo}..{hi}); rerun scripts/calibrate_uncertainty.py for this refiner.")


def to_json(model: UncertaintyModel, extra: Optional[dict] = None) -> dict:
    """The uncertainty.json record: format, constants, and `extra` (how they were fitted)."""
    constants = {k: v for k, v in asdict(model).items() if k in CONSTANTS}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "constants": constants, **(extra or {})}


def load_uncertainty(folder: Path, weights_sha256: str) -> Optional[UncertaintyModel]:
    """The model of `folder/uncertainty.json`; None when the folder has none or it was fitted for other weights
    than `weights_sha256` (a refiner retrained without recalibrating); InpaintError when it is damaged."""
    path = Path(folder) / FILE_NAME
    if not path.is_file():
        return None
    try:
        raw = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InpaintError(f"{path} cannot be read as JSON ({exc}); rerun scripts/calibrate_uncertainty.py.") from None
    constants = raw.get("constants") if isinstance(raw, dict) else None
    if (not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION
            or not isinstance(constants, dict) or set(constants) != set(CONSTANTS)):
        raise InpaintError(f"{path} is not a version-{FORMAT_VERSION} uncertainty file; rerun "
                           f"scripts/calibrate_uncertainty.py for this refiner.")
    if raw.get("refiner_sha256") != weights_sha256:
        return None
    model = UncertaintyModel(**constants, source=str(path))
    model.validate(str(path))
    return model


def one_sigma_share(predicted_sd: np.ndarray, error: np.ndarray) -> float:
    """Share of voxels whose absolute error lies within their predicted SD."""
    return float(np.mean(np.abs(error) <= predicted_sd))


def lesion_rms(values: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """Root mean square of `values` per lesion id (ids 0..max in `lesion`)."""
    counts = np.bincount(lesion)
    return np.sqrt(np.bincount(lesion, weights=np.square(values, dtype=np.float64)) / np.maximum(counts, 1))


def fit(features: np.ndarray, error: np.ndarray, lesion: np.ndarray, share: float = 0.6827,
        source: str = "") -> UncertaintyModel:
    """Constants that maximise the Gaussian likelihood of `error`, each lesion weighted equally, then scaled so
    that `share` of all voxels fall within one predicted SD (the one-sigma share of a normal distribution)."""
    from scipy.optimize import minimize

    weight = 1.0 / np.bincount(lesion)[lesion]
    err2 = np.square(error, dtype=np.float64)

    def loss(theta: np.ndarray) -> float:
        sd = np.maximum(UncertaintyModel(*np.exp(theta)).predict(features).astype(np.float64), 1e-6)
        return float(np.sum(weight * (np.log(sd) + err2 / (2.0 * sd * sd))) / weight.sum())

    best = minimize(loss, np.log([0.2, 0.5, 3.0, 0.5]), method="Nelder-Mead",
                    options={"maxiter": 2000, "xatol": 1e-4, "fatol": 1e-7})
    edge, deep, length, spread = np.exp(best.x)
    unscaled = UncertaintyModel(edge, deep, length, spread).predict(features)
    ratio = np.abs(error) / np.maximum(unscaled, 1e-12)
    k = float(np.quantile(ratio, share))
    model = UncertaintyModel(float(edge * k), float(deep * k), float(length), float(spread * k), source=source)
    model.validate(source or "the fitted uncertainty model")
    return model
