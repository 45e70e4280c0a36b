"""The files a volume path reads and writes, and the checks that keep every output off every input.

`input_files` lists what an input consists of (header data files, Analyze pairs, its sidecar), so that
no output, with or without --force, replaces any of it; `check_outputs` checks, before any work, every
file an output will create. No volume is read or written here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from core.atomic import check_writable, recover_commits
from core.errors import InpaintError

if TYPE_CHECKING:
    from core.volume import Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
# data files SimpleITK writes beside a header (always compressed: core.volume writes them so)
ITK_COMPANIONS = {".mhd": ".zraw", ".nhdr": ".raw.gz"}


def volume_suffix(path: Path) -> str:
    """The volume extension a path ends in (lower case; "" for none we read)."""
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES + ITK_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return ""


def odd_case_suffix(path: Path) -> bool:
    """True when nibabel or ITK would read or write another name than `path`'s: a part of the extension in mixed case
    (`.Nii`: `.nii` is written) or a MetaImage one not in lower case (`.MHA`: an `.mhd` + `.zraw` pair).
    `.NII.GZ`, `.nii.GZ` and `.NRRD` are fine."""
    suffix = volume_suffix(path)
    written = path.name[len(path.name) - len(suffix):] if suffix else ""
    if suffix in (".mha", ".mhd"):
        return written != suffix
    return any(part not in (part.lower(), part.upper()) for part in written.split("."))


def sidecar_path(output: str | os.PathLike) -> Path:
    """The provenance JSON of an output: `<stem>.json` beside it (`sub-01_desc-inpainted_T1w.nii.gz` -> `.json`)."""
    output = Path(output)
    if not output.name:   # "." or "": the current folder (e.g. a DICOM folder or a model given from inside it)
        output = output.resolve()
    suffix = volume_suffix(output)
    stem = output.name[: len(output.name) - len(suffix)] if suffix else output.name
    return output.with_name(stem + ".json")


MAX_LISTED_FILES = 100_000  # data files of one header's pattern form considered (no volume has more slices)
_ANALYZE_PAIRS = {".hdr": ".img", ".img": ".hdr", ".hdr.gz": ".img.gz", ".img.gz": ".hdr.gz"}


def _header_text(path: Path) -> list[str]:
    """The text lines of a header: an .mhd/.mha up to 1 MB, an .nrrd/.nhdr up to its first blank line."""
    try:
        with open(path, "rb") as stream:
            lines = stream.read(1 << 20).decode("latin-1").splitlines()
    except OSError:
        return []
    if volume_suffix(path) in (".nrrd", ".nhdr") and "" in (line.strip() for line in lines):
        lines = lines[:[line.strip() for line in lines].index("")]
    return lines


def _pattern_files(folder: Path, fields: list[str]) -> list[Path]:
    """The files of a printf-style data file form `name%03d.raw min max step` (MetaImage and NRRD alike)."""
    try:
        low, high, step = (int(v) for v in fields[1:4])
        names = range(low, high + (1 if step > 0 else -1), step)
        return [folder / (fields[0] % i) for i in names[:MAX_LISTED_FILES]]
    except (ValueError, TypeError, IndexError):
        return []


def _header_data_files(path: Path) -> list[Path]:
    """Every separate data file an .mhd/.mha/.nhdr/.nrrd header names, in each form the format allows: one
    file, `LIST` (the names on the lines after it) or a `%d` pattern with min, max and step; [] for inline
    data or anything unreadable. Relative names are relative to the header's folder."""
    suffix = volume_suffix(path)
    if suffix not in ITK_SUFFIXES or not path.is_file():
        return []
    separator, keys = ("=", {"elementdatafile"}) if suffix in (".mhd", ".mha") else (":", {"data file", "datafile"})
    lines = _header_text(path)
    for index, line in enumerate(lines):
        name, found, value = line.partition(separator)
        value = value.strip()
        if not found or name.strip().lower() not in keys or value.upper() in ("", "LOCAL"):
            continue
        fields = value.split()
        if fields[0].upper() == "LIST":
            listed = (item.strip() for item in lines[index + 1:])
            return [path.parent / item for item in listed if item]
        if "%" in fields[0] and len(fields) >= 4:
            return _pattern_files(path.parent, fields)
        return [path.parent / value]
    return []


