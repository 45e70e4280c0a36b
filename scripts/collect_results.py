"""Compose docs/results.md and the README's result tables from the bench runs of scripts/run_benchmarks.sh.

    python scripts/collect_results.py

Also rewrites the held-out section of each shipped model card. Run sizes, threads and wall
times are read from each run's results.json, so the text always
describes the runs it quotes. The README block between the `results:begin` and `results:end`
markers is generated here; tests/test_results_current.py checks that it matches the JSON and
that the JSON scored the weights now shipped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.training.card import HELD_OUT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
README = ROOT / "README.md"
MODELS = ROOT / "resources" / "models"
BEGIN, END = "<!-- results:begin (scripts/collect_results.py) -->", "<!-- results:end -->"
BASELINES = ("border-mean", "biharmonic", "fsl-style")
RUNS = [
    ("default", "Default model against classical lesion filling, and the reference search budget"),
    ("k3", "Kernel 3: VAE vs GAN, default pipeline and the original study's ablations"),
    ("k7", "Kernel 7: VAE vs GAN, default pipeline and the original study's ablations"),
    ("speed", "Search budget on an 8 mm cube: default vs the reference implementation's settings"),
]


def _demote(markdown: str, run: str) -> str:
    """Push headings two levels down and make figure links relative to docs/."""
    text = re.sub(r"^(#+)", lambda m: "#" * min(6, len(m.group(1)) + 2), markdown, flags=re.M)
    return re.sub(r"\]\((?!http)([^)]+\.png)\)", lambda m: f"](results/{run}/{m.group(1)})", text)


def _wall_seconds(report: dict) -> float | None:
    for note in report.get("notes", []):
        found = re.match(r"bench wall time ([\d.]+) s", note)
        if found:
            return float(found.group(1))
    return None


def _describe(run: str, report: dict) -> str:
    """One line: what the run covered, on how many threads, and how long it took."""
    wall = _wall_seconds(report)
    took = f"took {wall / 60:.0f} min" if wall is not None else "time not recorded"
    return (f"`{run}`: {report['settings']['cases_per_family']} case(s) per family over "
            f"{', '.join(report['families'])}; {len(report['methods'])} methods; "
            f"{report['machine']['torch_threads']} torch thread(s); {took}.")


def downstream_section() -> list[str]:
    """docs/results.md's downstream section: docs/results/downstream/README.md (the reading of the run, written by
    hand) followed by `inpaint bench --downstream`'s own tables, headings demoted."""
    folder = RESULTS / "downstream"
    if not (folder / "downstream.md").is_file():
        return []
    readme = folder / "README.md"
    head = (readme.read_text(encoding="utf-8").rstrip().split("\n") if readme.is_file()
            else ["## Downstream: tissue segmentation after filling simulated lesions"])
    tables = _demote((folder / "downstream.md").read_text(encoding="utf-8"), "downstream")
    return head + ["", "Raw: `docs/results/downstream/downstream.json`; command `inpaint bench --downstream`.", "",
                   tables.split("\n", 1)[1].lstrip("\n"), ""]


def load_runs() -> dict[str, dict]:
    """results.json of every run that exists, by run name."""
    return {run: json.loads((RESULTS / run / "results.json").read_text(encoding="utf-8"))
            for run, _ in RUNS if (RESULTS / run / "results.json").is_file()}


def _cell(row: dict | None) -> str:
    return "not run" if row is None else f"{row['psnr_hole']:.2f} / {row['ssim_hole']:.3f}"


def _family_table(rows: list[tuple[str, dict]], families: list[str]) -> list[str]:
    """Markdown: one row per (label, summary[method]) with in-hole PSNR / SSIM per family and s/slice."""
    lines = ["| method | all: PSNR / SSIM | " + " | ".join(families) + " | s/slice |",
             "| --- | --- | " + " | ".join("---" for _ in families) + " | ---: |"]
    for label, summary in rows:
        cells = [_cell(summary.get("all"))] + [_cell(summary.get(f)) for f in families]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {summary['all']['seconds_per_slice']:.2f} |")
    return lines


