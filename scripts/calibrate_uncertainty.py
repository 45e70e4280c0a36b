"""Fit the constants of `refine3d`'s predicted error (`core.uncertainty`) on the training cohort's validation split.

Every validation scan (`core.training.cohort.split`) gets the cohort bench's lesion families (seed 1 by
default, not the bench's 0) and is filled by `refine3d` with the refiner of `--refiner`; the features
of every hole voxel and its actual error (fill - truth) are collected, the constants fitted
(`core.uncertainty.fit`) and written to `<refiner>/uncertainty.json` with the figures they reach.
The held-out brains are never read.

    OMP_NUM_THREADS=1 python scripts/calibrate_uncertainty.py [--refiner runs/refiner1mm] [--cases 4]
    python scripts/calibrate_uncertainty.py --features runs/uncert_cal/features.npz   # refit without refilling
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.bench.cohort import COHORT_FAMILIES, cohort_scans  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.runner import read_brain  # noqa: E402
from core.paths import shown_path  # noqa: E402
from core.fill import FillSettings, fill_volume  # noqa: E402
from core.refine3d import SHIPPED, load_refiner  # noqa: E402
from core.registry import resolve_model  # noqa: E402
from core.uncertainty import FILE_NAME, fit, lesion_rms, one_sigma_share, to_json  # noqa: E402
from core.jsonfiles import write_json  # noqa: E402

COHORT = SHARED_DATA / "train_cohort"


class Recorder:
    """Stands in for the uncertainty model during a fill and keeps the features it was given."""

    last: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.last = np.array(features, dtype=np.float32)
        return np.zeros(len(features), dtype=np.float32)


def collect(cohort: Path, refiner_path: Path, families: list[str], cases: int, seed: int) -> dict[str, np.ndarray]:
    """Features, errors and labels of every hole voxel of the validation lesions."""
    recorder = Recorder()
    refiner = dataclasses.replace(load_refiner(refiner_path), uncertainty=recorder)
    model = resolve_model(None)   # passed along only: refine3d uses no slice model
    parts: dict[str, list] = {"features": [], "error": [], "lesion": [], "dataset": [], "family": [], "scan": []}
    lesion = 0
    for scan in cohort_scans(cohort, "validation"):
        data = read_brain(scan.image, scan.brainmask)
        for case in make_cases(data.brain, data.voxel_mm, families, cases, seed):
            voided = np.where(case.hole, np.float32(0), data.image)
            result = fill_volume(voided, data.affine, case.hole, model, FillSettings(seed=seed), brain=data.brain,
                                 refiner=refiner)
            n = int(case.hole.sum())
            parts["features"].append(recorder.last)
            parts["error"].append(result.filled[case.hole] - data.image[case.hole])
            parts["lesion"].append(np.full(n, lesion))
            parts["dataset"].append(scan.dataset)
            parts["family"].append(case.family)
            parts["scan"].append(scan.image.name.split("_T1w")[0])
            lesion += 1
            print(f"{scan.dataset}/{parts['scan'][-1]} {case.id}: {n} voxels, RMS error "
                  f"{np.sqrt(np.mean(parts['error'][-1] ** 2)):.2f}", flush=True)
    return {"features": np.concatenate(parts["features"]), "error": np.concatenate(parts["error"]),
            "lesion": np.concatenate(parts["lesion"]), "dataset": np.array(parts["dataset"]),
            "family": np.array(parts["family"]), "scan": np.array(parts["scan"])}


def figures(sd: np.ndarray, data: dict[str, np.ndarray]) -> dict:
    """One-sigma share of the hole voxels and Spearman of per-lesion RMS (predicted SD vs error), per group."""
    from scipy.stats import spearmanr

    lesion = data["lesion"]
    predicted, actual = lesion_rms(sd, lesion), lesion_rms(data["error"], lesion)
    out = {}
    for key in ("all", *sorted(set(data["dataset"])), *sorted(set(data["family"]))):
        chosen = np.ones(len(predicted), bool) if key == "all" else (data["dataset"] == key) | (data["family"] == key)
        voxels = chosen[lesion]
        out[key] = {"lesions": int(chosen.sum()), "spearman": round(float(spearmanr(predicted[chosen],
                                                                                     actual[chosen])[0]), 3),
                    "one_sigma_share": round(one_sigma_share(sd[voxels], data["error"][voxels]), 3)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--refiner", type=Path, default=SHIPPED, help="refiner folder (default: the shipped one)")
    p.add_argument("--cohort", type=Path, default=COHORT, help="training cohort (its validation split is used)")
    p.add_argument("--families", default=",".join(COHORT_FAMILIES))
    p.add_argument("--cases", type=int, default=4, help="lesions per family and scan")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--features", type=Path, default=None,
                   help="cache of the collected voxels (.npz): read when it exists, else written")
    p.add_argument("--out", type=Path, default=None, help=f"where to write (default: <refiner>/{FILE_NAME})")
    args = p.parse_args()
    if "heldout" in str(args.cohort.resolve()):
        raise SystemExit(f"{args.cohort} is a held-out cohort: calibrate on the training cohort's validation split.")
    refiner = load_refiner(args.refiner)
    if args.features is not None and args.features.is_file():
        data = dict(np.load(args.features))
        if str(data["refiner_sha256"]) != refiner.checksum:
            raise SystemExit(f"{args.features} was collected with another refiner; delete it or pass another path.")
    else:
        data = collect(args.cohort, args.refiner, args.families.split(","), args.cases, args.seed)
        data["refiner_sha256"] = np.array(refiner.checksum)
        if args.features is not None:
            args.features.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.features, **data)
    out = args.out or args.refiner / FILE_NAME
    model = fit(data["features"], data["error"], data["lesion"], source=str(out))
    validation = figures(model.predict(data["features"]), data)
    scans = sorted({f"{d}/{s}" for d, s in zip(data["dataset"], data["scan"])})
    record = to_json(model, {"refiner_sha256": refiner.checksum,
                             "fitted_on": {"cohort": shown_path(args.cohort), "split": "validation", "scans": scans,
                                           "families": sorted(set(data["family"])), "cases_per_family": args.cases,
                                           "seed": args.seed, "lesions": int(data["lesion"].max()) + 1,
                                           "voxels": int(len(data["error"]))},
                             "validation": validation})
    write_json(out, record)
    print(f"wrote {out}: {record['constants']}")
    for key, row in validation.items():
        print(f"{key:<12} lesions {row['lesions']:>4}  Spearman {row['spearman']:.3f}  "
              f"one-sigma share {row['one_sigma_share']:.3f}")


if __name__ == "__main__":
    main()
