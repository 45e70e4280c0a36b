"""Reading and writing volumes and masks without touching their geometry.

NIfTI goes through nibabel; NRRD, MetaImage and DICOM series go through SimpleITK and are
converted (LPS -> RAS) to a NIfTI image, so the rest of the engine sees one kind of volume.
Outputs keep the input's shape, voxel order, affine and q/sform codes; with `keep_dtype`
the input's stored values are reused wherever the data did not change, so unchanged voxels
are bit-identical. Every write is atomic (temporary file in the target folder, then rename)
and never replaces the input.
"""

from __future__ import annotations

import os
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform
from scipy import ndimage

from core.atomic import commit_files, make_staging
from core.errors import InpaintError
from core.jsonfiles import json_text
from core.targets import (ITK_SUFFIXES, NIFTI_SUFFIXES, check_outputs, check_target, odd_case_suffix, protected_files,
                          sidecar_path, volume_suffix)

AFFINE_TOLERANCE = 1e-3
_LPS = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS flip (its own inverse)
CHUNK_VOXELS = 1 << 18  # voxels per part of whole-volume work (1 MB of float32)


@dataclass
class Volume:
    """A 3D image as read: float32 scaled data in file voxel order plus everything needed to write it back."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None
    dtype: np.dtype
    image: nib.Nifti1Image
    raw: np.ndarray | None = None  # stored values (on-disk dtype, before slope/intercept)
    slope: float = 1.0
    inter: float = 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.shape


def _volume_shape(shape: Sequence[int], path: Path) -> tuple[int, int, int]:
    """The 3D shape of a volume stored with `shape` (4D with a single frame allowed); InpaintError otherwise."""
    if len(shape) >= 3 and all(n == 1 for n in shape[3:]):
        return int(shape[0]), int(shape[1]), int(shape[2])
    shown = "x".join(str(n) for n in shape)
    raise InpaintError(f"{path} has shape {shown}, but only 3D volumes (or 4D with a single frame) are supported; "
                       "extract one 3D volume first.")


def _squeeze_3d(array: np.ndarray, path: Path) -> np.ndarray:
    return array.reshape(_volume_shape(array.shape, path))


def _unreadable(path: Path, exc: Exception) -> InpaintError:
    """The sentence for a file nibabel/SimpleITK/zlib cannot read, with the first line of their reason."""
    lines = str(exc).strip().splitlines()
    detail = f" ({lines[0]})" if lines and "SimpleITK" not in lines[0] else ""  # ITK's text is a source location
    return InpaintError(f"Could not read {path}: the file is corrupt, truncated or not an image{detail}.")


def _read_nifti(path: Path) -> tuple[np.ndarray, float, float, nib.Nifti1Image]:
    image = nib.load(str(path), mmap=False)
    proxy = image.dataobj
    if getattr(proxy, "order", None) == "F":
        raw = _read_c_order(path, proxy.offset, np.dtype(proxy.dtype), _volume_shape(proxy.shape, path))
    else:  # an unusual proxy: nibabel's own reader
        raw = np.asarray(proxy.get_unscaled())
    return raw, float(proxy.slope), float(proxy.inter), image


def _read_c_order(path: Path, offset: int, stored: np.dtype, shape: tuple[int, int, int]) -> np.ndarray:
    """A NIfTI volume's stored values in C order, read slab by slab (no whole-volume Fortran-order copy).

    NIfTI stores x fastest; nibabel hands that over in Fortran order, where the parts of `chunks`
    (first-axis slabs) are strided. Read here into a C-order array instead.
    """
    from nibabel.openers import ImageOpener

    nx, ny, nz = shape
    raw = np.empty(shape, dtype=stored.newbyteorder("="))
    step = max(1, CHUNK_VOXELS // max(1, nx * ny))
    with ImageOpener(str(path)) as stream:
        stream.seek(offset)
        for z in range(0, nz, step):
            n = min(step, nz - z)
            block = stream.read(nx * ny * n * stored.itemsize)
            if len(block) != nx * ny * n * stored.itemsize:
                raise ValueError("the file ends before its voxel data does")
            raw[:, :, z:z + n] = np.frombuffer(block, dtype=stored).reshape(n, ny, nx).transpose(2, 1, 0)
    return raw


_QUIET_LOCK = threading.Lock()
_quiet = {"readers": 0, "shown": True}   # reads inside _itk_quiet now, and the setting before the first


@contextmanager
def _itk_quiet() -> Iterator[None]:
    """ITK's warnings off for the reads inside (e.g. "No Series were found" for a folder without DICOM files,
    printed before our one-sentence refusal), restored when the last of the reads that overlap ends (a
    process-wide switch: reads on several threads must not leave it off)."""
    with _QUIET_LOCK:
        if _quiet["readers"] == 0:
            _quiet["shown"] = sitk.ProcessObject.GetGlobalWarningDisplay()
            sitk.ProcessObject.SetGlobalWarningDisplay(False)
        _quiet["readers"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet["readers"] -= 1
            if _quiet["readers"] == 0:
                sitk.ProcessObject.SetGlobalWarningDisplay(_quiet["shown"])


def _itk_affine(itk: sitk.Image) -> np.ndarray:
    dim = itk.GetDimension()
    direction = np.array(itk.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
    spacing = np.array(itk.GetSpacing(), dtype=float)[:3]
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS @ np.array(itk.GetOrigin(), dtype=float)[:3]
    return affine


def _read_itk(path: Path) -> tuple[np.ndarray, float, float, nib.Nifti1Image]:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        series = reader.GetGDCMSeriesIDs(str(path))
        if len(series) != 1:
            found = "no DICOM series" if not series else f"{len(series)} DICOM series"
            raise InpaintError(f"{path} is a folder with {found}; choose a folder holding exactly one DICOM series, "
                               "or a NIfTI/NRRD/MHA file.")
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
        itk = reader.Execute()
    else:
        itk = sitk.ReadImage(str(path))
    if itk.GetNumberOfComponentsPerPixel() != 1:
        raise InpaintError(f"{path} has {itk.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector "
                           "image); convert it to a single-channel 3D volume first.")
    if itk.GetDimension() < 3:
        raise InpaintError(f"{path} is a {itk.GetDimension()}D image of size {itk.GetSize()}; "
                           "only 3D volumes are supported.")
    raw = sitk.GetArrayFromImage(itk).transpose()  # ITK arrays are z,y,x; the engine uses x,y,z
    raw = np.ascontiguousarray(_squeeze_3d(raw, path))
    affine = _itk_affine(itk)
    image = nib.Nifti1Image(raw, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    return raw, 1.0, 0.0, image


def chunks(shape: Sequence[int], voxels: int = CHUNK_VOXELS) -> Iterator[slice]:
    """Slices of the first axis covering an array of `shape` in parts of about `voxels` voxels, so that
    whole-volume work needs only part-sized temporaries."""
    step = max(1, voxels // max(1, int(np.prod(shape[1:]))))
    for start in range(0, shape[0], step):
        yield slice(start, start + step)


def _scaled(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """Stored values -> float32 scanner values (the stored array itself when it is unscaled float32)."""
    if slope == 1.0 and inter == 0.0:
        return raw if raw.dtype == np.float32 else raw.astype(np.float32)
    return (raw.astype(np.float64) * slope + inter).astype(np.float32)


def _exact_values(raw: np.ndarray, slope: float, inter: float) -> np.ndarray:
    """Stored values -> scanner values in float64, as nibabel's `get_fdata` gives them."""
    values = raw.astype(np.float64)
    return values if slope == 1.0 and inter == 0.0 else values * slope + inter


