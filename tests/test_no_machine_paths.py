"""No committed text file names an absolute path of the machine it was made on (use paths relative to the repo)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# home folders, workspaces, mounts and per-user temporary folders; `/tmp/...` and `/data/study` in examples are fine
MACHINE_PATH = re.compile(r"(?<![\w.~$/-])/(?:work|home|root|Users|mnt|scratch|var/folders|private/var"
                          r"|tmp/pytest-of-[\w-]+)/|\b[A-Za-z]:\\(?:Users|home)\\")


def machine_paths(text: str) -> list[int]:
    """Line numbers (from 1) holding an absolute machine path."""
    return [n for n, line in enumerate(text.splitlines(), 1) if MACHINE_PATH.search(line)]


def test_the_pattern_finds_machine_paths_and_spares_examples():
    # split literals, so that this file does not hold what it looks for
    assert machine_paths('x\n"image": "/wo' 'rk/shared/data/t1.nii.gz"\n') == [2]
    assert machine_paths("see /ho" "me/ana/brains") == machine_paths("C:" "\\Users\\ana") == [1]
    assert machine_paths("../shared/data/t1.nii.gz, /tmp/cohort, /data/study, https://example.org/home/x") == []


def test_no_committed_text_file_holds_an_absolute_machine_path():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.decode()
    found, read = [], 0
    for name in filter(None, names.split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary: weights, images, compressed volumes
        read += 1
        found += [f"{name}:{n}" for n in machine_paths(text)]
    assert read > 100
    assert not found, f"absolute machine paths (make them relative to the repository): {found}"


def test_benchmark_results_name_their_inputs_relative_to_the_repository(tmp_path):
    from core.bench.runner import SHARED_DATA
    from core.paths import shown_path

    assert shown_path(SHARED_DATA / "colin27" / "t1_2mm.nii.gz") == "../shared/data/colin27/t1_2mm.nii.gz"
    assert shown_path(ROOT / "runs" / "data" / "t1_1mm.nii.gz") == "runs/data/t1_1mm.nii.gz"
    outside = Path("/") / "srv" / "t1.nii.gz"
    assert shown_path(outside) == str(outside) and shown_path(None) is None
