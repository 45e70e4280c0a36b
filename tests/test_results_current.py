"""The committed benchmark results describe the models that ship; the README and model cards quote them as they are.

Fails when a model's weights change without `bash scripts/run_benchmarks.sh`, when a shipped
model has no results, or when the README or a model card is edited by hand or not regenerated
with `python scripts/collect_results.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core.bench.runner import default_method_name
from core.jsonfiles import sha256_file
from core.fill import FillSettings
from core.refine3d import SHIPPED as REFINER
from core.refine3d import shipped_refiners
from core.registry import default_model_name, list_models
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def collect():
    return load_script("collect_results")


def test_every_run_scored_the_shipped_weights(collect):
    runs = collect.load_runs()
    assert runs, "no committed benchmark results under docs/results/"
    shipped = {m.name: sha256_file(m.path / "model.safetensors") for m in list_models()}
    scored = set()
    for run, report in runs.items():
        assert "models" in report, f"docs/results/{run} predates weight checksums; rerun the benchmark"
        for name, entry in report["models"].items():
            assert name in shipped, f"docs/results/{run} scored {name}, which is not shipped"
            assert entry["weights_sha256"] == shipped[name], f"{name} changed after docs/results/{run} was made"
            scored.add(name)
    assert scored == set(shipped), f"shipped models without results: {sorted(set(shipped) - scored)}"


@pytest.mark.parametrize("run", ["downstream", "downstream_cohort"])
def test_the_downstream_runs_used_the_shipped_weights(run):
    report = json.loads((ROOT / "docs" / "results" / run / "downstream.json").read_text(encoding="utf-8"))
    shipped = {m.name: sha256_file(m.path / "model.safetensors") for m in list_models()}
    for name, entry in report["models"].items():
        assert entry["weights_sha256"] == shipped[name], f"{name} changed after docs/results/{run} was made"
    refiners = {r.name: r.checksum for r in shipped_refiners()}
    assert {r["name"]: r["sha256"] for r in report["refiners"]} == refiners, \
        f"a refiner changed after docs/results/{run} was made: rerun it (scripts/run_benchmarks.sh)"


@pytest.mark.parametrize("brain", ["heldout", "colin27"])
def test_both_held_out_brains_compare_the_app_default_with_every_classical_fill(collect, brain):
    report = collect.load_runs()[brain]
    assert report["default_method"] == default_method_name(default_model_name())
    assert set(collect.CLASSICAL) <= set(report["summary"])
    assert set(collect.LESION_SIZED) <= set(report["families"])
    if FillSettings().method == "refine3d":
        shipped = sha256_file(REFINER / "model.safetensors")
        assert report["refiner"]["sha256"] == shipped, f"the refiner changed after docs/results/{brain} was made"


def test_readme_quotes_the_committed_results(collect):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = collect.readme_block(collect.load_runs(), collect.load_downstream(), collect.load_cohort())
    start = readme.index(collect.BEGIN)
    assert readme[start:start + len(expected)] == expected, "README results are stale: run scripts/collect_results.py"


def test_the_results_page_is_what_the_committed_runs_give(collect):
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert page == collect.results_markdown(collect.load_runs()), \
        "docs/results.md is stale or edited by hand: edit docs/results/downstream/README.md or the runs, then run scripts/collect_results.py"


def test_model_cards_quote_the_committed_results(collect):
    runs = collect.load_runs()
    checked = 0
    for run in ("k3", "k7"):
        for model in runs[run]["models"]:
            card = (ROOT / "resources" / "models" / model / "MODEL_CARD.md").read_text(encoding="utf-8")
            section = card[card.index(collect.HELD_OUT):]
            assert section == collect.card_section(model, runs[run], run, runs), f"{model}'s card is stale"
            checked += 1
    assert checked == len(list_models())


def test_the_stated_spread_comes_from_the_same_cases_as_the_stated_difference(collect):
    for run, report in collect.load_runs().items():
        if run not in ("heldout", "colin27"):
            continue
        check = collect.target_check(report)
        for family, row in check["families"].items():
            diffs = collect.paired_differences(report, family, report["default_method"], row["best"])
            assert len(diffs) == report["summary"][row["best"]][family]["n"] >= 2
            assert abs(sum(diffs) / len(diffs) - row["dpsnr"]) < 1e-9, f"{run} {family}: cases and summary disagree"
            assert 0.0 < row["se"] < 10.0
    assert collect.standard_error([1.0, 3.0]) == 1.0 and math.isnan(collect.standard_error([2.0]))


@pytest.mark.parametrize("run, slice_mm", [("heldout_cohort", None), ("heldout_cohort_large", None),
                                            ("heldout_cohort_edge10", None), ("heldout_cohort_peri10", None),
                                            ("heldout_cohort_thick3", 3.0)])
def test_the_held_out_cohort_runs_scored_the_shipped_refiners_at_native_resolution(collect, run, slice_mm):
    from core.refine3d import shipped_refiners

    report = collect.load_cohort(run)
    assert report is not None, f"docs/results/{run} is missing: run scripts/run_benchmarks.sh"
    assert {r["sha256"] for r in report["refiners"]} == {r.checksum for r in shipped_refiners()}
    located = run.endswith(("edge10", "peri10"))   # lesions at one kind of place: against biharmonic-3d only
    needed = {"refine3d", "biharmonic-3d"} | (set() if located else {"biharmonic-3d-mm"})
    assert needed <= set(report["methods"]) and len(report["scans"]) == 8
    # at the scans' own voxel sizes (ds002748, ds000011), not resampled; the thick copies with 3 mm slices
    native = {(0.868, 0.868, 1.0), (1.0, 1.333, 1.333)}
    expected = native if slice_mm is None else {(x, y, slice_mm) for x, y, _ in native}
    assert {tuple(c["voxel_mm"]) for c in report["cases"]} == expected



def test_the_cohort_downstream_run_scored_the_shipped_weights():
    report = json.loads((ROOT / "docs" / "results" / "downstream_cohort" / "downstream.json").read_text(encoding="utf-8"))
    assert {r["name"]: r["sha256"] for r in report["refiners"]} == {r.name: r.checksum for r in shipped_refiners()}, \
        "a shipped refiner changed after docs/results/downstream_cohort was made"
    shipped = {m.name: sha256_file(m.path / "model.safetensors") for m in list_models()}
    assert report["models"] and all(shipped.get(name) == entry["weights_sha256"] for name, entry in report["models"].items())
    assert report["default_method"] == default_method_name(default_model_name()) and len(report["brains"]) == 8
