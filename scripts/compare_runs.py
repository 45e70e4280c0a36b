"""Pair two cohort bench runs per scan: how much a candidate's fill moves the in-hole PSNR.

    python scripts/compare_runs.py CANDIDATE/results.json BASELINE/results.json
        [--method refine3d] [--baseline-method refine3d]

Both runs must be `inpaint bench --cohort` runs on the same scans, families, cases and seed (so the
holes are the same). Per family and over all families they share: the mean over scans of the
per-scan difference (each scan's mean over its lesions), its standard error over scans, and how
many scans rose; then per dataset. This is how every refiner candidate is compared with the shipped
weights (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.bench.cohort import format_mean_se, mean_se, measurable, scan_means, unmeasured


def paired(candidate: list[dict], baseline: list[dict], method: str, baseline_method: str,
           families: list[str]) -> dict:
    """Per-scan differences of the mean in-hole PSNR over `families`: scan -> candidate minus baseline.

    A lesion that either run could not score (`core.bench.cohort.unmeasured`) is left out of both."""
    left_out = unmeasured(candidate) | unmeasured(baseline)
    candidate, baseline = measurable(candidate, left_out), measurable(baseline, left_out)
    a = scan_means(candidate, method, families, "psnr_hole")
    b = scan_means(baseline, baseline_method, families, "psnr_hole")
    return {scan: a[scan] - b[scan] for scan in sorted(a) if scan in b}


def report(candidate: dict, baseline: dict, method: str, baseline_method: str) -> list[str]:
    """The lines printed: one per family, then all families, then all families per dataset."""
    families = [f for f in candidate["families"] if f in baseline["families"]]
    if not families:
        raise SystemExit("The two runs share no hole family: run both with the same --families.")
    for run, name in ((candidate, method), (baseline, baseline_method)):
        if not any(r["method"] == name for r in run["cases"]):
            raise SystemExit(f"Method {name!r} is not in one of the runs (it has {', '.join(run['methods'])}).")
    settings = [(run.get("seed"), run.get("cases_per_family")) for run in (candidate, baseline)]
    if settings[0] != settings[1]:
        raise SystemExit("The runs differ in --seed or --cases, so their holes differ: pairing them would mean nothing.")
    dataset = {r["scan"]: r["dataset"] for r in candidate["cases"]}

    def row(label: str, diffs: dict, tail: str) -> str:
        return f"{label:<14} {format_mean_se(mean_se(list(diffs.values())), 3, True):>20}   {tail}"

    lines = [f"{method} (candidate) minus {baseline_method} (baseline), in-hole PSNR dB, mean +/- SE over scans"]
    for label, chosen in [(f, [f]) for f in families] + [("all families", families)]:
        diffs = paired(candidate["cases"], baseline["cases"], method, baseline_method, chosen)
        if not diffs:
            raise SystemExit("The two runs share no scan: run both on the same cohort and split.")
        lines.append(row(label, diffs, f"{sum(d > 0 for d in diffs.values())} of {len(diffs)} scans up"))
    for name in sorted(set(dataset.values())):   # `diffs` now holds all families
        own = {s: d for s, d in diffs.items() if dataset[s] == name}
        lines.append(row(name, own, f"({len(own)} scans)"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--method", default="refine3d", help="the candidate run's method [refine3d]")
    parser.add_argument("--baseline-method", default=None, help="the baseline run's method [the same as --method]")
    args = parser.parse_args(argv)
    runs = []
    for path in (args.candidate, args.baseline):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise SystemExit(f"Cannot read {path} as a bench run's results.json ({error}): give the file "
                             "`inpaint bench --cohort ... --out RUN` wrote as RUN/results.json.")
    print("\n".join(report(runs[0], runs[1], args.method, args.baseline_method or args.method)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
