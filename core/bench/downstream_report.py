"""`inpaint bench --downstream`: run the downstream test on both held-out brains (or one scan, or every
scan of a cohort folder with `--cohort`) and write its outputs.

Writes into one folder: `downstream.json` (every number), `downstream.md` (tables; for a cohort the
summary is the mean +/- standard error over brains, all and per dataset) and `fig_<brain>.png`
(Pillow only): the axial slice through the largest lesion, cropped around it, anterior up and the
patient's right on the right; columns original, no fill and the app default's fill; rows the T1
image and each segmenter's labels (CSF blue, GM grey, WM white), the lesion outlined in red. With
`--registration`, a table of how far each image's registration to the template lies from the original's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ..fill import FillSettings
from ..paths import shown_path
from ..progress import ProgressBar
from ..refine3d import shipped_refiners
from ..registry import default_model_name, list_models, resolve_model
from ..search import select_device
from .downstream import (NO_FILL, TISSUES, BrainResult, app_default_method, baseline_names, fill_methods,
                         load_brains, run_brain)
from .cohort import format_mean_se, mean_se
from .lesions import KINDS
from .outputs import check_outputs
from .registration import DESCRIPTION as REGISTRATION_TEXT, RING_MM, Template
from .report import machine_info, write_results_json

DEFAULT_OUT = Path("docs/results/downstream")
OUT_FILES = ("downstream.json", "downstream.md")   # and fig_<brain>.png, named after brains not yet found
LESIONS_PER_BRAIN = 8
ZOOM = 5
CROP = 40  # voxels shown around the lesion (80 mm at 2 mm)
COLOURS = {0: (0, 0, 0), 1: (40, 90, 200), 2: (140, 140, 140), 3: (240, 240, 240)}
TARGET_AGREEMENT, TARGET_WM_PCT = 0.95, 0.5
PAIRED_BASELINE = "biharmonic-3d"   # a cohort's agreement is also given as the paired difference from it


def _pct(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def _num(value: Optional[float], digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _triple(values: dict, digits: int = 2) -> str:
    return " / ".join(_num(values[t], digits) for t in TISSUES)


def _method_rows(rows: dict, methods: list[str], default_method: Optional[str], cells) -> list[str]:
    """One Markdown row per method present in `rows` ("no fill" first): its name, then `cells(row)`."""
    lines = []
    for method in [NO_FILL] + methods:
        row = rows.get(method)
        if row is not None:
            name = f"**{method}** (app default)" if method == default_method else method
            lines.append(f"| {name} | {cells(row)} |")
    return lines


def _segmenter_table(record: dict, segmenter: str, methods: list[str], default_method: Optional[str]) -> list[str]:
    def cells(row: dict) -> str:
        change = row["volume_change_pct"]
        return (f"{_pct(change['csf'])} | {_pct(change['gm'])} | {_pct(change['wm'])} | "
                f"{100 * row['lesion_agreement']:.1f}% | {_triple(row['lesion_labels'])} | "
                f"{_triple(row['dice_lesion'])} | {_triple(row['dice_ring'], 3)}")

    return (["| method | CSF vol % | GM vol % | WM vol % | lesion voxels as original | lesion labelled CSF / GM / WM "
             "| Dice in lesion CSF / GM / WM | Dice in 2-voxel ring CSF / GM / WM |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            + _method_rows(record["segmenters"][segmenter]["methods"], methods, default_method, cells))


def _fill_table(record: dict, methods: list[str], default_method: Optional[str]) -> list[str]:
    def cells(row: dict) -> str:
        return (f"{row['ssim']:.4f} | {_num(row['psnr_brats'], 2)} | {_num(row['psnr_01'], 2)} | "
                f"{row['mae']:.4f} | {row['seconds']:.1f}")

    return (["| method | SSIM (BraTS) | PSNR (BraTS headline, dB) | PSNR data range 1 (dB) | MAE | seconds |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
            + _method_rows(record["fill"], methods, default_method, cells))


def headline_table(report: dict) -> list[str]:
    """One row per method: lesion voxels labelled as in the original and WM volume change, per brain and segmenter."""
    brains = list(report["brains"])
    segs = list(report["segmenters"])
    head = "| method | " + " | ".join(f"{b}: lesion as original ({' / '.join(segs)}) | {b}: WM vol % "
                                      f"({' / '.join(segs)})" for b in brains) + " |"
    lines = [head, "| --- |" + " ---: | ---: |" * len(brains)]
    for method in [NO_FILL] + report["methods"]:
        cells = []
        for b in brains:
            rows = [report["brains"][b]["segmenters"][s]["methods"].get(method) for s in segs]
            if any(r is None for r in rows):
                cells += ["not run", "not run"]
                continue
            cells.append(" / ".join(f"{100 * r['lesion_agreement']:.1f}%" for r in rows))
            cells.append(" / ".join(_pct(r["volume_change_pct"]["wm"]) for r in rows))
        name = f"**{method}** (app default)" if method == report["default_method"] else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _mean_se(values: list[float], digits: int = 1, sign: bool = False) -> str:
    return format_mean_se(mean_se(values), digits, sign) if values else "not run"


def cohort_tables(report: dict) -> list[str]:
    """Mean +/- SE over brains (all, then per dataset) of each method's lesion agreement (and its paired
    difference from biharmonic-3d) and whole-brain WM volume change, per segmenter."""
    brains = report["brains"]
    groups = {"all": list(brains)}
    for name in brains:
        if "/" in name:
            groups.setdefault(name.split("/")[0], []).append(name)
    segs = list(report["segmenters"])
    lines = []
    for group, names in groups.items():
        lines += [f"### {group} ({len(names)} brain{'' if len(names) == 1 else 's'})", "",
                  "| method | " + " | ".join(f"lesion voxels as original, {s} (%; vs {PAIRED_BASELINE}, points)"
                                            for s in segs)
                  + " | " + " | ".join(f"WM vol %, {s}" for s in segs) + " |",
                  "| --- |" + " ---: |" * (2 * len(segs))]
        for method in [NO_FILL] + report["methods"]:
            agree, wm = [], []
            for seg in segs:
                rows = {b: brains[b]["segmenters"][seg]["methods"].get(method) for b in names}
                rows = {b: r for b, r in rows.items() if r is not None}
                base = {b: brains[b]["segmenters"][seg]["methods"].get(PAIRED_BASELINE) for b in rows}
                paired = [100 * (r["lesion_agreement"] - base[b]["lesion_agreement"])
                          for b, r in rows.items() if base[b] is not None]
                cell = _mean_se([100 * r["lesion_agreement"] for r in rows.values()])
                if paired and method != PAIRED_BASELINE:
                    cell += f" ({_mean_se(paired, sign=True)})"
                agree.append(cell)
                wm.append(_mean_se([r["volume_change_pct"]["wm"] for r in rows.values()], 2, sign=True))
            name = f"**{method}** (app default)" if method == report["default_method"] else method
            lines.append(f"| {name} | " + " | ".join(agree + wm) + " |")
        lines.append("")
    return lines


def verdict(report: dict) -> list[str]:
    """Whether the app default meets the issue's bar (>= 95% of lesion voxels as original, |WM change| <= 0.5%)."""
    method = report["default_method"]
    if method is None:
        return ["No shipped default model was run: no verdict on the app default."]
    lines = []
    for brain, record in report["brains"].items():
        for seg, entry in record["segmenters"].items():
            row = entry["methods"][method]
            agree, wm = row["lesion_agreement"], row["volume_change_pct"]["wm"]
            ok = agree >= TARGET_AGREEMENT and abs(wm) <= TARGET_WM_PCT
            best = max((m for m in entry["methods"] if m != NO_FILL),
                       key=lambda m: entry["methods"][m]["lesion_agreement"])
            lines.append(f"{brain}, {seg}: `{method}` labels {100 * agree:.1f}% of lesion voxels as in the original "
                         f"and changes WM volume by {wm:+.2f}% - {'meets' if ok else 'misses'} the bar "
                         f"(>= {100 * TARGET_AGREEMENT:.0f}%, <= {TARGET_WM_PCT}%); best agreement: `{best}` "
                         f"{100 * entry['methods'][best]['lesion_agreement']:.1f}%.")
    return lines