def _check_float32_range(values: np.ndarray, path: Path) -> None:
    """Refuse finite values that float32, the type the fill works in, cannot hold."""
    big = np.isfinite(values) & (np.abs(values) > np.finfo(np.float32).max)
    if big.any():
        raise InpaintError(f"{path} holds values up to {np.abs(values[big]).max():.3g}, beyond what the fill's 32-bit "
                           "floating point can store; rescale the image (e.g. to its scanner's usual range) first.")


def holds_exactly_in_float32(volume: Volume) -> bool:
    """Whether the float32 `volume.data` equals the stored values (with slope and intercept) exactly.

    Not so for float64 images or integers beyond 2^24, say; such a volume's output is written as float64.
    """
    raw = volume.raw
    if raw is None:
        return True
    unscaled = volume.slope == 1.0 and volume.inter == 0.0
    if unscaled and (raw.dtype == np.float32 or (raw.dtype.kind in "biu" and raw.dtype.itemsize <= 2)):
        return True
    for part in chunks(raw.shape):
        if not np.array_equal(volume.data[part], _exact_values(raw[part], volume.slope, volume.inter), equal_nan=True):
            return False
    return True


def _read_raw(path: Path) -> tuple[np.ndarray, float, float, nib.Nifti1Image]:
    """A volume's stored 3D array, slope, intercept and image; InpaintError on anything unusable."""
    if not path.exists():
        raise InpaintError(f"{path} does not exist; check the path.")
    suffix = volume_suffix(path)
    if not path.is_dir() and not suffix:
        raise InpaintError(f"{path} has an unsupported extension; use .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd "
                           "or a folder holding a DICOM series.")
    if not path.is_dir() and odd_case_suffix(path):
        raise InpaintError(f"{path} has its extension in a case that nibabel and ITK do not read; rename it to end in "
                           f"{suffix}.")
    try:
        reader = _read_nifti if suffix in NIFTI_SUFFIXES and not path.is_dir() else _read_itk
        with _itk_quiet():
            raw, slope, inter, image = reader(path)
    except InpaintError:
        raise
    except Exception as exc:  # nibabel/SimpleITK/zlib raise many types for broken files
        raise _unreadable(path, exc) from exc
    if raw.dtype.kind not in "biuf":
        raise InpaintError(f"{path} stores {raw.dtype} values; only integer or real-valued volumes are supported.")
    return _squeeze_3d(raw, path), slope, inter, image


