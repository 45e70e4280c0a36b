"""`inpaint bench --cohort FOLDER`: the bench on every scan of a cohort at its native voxel size.

Each scan (`*_T1w` with its `*_brainmask`, `core.training.cohort`) gets its own seeded holes of
each family and is filled by every method, exactly as `inpaint bench` fills one brain. Figures
are per scan first (the mean over its lesions), then over scans: the standard error is over
scans, so it says how much a figure would move with other people, not other lesions.
`--split validation` runs on the scans the training keeps aside (for choices); the default,
`all`, is for a held-out cohort.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..atomic import write_atomically
from ..checkpoint import Model
from ..errors import InpaintError
from ..fill import FillSettings
from ..refine3d import Refiner, shipped_refiners
from ..training.cohort import Scan, find_scans, split
from ..jsonfiles import parse_json, write_json
from .lesions import periventricular
from .masks import make_cases
from .runner import PIPELINES, Method, finite_or_none, load_bench_data, model_free, run_bench

COHORT_FAMILIES = ("blob6", "blob10", "blob16", "cube16")   # lesion-sized holes that a 1 mm CPU run can afford
METRICS = ("psnr_hole", "ssim_hole", "stripe_ratio")
BASELINE = "biharmonic-3d"   # the strongest classical fill: every difference is taken against it
SPLITS = ("all", "validation", "training")
ONE_SCAN = "there is one scan only, so no standard error over scans: each figure is that scan's mean over its lesions."


def cohort_scans(folder: Path, which: str) -> list[Scan]:
    """The scans of `folder` in split `which` (`all`, or the `validation` / `training` part)."""
    scans = find_scans(folder)
    if which == "all":
        return scans
    training, validation = split(scans)
    return validation if which == "validation" else training


def _training_data(config: object) -> list:
    """The `training.data` list of a checkpoint's config (paths, or records with a `path`), else []."""
    training = config.get("training") if isinstance(config, dict) else None
    data = training.get("data") if isinstance(training, dict) else None
    return data if isinstance(data, list) else []


def _learned_from(methods: Sequence[Method], models: dict[str, Model], refiner: Optional[Refiner]) -> set[str]:
    """`dataset/file name` of every scan that a network the run benches was trained on (its config's data)."""
    paths: list = []
    if any(PIPELINES.get(m.pipeline, {"method": m.pipeline})["method"] == "refine3d" for m in methods):
        for used in [refiner] if refiner is not None else shipped_refiners():
            try:
                paths += _training_data(parse_json((used.path / "config.json").read_text(encoding="utf-8")))
            except (OSError, TypeError, ValueError):   # no folder (built in memory) or no readable config
                pass
    for name in {m.model for m in methods if m.model in models and not model_free(m.pipeline)}:
        paths += _training_data(models[name].config)
    names = (p.get("path") if isinstance(p, dict) else p for p in paths)
    return {f"{Path(n).parent.name}/{Path(n).name}" for n in names if isinstance(n, str)}


