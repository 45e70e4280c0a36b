"""Do other people's healthy brains, registered to the scan, add to the default fill? A validation-split study.

The mirror (the scan's own other hemisphere) is what lifts `refine3d` above biharmonic; this asks whether
other brains of the training split can be a second guide, as atlases are in multi-atlas segmentation.
For each validation scan: the bench's lesion-sized holes (seed 0, `--cases` per family); `--donors` scans
per dataset of the training split (evenly spaced), each registered affinely onto the scan (Mattes mutual
information, the union of the scan's holes left out of the metric, one ITK thread) and mapped to model
range by its own intensity scale. Around each hole every donor is aligned by the mirror's local demons
(`core.mirror.align_mirror`, the hole's biharmonic fill as the target) and its detail taken: the aligned
donor minus its own biharmonic fill over the hole. Saved per hole (`--out`, one .npz each): the truth,
`refine3d` and biharmonic-3d in the hole, every donor's detail there (scan units) and its correlation with
the scan on the known shell within 4 voxels, so that `--report` can score weightings without refilling:
the default plus w times the donors' mean detail, and the mean of the best-matching donors only, paired
per scan with the default (mean over scans of each scan's mean in-hole PSNR change, +/- SE over scans),
and, as a ceiling, the best share per hole read from the truth.
With `--targets` every scan of a held-out cohort is filled instead (the donors stay the training split's), and
`--candidate` reports the one fill fixed beforehand, so that the held-out run chooses nothing.

    python scripts/donor_study.py --out runs/donors/study --part 1/2 &    # about 4 min a scan on one core
    python scripts/donor_study.py --out runs/donors/study --part 2/2
    python scripts/donor_study.py --report runs/donors/study
    python scripts/donor_study.py --donors 8 --targets ../shared/data/heldout_cohort --out runs/donors/heldout16
    python scripts/donor_study.py --report runs/donors/heldout16 --candidate 8,0.5     # its one look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.baselines import biharmonic_3d_fill  # noqa: E402
from core.bench.cohort import cohort_scans  # noqa: E402
from core.bench.masks import make_cases  # noqa: E402
from core.bench.registration import affine_onto, one_itk_thread  # noqa: E402
from core.bench.runner import read_brain  # noqa: E402
from core.blend3d import biharmonic_fill_3d  # noqa: E402
from core.fill import FillSettings, fill_volume  # noqa: E402
from core.metrics import psnr_from_mse, voided_range  # noqa: E402
from core.mirror import align_mirror  # noqa: E402
from core.normalize import intensity_scale  # noqa: E402
from core.refine3d import lesion_crops  # noqa: E402
from core.volume import itk_image  # noqa: E402

FAMILIES = ("blob6", "blob10", "blob16", "cube16")
SHELL_VOXELS = 4
WEIGHTS = (0.25, 0.5, 0.75, 1.0)


def ras_array(image: sitk.Image) -> np.ndarray:
    """An ITK image made by `itk_image` from a RAS array, back as that array (float32)."""
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)).astype(np.float32)


def donors_of(cohort: Path, per_dataset: int) -> list:
    """`per_dataset` scans of each dataset of the training split, evenly spaced through the sorted names."""
    training = cohort_scans(cohort, "training")
    chosen = []
    for dataset in sorted({s.dataset for s in training}):
        members = [s for s in training if s.dataset == dataset]
        step = len(members) / per_dataset
        chosen += [members[int(step * i)] for i in range(per_dataset)]
    return chosen


def study(cohort: Path, out: Path, per_dataset: int, per_family: int, part: tuple[int, int],
          targets: Optional[Path] = None) -> None:
    """Records of every validation scan of `cohort` (or every scan of `targets`, a held-out cohort), with
    `per_dataset` donors per dataset of `cohort`'s training split."""
    out.mkdir(parents=True, exist_ok=True)
    donors = []
    for scan in donors_of(cohort, per_dataset):
        data = read_brain(scan.image, scan.brainmask)
        donors.append((itk_image(data.image, data.affine), intensity_scale(data.image, data.brain)))
    index, parts = part
    scans = cohort_scans(cohort, "validation") if targets is None else cohort_scans(targets, "all")
    for scan in scans[index - 1::parts]:
        label = f"{scan.dataset}_{scan.image.name.split('_T1w')[0]}"
        start = time.time()
        data = read_brain(scan.image, scan.brainmask)
        cases = make_cases(data.brain, data.voxel_mm, FAMILIES, per_family, 0)
        if all((out / f"{label}_{case.id}.npz").exists() for case in cases):
            continue
        holes = np.any([case.hole for case in cases], axis=0)
        fixed = itk_image(np.where(holes, np.float32(0), data.image), data.affine)
        mask = sitk.Cast(itk_image((data.brain & ~holes).astype(np.uint8), data.affine), sitk.sitkUInt8)
        with one_itk_thread():
            moved = []
            for image, scale in donors:
                values = ras_array(sitk.Resample(image, fixed, affine_onto(fixed, image, mask), sitk.sitkLinear, 0.0))
                moved.append(np.where(values > 0, scale.to_model(values), np.nan).astype(np.float32))
        for case in cases:
            path = out / f"{label}_{case.id}.npz"
            if not path.exists():
                np.savez(path, **hole_record(data, case.hole, moved), family=case.family)
        print(f"{label}: {time.time() - start:.0f} s", flush=True)