def _check_geometry(affine: np.ndarray, path: Path) -> np.ndarray:
    """The file's voxel-to-mm matrix as float64; InpaintError naming `path` if it is unusable
    (`core.inputs.affine_problem`: not finite, singular, voxels outside 0.05-20 mm)."""
    from core.inputs import affine_problem

    matrix = np.asarray(affine, dtype=np.float64)
    problem = affine_problem(matrix)
    if problem:
        raise InpaintError(f"The voxel-to-millimetre matrix (sform/qform) of {path} {problem}; fix the geometry in "
                           "its header (e.g. copy it from the scan it was made from) or choose another file.")
    return matrix


def _no_finite_value(path: Path) -> InpaintError:
    return InpaintError(f"{path} contains no finite value (all voxels are NaN or infinite); choose another image.")


def load_volume(path: str | os.PathLike) -> Volume:
    """Read a 3D volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder); InpaintError on anything unusable.

    Scaled values are computed part by part, so reading needs no whole-volume float64 temporary.
    """
    path = Path(path)
    raw, slope, inter, image = _read_raw(path)
    affine = _check_geometry(image.affine, path)
    if raw.dtype == np.float32 and slope == 1.0 and inter == 0.0:
        data = raw  # no second copy of a float32 file
    else:
        data = np.empty(raw.shape, dtype=np.float32)
        for part in chunks(raw.shape):
            with np.errstate(over="ignore"):
                data[part] = _scaled(raw[part], slope, inter)
            if np.isinf(data[part]).any():
                _check_float32_range(_exact_values(raw[part], slope, inter), path)
    if not any(np.isfinite(data[part]).any() for part in chunks(data.shape)):
        raise _no_finite_value(path)
    return Volume(data=data, affine=affine, path=path, dtype=raw.dtype,
                  image=image, raw=raw, slope=slope, inter=inter)


_MASK_ROLES = {
    "lesion": ("mask", "nonzero (e.g. 1) on the lesion and 0 elsewhere", "paint or choose the lesion mask before filling"),
    "brain": ("brain mask", "nonzero (e.g. 1) on the brain and 0 elsewhere",
              "pass a mask that is nonzero on the brain, or leave out --brainmask to have it estimated"),
}