def refuse_training_scans(folder: Path, scans: Sequence[Scan], methods: Sequence[Method], models: dict[str, Model],
                          refiner: Optional[Refiner]) -> None:
    """InpaintError when a benched network learned from a scan of the cohort: its figures would say how well the
    network remembers that brain, not how it fills one it never saw (as `--image` refuses the training brains)."""
    learned = _learned_from(methods, models, refiner)
    seen = [s for s in scans if f"{s.image.parent.name}/{s.image.name}" in learned]
    if seen:
        first = f"{seen[0].image.parent.name}/{seen[0].image.name}"
        raise InpaintError(f"{len(seen)} of the {len(scans)} scans of {folder} (first {first}) are scans a network "
                           f"benched here was trained on; bench a held-out cohort, or pass --split validation to "
                           f"bench the part of its training cohort that training kept aside.")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (NaN error for fewer than two values)."""
    data = np.asarray(values, dtype=np.float64)
    se = float(data.std(ddof=1) / math.sqrt(data.size)) if data.size > 1 else math.nan
    return float(data.mean()), se


def unmeasured(records: list[dict]) -> set[tuple[str, str]]:
    """(scan, case) of the lesions some method scored without a finite in-hole PSNR.

    The BraTS scores clip intensities to the 0.5-99.5th percentiles of the voided image: a hole of a few
    voxels (a small lesion on a coarse grid) whose truth lies wholly above that range scores an error of 0,
    an infinite PSNR, for every fill that also reaches it. Such a lesion measures nothing; the means leave
    it out for every method alike, so that differences stay paired.
    """
    return {(r["scan"], r["case"]) for r in records
            if r.get("psnr_hole") is None or not math.isfinite(float(r["psnr_hole"]))}


def measurable(records: list[dict], left_out: Optional[set[tuple[str, str]]] = None) -> list[dict]:
    """`records` without those of the `unmeasured` lesions (or of `left_out`, e.g. those of two runs paired)."""
    left_out = unmeasured(records) if left_out is None else left_out
    return [r for r in records if (r["scan"], r["case"]) not in left_out]


def scan_means(records: list[dict], method: str, families: Sequence[str], metric: str) -> dict[str, float]:
    """scan -> mean of `metric` over the scan's lesions of `families` for `method`."""
    per_scan: dict[str, list[float]] = {}
    for r in records:
        if r["method"] == method and r["family"] in families and r.get(metric) is not None:
            per_scan.setdefault(r["scan"], []).append(float(r[metric]))
    return {scan: float(np.mean(v)) for scan, v in per_scan.items()}


def summarize(records: list[dict], methods: Sequence[str], families: Sequence[str]) -> dict:
    """Per dataset (and `all`), method and family (and `lesion-sized`, their mean): mean +/- SE over scans."""
    datasets = ["all"] + sorted({r["dataset"] for r in records})
    summary: dict = {}
    for dataset in datasets:
        rows = [r for r in records if dataset == "all" or r["dataset"] == dataset]
        for method in methods:
            for family in list(families) + ["lesion-sized"]:
                chosen = families if family == "lesion-sized" else [family]
                entry = {}
                for metric in METRICS:
                    means = scan_means(rows, method, chosen, metric)
                    if means:
                        entry[metric] = mean_se(list(means.values()))
                    if metric == "psnr_hole" and method != BASELINE:
                        base = scan_means(rows, BASELINE, chosen, metric)
                        diffs = [means[s] - base[s] for s in means if s in base]
                        if diffs:
                            entry["psnr_vs_" + BASELINE] = mean_se(diffs)
                entry["scans"] = len(scan_means(rows, method, chosen, "psnr_hole"))
                summary.setdefault(dataset, {}).setdefault(method, {})[family] = entry
    return summary


def uncertainty_summary(records: list[dict], methods: Sequence[str], families: Sequence[str],
                        overall: str = "lesion-sized") -> dict:
    """Per dataset (and `all`), method with a predicted error and family (and `overall`, all of them): over lesions,
    the Spearman correlation of predicted RMS SD with actual RMS error, and the share of hole voxels within one SD."""
    summary: dict = {}
    for dataset in ["all"] + sorted({r["dataset"] for r in records}):
        for method in methods:
            for family in list(families) + [overall]:
                chosen = families if family == overall else [family]
                rows = [r for r in records if (dataset == "all" or r["dataset"] == dataset) and r["method"] == method
                        and r["family"] in chosen and r.get("sd_rms") is not None]
                if not rows:
                    continue
                voxels = np.array([r["voxels"] for r in rows], dtype=np.float64)
                predicted, actual = [r["sd_rms"] for r in rows], [r["error_rms"] for r in rows]
                entry = {"lesions": len(rows),
                         "spearman": _spearman(predicted, actual),
                         "one_sigma_share": float(np.dot([r["one_sigma_share"] for r in rows], voxels) / voxels.sum()),
                         "sd_rms": float(np.mean(predicted)), "error_rms": float(np.mean(actual))}
                summary.setdefault(dataset, {}).setdefault(method, {})[family] = entry
    return summary