def _head_to_head(report: dict, method: str, baseline: str) -> str:
    """Per-case count of wins of `method` over `baseline` in in-hole PSNR and SSIM, naming the losses."""
    pairs = [(c["id"], c["results"][method], c["results"][baseline]) for c in report["cases"]
             if method in c["results"] and baseline in c["results"]]
    text = f"Case by case, `{method}` beats {baseline} on"
    for metric, unit in (("psnr_hole", "dB"), ("ssim_hole", "")):
        wins = [case for case, a, b in pairs if a[metric] > b[metric]]
        losses = [f"{case} {a[metric] - b[metric]:+.{2 if unit else 3}f}{(' ' + unit) if unit else ''}"
                  for case, a, b in pairs if a[metric] <= b[metric]]
        name = "PSNR" if metric == "psnr_hole" else "SSIM"
        text += f" {len(wins)} of {len(pairs)} cases in {name}" + (f" (not on {', '.join(losses)})" if losses else "")
        text += "," if metric == "psnr_hole" else "."
    return text


def _speed_lines(runs: dict[str, dict]) -> list[str]:
    """One paragraph per run and model with a default vs reference-settings comparison."""
    lines = []
    for run, report in runs.items():
        threads = report["machine"]["torch_threads"]
        for model, speed in report["speed"].items():
            lines += ["", f"Search budget, {', '.join(speed['cases'])} (`docs/results/{run}/`, {threads} torch "
                          f"thread(s)): `{model}` at the default settings took "
                          f"{speed['default_seconds_per_slice']:.2f} s per slice for "
                          f"{speed['default_psnr_hole']:.2f} dB / {speed['default_ssim_hole']:.3f}; at the reference "
                          f"implementation's settings (1000 iterations, 64 random restarts, no encoder start) "
                          f"{speed['reference_seconds_per_slice']:.0f} s per slice for "
                          f"{speed['reference_psnr_hole']:.2f} dB / {speed['reference_ssim_hole']:.3f} "
                          f"({speed['speedup']:.0f} times slower)."]
    return lines


def readme_block(runs: dict[str, dict]) -> str:
    """The README's generated result tables."""
    lines = [BEGIN]
    default_method = next((r["default_method"] for r in runs.values() if r.get("default_method")), None)
    if "default" in runs:
        report = runs["default"]
        cases = report["settings"]["cases_per_family"]
        lines += ["", f"Default pipeline against classical lesion filling ({cases} cases per family, in-hole "
                      "PSNR (dB) / SSIM, seconds per slice; `docs/results/default/`):", ""]
        rows = [(f"**{m}** (default)" if m == default_method else m, report["summary"][m])
                for m in report["methods"] if m in report["summary"] and not m.endswith("/reference")]
        lines += _family_table(rows, report["families"])
        if default_method in report["summary"] and "biharmonic" in report["summary"]:
            lines += ["", _head_to_head(report, default_method, "biharmonic")]
    lines += _speed_lines(runs)
    study = [runs[r] for r in ("k3", "k7") if r in runs]
    if study:
        cases = study[0]["settings"]["cases_per_family"]
        threads = study[0]["machine"]["torch_threads"]
        lines += ["", f"The original study's comparison ({cases} case(s) per family, {threads} torch thread(s) per "
                      "run; `docs/results/k3/`, `docs/results/k7/`):", ""]
        rows = []
        for report in study:
            rows += [(f"**{m}**" if m == default_method else m, report["summary"][m])
                     for m in report["methods"] if m.endswith("/default") and m in report["summary"]]
        for report in study:
            if default_method in report["methods"]:
                model = default_method.rsplit("/", 1)[0]
                rows += [(m, report["summary"][m]) for m in report["methods"] if m.startswith(model + "/")
                         and m != default_method and not m.endswith("/reference") and m in report["summary"]]
                rows += [(m, report["summary"][m]) for m in BASELINES if m in report["summary"]]
        lines += _family_table(rows, study[0]["families"])
    times = [f"`{run}` {_wall_seconds(report) / 60:.0f} min ({report['machine']['torch_threads']} thread(s))"
             for run, report in runs.items() if _wall_seconds(report) is not None]
    if times:
        lines += ["", f"Wall time of each run on the 2-core CPU: {', '.join(times)}."]
    lines.append(END)
    return "\n".join(lines)