def read_grid(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray]:
    """(shape, affine) of a volume from its header alone (a DICOM folder is read whole); InpaintError if unusable."""
    path = Path(path)
    suffix = volume_suffix(path)
    if path.is_dir() or suffix not in NIFTI_SUFFIXES + ITK_SUFFIXES:
        volume = load_volume(path)
        return volume.shape, volume.affine
    try:
        if suffix in NIFTI_SUFFIXES:
            header = nib.load(str(path))
            shape, affine = tuple(int(n) for n in header.shape), np.asarray(header.affine, dtype=float)
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            with _itk_quiet():
                reader.ReadImageInformation()
            shape, affine = tuple(int(n) for n in reader.GetSize()), _itk_affine(reader)
    except Exception as exc:  # nibabel/SimpleITK raise many types for broken headers
        raise _unreadable(path, exc) from exc
    return _volume_shape(shape, path), _check_geometry(affine, path)


def _voxel_order(shape: Sequence[int], affine: np.ndarray, path: Path | None, image: Volume,
                 what: str) -> Optional[np.ndarray]:
    """The orientation transform that puts a grid of `shape`/`affine` on `image`'s (None: already the same grid).

    Raises InpaintError, naming `what` and both files, when the grids differ otherwise (that needs resampling).
    """
    if tuple(shape) == image.shape and float(np.abs(affine - image.affine).max()) <= AFFINE_TOLERANCE:
        return None
    try:
        transform = ornt_transform(io_orientation(affine), io_orientation(image.affine))
        reordered_shape = apply_orientation(np.broadcast_to(np.float32(0), tuple(shape)), transform).shape
        reordered_affine = affine @ inv_ornt_aff(transform, tuple(shape))
    except Exception:  # degenerate affine: no voxel order to compare
        transform, reordered_shape, reordered_affine = None, tuple(shape), affine
    if reordered_shape == image.shape and float(np.abs(reordered_affine - image.affine).max()) <= AFFINE_TOLERANCE:
        return transform
    name = f"The {what} {path}"
    if reordered_shape != image.shape:
        raise InpaintError(f"{name} has shape {'x'.join(map(str, shape))} but the image {image.path} has "
                           f"shape {'x'.join(map(str, image.shape))}; the {what} must be drawn on the image's "
                           "voxel grid.")
    if path is not None and _unoriented(path):
        raise InpaintError(f"{name} has no orientation in its header (qform and sform codes 0), so its voxels cannot "
                           f"be placed on the image {image.path}; write the {what} with the image's header (affine).")
    difference = float(np.abs(reordered_affine - image.affine).max())
    raise InpaintError(f"{name} and the image {image.path} have the same shape but their affines differ by up to "
                       f"{difference:.4g} mm; resample the {what} onto the image grid.")


def _unoriented(path: Path) -> bool:
    """True for a NIfTI file whose qform and sform codes are both 0 (no orientation: nibabel guesses one)."""
    if volume_suffix(path) not in NIFTI_SUFFIXES or path.is_dir():
        return False
    try:
        header = nib.load(str(path)).header
        return int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0
    except Exception:   # unreadable here: the caller's message stands
        return False


def check_grid(path: str | os.PathLike, image: Volume, what: str) -> None:
    """Refuse, from its header alone, a volume that `on_image_grid` would refuse (InpaintError naming `what`)."""
    shape, affine = read_grid(path)
    _voxel_order(shape, affine, Path(path), image, what)


def on_image_grid(volume: Volume, image: Volume, what: str = "mask") -> np.ndarray:
    """`volume`'s data on `image`'s voxel grid, reordered exactly (flips/permutations) if only the voxel order differs.

    Raises InpaintError, naming `what` and both files, when the grids differ otherwise (that needs resampling).
    """
    transform = _voxel_order(volume.shape, volume.affine, volume.path, image, what)
    if transform is None:
        return volume.data
    return apply_orientation(volume.data, transform)  # a view with flipped/permuted axes, values untouched