def hole_record(data, hole: np.ndarray, moved: list[np.ndarray]) -> dict:
    """The truth, the fills and every donor's detail (scan units) in `hole`, with each donor's shell correlation."""
    voided = np.where(hole, np.float32(0), data.image)
    scale = intensity_scale(voided, data.brain, hole)
    gain = (scale.hi - scale.lo) / 2.0          # model range -> scan units
    default = fill_volume(voided, data.affine, hole, None, FillSettings(seed=0), brain=data.brain).filled
    native = bool(np.all(np.abs(np.asarray(data.voxel_mm) - 1.0) < 0.05))
    labels, crops = lesion_crops(hole, data.voxel_mm)
    details = np.zeros((len(moved),) + hole.shape, dtype=np.float32)
    correlation = np.zeros((len(moved), len(crops)))
    for index, crop in enumerate(crops, start=1):
        part = labels[crop] == index
        unknown = hole[crop]
        known = np.where(unknown, -1.0, scale.to_model(voided[crop])).astype(np.float32)
        smooth = biharmonic_fill_3d(known, unknown, (1.0, 1.0, 1.0) if native else data.voxel_mm)
        shell = ndimage.binary_dilation(part, iterations=SHELL_VOXELS) & ~unknown & data.brain[crop]
        for j, donor in enumerate(moved):
            aligned, detail = align_mirror(smooth, donor[crop], unknown, data.voxel_mm, part)
            details[(j,) + crop][part] = (detail * gain)[part]
            a, b = aligned[shell] - aligned[shell].mean(), known[shell] - known[shell].mean()
            correlation[j, index - 1] = float(np.sum(a * b) / math.sqrt(np.sum(a * a) * np.sum(b * b) + 1e-12))
    return {"truth": data.image[hole], "default": default[hole],
            "biharmonic": biharmonic_3d_fill(voided, hole)[hole], "details": details[:, hole],
            "shell_correlation": correlation.mean(axis=1), "value_range": np.array(voided_range(data.image, hole))}


def hole_psnr(values: np.ndarray, truth: np.ndarray, value_range: np.ndarray) -> float:
    """In-hole PSNR as the bench scores it (`core.metrics.hole_metrics`): both clipped to the voided image's
    percentile range and scaled to [0, 1]."""
    lo, hi = (float(v) for v in value_range)

    def unit(x: np.ndarray) -> np.ndarray:
        return (np.clip(np.asarray(x, dtype=np.float64), lo, hi) - lo) / (hi - lo)

    return psnr_from_mse(float(np.mean((unit(values) - unit(truth)) ** 2)))


