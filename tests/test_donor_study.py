"""`scripts/donor_study.py`: its offline score is the bench's in-hole PSNR, and its report pairs per scan."""

import numpy as np
import pytest
from conftest import load_script

from core.metrics import hole_metrics, voided_range


def test_offline_psnr_equals_the_bench_metric():
    script = load_script("donor_study")
    rng = np.random.default_rng(3)
    truth = rng.normal(100.0, 20.0, (24, 24, 24)).astype(np.float32)
    truth[truth < 40] = 0.0                       # some background, as a skull-stripped scan has
    hole = np.zeros(truth.shape, dtype=bool)
    hole[8:15, 9:17, 6:14] = True
    filled = truth.copy()
    filled[hole] += rng.normal(0.0, 9.0, int(hole.sum())).astype(np.float32)
    filled[tuple(np.argwhere(hole)[:5].T)] = 1000.0   # values beyond the range are clipped by both
    expected = hole_metrics(filled, truth, hole, np.where(hole, np.float32(0), truth))["psnr"]
    value_range = np.array(voided_range(truth, hole))
    assert script.hole_psnr(filled[hole], truth[hole], value_range) == pytest.approx(expected, abs=1e-6)


def test_report_pairs_each_scan_with_the_default(tmp_path, capsys):
    script = load_script("donor_study")
    truth = np.linspace(10.0, 90.0, 50)
    for scan, error in (("sub-01", 4.0), ("sub-02", 2.0)):
        details = np.stack([np.full(50, error), np.full(50, -error)])   # donor 0 is the error exactly
        for case in ("blob6-00", "blob6-01"):
            np.savez(tmp_path / f"dsX_{scan}_{case}.npz", truth=truth, default=truth - error, biharmonic=truth + 1.0,
                     details=details, shell_correlation=np.array([0.9, 0.1]), value_range=np.array([0.0, 100.0]),
                     family="blob6")
    script.report(tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 holes on 2 scans, 2 donors")
    # the mean detail is zero: no change; the best-matching donor alone is the error itself
    assert next(line for line in lines if "0.5 x mean of 2 donors" in line).split()[8] == "+0.000"
    best = next(line for line in lines if "0.5 x best 1 by shell" in line)
    gain = [float(v) for v in best.split()[-2:]]
    # half of the error left: 20 log10(2) = 6.02 dB better on each scan
    assert gain == pytest.approx([6.02, 6.02], abs=0.01)


def test_candidate_report_prints_that_fill_only(tmp_path, capsys):
    script = load_script("donor_study")
    truth = np.linspace(10.0, 90.0, 50)
    for scan in ("sub-01", "sub-02"):
        np.savez(tmp_path / f"dsX_{scan}_blob6-00.npz", truth=truth, default=truth - 4.0, biharmonic=truth + 1.0,
                 details=np.stack([np.full(50, 4.0), np.full(50, -4.0)]), shell_correlation=np.array([0.9, 0.1]),
                 value_range=np.array([0.0, 100.0]), family="blob6")
    script.report(tmp_path, (1, 0.5))
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["biharmonic-3d", "default"]
    assert "0.5 x best 1 by shell" in rows[1] and rows[1].split()[-2:] == ["+6.02", "+6.02"]


def test_oracle_share_fits_the_truth_in_each_hole():
    script = load_script("donor_study")
    truth = np.linspace(10.0, 90.0, 50)
    record = {"truth": truth, "default": truth - 3.0, "shell_correlation": np.array([0.2, 0.9]),
              "details": np.stack([np.full(50, -1.0), np.full(50, 2.0)])}
    # the best-matching donor holds 2/3 of the error: share 1.5 recovers the truth
    assert script.best_share(record, 1) == pytest.approx(truth)
    # both donors' mean (0.5) wants share 6, clipped to 2: one unit of the error is left
    assert script.best_share(record, 2) == pytest.approx(truth - 2.0)
