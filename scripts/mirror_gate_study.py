"""Could each lesion get its own share of the mirrored detail? A study on the cohort's validation split.

For every hole, `refine3d` is run with the mirror off and at share 1; the fill at any share w is then
F0 + w (F1 - F0) (the share enters linearly), so every rule can be scored without refilling. Recorded
per lesion: the squared-error terms of that line, the best share (least squares against the truth:
an oracle, never available to a fill), and what the known tissue says beforehand: in the shell of
known voxels within 5 mm of the hole, the slope of the image's fine detail (it minus its Gaussian blur
of SD 2 mm) regressed on the rigidly mirrored image's fine detail. `--report` scores rules against
the fixed share 0.5 (mean over scans of each scan's mean in-hole PSNR change, +/- SE over scans).

    python scripts/mirror_gate_study.py --out runs/gate/records.json                  # lesion-sized families
    python scripts/mirror_gate_study.py --families blob12,blob20,blob32 --cases 2 --out runs/gate/large.json
    python scripts/mirror_gate_study.py --report runs/gate/records.json runs/gate/large.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
import core.refine3d as refine3d  # noqa: E402
from core.bench.cohort import cohort_scans  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.runner import Method, fill_case, load_bench_data  # noqa: E402
from core.fill import FillSettings  # noqa: E402
from core.metrics import percentile_range  # noqa: E402

FULL = ndimage.generate_binary_structure(3, 3)
SHELL_MM, HIGHPASS_MM = 5.0, 2.0


def shell_slope(filled: np.ndarray, mirror: np.ndarray, hole: np.ndarray, spacing) -> float:
    """Slope of the known shell's fine detail on the mirrored fine detail (arguments as `mirror_detail`)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    finite = np.isfinite(mirror)
    shell = ~hole & finite & (ndimage.distance_transform_edt(~hole, sampling=spacing) <= SHELL_MM)
    if shell.sum() < 20:
        return 0.0
    image = np.asarray(filled, dtype=np.float64)
    mirrored = np.where(finite, mirror, image).astype(np.float64)
    sigma = HIGHPASS_MM / spacing
    a = (image - ndimage.gaussian_filter(image, sigma, mode="nearest"))[shell]
    b = (mirrored - ndimage.gaussian_filter(mirrored, sigma, mode="nearest"))[shell]
    return float(a @ b / max(b @ b, 1e-12))


def collect(args: argparse.Namespace) -> None:
    slopes: list[float] = []
    original = refine3d.mirror_detail

    def recording(filled, mirror, hole, spacing):
        slopes.append(shell_slope(filled, mirror, hole, spacing))
        return original(filled, mirror, hole, spacing)

    refine3d.mirror_detail = recording
    method = Method("refine3d", model="default", pipeline="refine3d")
    records = []
    for scan in cohort_scans(args.cohort, "validation"):
        data = load_bench_data(scan.image, scan.brainmask)
        label = f"{scan.dataset}/{scan.image.name.split('_T1w')[0]}"
        for case in make_cases(data.brain, data.voxel_mm, args.families.split(","), args.cases, 0):
            f0, _, _ = fill_case(method, data, case, None, FillSettings(mirror=0.0))
            slopes.clear()
            f1, _, _ = fill_case(method, data, case, None, FillSettings(mirror=1.0))
            lo, hi = percentile_range(np.where(case.hole, np.float32(0), data.image))
            labels, count = ndimage.label(case.hole, structure=FULL)
            lesions = []
            for index in range(1, count + 1):   # MSE at shares w_l: sum_l (rr - 2 w_l rd + w_l^2 dd) / voxels
                part = labels == index
                d = (f1 - f0)[part].astype(np.float64) / (hi - lo)
                r = (data.image - f0)[part].astype(np.float64) / (hi - lo)
                lesions.append({"voxels": int(part.sum()), "rr": float(r @ r), "rd": float(r @ d), "dd": float(d @ d),
                                "best_share": float(d @ r / max(d @ d, 1e-12)),
                                "slope": slopes[index - 1] if index - 1 < len(slopes) else 0.0})
            records.append({"scan": label, "family": case.family, "case": case.id, "lesions": lesions})
            print(label, case.id, " ".join(f"best {x['best_share']:.2f} slope {x['slope']:.2f}" for x in lesions),
                  flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


Rule = Callable[[dict], float]


def case_psnr(record: dict, rule: Rule) -> float:
    mse = sum(x["rr"] - 2 * rule(x) * x["rd"] + rule(x) ** 2 * x["dd"] for x in record["lesions"])
    return -10 * math.log10(mse / sum(x["voxels"] for x in record["lesions"]))


def gain(records: list[dict], rule: Rule) -> tuple[float, float]:
    """Mean over scans of the scan's mean PSNR change against the share 0.5, and its SE over scans."""
    per: dict[str, list[float]] = {}
    for r in records:
        per.setdefault(r["scan"], []).append(case_psnr(r, rule) - case_psnr(r, lambda x: 0.5))
    values = np.array([np.mean(v) for v in per.values()])
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def report(paths: list[Path]) -> None:
    rules: dict[str, Rule] = {f"fixed {w}": (lambda w: lambda x: w)(w) for w in (0.0, 0.25, 0.75)}
    rules.update({f"clip({k} slope)": (lambda k: lambda x: float(np.clip(k * x["slope"], 0, 1)))(k) for k in (1, 2, 3)})
    rules.update({f"clip(0.5 + {k} (slope - 0.2))": (lambda k: lambda x: float(np.clip(0.5 + k * (x["slope"] - 0.2),
                                                                                           0, 1)))(k)
                  for k in (0.5, 1.0)})
    rules["oracle per lesion"] = lambda x: float(np.clip(x["best_share"], 0, 1))
    sets = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in paths}
    print("rule | " + " | ".join(sets))
    for name, rule in rules.items():
        print(name + " | " + " | ".join("%+.3f +/- %.3f" % gain(records, rule) for records in sets.values()))
    for stem, records in sets.items():   # the best single share per scan, chosen with the truth
        best = []
        for scan in sorted({r["scan"] for r in records}):
            mine = [r for r in records if r["scan"] == scan]
            shares = np.linspace(0, 1, 21)
            scores = [np.mean([case_psnr(r, lambda x, w=w: w) - case_psnr(r, lambda x: 0.5) for r in mine]) for w in shares]
            best.append(max(scores))
        print(f"oracle per scan | {stem}: {np.mean(best):+.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", type=Path, default=SHARED_DATA / "train_cohort")
    p.add_argument("--families", default="blob6,blob10,blob16,cube16")
    p.add_argument("--cases", type=int, default=3)
    p.add_argument("--out", type=Path)
    p.add_argument("--report", type=Path, nargs="+", help="score rules on records written before")
    args = p.parse_args()
    if args.report:
        report(args.report)
    elif args.out:
        collect(args)
    else:
        p.error("give --out (collect) or --report RECORDS...")


if __name__ == "__main__":
    main()
