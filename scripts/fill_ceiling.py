"""How much in-hole PSNR any fill could gain over biharmonic-3d: the part of the error no context predicts.

For the bench's lesion-sized holes on the training cohort's validation split (the same holes as
`inpaint bench --cohort ../shared/data/train_cohort --split validation --cases 3`), two estimates of
the best in-hole PSNR a fill could reach, each against biharmonic-3d's (the bench's `psnr_hole`:
intensities normalised by the voided image's percentiles, data range 1):

- noise: the scan's white noise cannot be predicted from outside the hole, so no fill's mean squared
  error is below its variance there. The variance is estimated in the hole from the truth's third-order
  mixed difference (the [1, -2, 1] second difference along each axis in turn, which cancels anything
  linear along any axis; white noise comes out with 216 times its variance), robustly (1.4826 x the
  median absolute deviation). Noise correlated between neighbouring voxels is partly missed by the
  estimate, so this ceiling is generous.
- the truth itself, blurred by a Gaussian of SD 0.5 to 4 mm (isotropic in millimetres), put in the
  hole: a fill that knew every structure of the hole coarser than the blur. Where such a fill scores
  below biharmonic-3d, what biharmonic misses is finer than that blur.

With a bench run of the default on the same holes (`--run`), the default beside them. Evaluation only;
nothing in the product is chosen by it.

    inpaint bench --cohort ../shared/data/train_cohort --split validation --methods refine3d --cases 3 --out runs/val
    OMP_NUM_THREADS=1 python scripts/fill_ceiling.py --run runs/val/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.bench.cohort import cohort_scans  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.runner import BASELINES, read_brain  # noqa: E402
from core.metrics import hole_metrics, voided_range  # noqa: E402

FAMILIES = ("blob6", "blob10", "blob16", "cube16")
BLUR_MM = (0.5, 1.0, 1.5, 2.0, 4.0)
MAD_TO_SD = 1.4826


def noise_sd(truth: np.ndarray, hole: np.ndarray) -> float:
    """White-noise SD of `truth` in `hole` from its mixed third-order difference (robust)."""
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(hole))
    diff = truth[box].astype(np.float64)
    for axis in range(3):
        diff = ndimage.correlate1d(diff, [1.0, -2.0, 1.0], axis=axis, mode="nearest")
    values = diff[hole[box]]
    return MAD_TO_SD * float(np.median(np.abs(values - np.median(values)))) / math.sqrt(216.0)


def mean_se(values: list[float]) -> str:
    m = float(np.mean(values))
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return f"{m:+.2f} +/- {se:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=SHARED_DATA / "train_cohort")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--run", type=Path, help="a bench results.json of the same holes (method refine3d)")
    args = parser.parse_args()
    default = {}
    if args.run is not None:
        default = {(c["scan"], c["case"]): c["psnr_hole"] for c in json.loads(args.run.read_text())["cases"]
                   if c["method"] == "refine3d"}
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))  # scan -> column -> per hole
    for scan in cohort_scans(args.cohort, args.split):
        label = f"{scan.dataset}/{scan.image.name.split('_T1w')[0]}"
        data = read_brain(scan.image, scan.brainmask)
        blurred = [ndimage.gaussian_filter(data.image, mm / data.voxel_mm) for mm in BLUR_MM]
        for case in make_cases(data.brain, data.voxel_mm, FAMILIES, args.cases, 0):
            hole = case.hole
            voided = np.where(hole, np.float32(0), data.image)
            lo, hi = voided_range(data.image, hole)
            base = hole_metrics(BASELINES["biharmonic-3d"](voided, hole, data.voxel_mm), data.image, hole,
                                value_range=(lo, hi))["psnr"]
            sd = noise_sd(data.image, hole) / (hi - lo)
            row = rows[label]
            row["noise"].append(10 * math.log10(1.0 / sd ** 2) - base)
            for mm, b in zip(BLUR_MM, blurred):
                row[f"truth {mm:g} mm"].append(hole_metrics(np.where(hole, b, data.image), data.image, hole,
                                                            value_range=(lo, hi))["psnr"] - base)
            if (label, case.id) in default:
                row["default"].append(default[(label, case.id)] - base)
        means = {k: float(np.mean(v)) for k, v in rows[label].items()}
        print(f"{label}, dB over biharmonic-3d: " + ", ".join(f"{k} {v:+.2f}" for k, v in means.items()), flush=True)
    for dataset in sorted({s.split("/")[0] for s in rows}) + ["all"]:
        scans = [s for s in rows if dataset == "all" or s.startswith(dataset + "/")]
        line = {k: [float(np.mean(rows[s][k])) for s in scans] for k in rows[scans[0]] if all(rows[s][k] for s in scans)}
        print(f"{dataset} ({len(scans)} scans, mean +/- SE over scans, dB over biharmonic-3d): "
              + ", ".join(f"{k} {mean_se(v)}" for k, v in line.items()))


if __name__ == "__main__":
    main()