def load_mask(path: str | os.PathLike, image: Volume, *, kind: str = "lesion",
              threshold: Optional[float] = None) -> np.ndarray:
    """Read a mask (nonzero = inside; with `threshold`, values above it: a probability map) that must lie on
    `image`'s voxel grid; `kind` is "lesion" or "brain".

    A mask on the same physical grid in another voxel order (e.g. flipped axes) is reordered exactly.
    """
    what, meaning, todo = _MASK_ROLES[kind]
    path = Path(path)
    raw, slope, inter, header_image = _read_raw(path)
    affine = _check_geometry(header_image.affine, path)
    nonzero = np.empty(raw.shape, dtype=bool)  # the mask's values are never held as a float volume
    bad = 0
    # a lesion mask of fractions is a probability map: every voxel above 0 is rarely what was meant
    check_fractions = kind == "lesion" and threshold is None and not (raw.dtype.kind in "iub" and slope == 1.0
                                                                      and inter == 0.0)
    fractions = []
    for part in chunks(raw.shape):
        values = _scaled(raw[part], slope, inter)
        finite = np.isfinite(values)
        bad += int(values.size - np.count_nonzero(finite))
        nonzero[part] = values != 0 if threshold is None else values > threshold
        if check_fractions:
            fractional = values[finite & (values != np.round(values))]
            if fractional.size:
                fractions += [float(fractional.min()), float(fractional.max())]
    if bad == raw.size:
        raise _no_finite_value(path)
    if bad:
        raise InpaintError(f"The {what} {path} has {bad} NaN or infinite voxels; a {what} must be {meaning}, "
                           "so rewrite it with 0 and 1.")
    if fractions:
        low, high = min(fractions), max(fractions)
        if 0.0 <= low and high <= 1.0:
            raise InpaintError(f"The {what} {path} holds fractional values ({low:.3g} to {high:.3g}), like a "
                               "probability map; pass --threshold T to fill the voxels above T (e.g. 0.5), or "
                               "binarise it.")
        raise InpaintError(f"The {what} {path} holds fractional values ({low:.3g} to {high:.3g}) where a {what} holds "
                           f"labels; check that it is the {what}, or pass --threshold T to fill the voxels above T.")
    mask = Volume(data=nonzero, affine=affine, path=path, dtype=raw.dtype,
                  image=header_image)
    hole = np.ascontiguousarray(on_image_grid(mask, image, what))
    if not hole.any():
        if threshold is not None:
            raise InpaintError(f"No voxel of {path.name} is above {threshold:g}; choose a lower threshold.")
        raise InpaintError(f"The {what} {path} contains no nonzero voxel; {todo}.")
    return hole


def dilate_mask(mask: np.ndarray, voxels: int) -> np.ndarray:
    """Grow a 3D mask by `voxels` steps of 6-connected dilation (0 returns a copy)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"dilate_mask needs a 3D mask, got shape {mask.shape}")
    if voxels < 0:
        raise InpaintError(f"Mask dilation must be zero or more voxels, got {voxels}.")
    if voxels == 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1), iterations=int(voxels))


def _as_stored(values: np.ndarray, dtype: np.dtype, slope: float, inter: float) -> np.ndarray:
    """Scaled values -> stored values of `dtype` (rounded and clipped for integers), part by part."""
    stored = np.empty(values.shape, dtype=dtype)
    for part in chunks(values.shape):
        scaled = (values[part].astype(np.float64) - inter) / slope
        if dtype.kind != "f":
            info = np.iinfo(dtype)
            scaled = np.clip(np.rint(np.nan_to_num(scaled, nan=0.0, posinf=info.max, neginf=info.min)),
                             info.min, info.max)
        stored[part] = scaled
    return stored


def _changed(data: np.ndarray, like: Volume, changed: np.ndarray | None) -> np.ndarray:
    """`changed`, or where `data` differs from `like.data` (NaN equal to NaN)."""
    if changed is None:
        changed = np.empty(data.shape, dtype=bool)
        for part in chunks(data.shape):
            new, old = data[part], like.data[part]
            changed[part] = ~((new == old) | (np.isnan(new) & np.isnan(old)))
    return np.asarray(changed, dtype=bool)


def _exact_float64(data: np.ndarray, like: Volume, changed: np.ndarray | None) -> np.ndarray:
    """float64 output: the input's exact values, `data` where `changed`."""
    changed = _changed(data, like, changed)
    values = np.empty(data.shape, dtype=np.float64)
    for part in chunks(data.shape):
        values[part] = _exact_values(like.raw[part], like.slope, like.inter)
    values[changed] = data[changed]
    return values


