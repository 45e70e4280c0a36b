"""Provenance JSON written next to every filled volume (by the CLI and the app alike)."""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path
from typing import Any, Optional

import nibabel
import numpy
import torch

from . import __version__
from .checkpoint import Model
from .fill import FillResult
from .methods import METHODS, PLUGINS
from .jsonfiles import has_undecodable, parse_json, sha256_file, write_json
from .targets import check_target, input_files, sidecar_path

ESCAPED = "bytes of file names that are not UTF-8 are written as \\xNN"

__all__ = ["build_sidecar", "export_recording", "file_record", "sidecar_path", "write_sidecar"]

APP = "inpaint-gui"   # the `app` of a sidecar the app's File > Export writes
MAX_SIDECAR_BYTES = 1 << 20   # larger JSON files beside a mask are not sidecars of ours


def export_recording(mask: Path) -> Optional[Path]:
    """The sidecar of an app export beside `mask` that records `mask` as its mask (by path and checksum), else
    None: replacing that file would make the export's record wrong."""
    mask = Path(mask)
    if not mask.is_file():
        return None
    resolved = str(mask.resolve())
    for candidate in sorted(mask.parent.glob("*.json")):
        try:
            if candidate.stat().st_size > MAX_SIDECAR_BYTES:
                continue
            record = parse_json(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("app") == APP and isinstance(record.get("mask"), dict) \
                and record["mask"].get("path") == resolved:
            return candidate
    return None


def file_record(path: Optional[Path]) -> Optional[dict[str, str]]:
    """The path and SHA-256 of an input (of a DICOM folder: over its files' relative names and contents,
    `core.jsonfiles.sha256_file`)."""
    if path is None:
        return None
    path = Path(path)
    record = {"path": str(path.resolve())}
    if path.exists():
        record["sha256"] = sha256_file(path)
    return record


def _model_record(model: Model) -> dict[str, Any]:
    return {"name": model.name, "path": str(model.path) if model.path else None, "sha256": model.checksum,
            "kind": model.arch.kind, "kernel": model.arch.kernel, "architecture": model.arch.to_dict(),
            "spacing_mm": model.spacing, "trained_axis": model.axis}


def build_sidecar(result: FillResult, model: Optional[Model], *, image_path: Optional[Path],
                  mask_path: Optional[Path], output_path: Path, dilate: int = 0, threshold: Optional[float] = None,
                  brainmask_path: Optional[Path] = None,
                  keep_dtype: bool = False, metrics: Optional[dict[str, Any]] = None,
                  extra: Optional[dict[str, Any]] = None, reference_path: Optional[Path] = None) -> dict[str, Any]:
    """Everything needed to know how `output_path` was made: the settings the method read, and the slice model,
    the plane and the per-slice losses only for a method that uses a slice model (file names that are not
    UTF-8 are escaped when written, and `escaped_file_names` says so)."""
    method = METHODS[result.settings.method]
    slices = "axis" in method.reads
    record: dict[str, Any] = {
        "tool": "brain-inpaint",
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "output": str(Path(output_path).resolve()),
        "input": file_record(image_path),
        "mask": file_record(mask_path),
        "brainmask": file_record(brainmask_path),
        "mask_threshold": threshold,
        "mask_dilation_voxels": dilate,
        "hole_voxels": int(result.hole.sum()),
        "outside_brain_voxels": int(getattr(result, "outside_brain_voxels", 0)),
        "background": float(getattr(result, "background", 0.0)),
        "nonfinite_input_voxels": int(getattr(result, "nonfinite_voxels", 0)),
        "keep_dtype": keep_dtype,
        **({"model": _model_record(model)} if method.needs_model else {}),
        "method": {"name": method.name, "description": method.description, "refiner": result.refiner,
                   **({"plugin": PLUGINS.sources[method.name]} if method.name in PLUGINS.sources else {})},
        "parameters": result.settings.used(),
        "device": result.device,
        **({"axis": result.axis,
            "final_loss_per_slice": {str(k): v for k, v in result.final_loss.items()}} if slices else {}),
        "seconds": round(result.seconds, 3),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": numpy.__version__, "nibabel": nibabel.__version__},
    }
    if reference_path is not None:
        record["reference"] = file_record(reference_path)
    if metrics is not None:
        record["metrics"] = metrics
    if extra:
        record.update(extra)
    if has_undecodable(record):  # the writer escapes them (core.jsonfiles.json_safe); say so in the record
        record["escaped_file_names"] = ESCAPED
    return record


def write_sidecar(output_path: Path, record: dict[str, Any]) -> Path:
    """Write the record atomically next to the output (replacing an older sidecar); returns the sidecar's path.

    The files the record names as inputs, and their own sidecars (e.g. a BIDS `sub-01_T1w.json`), are
    never written. Prefer `core.volume.save_volume(..., sidecar=record)`, which writes both or neither.
    """
    path = sidecar_path(Path(output_path))
    inputs = [Path(entry["path"]) for key in ("input", "mask", "brainmask", "reference")
              if isinstance(entry := record.get(key), dict) and entry.get("path")]
    check_target(path, protected=[f for source in inputs for f in input_files(source)], force=True)
    write_json(path, record, force=True)
    return path
