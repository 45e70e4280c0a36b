"""What the stripe ratio says about a fill with no slices at all, on anisotropic voxels.

The truth itself, blurred by a Gaussian isotropic in millimetres (no slices, no stripes) and put into
lesion-sized holes of the cohort's validation scans, scored by the bench's stripe ratio (slice axis:
axial). On 1 mm scans with 0.87 mm in-plane voxels a smooth 3D fill scores well above 1: the second
difference of a smooth image grows with the square of the voxel size, the truth's (noise) does not.

    OMP_NUM_THREADS=1 python scripts/stripe_anisotropy.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.bench.cohort import cohort_scans  # noqa: E402
from core.bench.masks import AXIAL, make_cases  # noqa: E402
from core.bench.runner import load_bench_data  # noqa: E402
from core.roughness import stripe_metrics  # noqa: E402

BLUR_MM = (0.0, 1.0, 2.0)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    for scan in cohort_scans(SHARED_DATA / "train_cohort", "validation"):
        data = load_bench_data(scan.image, scan.brainmask)
        blurred = [ndimage.gaussian_filter(data.image, mm / data.voxel_mm) if mm else data.image for mm in BLUR_MM]
        ratios = [[stripe_metrics(np.where(case.hole, b, data.image), data.image, case.hole, AXIAL)["stripe_ratio"]
                   for b in blurred] for case in make_cases(data.brain, data.voxel_mm, ["blob10", "blob16", "cube16"], 2, 0)]
        print(f"{scan.dataset}/{scan.image.name.split('_T1w')[0]} voxels {np.round(data.voxel_mm, 3).tolist()} mm: "
              f"stripe ratio of the truth blurred by {'/'.join(f'{mm:g}' for mm in BLUR_MM)} mm: "
              + " / ".join(f"{v:.2f}" for v in np.mean(ratios, axis=0)), flush=True)


if __name__ == "__main__":
    main()
