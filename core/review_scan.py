"""The files of one reviewed scan of an `inpaint bids` output: source image, filled image, filled mask, uncertainty.

The source image and the lesion mask are found through the `raw` and `masks` DatasetLinks of
OUT_DIR's dataset_description.json; the mask is thresholded and dilated as the filled image's
sidecar records. A `desc-uncertainty` map beside the filled image is read when it exists. No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

import numpy as np

from .cohort.derivatives import DESCRIPTION, FILLED, SKIPPED, read_sidecar
from .errors import InpaintError
from .metrics import voided_range
from .review import Scan, number
from .targets import sidecar_path
from .volume import Volume, dilate_mask, load_mask, load_volume
from .jsonfiles import parse_json


@dataclass
class ScanFiles:
    """What the review shows of one scan, every array on the source image's grid in file voxel order."""

    source: Volume
    filled: np.ndarray
    hole: np.ndarray
    uncertainty: Optional[np.ndarray] = None
    notes: list[str] = field(default_factory=list)  # what could not be shown as recorded, one sentence each

    def error_share(self, sd: Optional[str]) -> Optional[float]:
        """The scans table's mean predicted error `sd` (image units) as a share of the source's intensity range
        outside the mask (0.5th to 99.5th percentile, as the app's MAE %); None without a value or a range."""
        value = number(sd)
        lo, hi = voided_range(self.source.data, self.hole)
        return value / (hi - lo) if value is not None and hi > lo else None


def dataset_links(out_dir: Path) -> dict[str, Path]:
    """The local folders of OUT_DIR's DatasetLinks (`raw`, `masks`: file:// URIs, or paths relative to OUT_DIR),
    empty when unreadable."""
    try:
        links = parse_json((out_dir / DESCRIPTION).read_text(encoding="utf-8")).get("DatasetLinks") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    folders = {}
    for name, uri in links.items():
        parsed = urlparse(uri) if isinstance(uri, str) else None
        if parsed is not None and parsed.scheme in ("file", ""):
            path = Path(unquote(parsed.path))
            folders[name] = path if parsed.scheme == "file" else out_dir / path
    return folders


def uncertainty_path(filled: Path) -> Path:
    """Where the uncertainty map of a filled image lies: the same name with `desc-uncertainty`."""
    return filled.with_name(filled.name.replace("_desc-filled_", "_desc-uncertainty_"))


def load_scan(out_dir: Path, scan: Scan) -> ScanFiles:
    """Read one scan for review; InpaintError with one sentence when it was not filled or its files are missing."""
    if scan.status not in (FILLED, SKIPPED):  # failed, no mask, or (newer tables) running, missing, damaged...
        why = f": {scan.message.rstrip('.')}" if scan.message else ""
        raise InpaintError(f"{scan.source} is not shown: its status is {scan.status.replace('_', ' ')}{why}.")
    filled_path = out_dir / scan.output
    if not filled_path.is_file():
        raise InpaintError(f"The filled image {scan.output} is missing from {out_dir}; rerun 'inpaint bids' to make "
                           "it.")
    links = dataset_links(out_dir)
    if "raw" not in links or not (links["raw"] / scan.source).exists():
        raise InpaintError(f"The source image {scan.source} is not found (the BIDS dataset named in {DESCRIPTION} "
                           "has moved or is not mounted); only the filled image exists.")
    source = load_volume(links["raw"] / scan.source)
    filled = load_volume(filled_path)
    if filled.shape != source.shape or not np.allclose(filled.affine, source.affine, atol=1e-3):
        raise InpaintError(f"{scan.output} is not on the grid of {scan.source}; it was not written by this "
                           "'inpaint bids' run: rerun it.")
    notes: list[str] = []
    record = read_sidecar(sidecar_path(filled_path)) or {}
    try:
        if "masks" not in links or not scan.mask:
            raise InpaintError("the masks dataset is not linked")
        hole = load_mask(links["masks"] / scan.mask, source, threshold=record.get("mask_threshold"))
        hole = dilate_mask(hole, int(record.get("mask_dilation_voxels") or 0))
    except InpaintError:
        hole = filled.data != source.data
        notes.append(f"The lesion mask {scan.mask or '(none)'} cannot be read; the mask shown is the voxels the "
                     "fill changed.")
    uncertainty = None
    path = uncertainty_path(filled_path)
    if path.is_file():
        try:
            uncertainty = load_volume(path).data
        except InpaintError as exc:
            notes.append(str(exc))
        if uncertainty is not None and uncertainty.shape != source.shape:
            uncertainty = None
            notes.append(f"{path.name} is not on the image's grid, so it is not shown.")
    return ScanFiles(source=source, filled=filled.data, hole=hole, uncertainty=uncertainty, notes=notes)