def report(folder: Path, candidate: Optional[tuple[int, float]] = None) -> None:
    """Every row, or with `candidate` (best, share) only biharmonic-3d and that one (a held-out run's one look)."""
    records = [(path.name.split("_")[0] + "/" + path.name.split("_")[1], dict(np.load(path)))
               for path in sorted(folder.glob("*.npz"))]
    if not records:
        raise SystemExit(f"{folder} holds no records; run the study first.")
    count = records[0][1]["details"].shape[0]
    print(f"{len(records)} holes on {len({s for s, _ in records})} scans, {count} donors; in-hole PSNR change "
          "from the default (dB), mean over scans +/- SE over scans, then per scan")

    def row(name: str, fill: Callable[[dict], np.ndarray]) -> None:
        per_scan: dict[str, list[float]] = defaultdict(list)
        for scan, r in records:
            per_scan[scan].append(hole_psnr(fill(r), r["truth"], r["value_range"])
                                  - hole_psnr(r["default"], r["truth"], r["value_range"]))
        change = np.array([np.mean(v) for v in per_scan.values()])
        se = change.std(ddof=1) / math.sqrt(change.size) if change.size > 1 else math.nan
        print(f"  {name:36s} {change.mean():+.3f} +/- {se:.3f}   " + " ".join(f"{c:+.2f}" for c in change))

    def best_by_shell(best: int, w: float) -> None:
        row(f"default + {w} x best {best} by shell", lambda r: r["default"] + w * best_detail(r, best))

    row("biharmonic-3d", lambda r: r["biharmonic"])
    if candidate is not None:
        best_by_shell(*candidate)
        return
    for w in WEIGHTS:
        row(f"default + {w} x mean of {count} donors", lambda r, w=w: r["default"] + w * r["details"].mean(axis=0))
    for best in sorted({max(1, count // 4), max(1, count // 2)}):
        for w in WEIGHTS[:2]:
            best_by_shell(best, w)
    best = max(1, count // 2)
    row(f"oracle: best share per hole, best {best}", lambda r: best_share(r, best))


def best_detail(r: dict, best: int) -> np.ndarray:
    """The mean detail of the `best` donors that match the hole's known shell best."""
    return r["details"][np.argsort(-r["shell_correlation"])[:best]].mean(axis=0)


def best_share(r: dict, best: int) -> np.ndarray:
    """The default plus the `best` donors' mean detail at the share (0 to 2) that fits the truth best in this
    hole: a ceiling for any rule that weighs the donors per hole, not a fill (it reads the truth)."""
    detail = best_detail(r, best)
    share = np.sum(detail * (r["truth"] - r["default"])) / (np.sum(detail * detail) + 1e-12)
    return r["default"] + float(np.clip(share, 0.0, 2.0)) * detail


def candidate(text: str) -> tuple[int, float]:
    """`--candidate BEST,SHARE` as (best, share)."""
    try:
        best, share = text.split(",")
        return int(best), float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give BEST,SHARE such as 8,0.5, not {text}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=SHARED_DATA / "train_cohort")
    parser.add_argument("--out", type=Path, help="folder of the per-hole records")
    parser.add_argument("--donors", type=int, default=4, help="donor scans per dataset of the training split")
    parser.add_argument("--cases", type=int, default=3, help="holes per family and scan")
    parser.add_argument("--part", default="1/1", help="I/N: every Nth validation scan from the Ith (parallel runs)")
    parser.add_argument("--targets", type=Path, help="fill every scan of this (held-out) cohort instead of the "
                        "validation split; the donors stay those of --cohort's training split")
    parser.add_argument("--report", type=Path, help="score the records in this folder")
    parser.add_argument("--candidate", type=candidate, help="BEST,SHARE: report only the fill with the BEST donors "
                        "by shell at SHARE")
    args = parser.parse_args()
    if args.report:
        report(args.report, args.candidate)
    elif args.out:
        index, parts = (int(v) for v in args.part.split("/"))
        study(args.cohort, args.out, args.donors, args.cases, (index, parts), args.targets)
    else:
        parser.error("give --out (run the study) or --report FOLDER")


if __name__ == "__main__":
    main()
