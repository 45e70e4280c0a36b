"""Throughput of `inpaint bids`: scans per minute with --jobs 1 and --jobs 2 on a synthetic cohort.

Builds a BIDS dataset from the shared 2 mm brains (the held-out subject and Colin27, alternating;
every scan a whole 91x109x91 volume) with synthetic lesions (2-3 ellipsoids inside the brain)
in a derivatives folder, then times `inpaint bids` as a separate process for each --jobs value
into a fresh output folder, and once more for a rerun (everything skipped). The tests build
their small cohort with `build_cohort` too.

    python scripts/measure_bids.py [--scans 24] [--jobs 1 2] [--out DIR]
    python scripts/measure_bids.py --example DIR    # only build the tests' small cohort in DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BRAINS = (SHARED / "heldout_subject", SHARED / "colin27")
EXAMPLE_SCANS = ["sub-01", "sub-02_ses-1", "sub-02_ses-2", "sub-03"]
EXAMPLE_CROP = (slice(20, 70), slice(25, 85), slice(20, 66))  # 50x60x46 voxels of 2 mm around the centre


def _save(data: np.ndarray, like: nib.Nifti1Image, path: Path, affine: Optional[np.ndarray] = None) -> None:
    image = nib.Nifti1Image(data, like.affine if affine is None else affine, like.header)
    image.set_data_dtype(data.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def lesions(brain: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random ellipsoids (radii 2-4 voxels) centred deep inside `brain` (uint8 0/1)."""
    deep = ndimage.distance_transform_edt(brain) > 8
    centres = np.argwhere(deep)[rng.choice(int(deep.sum()), size=count, replace=False)]
    grid = np.indices(brain.shape)
    mask = np.zeros(brain.shape, dtype=bool)
    for centre in centres:
        radii = rng.uniform(2.0, 4.0, size=3)
        mask |= (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1
    return (mask & brain).astype(np.uint8)


def build_cohort(root: Path, names: list[str], crop: Optional[tuple[slice, slice, slice]] = None,
                 seed: int = 0) -> tuple[Path, Path]:
    """A BIDS dataset `root/bids` and masks `root/masks` with one T1w scan per name (`sub-01`, `sub-02_ses-1`).

    Scans alternate between the shared brains; odd scans are skull-stripped, even ones keep the skull
    and get a `desc-brain_mask`. `crop` cuts every volume to a box (affines shifted to match).
    """
    bids, masks = root / "bids", root / "masks"
    for folder, kind in ((bids, "raw"), (masks, "derivative")):
        folder.mkdir(parents=True, exist_ok=True)
        record = {"Name": f"synthetic lesion cohort ({kind})", "BIDSVersion": "1.10.0"}
        if kind == "derivative":
            record.update(DatasetType="derivative", GeneratedBy=[{"Name": "measure_bids.py"}])
        (folder / "dataset_description.json").write_text(json.dumps(record, indent=2) + "\n")
    rng = np.random.default_rng(seed)
    for index, name in enumerate(names):
        source = BRAINS[index % len(BRAINS)]
        t1 = nib.load(source / "t1_2mm.nii.gz")
        image = np.asarray(t1.dataobj, dtype=np.float32)
        brain = np.asarray(nib.load(source / "brainmask_2mm.nii.gz").dataobj) > 0
        affine = t1.affine.copy()
        if crop is not None:
            affine[:3, 3] = nib.affines.apply_affine(t1.affine, [s.start for s in crop])
            image, brain = image[crop], brain[crop]
        folder = "/".join(name.split("_")) + "/anat"
        with_skull = index % 2 == 0
        if not with_skull:
            image = image * brain
        _save(image, t1, bids / folder / f"{name}_T1w.nii.gz", affine)
        _save(lesions(brain, rng, 1 if crop else int(rng.integers(2, 4))), t1,
              masks / folder / f"{name}_label-lesion_mask.nii.gz", affine)
        if with_skull:
            _save(brain.astype(np.uint8), t1, masks / folder / f"{name}_desc-brain_mask.nii.gz", affine)
    return bids, masks


def _time_run(bids: Path, masks: Path, out: Path, jobs: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.cli", "bids", str(bids), str(out), "participant", "--masks",
                    str(masks), "--jobs", str(jobs), "--quiet"], cwd=ROOT, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=24)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("/tmp/inpaint-measure-bids"))
    parser.add_argument("--example", type=Path, default=None, metavar="DIR",
                        help="only build the small cohort of the tests (3 subjects, 4 scans) in DIR/bids, DIR/masks")
    args = parser.parse_args()
    missing = [brain for brain in BRAINS if not (brain / "t1_2mm.nii.gz").is_file()]
    if missing:
        print(f"measure_bids.py: error: {missing[0] / 't1_2mm.nii.gz'} is not there; the cohort is built from the "
              f"shared data, so put the project's shared folder beside this checkout (as ../shared).", file=sys.stderr)
        return 2
    if args.example:
        if args.example.exists() and any(args.example.iterdir()):
            print(f"measure_bids.py: error: {args.example} is not empty; give a new or empty folder for the example "
                  "cohort (an earlier one there would be mixed with it).", file=sys.stderr)
            return 2
        bids, masks = build_cohort(args.example, EXAMPLE_SCANS, crop=EXAMPLE_CROP)
        print(f"wrote {bids} and {masks}")
        return 0
    shutil.rmtree(args.out, ignore_errors=True)
    bids, masks = build_cohort(args.out, [f"sub-{i + 1:02d}" for i in range(args.scans)])
    print(f"{args.scans} scans of 91x109x91 voxels (2 mm); cores {os.cpu_count()}; "
          f"load average before {os.getloadavg()[0]:.2f}")
    for jobs in args.jobs:
        out = args.out / f"derivatives-jobs{jobs}"
        first = _time_run(bids, masks, out, jobs)
        written = sorted(p.stat().st_mtime for p in out.glob("sub-*/anat/*_desc-filled_T1w.nii.gz"))
        steady = 60 * (len(written) - 1) / (written[-1] - written[0])
        again = _time_run(bids, masks, out, jobs)
        print(f"--jobs {jobs}: {first:.1f} s, {60 * args.scans / first:.1f} scans/min (start-up, worker start "
              f"and model loading included); {steady:.1f} scans/min from the first output written to the last; "
              f"rerun, all skipped: {again:.1f} s; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
