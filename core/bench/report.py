"""Benchmark outputs: the JSON summary, a Markdown results table and PNG figure grids.

JSON: `summary[method][family]` holds the mean of each metric over the family's cases and
`n`, with family `all` pooling every case; `cases` describes every hole with each method's
scores on it; `speed` compares default and reference settings on the speed cases. JSON
has no infinity: a PSNR of a perfect fill (`inf`) is written as null. Figures use Pillow
only: one grid per family, a row per case (the axial slice with the most hole voxels,
cropped to the brain, anterior up, patient's right on the right, grey levels 0 to the
99.9th percentile of the brain), columns original, masked, then each method's fill with
its in-hole PSNR/SSIM underneath.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..search import select_device
from ..jsonfiles import write_json
from .cohort import uncertainty_summary, uncertainty_table
from .masks import Case
from ..paths import shown_path
from .runner import BenchData, CaseResult, finite_or_none, preview_index

METRICS = ("psnr_hole", "ssim_hole", "mse_hole", "mae_hole", "psnr_slice", "ssim_slice", "seconds_per_slice")
# in-hole metrics a run may also carry (core.metrics.hole_metrics names): the BraTS headline PSNR
# (data range from the reference inside the hole) and our earlier 3D SSIM
OPTIONAL_METRICS = ("psnr_brats_hole", "ssim3d_hole", "stripe_ratio", "texture_ratio")
ALL = "all"
TILE_ZOOM = 3
FIGURE_ROWS = 4
DISPLAY_PERCENTILE = 99.9  # of brain voxels: white matter is not saturated


def summarize(results: list[CaseResult]) -> dict[str, dict[str, dict[str, float]]]:
    """summary[method][family] = {metric means..., n}, plus family 'all'."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r.method, r.family), []).append(r.record())
    for r in results:
        groups.setdefault((r.method, ALL), []).append(r.record())
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for (method, family), records in groups.items():
        present = METRICS + tuple(m for m in OPTIONAL_METRICS if all(m in rec for rec in records))
        entry = {m: float(np.mean([rec[m] for rec in records])) for m in present}
        entry["n"] = len(records)
        summary.setdefault(method, {})[family] = entry
    return summary


