"""No test skips silently: a skip fails the run unless its reason is one conftest allows (a GPU machine)."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CASES = '''import pytest

def test_without_its_data():
    pytest.skip("needs the shared brains")

@pytest.mark.skipif(True, reason="this machine has a GPU")
def test_for_cpu_only():
    pass
'''


def test_a_skip_fails_unless_its_reason_is_allowed(tmp_path) -> None:
    (tmp_path / "test_cases.py").write_text(CASES, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(tmp_path / "test_cases.py")],
                         capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(TESTS)))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 skipped" in run.stdout
    assert "test_without_its_data was skipped" in run.stdout
