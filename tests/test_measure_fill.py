"""`scripts/measure_fill.py`, the speed check the README's targets quote, runs end to end and checks what it says."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from conftest import synthetic_brain

ROOT = Path(__file__).resolve().parents[1]


def test_the_speed_check_fills_a_cube_and_reports_the_refiner_it_used(tmp_path):
    image = synthetic_brain((48, 56, 44))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "t1.nii.gz")
    nib.save(nib.Nifti1Image((image > 0).astype(np.uint8), affine), tmp_path / "brain.nii.gz")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "measure_fill.py"), "--image", str(tmp_path / "t1.nii.gz"),
                           "--brainmask", str(tmp_path / "brain.nii.gz"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["method"] == "refine3d" and report["model"] == "refiner3d_1mm"   # the one refiner, at 2 mm too
    assert report["hole_voxels"] == 8 ** 3 and report["geometry_preserved"] and report["outside_identical"]
    assert 0 < report["fill_seconds"] <= report["wall_seconds"]