def card_section(model: str, report: dict, run: str) -> str:
    """A model card's held-out section: its default pipeline beside biharmonic on the same held-out cases."""
    mine, base = report["summary"][f"{model}/default"], report["summary"]["biharmonic"]
    threads = report["machine"]["torch_threads"]
    lines = [HELD_OUT, "",
             f"From `inpaint bench` on the held-out subject (real adult T1, 2 mm, skull-stripped; never used for "
             f"training), {report['settings']['cases_per_family']} seeded case(s) per mask family, default pipeline "
             f"({report['settings']['default']['iterations']} iterations, {report['settings']['default']['restarts']} "
             f"restarts) vs biharmonic inpainting on the same masks. In-hole PSNR/SSIM with the BraTS 2023/24 "
             f"definition. Command: `bash scripts/run_benchmarks.sh` (run `{run}`, written into this card by "
             f"`python scripts/collect_results.py`); every table with the ablations: `docs/results.md`.", "",
             f"| family | PSNR hole (dB) | SSIM hole | biharmonic PSNR | biharmonic SSIM | s/slice ({threads} thread) | n |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for family in ["all"] + report["families"]:
        a, b = mine[family], base[family]
        lines.append(f"| {family} | {a['psnr_hole']:.2f} | {a['ssim_hole']:.4f} | {b['psnr_hole']:.2f} | "
                     f"{b['ssim_hole']:.4f} | {a['seconds_per_slice']:.2f} | {a['n']} |")
    lines += ["", "A few cases per family is a small sample: read differences under about 0.5 dB as ties.", ""]
    return "\n".join(lines)


def write_cards(runs: dict[str, dict]) -> None:
    """Replace the held-out section of every shipped model's card scored by the study runs."""
    for run in ("k3", "k7"):
        for model in runs.get(run, {}).get("models", {}):
            card = MODELS / model / "MODEL_CARD.md"
            if card.is_file() and f"{model}/default" in runs[run]["summary"]:
                text = card.read_text(encoding="utf-8")
                head = text[:text.index(HELD_OUT)] if HELD_OUT in text else text.rstrip("\n") + "\n\n"
                card.write_text(head + card_section(model, runs[run], run), encoding="utf-8")


def replace_block(text: str, block: str) -> str:
    """`text` with the generated block swapped in (markers included)."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main() -> None:
    by_name = load_runs()
    runs = [(run, title, by_name[run]) for run, title in RUNS if run in by_name]
    parts = ["# Results", "",
             "Every figure here comes from the held-out subject of `../shared/data` (a real adult T1 at 2 mm, "
             "skull-stripped with its brain mask), a brain no model was trained on. Regenerate with "
             "`bash scripts/run_benchmarks.sh && python scripts/collect_results.py`; `docs/bench.md` documents "
             "the mask families, methods, metrics and JSON schema; the README's Measured results section says what "
             "these tables mean. The runs, on a 2-core CPU:", ""]
    parts += [f"- {_describe(run, report)}" for run, _, report in runs]
    parts += ["",
              "Caveats: with a few cases per family, differences under about 0.5 dB are ties. The default "
              "pipeline keeps the original study's context weighting even where the binary-mask ablation "
              "scores higher: changing a default because of this subject's numbers would turn the only "
              "held-out brain into a tuning set. The `default` run had the machine to itself; the others ran "
              "with one torch thread each, side by side with other bench runs (`k3` beside `k7`; `speed` "
              "beside two more), so seconds per slice compare within a run, not across runs.", ""]
    parts += downstream_section()
    for run, title, _ in runs:
        path = RESULTS / run / "results.md"
        if path.is_file():
            parts += [f"## {title}", "", f"Raw: `docs/results/{run}/results.json`.", "",
                      _demote(path.read_text(encoding="utf-8"), run), ""]
    (ROOT / "docs" / "results.md").write_text("\n".join(parts), encoding="utf-8")
    README.write_text(replace_block(README.read_text(encoding="utf-8"), readme_block(by_name)), encoding="utf-8")
    write_cards(by_name)


if __name__ == "__main__":
    main()