def speed_comparison(results: list[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per model: default vs reference pipeline (seconds per slice, in-hole PSNR/SSIM) on the cases both ran."""
    by_key = {(r.method, r.case): r for r in results}
    pairs: dict[str, list[tuple[CaseResult, CaseResult]]] = {}
    for r in results:
        model = r.method.rsplit("/", 1)[0]
        default = by_key.get((f"{model}/slices2d", r.case))
        if r.method.endswith("/reference") and default is not None:
            pairs.setdefault(model, []).append((default, r))
    out = {}
    for model, runs in pairs.items():
        entry: dict[str, Any] = {"cases": [d.case for d, _ in runs]}
        for name, index in (("default", 0), ("reference", 1)):
            chosen = [run[index] for run in runs]
            entry[f"{name}_seconds_per_slice"] = float(np.mean([c.seconds / c.slices for c in chosen]))
            entry[f"{name}_psnr_hole"] = float(np.mean([c.metrics["psnr_hole"] for c in chosen]))
            entry[f"{name}_ssim_hole"] = float(np.mean([c.metrics["ssim_hole"] for c in chosen]))
        entry["speedup"] = entry["reference_seconds_per_slice"] / entry["default_seconds_per_slice"]
        out[model] = entry
    return out


def machine_info(device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": str(select_device(device))}


def build_report(*, data: BenchData, cases: list[Case], results: list[CaseResult], methods: list[str],
                 families: list[str], default_method: Optional[str], models: dict[str, str],
                 settings: dict[str, Any], seed: int, device: str, quick: bool, notes: list[str]) -> dict[str, Any]:
    """The whole JSON document (see docs/bench.md for the schema); `models` maps names to weight checksums."""
    per_case: dict[str, dict[str, dict]] = {}
    for r in results:
        per_case.setdefault(r.case, {})[r.method] = {k: v for k, v in r.record().items()
                                                     if k not in ("method", "family", "case")}
    voxel_ml = float(np.prod(data.voxel_mm)) / 1000.0
    voxels = {c.id: c.voxels for c in cases}
    predicted = uncertainty_summary([{"dataset": "all", "voxels": voxels[r.case], **r.record()} for r in results],
                                    methods, families, overall=ALL)
    return {
        "summary": summarize(results),
        "uncertainty": predicted.get("all", {}),   # method -> family -> Spearman and one-sigma share over lesions
        "default_method": default_method,
        "methods": methods,
        "families": families,
        "models": {name: {"weights_sha256": checksum} for name, checksum in models.items()},
        "cases": [{"id": c.id, "family": c.family, "voxels": c.voxels, "volume_ml": c.voxels * voxel_ml,
                   "level": c.level, "axial_slices": int(c.hole.any(axis=(0, 1)).sum()),
                   "results": per_case.get(c.id, {})} for c in cases],
        "speed": speed_comparison(results),
        "machine": machine_info(device),
        "settings": settings,
        "seeds": {"masks": seed, "fill": settings["default"]["seed"]},
        "data": {"image": shown_path(data.image_path), "brainmask": shown_path(data.brainmask_path),
                 "shape": list(data.image.shape), "voxel_mm": [round(float(v), 4) for v in data.voxel_mm]},
        "quick": quick,
        "notes": notes,
    }


def write_results_json(path: Path, report: dict[str, Any]) -> Path:
    return write_json(path, finite_or_none(report))


def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _table(summary: dict, family: str, methods: list[str], default_method: Optional[str]) -> list[str]:
    rows = [(m, summary[m][family]) for m in methods if family in summary.get(m, {})]
    brats = bool(rows) and all("psnr_brats_hole" in row for _, row in rows)
    stripes = bool(rows) and all("stripe_ratio" in row for _, row in rows)
    lines = ["| method | " + ("PSNR hole, BraTS (dB) | " if brats else "") + "PSNR hole, range 1 (dB) | SSIM hole | "
             "MSE hole | MAE hole | PSNR slice (dB) | SSIM slice | " + ("stripes | texture | " if stripes else "")
             + "s/slice | n |",
             "| --- |" + (" ---: |" if brats else "") + " ---: | ---: | ---: | ---: | ---: | ---: |"
             + (" ---: | ---: |" if stripes else "") + " ---: | ---: |"]
    for method, row in rows:
        name = f"**{method}** (app default)" if method == default_method else method
        first = f"{_fmt(row['psnr_brats_hole'], 2)} | " if brats else ""
        lines.append(f"| {name} | {first}{_fmt(row['psnr_hole'], 2)} | {row['ssim_hole']:.4f} | "
                     f"{row['mse_hole']:.4f} | {row['mae_hole']:.4f} | {_fmt(row['psnr_slice'], 2)} | "
                     f"{row['ssim_slice']:.4f} | "
                     + (f"{row['stripe_ratio']:.2f} | {row['texture_ratio']:.2f} | " if stripes else "")
                     + f"{row['seconds_per_slice']:.3f} | {row['n']} |")
    return lines


def write_markdown(path: Path, report: dict[str, Any], figures: dict[str, str]) -> Path:
    """results.md: setup, one table per family (and all), the speed comparison, the figures."""
    summary, methods = report["summary"], report["methods"]
    m = report["machine"]
    lines = ["# Benchmark results", "",
             f"Image `{report['data']['image']}` (brain mask `{report['data']['brainmask']}`), "
             f"{report['data']['shape']} voxels of {report['data']['voxel_mm']} mm; never used for training.",
             f"Machine: {m['cpu']}, {m['torch_threads']} torch threads, torch {m['torch']}, device {m['device']}.",
             f"Mask seed {report['seeds']['masks']}, fill seed {report['seeds']['fill']}; "
             f"{'quick run' if report['quick'] else 'full run'}; {len(report['cases'])} cases.",
             "In-hole metrics follow BraTS 2023/24 (percentile-normalised to [0, 1]; SSIM as the challenge computes "
             "it, 2D per slice along the first array axis, averaged over hole voxels; PSNR with data range 1 is the "
             "challenge's `psnr_01`, 'BraTS' PSNR its headline `psnr`, data range from the reference inside the "
             "hole); slice metrics are whole axial slices touching the hole. See docs/bench.md.", ""]
    for family in [ALL] + report["families"]:
        lines += [f"## {'All cases' if family == ALL else family}", ""]
        lines += _table(summary, family, methods, report["default_method"]) + [""]
        if family in figures:
            lines += [f"![{family}]({figures[family]})", ""]
    predicted = uncertainty_table({Path(report["data"]["image"]).parent.name: report.get("uncertainty")}
                                  if report.get("uncertainty") else {})
    lines += ["## Predicted error (uncertainty map)", "", *predicted] if predicted else []
    lines += ["## Speed: default settings vs the reference implementation's", ""]
    if report["speed"]:
        lines += ["| model | cases | default s/slice | reference s/slice | speed-up | default PSNR / SSIM hole | "
                  "reference PSNR / SSIM hole |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for model, s in report["speed"].items():
            lines.append(f"| {model} | {', '.join(s['cases'])} | {s['default_seconds_per_slice']:.3f} | "
                         f"{s['reference_seconds_per_slice']:.3f} | {s['speedup']:.1f}x | "
                         f"{_fmt(s['default_psnr_hole'], 2)} / {s['default_ssim_hole']:.4f} | "
                         f"{_fmt(s['reference_psnr_hole'], 2)} / {s['reference_ssim_hole']:.4f} |")
    lines += [""] + [f"- {note}" for note in report["notes"]]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _gray(slice2d: np.ndarray, lo: float, hi: float, box: tuple[slice, slice]) -> Image.Image:
    """RAS axial slice -> display tile: anterior up, patient's right on the right, zoomed."""
    unit = np.clip((np.asarray(slice2d[box], dtype=np.float64) - lo) / (hi - lo), 0, 1)
    pixels = (unit.T[::-1] * 255).round().astype(np.uint8)
    tile = Image.fromarray(pixels)
    return tile.resize((tile.width * TILE_ZOOM, tile.height * TILE_ZOOM), Image.Resampling.NEAREST).convert("RGB")


def _masked(tile: Image.Image, hole2d: np.ndarray, box: tuple[slice, slice]) -> Image.Image:
    mask = Image.fromarray(np.ascontiguousarray(hole2d[box].T[::-1] * 255).astype(np.uint8))
    mask = mask.resize(tile.size, Image.Resampling.NEAREST)
    red = Image.new("RGB", tile.size, (220, 40, 40))
    return Image.composite(red, tile, mask)


def figure_grid(path: Path, data: BenchData, cases: list[Case], results: list[CaseResult],
                methods: list[str]) -> Path:
    """One PNG: a row per case, columns original, masked, then each method's fill with PSNR/SSIM."""
    font = ImageFont.load_default()
    lo, hi = 0.0, float(np.percentile(data.image[data.brain], DISPLAY_PERCENTILE))
    xs, ys = np.nonzero(data.brain.any(axis=2))
    box = (slice(xs.min(), xs.max() + 1), slice(ys.min(), ys.max() + 1))
    by_key = {(r.method, r.case): r for r in results}
    tile_w, tile_h = (box[0].stop - box[0].start) * TILE_ZOOM, (box[1].stop - box[1].start) * TILE_ZOOM
    header, caption, pad = 16, 28, 4
    columns = ["original", "masked"] + methods
    grid = Image.new("RGB", (len(columns) * (tile_w + pad) + pad, header + len(cases) * (tile_h + caption + pad)),
                     "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(columns):
        draw.text((pad + c * (tile_w + pad), 2), title, fill="black", font=font)
    for row, case in enumerate(cases):
        z = preview_index(case.hole)
        top = header + row * (tile_h + caption + pad)
        original = _gray(data.image[:, :, z], lo, hi, box)
        ml = case.voxels * float(np.prod(data.voxel_mm)) / 1000.0
        tiles = [(original, f"{case.id} (axial {z})"), (_masked(original, case.hole[:, :, z], box), f"{ml:.1f} ml")]
        for method in methods:
            r = by_key.get((method, case.id))
            if r is None:
                tiles.append((Image.new("RGB", original.size, (235, 235, 235)), "not run"))
            else:
                text = f"PSNR {_fmt(r.metrics['psnr_hole'], 1)}  SSIM {r.metrics['ssim_hole']:.3f}"
                tiles.append((_gray(r.preview, lo, hi, box), text))
        for c, (tile, text) in enumerate(tiles):
            left = pad + c * (tile_w + pad)
            grid.paste(tile, (left, top))
            draw.text((left, top + tile_h + 4), text, fill="black", font=font)
    grid.save(path)
    return path


def write_figures(out_dir: Path, data: BenchData, cases: list[Case], results: list[CaseResult],
                  methods: list[str], families: list[str]) -> dict[str, str]:
    """fig_<family>.png for every family that ran, a column per method that filled one of its rows."""
    written = {}
    for family in families:
        rows = [c for c in cases if c.family == family][:FIGURE_ROWS]
        if rows:
            shown = {c.id for c in rows}
            ran = [m for m in methods if any(r.method == m and r.case in shown for r in results)]
            name = f"fig_{family}.png"
            figure_grid(out_dir / name, data, rows, results, ran)
            written[family] = name
    return written
