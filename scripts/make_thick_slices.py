"""Thick-slice copies of a cohort: what a clinical scan with 3 mm axial slices would show of each brain.

    python scripts/make_thick_slices.py COHORT OUT [--split all|validation] [--thickness 3] [--isotropic]

Each `*_T1w` scan and its `*_brainmask` are averaged over slabs of `--thickness` mm along the voxel
axis nearest the scanner's superior-inferior direction (a box slice profile, contiguous slices, no
gap) and written to OUT with the same folder layout and names, so `inpaint bench --cohort OUT`
benches them. In-plane voxels are kept. The image is rounded back to its integer type; the mask is
the slab's brain share of at least one half. The affine keeps every voxel's world position: a
thick slice's centre is the centre of the slab it averages. With `--isotropic` every voxel axis is
averaged so: a scan of `--thickness` mm voxels (a box point-spread function), e.g. a 2 mm copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.bench.cohort import SPLITS, cohort_scans  # noqa: E402


def slab_weights(count: int, spacing: float, thickness: float) -> np.ndarray:
    """(slabs, count) matrix: each slab's overlap with each original slice, divided by the slab's thickness."""
    slabs = int(count * spacing // thickness)
    lower = np.arange(count) * spacing
    start = np.arange(slabs)[:, None] * thickness
    overlap = np.clip(np.minimum(lower + spacing, start + thickness) - np.maximum(lower, start), 0, None)
    return overlap / thickness


def thicken(data: np.ndarray, affine: np.ndarray, axis: int, thickness: float) -> tuple[np.ndarray, np.ndarray]:
    """(float slab means, affine) of `data` averaged into slabs of `thickness` mm along voxel `axis`."""
    spacing = float(np.linalg.norm(affine[:3, axis]))
    weights = slab_weights(data.shape[axis], spacing, thickness)
    data = np.moveaxis(np.tensordot(weights, np.moveaxis(np.asarray(data, dtype=np.float32), axis, 0), axes=1), 0,
                       axis)
    step = thickness / spacing
    voxel_to_old = np.eye(4)
    voxel_to_old[axis, axis] = step
    voxel_to_old[axis, 3] = step / 2 - 0.5   # a slab's centre, in original voxel coordinates
    return data, affine @ voxel_to_old


def thicken_axes(image: nib.Nifti1Image, axes: list[int], thickness: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` averaged into slabs of `thickness` mm along each of voxel `axes` in turn."""
    data, affine = np.asarray(image.dataobj, dtype=np.float32), image.affine
    for axis in axes:
        data, affine = thicken(data, affine, axis, thickness)
    return data, affine


def superior_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to the scanner's superior-inferior direction."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    return int(np.argmax(np.abs(columns[2]) / np.linalg.norm(columns, axis=0)))


def save(data: np.ndarray, affine: np.ndarray, like: nib.Nifti1Image, path: Path) -> None:
    result = nib.Nifti1Image(data, affine)
    result.set_qform(affine, code=int(like.header["qform_code"]) or 1)
    result.set_sform(affine, code=int(like.header["sform_code"]) or 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(result, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", choices=SPLITS, default="all")
    parser.add_argument("--thickness", type=float, default=3.0, help="slab thickness in mm (default 3)")
    parser.add_argument("--isotropic", action="store_true", help="average along every axis: voxels of THICKNESS mm")
    args = parser.parse_args()
    for scan in cohort_scans(args.cohort, args.split):
        image, mask = nib.load(scan.image), nib.load(scan.brainmask)
        axes = [0, 1, 2] if args.isotropic else [superior_axis(image.affine)]
        data, affine = thicken_axes(image, axes, args.thickness)
        dtype = image.get_data_dtype()
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = np.clip(np.rint(data), info.min, info.max).astype(dtype)
        share, _ = thicken_axes(mask, axes, args.thickness)
        folder = args.out / scan.image.parent.relative_to(args.cohort)
        save(data, affine, image, folder / scan.image.name)
        save((share >= 0.5).astype(np.uint8), affine, mask, folder / scan.brainmask.name)
        print(f"{scan.image.name}: {image.shape} -> {data.shape}, axes {axes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