def input_files(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """Every file that belongs to an input, each with how to name it: the file (or DICOM folder), every data
    file its header names (.mhd/.mha/.nhdr/.nrrd, `_header_data_files`), the other half of an Analyze-style
    .hdr/.img pair, and its sidecar `<stem>.json` (e.g. a BIDS sidecar)."""
    path = Path(path)
    files = [(path, f"the input {path}"), (sidecar_path(path), f"the sidecar of the input {path}")]
    files += [(data, f"a data file of the input {path}") for data in _header_data_files(path)]
    for suffix, partner in _ANALYZE_PAIRS.items():
        if path.name.lower().endswith(suffix):
            files.append((path.with_name(path.name[: -len(suffix)] + partner), f"the other half of the input {path}"))
            break
    return files


def output_files(path: str | os.PathLike) -> list[Path]:
    """The files an output path makes: a header's compressed data file (.mhd, .nhdr) first, the named file last."""
    path = Path(path)
    suffix = volume_suffix(path)
    companion = ITK_COMPANIONS.get(suffix)
    if companion is None:
        return [path]
    return [path.with_name(path.name[: -len(suffix)] + companion), path]


def same_path(a: Path, b: Path) -> bool:
    """Same file by resolved path or, where both exist, by device and inode (hard links, case-folding file systems)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def check_target(path: Path, *, protected: Iterable[tuple[Path, str]] = (), force: bool = False) -> None:
    """InpaintError unless `path` may be written: its folder exists, it is no folder, none of the `protected`
    (path, description) pairs (see `input_files`), and new or forced."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InpaintError(f"Cannot write {path}: the folder {path.parent} does not exist; create it or choose "
                           "another output path.")
    if path.is_dir():
        raise InpaintError(f"Cannot write {path}: it is a folder; give a file name.")
    for source, description in protected:
        if same_path(path, source):
            raise InpaintError(f"Refusing to write {path}: it is {description} (inputs and their sidecars are "
                               "never overwritten, not even with --force); choose another output name.")
        if source.is_dir() and _inside(path, source):
            raise InpaintError(f"Refusing to write {path} inside {description}, a folder; choose another folder.")
    if os.path.lexists(path) and not force:
        raise InpaintError(f"{path} already exists; pass --force to overwrite it or choose another output name.")


def protected_files(like: Volume | None, inputs: Iterable[str | os.PathLike | None]) -> list[tuple[Path, str]]:
    sources = [like.path] if like is not None and like.path is not None else []
    sources += [Path(p) for p in inputs if p is not None]
    return [f for source in sources for f in input_files(source)]


def check_outputs(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (), force: bool = False,
                  like: Volume | None = None, keep_dtype: bool = False, sidecar: bool = True) -> list[Path]:
    """Check, before any work, every file an output will create; returns them (data files, volume, sidecar).

    Refused: an unsupported extension, a missing folder, a folder in the way, any file an input
    reads (`input_files`, by path and by inode, with or without `force`), an existing file without
    `force`, a folder where nothing can be created, and keeping a scaled data type in a format
    without slope/intercept. A pair a killed run left half placed there is completed first
    (`core.atomic.recover_commits`).
    """
    path = Path(path)
    suffix = volume_suffix(path)
    if path.is_dir():
        raise InpaintError(f"Cannot write {path}: it is a folder; give the output's file name, e.g. "
                           f"{path / 'filled.nii.gz'}.")
    if suffix not in NIFTI_SUFFIXES + ITK_SUFFIXES:
        raise InpaintError(f"Cannot write {path}: unsupported extension; use .nii.gz, .nii, .nrrd, .nhdr, .mha "
                           "or .mhd.")
    if odd_case_suffix(path):
        raise InpaintError(f"Cannot write {path}: nibabel and ITK do not write an extension in this case under the "
                           f"name given (nor read it); write it as {suffix}.")
    if keep_dtype and like is not None and suffix in ITK_SUFFIXES and (like.slope, like.inter) != (1.0, 0.0):
        raise InpaintError(f"Cannot keep the scaled {like.dtype} data type in {path} ({suffix} has no "
                           "slope/intercept); write .nii.gz instead or do not keep the data type.")
    protected = protected_files(like, inputs)
    targets = output_files(path) + ([sidecar_path(path)] if sidecar else [])
    recover_commits(path.parent)  # a pair half placed by a killed run is completed first
    for target in targets:
        check_target(target, protected=protected, force=force)
    try:
        check_writable(path.parent)
    except OSError as exc:
        raise InpaintError(f"Cannot write {path}: the folder {path.parent} is not writable "
                           f"({exc.strerror or exc}); choose a writable folder or change its permissions.") from None
    return targets


def uncertainty_name(filled_path: str | os.PathLike) -> str:
    """The predicted-error map's name beside a filled image: its `desc-inpainted` becomes `desc-uncertainty` (BIDS),
    else `_uncertainty` ends the stem (`T1_filled.nii.gz` -> `T1_filled_uncertainty.nii.gz`)."""
    path = Path(filled_path)
    suffix = volume_suffix(path) or ".nii.gz"
    stem = path.name[: len(path.name) - len(suffix)] if volume_suffix(path) else path.name
    if "_desc-inpainted" in stem:
        return stem.replace("_desc-inpainted", "_desc-uncertainty") + suffix
    return f"{stem}_uncertainty{suffix}"


ANATOMICAL_SUFFIXES = ("T1w", "T2w", "PDw", "T2starw", "FLAIR", "PD", "T2star", "inplaneT1", "inplaneT2")  # BIDS


def derived_name(image_path: str | os.PathLike, kind: str) -> str:
    """BIDS-style output name for an input (a trailing BIDS anatomical suffix such as _T1w or _FLAIR is taken off
    its stem first, and kept for the filled image; T1w when there is none).

    kind "inpainted" -> <stem>_desc-inpainted_<suffix>.nii.gz; kind "mask" -> <stem>_label-lesion_mask.nii.gz.
    """
    path = Path(image_path)
    suffix = volume_suffix(path)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    contrast = next((c for c in ANATOMICAL_SUFFIXES if stem.endswith(f"_{c}")), None)
    if contrast is not None:
        stem = stem[: -len(contrast) - 1]
    if kind == "inpainted":
        return f"{stem}_desc-inpainted_{contrast or 'T1w'}.nii.gz"
    if kind == "mask":
        return f"{stem}_label-lesion_mask.nii.gz"
    raise ValueError(f"unknown output kind {kind!r}; use 'inpainted' or 'mask'")
