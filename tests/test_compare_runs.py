"""`scripts/compare_runs.py`: the per-scan pairing that every refiner candidate is judged by."""

import json

import pytest
from conftest import load_script


def compare_runs():
    return load_script("compare_runs")


def run(psnr: dict, method: str = "refine3d") -> dict:
    """A results.json with the given in-hole PSNR per (scan, family, case)."""
    cases = [{"scan": scan, "dataset": scan.split("/")[0], "method": method, "family": family, "case": case,
              "psnr_hole": value} for (scan, family, case), value in psnr.items()]
    return {"methods": [method], "families": sorted({f for _, f, _ in psnr}), "seed": 0, "cases_per_family": 2,
            "cases": cases}


SCANS = ("dsA/sub-1", "dsA/sub-2", "dsB/sub-3")


def test_pairs_per_scan_mean_first_then_over_scans(tmp_path, capsys):
    base = {(s, f, c): 20.0 + i for i, s in enumerate(SCANS) for f in ("blob6", "blob10") for c in (0, 1)}
    shift = {"dsA/sub-1": 0.3, "dsA/sub-2": -0.1, "dsB/sub-3": 0.4}
    # blob6 carries the whole shift of both of its cases, blob10 none: per scan the mean over lesions moves by half
    cand = {(s, f, c): v + (2 * shift[s] if f == "blob6" else 0.0) for (s, f, c), v in base.items()}
    paths = []
    for name, data in (("cand", run(cand)), ("base", run(base))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    assert compare_runs().main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out.splitlines()
    blob6 = next(line for line in out if line.startswith("blob6"))
    both = next(line for line in out if line.startswith("all families"))
    assert "+0.400 +/- 0.306" in blob6 and "2 of 3 scans up" in blob6          # mean of 0.6, -0.2, 0.8
    assert "+0.200 +/- 0.153" in both and "2 of 3 scans up" in both
    assert any(line.startswith("dsA") and "+0.100 +/- 0.200" in line for line in out)
    assert any(line.startswith("dsB") and "+0.400" in line and "+/-" not in line for line in out)


def test_a_lesion_either_run_could_not_score_is_left_out_of_both(tmp_path, capsys):
    base = {(s, "blob6", c): 20.0 for s in SCANS for c in (0, 1)}
    cand = {key: v + (1.0 if key[2] == 0 else 0.0) for key, v in base.items()}
    base[("dsA/sub-1", "blob6", 1)] = None   # unscored (a PSNR of inf is written as null)
    cand[("dsA/sub-2", "blob6", 1)] = None
    lines = compare_runs().report(run(cand), run(base), "refine3d", "refine3d")
    both = next(line for line in lines if line.startswith("all families"))
    # on sub-1 and sub-2 only case 0 is left (+1.0); on sub-3 both cases (+0.5)
    assert "+0.833 +/- 0.167" in both and "3 of 3 scans up" in both


def test_refuses_runs_whose_holes_differ(tmp_path):
    base = run({(s, "blob6", 0): 20.0 for s in SCANS})
    other = dict(base, seed=1)
    script = compare_runs()
    with pytest.raises(SystemExit, match="--seed or --cases"):
        script.report(other, base, "refine3d", "refine3d")
    with pytest.raises(SystemExit, match="not in one of the runs"):
        script.report(base, base, "refine3d-nomirror", "refine3d")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match="Cannot read .*broken.json"):
        script.main([str(broken), str(broken)])