def summary_table(report: dict) -> list[str]:
    """Per brain for one or two brains; mean +/- SE over brains for a cohort; then the registration table."""
    if len(report["brains"]) <= 2:
        lines = headline_table(report)
    else:
        lines = [f"Mean +/- standard error over brains; in brackets the paired difference from {PAIRED_BASELINE} "
                 "(percentage points).", ""] + cohort_tables(report)
    return lines + registration_table(report)


def registration_table(report: dict) -> list[str]:
    """How far each image's registration to the template lies from the original's (mm): near the lesions and over
    the brain, mean +/- SE over brains (paired difference from the baseline in brackets); empty when not run."""
    brains = {b: r["registration"] for b, r in report["brains"].items() if "registration" in r}
    if not brains:
        return []
    lines = ["", f"**Registration to the MNI152 template** ({REGISTRATION_TEXT}): mean distance (mm) of each image's "
             f"map from the original image's, near the lesions (within {RING_MM:g} mm) and over the template's "
             f"brain; mean +/- SE over {len(brains)} brain{'' if len(brains) == 1 else 's'}, in brackets the "
             f"paired difference from {PAIRED_BASELINE}. The original's registration: correlation with the "
             f"template {_mean_se([r['original_correlation'] for r in brains.values()], 3)} after the affine.", "",
             "| method | near the lesions (mm) | whole brain (mm) |", "| --- | ---: | ---: |"]
    for method in [NO_FILL] + report["methods"]:
        cells = []
        for key in ("lesion_mm", "brain_mm"):
            rows = {b: r["methods"][method][key] for b, r in brains.items() if method in r["methods"]}
            base = {b: r["methods"][PAIRED_BASELINE][key] for b, r in brains.items()
                    if PAIRED_BASELINE in r["methods"] and b in rows}
            cell = _mean_se(list(rows.values()), 3)
            if base and method != PAIRED_BASELINE:
                cell += f" ({_mean_se([rows[b] - base[b] for b in base], 3, sign=True)})"
            cells.append(cell)
        name = f"**{method}** (app default)" if method == report["default_method"] else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(path: Path, report: dict, figures: dict[str, str]) -> Path:
    lines = ["# Downstream test: tissue segmentation after lesion filling", "",
             f"{report['lesions_per_brain']} simulated T1-hypointense white matter lesions per brain "
             f"({', '.join(KINDS)}; 3-20 mm; seed {report['seed']}), filled by every method, then segmented with "
             f"{' and '.join(report['segmenters'][s] for s in report['segmenters'])}. Each segmentation is compared "
             "with the original image's (no lesion). Volume changes are of the whole brain's CSF, grey and white "
             "matter; 'lesion voxels as original' is the share of lesion voxels given the original's label. "
             f"Command `{report['command']}`; {report['wall_seconds'] / 60:.1f} min on "
             f"{report['machine']['cpu_count']} CPU cores ({report['machine']['torch_threads']} torch threads).", "",
             "## Summary", ""] + summary_table(report) + [""] + [f"- {line}" for line in verdict(report)] + [""]
    for brain, record in report["brains"].items():
        kinds = ", ".join(f"{sum(les['kind'] == k for les in record['lesions'])} {k}" for k in KINDS)
        lines += [f"## {brain}", "",
                  f"`{record['data']['image']}`; {len(record['lesions'])} lesions ({kinds}), "
                  f"{record['lesion_voxels']} voxels ({record['lesion_ml']:.2f} ml) over {record['axial_slices']} "
                  f"axial slices; ring {record['ring_voxels']} voxels.", ""]
        for seg, entry in record["segmenters"].items():
            ml = entry["original_ml"]
            orig = entry["original_lesion_labels"]
            lines += [f"### {report['segmenters'][seg]}", "",
                      f"Original: CSF {ml['csf']:.0f} ml, GM {ml['gm']:.0f} ml, WM {ml['wm']:.0f} ml; its labels "
                      f"under the lesions: CSF / GM / WM {_triple(orig)}. {entry['seconds']:.0f} s for all images.", ""]
            lines += _segmenter_table(record, seg, report["methods"], report["default_method"]) + [""]
        lines += ["### Fill against the original image (BraTS in-hole metrics on the lesions)", ""]
        lines += _fill_table(record, report["methods"], report["default_method"]) + [""]
        if brain in figures:
            lines += [f"![{brain}]({figures[brain]})", ""]
    lines += [f"- {note}" for note in report["notes"]]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _tile(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """RAS axial (x, y, 3) crop -> zoomed tile, anterior up, patient's right on the right, `mask` outlined in red."""
    tile = np.repeat(np.repeat(np.ascontiguousarray(rgb.transpose(1, 0, 2)[::-1]), ZOOM, 0), ZOOM, 1)
    big = np.repeat(np.repeat(np.ascontiguousarray(mask.T[::-1]), ZOOM, 0), ZOOM, 1)
    tile[big & ~ndimage.binary_erosion(big, iterations=1)] = (230, 30, 30)
    return Image.fromarray(tile.astype(np.uint8))


def write_figure(path: Path, result: BrainResult, default_method: Optional[str]) -> Path:
    """Rows T1 and each segmenter; columns original, no fill, default fill; around the largest lesion."""
    labels = result.lesions.labels
    biggest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    lesion = labels == biggest
    z = int(np.argmax(lesion.sum(axis=(0, 1))))
    cx, cy = (int(round(c)) for c in ndimage.center_of_mass(lesion[:, :, z]))
    nx, ny = labels.shape[:2]
    x0, y0 = min(max(cx - CROP // 2, 0), max(nx - CROP, 0)), min(max(cy - CROP // 2, 0), max(ny - CROP, 0))
    box = (slice(x0, x0 + CROP), slice(y0, y0 + CROP), z)
    mask2d = result.lesions.mask[box]
    columns = ["original", NO_FILL] + ([default_method] if default_method in result.images else [])
    brain = result.data.brain
    hi = float(np.percentile(result.data.image[brain], 99.9))
    rows = [("T1", {c: np.repeat((np.clip(result.images[c][box] / hi, 0, 1) * 255)[..., None], 3, axis=2)
                    for c in columns})]
    for seg, segs in result.segmentations.items():
        lut = np.array([COLOURS[k] for k in range(4)], dtype=np.uint8)
        rows.append((seg, {c: lut[segs[c][box]] for c in columns}))
    font = ImageFont.load_default()
    tile_w = tile_h = CROP * ZOOM
    pad, header, left = 6, 18, 48
    footer = 18
    grid = Image.new("RGB", (left + len(columns) * (tile_w + pad), header + len(rows) * (tile_h + pad) + footer),
                     "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(columns):
        draw.text((left + c * (tile_w + pad), 3), title + (" (app default)" if title == default_method else ""),
                  fill="black", font=font)
    for r, (name, tiles) in enumerate(rows):
        top = header + r * (tile_h + pad)
        draw.text((4, top + tile_h // 2), name, fill="black", font=font)
        for c, column in enumerate(columns):
            grid.paste(_tile(tiles[column], mask2d), (left + c * (tile_w + pad), top))
    kind = result.lesions.lesions[biggest - 1]
    draw.text((4, grid.height - footer + 3), f"{result.name}: axial slice {z}, {kind.kind} lesion of "
              f"{kind.diameter_mm:.0f} mm (red outline); CSF blue, GM grey, WM white", fill="black", font=font)
    grid.save(path)
    return path


def downstream_command(args: argparse.Namespace) -> str:
    """The command line that gives this run's report (the options that change it)."""
    words = ["inpaint bench --downstream"]
    for option, value in (("--image", args.image), ("--brainmask", args.brainmask), ("--cohort", args.cohort)):
        if value is not None:
            words.append(f"{option} {shown_path(value)}")
    if args.cohort is not None and args.split != "all":
        words.append(f"--split {args.split}")
    for option, names in (("--methods", args.methods), ("--models", args.models)):
        if names is not None:
            words.append(f"{option} {','.join(names)}")
    if args.seed:
        words.append(f"--seed {args.seed}")
    if args.registration:
        words.append("--registration")
    return " ".join(words)


def run(args: argparse.Namespace) -> int:
    """`inpaint bench --downstream`; returns the exit status."""
    started = time.perf_counter()
    out = args.out or DEFAULT_OUT
    check_outputs(args.json, out, OUT_FILES, [args.image, args.brainmask])
    select_device(args.device)
    brains = load_brains(args.image, args.brainmask, args.cohort, args.split)
    command = downstream_command(args)
    run_models = args.methods is None or "default" in args.methods
    names = (args.models if args.models is not None else [m.name for m in list_models()]) if run_models else []
    models = {}
    for given in names:
        model = resolve_model(given)
        models[model.name] = model
    default_model = default_model_name() if list_models() else None
    default_method = app_default_method(list(models), default_model)
    methods = fill_methods(list(models), baseline_names(args.methods), default_model)
    settings = FillSettings(seed=args.seed, device=args.device)
    bar = None if args.quiet else ProgressBar("downstream")
    results = []
    template = Template.load() if args.registration else None
    try:
        for i, (name, data) in enumerate(brains.items()):
            def progress(fraction: float, label: str, i=i) -> None:
                if bar is not None:
                    bar.update((i + fraction) / len(brains), label)

            results.append(run_brain(name, data, methods, models, settings, default_method,
                                     count=LESIONS_PER_BRAIN, seed=args.seed, progress=progress,
                                     template=template))
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    report: dict[str, Any] = {
        "brains": {r.name: r.record for r in results},
        "methods": [m.name for m in methods],
        "default_method": default_method,
        "models": {name: {"weights_sha256": model.checksum} for name, model in models.items()},
        "refiners": [{"name": r.name, "sha256": r.checksum, "spacing_mm": r.config.spacing_mm}
                     for r in shipped_refiners()],
        "segmenters": {"gmm": "Gaussian mixture (scikit-learn, 3 classes)",
                       "hmrf": "HMRF (dipy TissueClassifierHMRF, beta 0.1, 10 iterations)"},
        "lesions_per_brain": LESIONS_PER_BRAIN, "seed": args.seed, "command": command,
        "settings": {"default": settings.to_dict()},
        "machine": machine_info(args.device), "wall_seconds": wall,
        "notes": [f"downstream wall time {wall:.1f} s."],
    }
    figures = {r.name: write_figure(out / f"fig_{r.name.replace('/', '_')}.png", r, default_method).name
               for r in results}
    write_results_json(out / "downstream.json", report)
    write_markdown(out / "downstream.md", report, figures)
    if args.json is not None:
        write_results_json(args.json, report)
    print("\n".join(summary_table(report)))
    for line in verdict(report):
        print(line, file=sys.stderr)
    print(f"wrote {out}/downstream.json, downstream.md and {len(figures)} figure(s) in {wall:.0f} s", file=sys.stderr)
    return 0
