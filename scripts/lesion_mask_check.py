"""One lesion mask per scan, filled as a user would, against 3D biharmonic inpainting.

In each scan of a cohort (default: the held-out cohort), one mask - six deep blobs (`--lesions six`, the
check of issue 23's opening table: three of 6 mm, two of 10 mm and one of 16 mm radius) or 40 white-matter
balls of 1.5-4 mm radius (`--lesions small40`, like an MS lesion map), as `scripts/measure_fill.py` draws
them - filled by `inpaint fill` at default settings as a separate process, and by scikit-image's biharmonic
inpainting in 3D on the same mask; BraTS in-hole PSNR and SSIM of both over the whole mask (the issue's
measure), the difference of in-hole PSNR averaged over the mask's separate lesions (the bench's measure), per
scan, and the mean differences +/- their standard errors over scans. Evaluation only: nothing is chosen by it.

    python scripts/lesion_mask_check.py [--lesions six|small40] [--cohort ../shared/data/heldout_cohort] [--out DIR]
    python scripts/lesion_mask_check.py --cohort ../shared/data/train_cohort --split validation   (to choose by)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.baselines import biharmonic_3d_fill  # noqa: E402
from core.bench.cohort import cohort_scans  # noqa: E402
from core.bench.masks import check_mask  # noqa: E402
from core.bench.runner import load_bench_data  # noqa: E402
from core.metrics import hole_metrics, voided_range  # noqa: E402
from core.modelspace import Reorientation  # noqa: E402


def check_scan(image: Path, brainmask: Path, out: Path, lesions: str = "six") -> dict:
    """Fill one scan's mask (`--lesions`) with `inpaint fill` and with biharmonic-3d; their in-hole metrics."""
    t1, data = nib.load(image), load_bench_data(image, brainmask)
    hole = check_mask(lesions, data.image, data.brain, data.voxel_mm)
    reo = Reorientation.of(t1.affine, t1.shape)
    header = t1.header.copy()
    header.set_data_dtype(np.float32)
    stem = image.name.split("_")[0]
    brain_path, mask_path, filled_path = (out / f"{stem}_brain.nii.gz", out / f"{stem}_{lesions}.nii.gz",
                                          out / f"{stem}_filled.nii.gz")
    nib.save(nib.Nifti1Image(reo.undo(data.image).astype(np.float32), t1.affine, header), brain_path)
    mask = nib.Nifti1Image(reo.undo(hole).astype(np.uint8), t1.affine)
    mask.set_data_dtype(np.uint8)
    nib.save(mask, mask_path)
    subprocess.run([sys.executable, "-m", "core.cli", "fill", str(brain_path), str(mask_path), "-o", str(filled_path),
                    "--force", "--quiet"], check=True, cwd=ROOT)
    filled = reo.apply(nib.load(filled_path).get_fdata(dtype=np.float32))
    voided = np.where(hole, np.float32(0), data.image)
    biharmonic = biharmonic_3d_fill(voided, hole)
    scale = voided_range(data.image, hole)   # every score below normalises by the same range

    def score(fill: np.ndarray, where: np.ndarray) -> dict:
        return hole_metrics(fill, data.image, where, value_range=scale)

    default, baseline = score(filled, hole), score(biharmonic, hole)
    labels, count = ndimage.label(hole, structure=np.ones((3, 3, 3)))
    per_lesion = [score(filled, labels == i)["psnr"] - score(biharmonic, labels == i)["psnr"]
                  for i in range(1, count + 1)]
    per_lesion = [d for d in per_lesion if np.isfinite(d)]   # a fill exact on a tiny lesion has no finite PSNR
    return {"voxels": int(hole.sum()), "voxel_mm": [float(v) for v in data.voxel_mm],
            "lesions": count, "lesions_scored": len(per_lesion), "per_lesion_difference": float(np.mean(per_lesion)),
            "default": {"psnr_brats": default["psnr_brats"], "ssim": default["ssim"]},
            "biharmonic-3d": {"psnr_brats": baseline["psnr_brats"], "ssim": baseline["ssim"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", choices=("six", "small40"), default="six")
    parser.add_argument("--cohort", type=Path, default=SHARED_DATA / "heldout_cohort")
    parser.add_argument("--split", choices=("all", "training", "validation"), default="all",
                        help="the cohort's scans to use (core.training.cohort.split) [all]")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/lesion_mask_check_<lesions>")
    args = parser.parse_args()
    args.out = args.out or Path(f"runs/lesion_mask_check_{args.lesions}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for found in cohort_scans(args.cohort, args.split):
        image = found.image
        scan = f"{image.parent.name}/{image.name.split('_')[0]}"
        out = args.out / image.parent.name
        out.mkdir(exist_ok=True)
        rows[scan] = row = check_scan(image, found.brainmask, out, args.lesions)
        d, b = row["default"], row["biharmonic-3d"]
        print(f"{scan}: {row['voxels']} voxels; default {d['psnr_brats']:.2f} dB / {d['ssim']:.3f}, biharmonic-3d "
              f"{b['psnr_brats']:.2f} / {b['ssim']:.3f}; {d['psnr_brats'] - b['psnr_brats']:+.2f} dB; averaged over its "
              f"{row['lesions']} lesions {row['per_lesion_difference']:+.2f} dB", flush=True)
    for name, diff in (("whole mask", [r["default"]["psnr_brats"] - r["biharmonic-3d"]["psnr_brats"] for r in rows.values()]),
                       ("per lesion", [r["per_lesion_difference"] for r in rows.values()])):
        diff = np.array(diff)
        print(f"{name}, mean of {len(diff)} scans: {diff.mean():+.2f} +/- {diff.std(ddof=1) / np.sqrt(len(diff)):.2f} dB; "
              f"default ahead on {(diff > 0).sum()} of {len(diff)}")
    (args.out / f"lesion_mask_check_{args.lesions}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
