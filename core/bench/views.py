"""Orthogonal views of filled lesions: does a fill look the same in the planes it was not made in?

A slice-by-slice fill is smooth within its slices and striped across them; the stripes show in
the coronal and sagittal views. `ortho_figure` draws, for one case, the truth and each method's
fill in the sagittal, coronal and axial planes through the lesion, zoomed on it, with the
hole's outline in the masked row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .masks import Case
from .runner import BenchData, CaseResult, hole_centre, ortho_slices

ZOOM = 4
CONTEXT_MM = 24.0
PLANES = ("sagittal", "coronal", "axial")


def _crop(plane: int, centre: tuple[int, int, int], shape: tuple[int, ...], voxel_mm: np.ndarray) -> tuple[slice, ...]:
    axes = [a for a in range(3) if a != plane]
    return tuple(slice(max(0, centre[a] - int(CONTEXT_MM / voxel_mm[a])),
                       min(shape[a], centre[a] + int(CONTEXT_MM / voxel_mm[a]) + 1)) for a in axes)


def _tile(image2d: np.ndarray, box: tuple[slice, ...], lo: float, hi: float,
          outline: np.ndarray | None = None) -> Image.Image:
    unit = np.clip((np.asarray(image2d[box], dtype=np.float64) - lo) / (hi - lo), 0, 1)
    rgb = np.repeat((unit.T[::-1] * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)
    if outline is not None:
        mask = outline[box].T[::-1]
        inner = mask.copy()
        inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        edge = mask & ~inner
        rgb[edge] = (220, 40, 40)
    tile = Image.fromarray(rgb)
    return tile.resize((tile.width * ZOOM, tile.height * ZOOM), Image.Resampling.NEAREST)


def write_ortho_figures(out_dir: Path, data: BenchData, cases: list[Case], results: list[CaseResult],
                        methods: list[str], families: list[str]) -> dict[str, str]:
    """views_<family>.png for the first case of every family that ran."""
    written = {}
    for family in families:
        first = next((c for c in cases if c.family == family), None)
        if first is not None:
            name = f"views_{family}.png"
            ortho_figure(out_dir / name, data, first, results, methods)
            written[family] = name
    return written


def ortho_figure(path: Path, data: BenchData, case: Case, results: list[CaseResult], methods: list[str]) -> Path:
    """PNG: rows truth (with the hole outlined) and each method's fill; columns sagittal, coronal, axial."""
    centre = hole_centre(case.hole)
    lo, hi = 0.0, float(np.percentile(data.image[data.brain], 99.5))
    truth, holes = ortho_slices(data.image, centre), ortho_slices(case.hole, centre)
    by_method = {r.method: r for r in results if r.case == case.id and r.ortho is not None}
    rows = [("truth (hole outlined)", truth, True)] + [(m, by_method[m].ortho, False) for m in methods
                                                        if m in by_method]
    font = ImageFont.load_default()
    tiles = [[_tile(views[p], _crop(p, centre, data.image.shape, data.voxel_mm), lo, hi,
                    holes[p] if outlined else None) for p in range(3)] for _, views, outlined in rows]
    label_w, pad, header = 150, 4, 16
    widths = [t.width for t in tiles[0]]
    height = max(t.height for t in tiles[0])
    grid = Image.new("RGB", (label_w + sum(widths) + pad * 4, header + len(rows) * (height + pad)), "white")
    draw = ImageDraw.Draw(grid)
    x = label_w
    for p, w in enumerate(widths):
        draw.text((x, 2), f"{PLANES[p]} {centre[p]}", fill="black", font=font)
        x += w + pad
    for r, (name, _, _) in enumerate(rows):
        top = header + r * (height + pad)
        text = name
        if name in by_method:
            m = by_method[name].metrics
            text = f"{name}\nPSNR {m['psnr_hole']:.1f} SSIM {m['ssim_hole']:.3f}\nstripes {m['stripe_ratio']:.2f}"
        draw.multiline_text((4, top + 4), text, fill="black", font=font)
        x = label_w
        for p, tile in enumerate(tiles[r]):
            grid.paste(tile, (x, top))
            x += widths[p] + pad
    grid.save(path)
    return path
