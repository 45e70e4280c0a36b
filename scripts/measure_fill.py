"""Speed check: fill a 16 mm white-matter cube (or six deep blobs, or 40 small balls) in the held-out subject (2 mm) or another scan.

Writes the skull-stripped scan and the cube mask (file voxel order, the scan's geometry) to
a folder, runs `inpaint fill` at default settings as a separate process, checks geometry and
outside-mask identity of the output, and prints wall time and the child's peak memory.

    python scripts/measure_fill.py [--method NAME] [--model NAME] [--out DIR]
    python scripts/measure_fill.py --image ../shared/data/heldout_cohort/ds002748/sub-09_T1w.nii.gz \
        --brainmask ../shared/data/heldout_cohort/ds002748/sub-09_brainmask.nii.gz     # a 1 mm scan
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import SHARED_DATA  # noqa: E402
from core.bench.masks import CHECK_MASKS, check_mask  # noqa: E402
from core.bench.runner import load_bench_data  # noqa: E402
from core.modelspace import Reorientation  # noqa: E402

SUBJECT = SHARED_DATA / "heldout_subject"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--method", default=None, help="fill method (default: the app's)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/inpaint-measure"))
    parser.add_argument("--image", type=Path, default=SUBJECT / "t1_2mm.nii.gz", help="scan (default: held-out subject)")
    parser.add_argument("--brainmask", type=Path, default=SUBJECT / "brainmask_2mm.nii.gz", help="its brain mask")
    parser.add_argument("--lesions", choices=CHECK_MASKS, default="cube16_wm",
                        help="one 16 mm white-matter cube, six deep blobs of 6, 6, 6, 10, 10 and 16 mm radius, or 40 "
                             "white-matter balls of 1.5-4 mm radius (many small lesions, as in MS)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    t1 = nib.load(args.image)
    data = load_bench_data(args.image, args.brainmask)
    hole = check_mask(args.lesions, data.image, data.brain, data.voxel_mm)
    reo = Reorientation.of(t1.affine, t1.shape)
    brain_file = reo.undo(data.image)
    hole_file = reo.undo(hole).astype(np.uint8)
    image_path, mask_path, out_path = (args.out / "sub_T1w_brain.nii.gz", args.out / f"{args.lesions}.nii.gz",
                                       args.out / "filled.nii.gz")
    header = t1.header.copy()
    header.set_data_dtype(np.float32)   # the skull-stripped scan as floats, whatever the source stored
    nib.save(nib.Nifti1Image(brain_file.astype(np.float32), t1.affine, header), image_path)
    mask_img = nib.Nifti1Image(hole_file, t1.affine, t1.header)
    mask_img.set_data_dtype(np.uint8)
    nib.save(mask_img, mask_path)

    command = [sys.executable, "-m", "core.cli", "fill", str(image_path), str(mask_path), "-o", str(out_path),
               "--force", "--quiet"] + (["--model", args.model] if args.model else []) \
        + (["--method", args.method] if args.method else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    src, res = nib.load(image_path), nib.load(out_path)
    same_geometry = (res.shape == src.shape and np.array_equal(res.affine, src.affine)
                     and int(res.header["qform_code"]) == int(src.header["qform_code"])
                     and int(res.header["sform_code"]) == int(src.header["sform_code"]))
    outside = hole_file == 0
    identical = np.array_equal(src.get_fdata(dtype=np.float32)[outside], res.get_fdata(dtype=np.float32)[outside])
    side = json.loads(out_path.with_name("filled.json").read_text(encoding="utf-8"))
    print(json.dumps({"hole_voxels": side["hole_voxels"], "method": side["method"]["name"],
                      "model": (side.get("model") or side["method"].get("refiner") or {}).get("name"),
                      "wall_seconds": round(seconds, 1),
                      "fill_seconds": side["seconds"], "peak_memory_mb": round(peak_mb),
                      "geometry_preserved": same_geometry, "outside_identical": identical}, indent=1))
    return 0 if same_geometry and identical else 1


if __name__ == "__main__":
    sys.exit(main())
