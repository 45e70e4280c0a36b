"""The open image, its painted mask and the last fill result, held in display (RAS) order; no Qt.

Views show every file the same way up through `core.modelspace.Reorientation` (flips and
permutations only). The mask is painted on the RAS array and mapped back to the file's voxel
order whenever it leaves the app (fill jobs, saving); voxel coordinates shown to the user are
file voxel indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from core.baselines import biharmonic_3d_mm_fill
from core.checkpoint import Model
from core.errors import InpaintError
from core.fill import FillResult, FillSettings
from core.fill_file import uncertainty_map, uncertainty_record
from core.uncertainty import MAP_DESCRIPTION
from core.live_preview import PreviewLayer
from core.mask_editor import MaskEditor
from core.methods import METHODS
from core.metrics import hole_metrics
from core.modelspace import PLANES, Reorientation, voxel_sizes
from core.normalize import MAX_BRAIN_ML, estimate_brain
from core.review_scan import ScanFiles
from core.sidecar import APP, build_sidecar, export_recording, file_record
from core.targets import (ITK_SUFFIXES, NIFTI_SUFFIXES, check_outputs, derived_name, same_path, sidecar_path,
                          uncertainty_name)
from core.volume import (Volume, dilate_mask, load_mask, load_volume, on_image_grid, save_mask, save_volume,
                         stage_volume)

LAYERS = ("original", "masked", "generated", "blended")
REVIEW_LOCK = "Reviewing a cohort: the mask is the one the cohort was filled with and cannot be edited."

BASELINE = "biharmonic-3d-mm"   # the app's classical reference: `inpaint bench`'s strongest classical fill


@dataclass
class JobResult:
    """A finished fill: the engine's result (file order), the slice model used (None: the method uses none) and
    the comparison metrics."""

    fill: FillResult
    model: Optional[Model]
    scope: str
    dilate: int = 0
    threads: int = 1
    metrics: dict[str, Optional[dict[str, float]]] = field(default_factory=dict)
    brain_path: Optional[Path] = None   # the brain mask the fill used (None: estimated)


class PreviewMap:
    """Places values given in `numpy.flatnonzero(hole_file)` order at their RAS positions."""

    def __init__(self, hole_file: np.ndarray, reo: Reorientation) -> None:
        rank = np.full(hole_file.shape, -1, dtype=np.int32)  # a hole never holds 2**31 voxels
        rank.reshape(-1)[np.flatnonzero(hole_file)] = np.arange(int(np.count_nonzero(hole_file)))
        rank_ras = reo.apply(rank)
        self.positions = np.flatnonzero(rank_ras >= 0)
        self.order = rank_ras.reshape(-1)[self.positions]

    def place(self, values: np.ndarray, target_ras: np.ndarray) -> None:
        target_ras.reshape(-1)[self.positions] = values[self.order]


def compare_metrics(original: np.ndarray, filled: np.ndarray, hole: np.ndarray,
                    spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> dict[str, Optional[dict[str, float]]]:
    """In-hole BraTS metrics against the unpainted input, for the fill and the strongest classical fill,
    biharmonic inpainting in 3D weighted by the voxel size `spacing` (RAS arrays and mm).

    An entry is None where it cannot be measured (a volume thinner than the SSIM window, or a
    slice that is entirely hole so the baseline has nothing to fill from).
    """
    voided = np.where(hole, np.float32(0), original)
    metrics: dict[str, Optional[dict[str, float]]] = {}
    for name, fill in (("model", lambda: filled),
                       (BASELINE, lambda: biharmonic_3d_mm_fill(voided, hole, spacing))):
        try:
            metrics[name] = hole_metrics(fill(), original, hole, voided)
        except ValueError:
            metrics[name] = None
    return metrics


class Document:
    """One open image with its mask editor and last result; every array here is in RAS order."""

    def __init__(self, volume: Volume) -> None:
        self.volume = volume
        self.reo = Reorientation.of(volume.affine, volume.shape)
        self.original = self.reo.apply(volume.data)
        self.shape: tuple[int, int, int] = tuple(self.original.shape)  # type: ignore[assignment]
        self.spacing = voxel_sizes(self.reo.ras_affine)
        self.editor = MaskEditor(self.shape, self.spacing)
        self.mask_path: Optional[Path] = None   # where Save mask writes without asking
        self.sources: list[Path] = []           # imported masks and brain masks, never written by an export
        self.mask_source: Optional[tuple[Path, Optional[float], int]] = None  # last import: file, threshold, state
        self.exported_masks: list[Path] = []    # the exports' masks (their sidecars hold the checksums): never saved over
        self.brain: Optional[np.ndarray] = None  # brain mask in file order, or None: estimated by the engine
        self.brain_path: Optional[Path] = None
        self.voxel_ml = float(np.prod(self.spacing)) / 1000.0
        self.result: Optional[JobResult] = None
        self.result_saved = True
        self.result_state = 0
        self.difference_range = 0.0
        self.generated: Optional[np.ndarray] = None
        self.blended: Optional[np.ndarray] = None
        self.filled_region: Optional[np.ndarray] = None  # the voxels the result filled (RAS, bool)
        self.preview: Optional[np.ndarray] = None
        self.live: Optional[PreviewLayer] = None        # live preview of the painted lesions (not a result)
        self.uncertainty: Optional[np.ndarray] = None   # a fill's uncertainty map (the app's refine3d fill, review)
        self.uncertainty_range = 0.0
        self.reviewed = False                           # a scan of a cohort under review, read-only
        self._file_shape = np.array(volume.shape)
        self._ornt = self.reo.to_ras

    @classmethod
    def open(cls, path: str | os.PathLike, mask: str | os.PathLike | None = None) -> "Document":
        doc = cls(load_volume(path))
        if mask is not None:
            doc.import_mask(mask)
            doc.editor.mark_saved()
        return doc

    @classmethod
    def for_review(cls, files: ScanFiles) -> "Document":
        """A read-only document of a reviewed scan: its source, the mask it was filled with and the filled image
        as the result (Generated and Blended both show it)."""
        doc = cls(files.source)
        doc.editor.replace(doc.reo.apply(files.hole.astype(np.uint8)), label="cohort mask")
        doc.editor.mark_saved()
        fill = FillResult(filled=files.filled, generated_hole=files.filled[files.hole], hole=files.hole, axis="axial",
                          final_loss={}, seconds=0.0, device="", settings=FillSettings())
        doc.set_result(JobResult(fill=fill, model=None, scope="all"), doc.editor.state)  # type: ignore[arg-type]
        doc.result_saved = True
        if files.uncertainty is not None:
            doc.uncertainty = doc.reo.apply(files.uncertainty)
            finite = files.uncertainty[np.isfinite(files.uncertainty)]
            doc.uncertainty_range = float(finite.max()) if finite.size else 0.0
        doc.editor.lock(REVIEW_LOCK)
        doc.reviewed = True
        return doc

    @property
    def path(self) -> Optional[Path]:
        return self.volume.path

    # coordinates -------------------------------------------------------------------------------
    def file_index(self, ras_index: Sequence[int]) -> tuple[int, int, int]:
        """File voxel indices of a RAS voxel."""
        out = []
        for file_axis, (ras_axis, flip) in enumerate(self._ornt):
            value = int(ras_index[int(ras_axis)])
            out.append(value if flip > 0 else int(self._file_shape[file_axis]) - 1 - value)
        return tuple(out)  # type: ignore[return-value]

    def world(self, ras_index: Sequence[float]) -> np.ndarray:
        """Scanner RAS millimetres of a RAS voxel."""
        return (self.reo.ras_affine @ np.append(np.asarray(ras_index, dtype=float), 1.0))[:3]

    # layers ------------------------------------------------------------------------------------
    def available_layers(self) -> list[str]:
        live = ["live"] if self.live is not None and len(self.live) else []
        return ["original", "masked"] + live + (["generated", "blended"] if self.blended is not None else [])

    def layer_slice(self, layer: str, axis: int, index: int) -> np.ndarray:
        """2D slice (first in-plane axis, second in-plane axis) of a display layer."""
        if layer == "preview" and self.preview is not None:
            return np.take(self.preview, index, axis=axis)
        if layer == "live" and self.live is not None:
            return self.live.draw(np.take(self.original, index, axis=axis), axis, index)
        if layer == "masked":
            mask = np.take(self.editor.mask, index, axis=axis)
            return np.where(mask != 0, np.float32(0), np.take(self.original, index, axis=axis))
        source = {"generated": self.generated, "blended": self.blended}.get(layer)
        return np.take(self.original if source is None else source, index, axis=axis)

    def layer_value(self, layer: str, ras_index: Sequence[int]) -> float:
        """Value of one RAS voxel in a display layer."""
        voxel = tuple(int(v) for v in ras_index)
        if layer == "live" and self.live is not None:
            value = self.live.value(voxel)  # type: ignore[arg-type]
            return float(self.original[voxel]) if value is None else value
        if layer == "masked":
            return 0.0 if self.editor.mask[voxel] else float(self.original[voxel])
        source = {"preview": self.preview, "generated": self.generated, "blended": self.blended}.get(layer)
        return float((self.original if source is None else source)[voxel])

    def difference_slice(self, axis: int, index: int) -> Optional[np.ndarray]:
        """Filled minus original (zero outside the filled hole), or None without a result."""
        if self.blended is None:
            return None
        return np.take(self.blended, index, axis=axis) - np.take(self.original, index, axis=axis)

    def uncertainty_slice(self, axis: int, index: int) -> Optional[np.ndarray]:
        return None if self.uncertainty is None else np.take(self.uncertainty, index, axis=axis)

    def live_layer(self) -> PreviewLayer:
        """The live preview's layer, made on first use."""
        if self.live is None:
            self.live = PreviewLayer(self.shape)
        return self.live

    @cached_property
    def skull_on(self) -> bool:
        """True when the image holds more tissue than a brain: skull and scalp were not removed."""
        return float(np.count_nonzero(estimate_brain(self.volume.data))) * self.voxel_ml > MAX_BRAIN_ML

    # mask --------------------------------------------------------------------------------------
    def import_mask(self, path: str | os.PathLike, threshold: Optional[float] = None) -> None:
        """Load a mask file on the image grid into the editor (one undo step).

        Nonzero voxels form the mask; with `threshold`, voxels above it (for probability maps).
        """
        hole = load_mask(path, self.volume, threshold=threshold)
        self.editor.replace(self.reo.apply(hole.astype(np.uint8)), label="import mask")
        self.sources.append(Path(path))
        self.mask_source = (Path(path), threshold, self.editor.state)
        # Save mask writes back only to a file of 0s and 1s: labels or probabilities would be lost
        self.mask_path = Path(path) if threshold is None and holds_only_0_and_1(path) else None
        if self.mask_path is not None:
            self.editor.mark_saved()   # the painting is that file, voxel for voxel: nothing to save yet

    def outlined_mask(self, layer: str) -> np.ndarray:
        """The mask the views outline on `layer` (RAS): on the result's layers, while the mask is as that fill found
        it, the voxels it filled (more than painted with a dilation, fewer where painted voxels lie outside the
        brain); else the painted mask."""
        if layer in ("generated", "blended") and self.filled_region is not None \
                and self.result_state == self.editor.state:
            return self.filled_region
        return self.editor.mask

    def stale_reason(self) -> str:
        """Why the result no longer matches what Run would fill now (empty: it matches, or there is none)."""
        if self.result is None:
            return ""
        if self.result_state != self.editor.state:
            return "The mask changed since this result was computed; run again to update it."
        if self.result.brain_path != self.brain_path:
            return "The brain mask changed since this result was computed; run again to update it."
        return ""

    def load_brain_mask(self, path: str | os.PathLike) -> None:
        """Use a brain mask on the image grid for the next fills (the model sees only tissue inside it)."""
        self.brain = load_mask(path, self.volume, kind="brain")
        self.brain_path = Path(path)
        self.sources.append(Path(path))

    def forget_brain_mask(self) -> None:
        """Fill without a brain mask again (the engine estimates the brain)."""
        self.brain, self.brain_path = None, None

    def brain_slice(self, axis: int, index: int) -> Optional[np.ndarray]:
        """A slice of the loaded brain mask (display order), or None without one."""
        return None if self.brain is None else np.take(self.reo.view(self.brain), index, axis=axis)

    def protects(self, path: str | os.PathLike) -> bool:
        """True when an export must not write `path` (one of `protected()`)."""
        return any(same_path(Path(path), source) for source in self.protected())

    def protected(self) -> list[Path]:
        """Files an export never writes: the image, every imported mask, the brain mask and the mask's own file."""
        return self.sources + ([self.mask_path] if self.mask_path is not None else []) + \
            ([self.path] if self.path is not None else [])

    def mask_in_file_order(self) -> np.ndarray:
        return self.reo.undo(self.editor.mask) != 0

    def save_mask(self, path: str | os.PathLike) -> Path:
        """Write the mask as uint8 NIfTI on the image grid (a non-NIfTI name gets `.nii.gz`); never over an
        export's mask, whose checksum that export's sidecar holds."""
        target = nifti_path(path)
        if any(same_path(target, exported) for exported in self.exported_masks) or export_recording(target):
            raise InpaintError(f"{target} is the mask of an export (its sidecar holds this file's checksum), "
                               "so Save mask does not replace it; choose another name for the painted mask.")
        mask, like = self.mask_in_file_order().astype(np.uint8), self.volume
        source = self.mask_source[0] if self.mask_source is not None else None
        if source is not None and same_path(target, source) and target.is_file():
            like = replace(load_volume(target), path=None)   # the imported file keeps its own voxel order
            mask = np.ascontiguousarray(on_image_grid(replace(self.volume, data=mask), like))
        out = save_mask(target, mask, like, force=True)
        self.mask_path = out
        self.editor.mark_saved()
        return out

    def default_name(self, kind: str) -> str:
        """BIDS-style output name; a `_T1w` inside the stem (`sub-01_T1w_brain`) is dropped, not repeated."""
        path = self.path if self.path is not None else Path("image.nii.gz")
        return derived_name(path.with_name(path.name.replace("_T1w_", "_")), kind)

    def lesion_text(self, voxels: Optional[int] = None) -> str:
        """'N vox (V ml)' of the painted mask, or of `voxels`."""
        count = self.editor.voxel_count if voxels is None else voxels
        return f"{count} vox ({count * self.voxel_ml:.2f} ml)"

    # fill jobs -----------------------------------------------------------------------------------
    def job_hole(self, scope: str, axis: str, point: Sequence[int], dilate: int = 0) -> np.ndarray:
        """Hole to fill, in file voxel order: the whole mask, or its part in the current slice of plane `axis`.

        `dilate` grows the mask by that many voxels in 3D first (`inpaint fill --dilate`).
        """
        if not self.editor.voxel_count:
            raise InpaintError("The mask is empty; paint the lesion (or import a mask) before running a fill.")
        hole = dilate_mask(self.editor.mask != 0, dilate)
        if scope == "slice":
            k = PLANES[axis]
            keep = np.zeros(self.shape[k], dtype=bool)
            keep[int(point[k])] = True
            hole = hole & np.expand_dims(keep, tuple(a for a in range(3) if a != k))
            if not hole.any():
                raise InpaintError(f"The current {axis} slice has no painted voxels; move to a painted slice "
                                   "or choose the scope 'All masked slices'.")
        return self.reo.undo(hole)

    def filled_slices(self, hole_file: np.ndarray, axis: str) -> list[int]:
        """Slices (RAS index along plane `axis`, the numbering of the views and the sidecar) that a hole touches."""
        k = PLANES[axis]
        touched = self.reo.apply(hole_file).any(axis=tuple(a for a in range(3) if a != k))
        return [int(i) for i in np.flatnonzero(touched)]

    def result_point(self, hole_file: np.ndarray, axis: str, current: np.ndarray) -> np.ndarray:
        """Where to show a fill: the RAS voxel `current` if it lies in the hole (the user is looking at it),
        else the hole's voxel nearest the centre of its largest slice of plane `axis` (the first of equals)."""
        hole = self.reo.apply(hole_file)
        if hole[tuple(int(c) for c in current)]:
            return np.asarray(current).copy()
        k = PLANES[axis]
        largest = int(np.argmax(hole.sum(axis=tuple(a for a in range(3) if a != k))))
        voxels = np.argwhere(np.take(hole, largest, axis=k))
        nearest = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
        return np.insert(nearest, k, largest)

    def start_preview(self, hole_file: np.ndarray) -> PreviewMap:
        """A preview layer (the input with the hole voided) and the map that places preview values in it."""
        self.preview = np.where(self.reo.apply(hole_file), np.float32(0), self.original)
        return PreviewMap(hole_file, self.reo)

    def end_preview(self) -> None:
        self.preview = None

    def set_result(self, result: JobResult, mask_state: int) -> None:
        """Keep a finished result; `mask_state` is the editor state the job was started from."""
        self.result = result
        self.result_state = mask_state
        fill = result.fill
        change = np.abs(fill.filled[fill.hole] - self.volume.data[fill.hole])
        self.difference_range = float(np.percentile(change, 95)) if change.size else 0.0
        self.generated = self.reo.apply(result.fill.generated)
        self.blended = self.reo.apply(result.fill.filled)
        self.filled_region = self.reo.apply(fill.hole)
        self.uncertainty, self.uncertainty_range = None, 0.0
        if fill.uncertainty is not None and fill.uncertainty.size:  # refine3d's predicted error (core.uncertainty)
            self.uncertainty, self.uncertainty_range = self.reo.apply(uncertainty_map(fill)), float(fill.uncertainty.max())
        self.result_saved = False
        self.preview = None
        self.live = None  # the full fill supersedes the live preview

    def export(self, path: str | os.PathLike, mask_path: Optional[str | os.PathLike] = None,
               keep_dtype: bool = False) -> list[Path]:
        """Write the filled volume (input geometry; float32, or with `keep_dtype` the input's stored type and
        scaling, as `inpaint fill --keep-dtype`), the job's mask, the fill's predicted-error map when it
        has one (`core.targets.uncertainty_name` beside the volume) and the sidecar `inpaint fill` writes.

        The sidecar's `metrics` are the fill's in-hole metrics (the CLI's keys); the 3D biharmonic
        baseline's go under `baseline_metrics`. A mask written equal to the editor's mask counts
        as saved (only when it is the painted mask itself: no dilation, no voxel left outside the
        brain), but the export's mask file belongs to the export (its sidecar holds the file's
        checksum): Save mask never writes it afterwards. An imported mask the painting began from is
        recorded as `mask_source` (path, checksum, threshold, whether it was edited).
        """
        if self.result is None:
            raise InpaintError("There is no fill result to export; run a fill first.")
        from core.fill_file import skull_stripped

        fill = self.result.fill
        if not self.result.metrics:  # exported before the worker measured it
            self.result.metrics = compare_metrics(self.original, self.blended, self.reo.apply(fill.hole), self.spacing)
        # every target is checked before anything is written; the volume and its sidecar then appear together
        protected = self.protected()
        check_outputs(path, inputs=protected, force=True, like=self.volume, keep_dtype=keep_dtype)
        sd_path = None
        if fill.uncertainty is not None and fill.uncertainty.size:
            sd_path = Path(path).parent / uncertainty_name(path)
            check_outputs(sd_path, inputs=protected, force=True, like=self.volume)
        if mask_path is not None:
            check_outputs(mask_path, inputs=protected, force=True, sidecar=False)
            mask_path = save_mask(mask_path, fill.hole.astype(np.uint8), self.volume, force=True, inputs=protected)
        metrics = self.result.metrics
        numbering = ({"slice_numbering": "final_loss_per_slice keys are 0-based slice indices in RAS order along the "
                                         "axis, as in the app's views"}
                     if "axis" in METHODS[fill.settings.method].reads else {})   # a method that fills slices
        extra: dict[str, Any] = {"brain_ml": round(fill.brain_voxels * self.voxel_ml, 1),
                                 "SkullStripped": skull_stripped(self.volume.data, self.volume.affine),
                                 "app": APP, "scope": self.result.scope, "torch_threads": self.result.threads,
                                 **numbering, "metrics_reference": "input image (the mask was painted over it)",
                                 "baseline_metrics": {BASELINE: metrics.get(BASELINE)}}
        if sd_path is not None:
            extra["uncertainty"] = uncertainty_record(fill, sd_path)
        if self.mask_source is not None:   # where the painted mask began: an imported file, maybe thresholded
            source, threshold, state = self.mask_source
            extra["mask_source"] = {**(file_record(source) or {}), "threshold": threshold,
                                    "edited_after_import": state != self.result_state}
        record = build_sidecar(fill, self.result.model, image_path=self.path, mask_path=mask_path,
                               output_path=Path(path), dilate=self.result.dilate, brainmask_path=self.result.brain_path,
                               metrics=metrics.get("model"), keep_dtype=keep_dtype, extra=extra)
        # the map in full first: a disk that cannot hold it leaves no volume whose sidecar names it
        staged = None if sd_path is None else stage_volume(sd_path, uncertainty_map(fill), self.volume, force=True,
                                                           inputs=protected, derived=MAP_DESCRIPTION)
        volume = save_volume(path, fill.filled, self.volume, keep_dtype=keep_dtype, force=True, sidecar=record,
                             inputs=protected, changed=fill.hole, companion=staged)
        written = [volume, sidecar_path(volume)] + ([mask_path] if mask_path is not None else []) + \
            ([staged.path] if staged is not None else [])
        if mask_path is not None:
            self.exported_masks.append(Path(mask_path))
            if self.result_state == self.editor.state and np.array_equal(self.reo.apply(fill.hole),
                                                                         self.editor.mask != 0):
                self.editor.mark_saved()   # the painted mask itself was written (not dilated, nothing left out)
        self.result_saved = True
        return written

    def mask_file_matches_result(self, path: str | os.PathLike) -> bool:
        """True when `path` holds exactly the mask the last result was computed from (no need to ask)."""
        if self.result is None or not Path(path).is_file():
            return False
        try:
            return bool(np.array_equal(load_mask(path, self.volume), self.result.fill.hole))
        except InpaintError:
            return False


def holds_only_0_and_1(path: str | os.PathLike) -> bool:
    """True when every voxel of the file is 0 or 1 (a mask that a saved binary mask replaces without loss)."""
    return bool(np.isin(load_volume(path).data, (0, 1)).all())


def probability_range(path: str | os.PathLike) -> Optional[tuple[float, float]]:
    """(min, max) of a mask file holding non-integer values (a probability map), else None (a label mask)."""
    values = load_volume(path).data
    values = values[np.isfinite(values)]
    if values.size == 0 or np.array_equal(values, np.round(values)):
        return None
    return float(values.min()), float(values.max())


def nifti_path(path: str | os.PathLike, keep_itk: bool = False) -> Path:
    """`path` with a NIfTI extension: kept if it has one, else `.nii.gz` replaces any other image extension.

    With `keep_itk`, NRRD and MHA/MHD names are kept too (they keep the geometry as well).
    """
    path = Path(path)
    name = path.name
    lower = name.lower()
    if lower.endswith(NIFTI_SUFFIXES) or (keep_itk and lower.endswith(ITK_SUFFIXES)):
        return path
    for suffix in ITK_SUFFIXES:
        if lower.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".nii.gz")
