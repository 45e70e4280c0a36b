"""Shipped models (`core.resources.MODELS`) and resolution of a `--model NAME|PATH` argument."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CONFIG, WEIGHTS, Model, check_config, load_model
from .errors import InpaintError
from .resources import MODELS as MODELS_DIR
from .jsonfiles import parse_json

DEFAULT_FILE = MODELS_DIR / "DEFAULT"


@dataclass(frozen=True)
class ModelInfo:
    """What `inpaint models` lists about one model, read from its config without loading weights."""

    name: str
    kind: str
    kernel: int
    size: int
    spacing: float
    axis: str
    path: Path
    source: str


def _info(directory: Path, source: str) -> ModelInfo | None:
    """What `inpaint models` shows; None for a folder whose config is unreadable or invalid (checked fully)."""
    try:
        config = parse_json((directory / CONFIG).read_text(encoding="utf-8"))
        arch, spacing, axis = check_config(config, directory / CONFIG)
    except (OSError, ValueError, InpaintError):
        return None
    return ModelInfo(name=directory.name, kind=arch.kind, kernel=arch.kernel, size=arch.size, spacing=spacing,
                     axis=axis, path=directory, source=source)


def list_models(models_dir: Path = MODELS_DIR) -> list[ModelInfo]:
    """Shipped models (folders with weights and a readable config), sorted by name."""
    if not models_dir.is_dir():
        return []
    found = []
    for directory in sorted(models_dir.iterdir()):
        if (directory / WEIGHTS).is_file():
            info = _info(directory, "shipped")
            if info is not None:
                found.append(info)
    return found


def default_model_name() -> str:
    """Name of the default model (best held-out quality, recorded in models/DEFAULT)."""
    if DEFAULT_FILE.is_file():
        name = DEFAULT_FILE.read_text(encoding="utf-8").strip()
        if (MODELS_DIR / name / WEIGHTS).is_file():
            return name
    shipped = list_models()
    if not shipped:
        raise InpaintError(f"no model is installed in {MODELS_DIR}; pass --model PATH to a checkpoint folder.")
    return shipped[0].name


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Model:
    """Load a shipped model by name, or a checkpoint by path; None means the default model."""
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if name_or_path is None:
        name_or_path = default_model_name()
    if not name_or_path.strip():
        raise InpaintError("The model name is empty; give a name from 'inpaint models' or a checkpoint folder.")
    shipped = MODELS_DIR / name_or_path
    if "/" not in name_or_path and (shipped / WEIGHTS).is_file():
        return load_model(shipped, name=name_or_path)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        names = ", ".join(m.name for m in list_models()) or "none installed"
        raise InpaintError(f"model {name_or_path!r} is neither a shipped model ({names}) nor an existing "
                           f"checkpoint path; run 'inpaint models' to see the choices.")
    return load_model(path)