def _kept_dtype(data: np.ndarray, like: Volume, changed: np.ndarray | None) -> np.ndarray:
    if like.raw is None:
        return _as_stored(data, like.dtype, like.slope, like.inter)
    changed = _changed(data, like, changed)
    stored = like.raw.copy()
    stored[changed] = _as_stored(data[changed], like.dtype, like.slope, like.inter)
    return stored


def _write_nifti(target: Path, stored: np.ndarray, like: Volume, slope: float, inter: float,
                 derived: Optional[str] = None) -> None:
    header = like.image.header.copy()
    if derived is not None:   # another quantity on the same grid: none of the input's meaning or display window
        header.set_intent("none", (), name="")
        header["cal_min"] = header["cal_max"] = 0
        header["descrip"] = derived.encode("ascii", "replace")[:79]
        header["aux_file"] = b""
        del header.extensions[:]
    header.set_data_dtype(stored.dtype)
    # the header's own affine makes nibabel keep both forms and their codes as they are
    out = type(like.image)(stored.reshape(like.image.shape), header.get_best_affine(), header)
    out.header.set_slope_inter(slope, inter)  # an explicit scaling makes nibabel store the array as is
    out.to_filename(str(target))


def itk_image(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """`array` (voxel order i, j, k; its dtype kept) with its RAS voxel-to-world `affine` as an ITK image (LPS world)."""
    itk = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose()))
    matrix = affine[:3, :3]
    spacing = np.sqrt((matrix ** 2).sum(axis=0))
    itk.SetSpacing([float(s) for s in spacing])
    itk.SetDirection([float(d) for d in (_LPS @ (matrix / spacing)).ravel()])
    itk.SetOrigin([float(o) for o in _LPS @ affine[:3, 3]])
    return itk


def _write_itk(target: Path, stored: np.ndarray, like: Volume) -> None:
    sitk.WriteImage(itk_image(stored, like.affine), str(target), True)