def _spearman(predicted: list[float], actual: list[float]) -> Optional[float]:
    """Spearman's rank correlation, or None where it has no meaning (under 3 lesions, or a constant column)."""
    from scipy.stats import spearmanr

    if len(predicted) < 3 or len(set(predicted)) < 2 or len(set(actual)) < 2:
        return None
    return float(spearmanr(predicted, actual)[0])


def per_scan(records: list[dict], methods: Sequence[str], families: Sequence[str]) -> dict:
    """scan -> method -> mean in-hole PSNR over its lesions, and its difference from the baseline."""
    table: dict = {}
    base = scan_means(records, BASELINE, families, "psnr_hole")
    for method in methods:
        for scan, value in scan_means(records, method, families, "psnr_hole").items():
            cell = {"psnr_hole": value}
            if scan in base and method != BASELINE:
                cell["vs_" + BASELINE] = value - base[scan]
            table.setdefault(scan, {})[method] = cell
    return table


def format_mean_se(pair: Optional[tuple[float, float]], digits: int = 2, sign: bool = False) -> str:
    """`mean +/- SE` (`-` for None; the mean alone when the SE is NaN)."""
    if pair is None:
        return "-"
    mean, se = pair
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text if math.isnan(se) else f"{text} +/- {se:.{digits}f}"


def write_markdown(path: Path, report: dict) -> Path:
    """The cohort's tables: per dataset and family, then per scan."""
    methods, families = report["methods"], report["families"]
    scans, cases = len(report["scans"]), report["cases_per_family"]
    lines = [f"# Cohort bench: {report['cohort']} ({report['split']} scans)", "",
             f"{scans} scan{'s' * (scans != 1)}, {cases} lesion{'s' * (cases != 1)} per family and scan, seed "
             f"{report['seed']}. Each figure is the mean over scans of the scan's mean over its lesions, +/- the "
             f"standard error over scans; differences are paired per scan against {BASELINE}.", ""]
    if report.get("left_out"):
        lines += [f"Left out of every figure, for every method: {len(report['left_out'])} lesion(s) whose truth lies "
                  "wholly outside the BraTS intensity range, so that fills score an infinite PSNR ("
                  + ", ".join(report["left_out"]) + ").", ""]
    for dataset, block in report["summary"].items():
        one_scan = max(cells["lesion-sized"]["scans"] for cells in block.values()) == 1
        lines += [f"## {dataset}", "", *([f"Note: {ONE_SCAN}", ""] if one_scan else []),
                  "| method | " + " | ".join(f"{f} PSNR" for f in families + ["lesion-sized"])
                  + f" | lesion-sized vs {BASELINE} (dB) | lesion-sized SSIM | stripe ratio |",
                  "| --- |" + " ---: |" * (len(families) + 4)]
        for method in methods:
            cells = block[method]
            lesion = cells["lesion-sized"]
            lines.append(f"| {method} | " + " | ".join(format_mean_se(cells[f].get("psnr_hole")) for f in families + ["lesion-sized"])
                         + f" | {format_mean_se(lesion.get('psnr_vs_' + BASELINE), sign=True)} | "
                         f"{format_mean_se(lesion.get('ssim_hole'), 3)} | {format_mean_se(lesion.get('stripe_ratio'))} |")
        lines.append("")
    table = uncertainty_table(report.get("uncertainty", {}))
    lines += ["## Predicted error (uncertainty map)", "", *table] if table else []
    lines += ["## Per scan (mean over its lesions, in-hole PSNR dB)", "",
              "| scan | " + " | ".join(methods) + " |", "| --- |" + " ---: |" * len(methods)]
    for scan, cells in report["per_scan"].items():
        row = []
        for m in methods:
            cell = cells.get(m, {})
            diff = cell.get("vs_" + BASELINE)
            row.append("-" if not cell else f"{cell['psnr_hole']:.2f}" + ("" if diff is None else f" ({diff:+.2f})"))
        lines.append(f"| {scan} | " + " | ".join(row) + " |")
    lines.append("")
    text = "\n".join(lines)
    return write_atomically(path, lambda p: p.write_text(text, encoding="utf-8"))


