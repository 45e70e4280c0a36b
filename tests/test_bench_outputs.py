"""`inpaint bench`'s output paths: refused in one sentence before any work; one scan's figures without `+/- nan`."""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import synthetic_brain
from core.bench import command
from core.cli import main

SHAPE = (40, 40, 40)
ARGS = ["bench", "--families", "cube8", "--methods", "biharmonic-3d", "--cases", "1", "--speed-cases", "0", "--quiet"]


class Reached(Exception):
    """Raised where the bench starts its work: the outputs passed their checks."""


@pytest.fixture
def no_work(monkeypatch):
    """The bench stops with Reached where it would load a brain or a cohort."""
    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(command, "load_bench_data", reached)
    monkeypatch.setattr(command, "run_cohort", reached)


def _write_brain(folder: Path, name: str = "brain.nii.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = synthetic_brain(SHAPE)
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / name)
    return folder / name


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("inpaint: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("cohort", [False, True])
def test_bench_refuses_unusable_output_paths_before_any_work(tmp_path, capsys, no_work, cohort):
    image = _write_brain(tmp_path)
    given = ARGS + (["--cohort", str(tmp_path)] if cohort else ["--image", str(image)])
    (tmp_path / "folder").mkdir()
    (tmp_path / "blocked" / "results.json").mkdir(parents=True)
    assert "is a file, not a folder" in _refused(given + ["--out", str(image)], capsys)
    assert f"{image} is a file" in _refused(given + ["--out", str(image / "sub")], capsys)
    assert "it is a folder" in _refused(given + ["--json", str(tmp_path / "folder")], capsys)
    assert "does not exist" in _refused(given + ["--json", str(tmp_path / "missing" / "r.json")], capsys)
    assert "results.json: it is a folder" in _refused(given + ["--out", str(tmp_path / "blocked")], capsys)
    with pytest.raises(Reached):   # --json may lie in the --out folder that the bench creates
        main(given + ["--out", str(tmp_path / "new" / "out"), "--json", str(tmp_path / "new" / "out" / "r.json")])


def test_bench_refuses_the_input_and_folders_it_cannot_write(tmp_path, capsys, monkeypatch, no_work):
    image = _write_brain(tmp_path)
    given = ARGS + ["--image", str(image)]
    assert "it is the input" in _refused(given + ["--json", str(image)], capsys)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    make = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if Path(dir) == read_only:
            raise OSError(errno.EROFS, "Read-only file system")
        return make(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    for option in (["--out", str(read_only)], ["--json", str(read_only / "r.json")]):
        err = _refused(given + option, capsys)
        assert str(read_only) in err and "not writable (Read-only file system)" in err


def test_downstream_refuses_an_unusable_json_before_any_work(tmp_path, capsys, monkeypatch):
    from core.bench import downstream_report

    monkeypatch.setattr(downstream_report, "load_brains", lambda *a: pytest.fail("the test ran"))
    (tmp_path / "folder").mkdir()
    err = _refused(["bench", "--downstream", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "folder"),
                    "--quiet"], capsys)
    assert "it is a folder" in err


def test_a_cohort_of_one_scan_gives_means_without_an_error_and_writes_json(tmp_path, capsys):
    _write_brain(tmp_path / "cohort" / "ds", "sub-1_T1w.nii.gz")
    nib.save(nib.Nifti1Image((synthetic_brain(SHAPE) > 0).astype(np.uint8), np.eye(4)),
             tmp_path / "cohort" / "ds" / "sub-1_brainmask.nii.gz")
    out = tmp_path / "out"
    assert main(["bench", "--cohort", str(tmp_path / "cohort"), "--methods", "harmonic-3d,biharmonic-3d",
                 "--families", "cube8", "--cases", "1", "--out", str(out), "--json", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    printed = capsys.readouterr()
    report = json.loads((out / "results.json").read_text())
    mean, se = report["summary"]["all"]["harmonic-3d"]["lesion-sized"]["psnr_hole"]
    row = next(line for line in printed.out.splitlines() if line.startswith("harmonic-3d"))
    assert se is None and row.split()[1] == f"{mean:.2f}" and "nan" not in printed.out
    assert "one scan only" in printed.err
    markdown = (out / "results.md").read_text()
    assert "nan" not in markdown and markdown.count("Note: there is one scan only") == 2   # all, and the dataset
    assert json.loads((tmp_path / "r.json").read_text()) == report
