"""A scan whose lesion mask marks no voxel (LST-AI and SAMSEG write such masks for lesion-free subjects).

Nothing is filled: its output is the T1w image copied unchanged (a `.nii` source gzipped, its bytes otherwise
the same), written under the filled image's name together with a sidecar that says 0 voxels were filled and
why, both or neither (`core.atomic.commit_files`), so that every scan of the cohort has a desc-filled image.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import nibabel as nib
import numpy as np

from .. import __version__
from ..atomic import commit_files, make_staging
from ..errors import InpaintError
from ..fill_file import skull_stripped
from ..jsonfiles import json_text, sha256_file
from ..targets import sidecar_path
from ..volume import check_grid, load_volume
from .derivatives import NO_LESION, TOOL, Row, uncertainty_name

if TYPE_CHECKING:
    from .worker import Task


def marks_nothing(mask: Path, threshold: Optional[float]) -> bool:
    """True when the mask has no nonzero voxel (with `threshold`: none above it) and no NaN; a mask nibabel cannot
    read is left to the fill, which says what is wrong with it."""
    try:
        values = np.asanyarray(nib.load(str(mask)).dataobj)
    except Exception:  # nibabel raises many types for broken files
        return False
    marked = values != 0 if threshold is None else values > threshold
    return not marked.any() and bool(np.isfinite(values).all())


def why_unfilled(mask: Path, threshold: Optional[float]) -> str:
    """The sentence a no_lesion scan's row and sidecar give."""
    what = "no voxel" if threshold is None else f"no voxel above {threshold:g}"
    return (f"The lesion mask {mask.name} marks {what} (a lesion-free scan), so nothing was filled and the image "
            "was copied unchanged.")


def copy_unfilled(task: Task) -> Row:
    """Write the task's image unchanged as its output, with a sidecar saying why, and return its no_lesion row;
    InpaintError when the mask is not on the image's grid or the files cannot be written."""
    began = time.monotonic()
    image = load_volume(task.image)
    check_grid(task.mask, image, "mask")  # as a fill would refuse it
    why = why_unfilled(task.mask, task.threshold)
    _write_pair(task.image, task.output, {**_sidecar(task, why), "SkullStripped": skull_stripped(image.data,
                                                                                                 image.affine)})
    for stale in (Path(uncertainty_name(str(task.output))), sidecar_path(Path(uncertainty_name(str(task.output))))):
        stale.unlink(missing_ok=True)  # an earlier fill's map (and its sidecar) is not this output's
    return dataclasses.replace(task.row, status=NO_LESION, lesion_voxels="0", lesion_ml="0.000", slices="0",
                               seconds=f"{time.monotonic() - began:.2f}", uncertainty="", uncertainty_share="",
                               message=why)


def _sidecar(task: Task, why: str) -> dict[str, Any]:
    """The sidecar of an unchanged copy: the fields of a filled scan's that apply, 0 voxels filled, and why."""
    def file(path: Optional[Path], sha256: str = "") -> Optional[dict[str, str]]:
        return None if path is None else {"path": str(path), "sha256": sha256 or sha256_file(path)}

    return {"tool": TOOL, "version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "output": str(task.output), "input": file(task.image, task.row.image_sha256),
            "mask": file(task.mask, task.row.mask_sha256), "brainmask": file(task.brainmask),
            "mask_threshold": task.threshold, "mask_dilation_voxels": task.dilate, "hole_voxels": 0,
            "filled_slices": 0, "unchanged_copy": True, "not_filled_because": why,
            "keep_dtype": task.keep_dtype, "parameters": task.settings.used(),
            "Description": "An unchanged copy of the T1w image: its lesion mask marks no voxel (brain-inpaint).",
            "Sources": list(task.sources)}


def _write_pair(image: Path, output: Path, sidecar: dict[str, Any]) -> None:
    """Place the copy of `image` at `output` and its sidecar beside it, both or neither."""
    side = sidecar_path(output)
    try:
        staging = make_staging(output.parent)
        try:
            if image.name.endswith(".gz"):
                shutil.copyfile(image, staging / output.name)
            else:
                with open(image, "rb") as source, open(staging / output.name, "wb") as raw, \
                        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as target:   # no name, no time
                    shutil.copyfileobj(source, target)
            (staging / side.name).write_text(json_text(sidecar), encoding="utf-8")
            commit_files([(staging / side.name, side), (staging / output.name, output)], staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise InpaintError(f"Could not write {output}: {exc.strerror or exc}; check the folder is writable and has "
                           "free space.") from None
