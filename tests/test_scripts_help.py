"""Every script answers --help with its usage and changes nothing (one once rewrote the results tables instead)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tracked_digests() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {n: hashlib.sha256((ROOT / n).read_bytes()).hexdigest() for n in names if (ROOT / n).is_file()}


def test_every_script_prints_its_usage_for_help_and_writes_nothing(tmp_path) -> None:
    before = _tracked_digests()
    scripts = sorted((ROOT / "scripts").glob("*.py"))
    runs = {s.name: subprocess.Popen([sys.executable, str(s), "--help"], cwd=tmp_path, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for s in scripts}
    for name, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0 and out.startswith("usage:"), (name, err[-500:])
    assert _tracked_digests() == before and not list(tmp_path.iterdir())



def test_the_readme_s_example_cohort_refuses_a_folder_in_use_and_names_missing_shared_data(tmp_path) -> None:
    """--example into a used folder mixed its cohort with the old one; without ../shared it was a traceback."""
    script = ROOT / "scripts" / "measure_bids.py"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "filled").mkdir()
    run = subprocess.run([sys.executable, str(script), "--example", str(tmp_path / "used")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2 and "is not empty" in run.stderr and "Traceback" not in run.stderr
    lonely = tmp_path / "clone" / "scripts"   # a checkout without the shared folder beside it
    lonely.mkdir(parents=True)
    (lonely / "measure_bids.py").write_bytes(script.read_bytes())
    run = subprocess.run([sys.executable, str(lonely / "measure_bids.py"), "--example", str(tmp_path / "new")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 2 and "../shared" in run.stderr and "Traceback" not in run.stderr