def uncertainty_table(summary: dict) -> list[str]:
    """The predicted-error table: per dataset, method and family, over lesions (empty without one)."""
    if not summary:
        return []
    lines = ["Over lesions: Spearman correlation of the predicted RMS SD with the actual RMS error in the hole (goal "
             ">= 0.6); share of all hole voxels whose actual error lies within one predicted SD (goal 60-76%); mean "
             "predicted RMS SD and mean actual RMS error (image intensity units).", "",
             "| dataset | method | family | lesions | Spearman | one-sigma share | predicted SD | actual error |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for dataset, block in summary.items():
        for method, cells in block.items():
            for family, c in cells.items():
                lines.append(f"| {dataset} | {method} | {family} | {c['lesions']} | "
                             f"{'-' if c['spearman'] is None else format(c['spearman'], '.2f')} | "
                             f"{100 * c['one_sigma_share']:.1f}% | {c['sd_rms']:.3g} | {c['error_rms']:.3g} |")
    return lines + [""]


def run_cohort(folder: Path, which: str, methods: list[Method], models: dict[str, Model], settings: FillSettings,
               families: Sequence[str], per_family: int, seed: int, out: Optional[Path],
               refiner: Optional[Refiner] = None, progress: Optional[Callable[[float, str], None]] = None) -> dict:
    """Bench every scan of the cohort; writes `results.json` and `results.md` to `out` after each scan."""
    scans = cohort_scans(folder, which)
    refuse_training_scans(folder, scans, methods, models, refiner)
    records: list[dict] = []
    names = [m.name for m in methods]
    report: dict = {}
    for index, scan in enumerate(scans):
        label = f"{scan.dataset}/{scan.image.name.split('_T1w')[0]}"
        data = load_bench_data(scan.image, scan.brainmask)
        try:
            peri = periventricular(data.image, data.brain, data.affine) if "peri10" in families else None
            cases = make_cases(data.brain, data.voxel_mm, families, per_family, seed, peri=peri)
        except ValueError as exc:
            raise InpaintError(f"cannot cut test holes into {scan.image}: {exc}; choose other --families, or leave "
                               "this scan out of the cohort folder.") from None

        def inner(fraction: float, text: str, index=index, label=label) -> None:
            if progress is not None:
                progress((index + fraction) / len(scans), f"{label} {text}")

        results = run_bench(data, cases, methods, models, settings, set(), inner, refiner=refiner)
        voxels = {c.id: c.voxels for c in cases}
        records += [{"scan": label, "dataset": scan.dataset, "voxel_mm": [round(float(v), 3) for v in data.voxel_mm],
                     "voxels": voxels[r.case], **r.record()} for r in results]
        scored = measurable(records)
        report = {"cohort": folder.name, "split": which, "scans": sorted({r["scan"] for r in records}),
                  "methods": names, "families": list(families), "cases_per_family": per_family, "seed": seed,
                  "refiners": [{"name": r.name, "sha256": r.checksum, "spacing_mm": r.config.spacing_mm}
                               for r in ([refiner] if refiner is not None else shipped_refiners())],
                  "summary": summarize(scored, names, families), "per_scan": per_scan(scored, names, families),
                  "uncertainty": uncertainty_summary(scored, names, families),
                  "left_out": [f"{scan} {case}" for scan, case in sorted(unmeasured(records))],
                  "cases": records}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "results.json", finite_or_none(report))
            write_markdown(out / "results.md", report)
    return report

