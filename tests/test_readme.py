"""The README stays a page for newcomers: short, with CI's test command, and every document it points to exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = "QT_QPA_PLATFORM=offscreen python -m pytest -q tests"


def test_the_readme_is_at_most_250_lines():
    assert len(README.splitlines()) <= 250


def test_the_readme_runs_the_tests_as_ci_does():
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"&& {TEST_COMMAND.replace('python', '.venv/bin/python')}" in README


def test_the_results_lead_with_the_real_1mm_scans():
    cohort, two_mm = README.find("on the held-out cohort**"), README.find("on the held-out subject**")
    assert 0 < cohort < two_mm


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"`((?:docs|scripts|tests)/[\w./-]+\.(?:md|py|sh|png))`", README))
    named |= set(re.findall(r"\]\(((?:docs)/[\w./-]+)\)", README))
    assert len(named) >= 10
    assert not sorted(n for n in named if not (ROOT / n).is_file())
