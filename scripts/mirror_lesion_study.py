"""What an unpainted lesion on the other side does to the default fill: the bench's holes with a lesion planted
where the mirror looks.

    python scripts/mirror_lesion_study.py [--cohort ../shared/data/train_cohort] [--split validation]
                                          [--refiner DIR] [--out runs/mirror_lesions.json]

For every scan of the split and every lesion-sized bench hole (seeded as `inpaint bench --cohort`: blob6,
blob10, blob16, cube16, three each), the scan's mid-sagittal reflection (`core.mirror.find_reflection`) gives
the voxels that mirror the hole; there the scan is made 30% darker (a T1-hypointense lesion, edges softened
by a Gaussian of 0.7 voxels) and left unpainted. Holes whose mirror image comes within 3 voxels of the hole
itself (the midline) are skipped. The hole is then filled from the planted scan by `refine3d` (the shipped
1 mm refiner or `--refiner`) and by `biharmonic-3d`, and each is scored against the hole's own healthy
tissue. Printed: the default's in-hole PSNR against biharmonic-3d, mean over scans +/- SE over scans.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import SHARED_DATA  # noqa: E402
from core.bench.cohort import COHORT_FAMILIES, SPLITS, cohort_scans, mean_se  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.runner import BASELINES, read_brain  # noqa: E402
from core.fill import FillSettings, fill_volume  # noqa: E402
from core.metrics import hole_metrics  # noqa: E402
from core.mirror import find_reflection  # noqa: E402
from core.refine3d import load_refiner  # noqa: E402

DARKER = 0.3          # the planted lesion's tissue is this much darker
MIDLINE_VOXELS = 3    # holes whose mirror image comes this close are skipped


def planted(image: np.ndarray, hole: np.ndarray, spacing: np.ndarray) -> np.ndarray | None:
    """`image` with the hole's mirror image darkened; None when that image touches the hole."""
    reflection = find_reflection(image, hole, spacing, 0)   # RAS voxel order: axis 0 is left-right
    points = np.argwhere(hole).astype(np.float64)
    mirror = np.rint(points @ reflection.matrix[:, :3].T + reflection.matrix[:, 3]).astype(int)
    inside = np.all((mirror >= 0) & (mirror < image.shape), axis=1)
    lesion = np.zeros(image.shape, dtype=bool)
    lesion[tuple(mirror[inside].T)] = True
    lesion = ndimage.binary_closing(lesion)
    if (lesion & ndimage.binary_dilation(hole, iterations=MIDLINE_VOXELS)).any():
        return None
    soft = ndimage.gaussian_filter(lesion.astype(np.float32), 0.7)
    return (image * (1.0 - DARKER * soft)).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", type=Path, default=SHARED_DATA / "train_cohort")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--refiner", type=Path, default=None, help="refiner folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("runs/mirror_lesions.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    refiner = load_refiner(args.refiner) if args.refiner is not None else None
    rows = []
    for scan in cohort_scans(args.cohort, args.split):
        label = f"{scan.dataset}/{scan.image.name.split('_T1w')[0]}"
        data = read_brain(scan.image, scan.brainmask)
        for case in make_cases(data.brain, data.voxel_mm, COHORT_FAMILIES, 3, 0):
            image = planted(data.image, case.hole, data.voxel_mm)
            if image is None:
                continue
            voided = np.where(case.hole, np.float32(0), image)
            fills = {"biharmonic-3d": BASELINES["biharmonic-3d"](voided, case.hole, data.voxel_mm),
                     "refine3d": fill_volume(voided, data.affine, case.hole, settings=FillSettings(seed=0),
                                             brain=data.brain, refiner=refiner).filled}
            rows.append({"scan": label, "case": case.id,
                         **{k: hole_metrics(f, image, case.hole, voided)["psnr"] for k, f in fills.items()}})
        print(label, len(rows), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"refiner": str(args.refiner or "shipped"), "rows": rows}, indent=1))
    scans = sorted({r["scan"] for r in rows})
    diffs = [float(np.mean([r["refine3d"] - r["biharmonic-3d"] for r in rows if r["scan"] == s])) for s in scans]
    mean, se = mean_se(diffs)
    print(f"refine3d - biharmonic-3d with an unpainted lesion mirrored: {mean:+.2f} +/- {se:.2f} dB over "
          f"{len(scans)} scans ({len(rows)} holes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