@dataclass
class StagedVolume:
    """A volume (and its sidecar) written in full into a hidden staging folder beside `path`, not yet in place:
    `commit` renames every file into place (all or none), `discard` drops them."""

    path: Path
    staging: Path
    moves: list[tuple[Path, Path]]
    protected: list[Path]
    force: bool

    def commit(self) -> Path:
        try:
            for _, target in self.moves:
                check_target(target, protected=self.protected, force=self.force)
            commit_files(self.moves, self.staging)
        except OSError as exc:
            raise InpaintError(f"Could not write {self.path}: {exc.strerror or exc}; check the folder is writable "
                               "and has free space.") from exc
        finally:
            self.discard()
        return self.path

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _stage(path: Path, like: Volume, force: bool, write, sidecar: dict | None = None,
           inputs: Iterable[str | os.PathLike | None] = ()) -> StagedVolume:
    """Write into a hidden staging folder next to `path` (checked first, as every target is again at the commit).

    With `sidecar`, its JSON (`<stem>.json`) is written into the same staging folder and placed
    together with the volume, so either both appear or neither does.
    """
    inputs = list(inputs)
    check_outputs(path, inputs=inputs, force=force, like=like, sidecar=sidecar is not None)
    protected = protected_files(like, inputs)
    try:
        staging = make_staging(path.parent)
    except OSError as exc:
        raise InpaintError(f"Cannot write {path}: {exc.strerror or exc}; choose a writable folder.") from exc
    try:
        write(staging / path.name)
        # companions (e.g. the .zraw of an .mhd) first, the named file last
        written = sorted(staging.iterdir(), key=lambda p: p.name == path.name)
        moves = [(item, path.parent / item.name) for item in written]
        if sidecar is not None:
            side = sidecar_path(path)
            text = json_text(sidecar)
            (staging / side.name).write_text(text, encoding="utf-8")
            moves.insert(len(moves) - 1, (staging / side.name, side))
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InpaintError(f"Could not write {path}: {exc.strerror or exc}; check the folder is writable "
                           "and has free space.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StagedVolume(path=path, staging=staging, moves=moves, protected=protected, force=force)


def _stage_stored(path: str | os.PathLike, stored: np.ndarray, like: Volume, slope: float, inter: float,
                  force: bool, sidecar: dict | None = None,
                  inputs: Iterable[str | os.PathLike | None] = (), derived: Optional[str] = None) -> StagedVolume:
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return _stage(path, like, force, lambda t: _write_nifti(t, stored, like, slope, inter, derived), sidecar,
                      inputs)
    if suffix in ITK_SUFFIXES:
        if (slope, inter) != (1.0, 0.0):
            raise InpaintError(f"Cannot keep the scaled {stored.dtype} data type in {path} ({suffix} has no "
                               "slope/intercept); write .nii.gz instead or do not keep the data type.")
        return _stage(path, like, force, lambda t: _write_itk(t, stored, like), sidecar, inputs)
    raise InpaintError(f"Cannot write {path}: unsupported extension; use .nii.gz, .nii, .nrrd, .nhdr, .mha or .mhd.")


def stage_volume(path: str | os.PathLike, data: np.ndarray, like: Volume, *, keep_dtype: bool = False,
                 force: bool = False, changed: np.ndarray | None = None, sidecar: dict | None = None,
                 inputs: Sequence[str | os.PathLike | None] = (), derived: Optional[str] = None) -> StagedVolume:
    """`save_volume`'s files, written in full but not yet in place (`StagedVolume.commit` places them): several
    outputs are staged first, so that a full disk or an error leaves none of them written.

    `derived` (a description, e.g. "predicted error SD"): `data` is another quantity on `like`'s grid (a map), written
    as float32 with `like`'s geometry but not its intent, display window, description or header extensions."""
    data = np.asarray(data, dtype=np.float32)
    if data.shape != like.shape:
        raise ValueError(f"data shape {data.shape} differs from the volume's shape {like.shape}")
    if derived is not None:
        return _stage_stored(path, data, like, 1.0, 0.0, force, sidecar, inputs, derived)
    if keep_dtype:
        return _stage_stored(path, _kept_dtype(data, like, changed), like, like.slope, like.inter, force, sidecar,
                             inputs)
    if not holds_exactly_in_float32(like):
        return _stage_stored(path, _exact_float64(data, like, changed), like, 1.0, 0.0, force, sidecar, inputs)
    return _stage_stored(path, data, like, 1.0, 0.0, force, sidecar, inputs)


def save_volume(path: str | os.PathLike, data: np.ndarray, like: Volume, *, keep_dtype: bool = False,
                force: bool = False, changed: np.ndarray | None = None, sidecar: dict | None = None,
                inputs: Sequence[str | os.PathLike | None] = (), companion: StagedVolume | None = None) -> Path:
    """Write `data` on `like`'s grid: float32 by default (float64 where float32 cannot hold the input's values
    exactly: `holds_exactly_in_float32`); with `keep_dtype` the input's stored type and scaling.

    Voxels outside `changed` (default: where `data` equals `like.data`) keep the input's values exactly (with
    `keep_dtype` its stored values bit for bit); with `keep_dtype` the others are rounded and clipped into the
    stored type.
    With `sidecar` (a JSON-able record), `<stem>.json` is written beside it, both or neither.
    `like.path` and every path of `inputs` (with their data files and sidecars) are never written.
    `companion`, a volume staged before (e.g. a predicted-error map: a full disk then stops both), is placed right
    after this one, or dropped when this one cannot be written.
    """
    try:
        out = stage_volume(path, data, like, keep_dtype=keep_dtype, force=force, changed=changed, sidecar=sidecar,
                           inputs=inputs).commit()
    except BaseException:
        if companion is not None:
            companion.discard()
        raise
    if companion is not None:
        companion.commit()
    return out


def save_mask(path: str | os.PathLike, mask: np.ndarray, like: Volume, *, force: bool = False,
              inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Write a mask as uint8 0/1 on `like`'s grid (never over `like.path` or `inputs`)."""
    mask = np.asarray(mask)
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the volume's shape {like.shape}")
    return _stage_stored(path, mask.astype(bool).astype(np.uint8), like, 1.0, 0.0, force, None, inputs).commit()
