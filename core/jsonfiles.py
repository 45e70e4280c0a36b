"""JSON records that strict readers accept, written atomically, and files' SHA-256 checksums."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_atomically
from core.errors import InpaintError


def utf8_text(text: str) -> str:
    """`text` as valid Unicode: the bytes of a file name that are not UTF-8 (Python's lone surrogates, which
    strict JSON readers reject) written as `\\xNN`; other text unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            raw = os.fsencode(text)
        except UnicodeEncodeError:  # a surrogate that no file name gave
            raw = text.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def parse_json(text: str | bytes) -> Any:
    """`json.loads` that raises ValueError, not RecursionError, for a document nested too deeply to parse (every
    reader's `except ValueError` then gives its one sentence)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None


def json_safe(value: Any) -> Any:
    """`value` with every string (keys too) and path passed through `utf8_text`, numpy values as Python's, and NaN
    or infinite numbers as None (strict JSON readers refuse `NaN` and `Infinity`)."""
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, Path)):
        return utf8_text(str(value))
    if isinstance(value, (np.generic, np.ndarray)):
        return json_safe(_json_default(value))
    return None if isinstance(value, float) and not math.isfinite(value) else value


def has_undecodable(value: Any) -> bool:
    """True when `json_safe` would escape a string somewhere in `value`."""
    if isinstance(value, dict):
        return any(has_undecodable(k) or has_undecodable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_undecodable(v) for v in value)
    return isinstance(value, (str, Path)) and utf8_text(str(value)) != str(value)


def json_text(obj: Any) -> str:
    """Indented JSON of `obj` that strict readers accept (see `json_safe`), with a final newline."""
    return json.dumps(json_safe(obj), indent=2, default=_json_default, allow_nan=False) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, obj: Any, *, force: bool = True) -> Path:
    """Atomically write `obj` as indented JSON (numpy values and paths allowed)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InpaintError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    if path.exists() and not force:
        raise InpaintError(f"{path} already exists; pass --force to overwrite it or choose another output name.")
    text = json_text(obj)
    write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file; for a folder (DICOM series), of its files' relative names and contents in sorted order."""
    path = Path(path)
    if not path.exists():
        raise InpaintError(f"{path} does not exist; check the path.")
    folder = path.is_dir()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if folder else [path]
    digest = hashlib.sha256()
    for file in files:
        if folder:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
