"""How much the mirrored detail of `refine3d` adds, per mask family, on the ROBEX training brain.

Validation without the held-out brains: the bench's lesion families (seed 7, four cases each) on
the ROBEX subject, filled by biharmonic-3d and by refine3d with each `--mirror` share. The refiner
saw this brain in training (its own gain here is optimistic); the mirror has nothing trained.

    python scripts/mirror_validation.py [--shares 0,0.35,0.5,0.7] [--families blob6,blob10]
    python scripts/make_1mm.py ROBEX_T1 ROBEX_MASK runs/robex1mm   # the same brain at 1 mm
    python scripts/mirror_validation.py --image runs/robex1mm/t1_1mm.nii.gz --brainmask runs/robex1mm/brainmask_1mm.nii.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.baselines import biharmonic_3d_fill  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.runner import BenchData, Method, fill_case, read_brain, score  # noqa: E402
from core.fill import FillSettings  # noqa: E402
from core.registry import resolve_model  # noqa: E402

DATA = SHARED_DATA / "robex_subject"
FAMILIES = "blob6,blob10,blob16,cube16,cube32,large"
HELD_OUT = ("heldout_subject", "colin27")


def training_brain(image_path: Path, mask_path: Path) -> BenchData:
    """A training brain as the bench reads its brains (`load_bench_data` refuses training brains)."""
    if any(name in str(image_path) for name in HELD_OUT):
        raise SystemExit(f"{image_path} is a held-out brain: validate on training data only.")
    return read_brain(image_path, mask_path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shares", default="0,0.35,0.5,0.7", help="--mirror values to compare")
    p.add_argument("--families", default=FAMILIES)
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--image", type=Path, default=DATA / "t1_1p5mm.nii.gz", help="a training brain (default ROBEX)")
    p.add_argument("--brainmask", type=Path, default=DATA / "brainmask_1p5mm.nii.gz")
    args = p.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    data, model = training_brain(args.image, args.brainmask), resolve_model(None)
    method = Method("refine3d", model="default", pipeline="refine3d")
    rows: dict[str, list[list[float]]] = {}
    for case in make_cases(data.brain, data.voxel_mm, families=args.families.split(","), per_family=args.cases, seed=7):
        voided = np.where(case.hole, np.float32(0), data.image)
        row = [score(biharmonic_3d_fill(voided, case.hole), data, case.hole)["psnr_brats_hole"]]
        for share in shares:
            filled, _, _ = fill_case(method, data, case, model, FillSettings(mirror=share))
            row.append(score(filled, data, case.hole)["psnr_brats_hole"])
        rows.setdefault(case.family, []).append(row)
        print(case.id, " ".join(f"{v:.2f}" for v in row), flush=True)
    header = "family | biharmonic-3d | " + " | ".join(f"refine3d --mirror {s:g}" for s in shares)
    print(f"in-hole PSNR (BraTS), dB, {args.image}\n" + header)
    for family, values in list(rows.items()) + [("all", [r for v in rows.values() for r in v])]:
        print(f"{family} | " + " | ".join(f"{m:.2f}" for m in np.mean(values, axis=0)))


if __name__ == "__main__":
    main()
