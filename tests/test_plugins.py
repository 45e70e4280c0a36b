"""Fill methods from other installed packages (entry points `brain_inpaint.methods`): found by `inpaint`, usable
like the built-in ones, and a broken one left out in one sentence without harming the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from core.cli import build_parser
from core.methods import METHODS, parameters, plugins

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    import numpy as np
    from scipy import ndimage

    from core.methods import FillMethod, MethodFill, Parameter


    class ShellMean(FillMethod):
        name = "shellmean"
        description = "each hole voxel the mean of the known voxels within a few voxels"
        parameters = (Parameter("ring", 1, "Ring", "width of the shell in voxels", low=1, high=4),)

        def fill(self, slab, run):
            filled = slab.voided.copy()
            shell = ndimage.binary_dilation(slab.hole, iterations=run.value("ring")) & ~slab.hole
            filled[slab.hole] = slab.voided[shell].mean()
            return MethodFill(filled=filled)


    class Clash(ShellMean):
        name = "refine3d"


    class TakesOutput(ShellMean):
        name = "takesoutput"
        parameters = (Parameter("output", 1, "Output", "a name the command line uses", low=1, high=2),)


    class WiderRing(ShellMean):
        name = "widerring"
        parameters = (Parameter("ring", 2, "Ring", "the same name, another meaning", low=1, high=9),)


    class OptionDilate(ShellMean):
        name = "optiondilate"
        parameters = (Parameter("shellwidth", 1, "Width", "an option the command line uses", low=1, high=2,
                                option="dilate"),)


    class TextDefault(ShellMean):
        name = "textdefault"
        parameters = (Parameter("mode", "fast", "Mode", "a word, not a number"),)


    class TakesExtra(ShellMean):
        name = "takesextra"
        parameters = (Parameter("extra", 1, "Extra", "a setting's name", low=1, high=2),)


    class Raises(ShellMean):
        name = "raises"
        parameters = ()

        def fill(self, slab, run):
            raise RuntimeError("plug-in bug\\nsecond line")


    class WrongShape(ShellMean):
        name = "wrongshape"
        parameters = ()

        def fill(self, slab, run):
            return MethodFill(filled=slab.voided[:-1])


    NOT_A_METHOD = 3
''')
ENTRY_POINTS = {"shellmean": "demo_plugin:ShellMean", "broken": "demo_plugin_missing:Nothing",
                "clash": "demo_plugin:Clash", "takesoutput": "demo_plugin:TakesOutput",
                "widerring": "demo_plugin:WiderRing", "number": "demo_plugin:NOT_A_METHOD",
                "optiondilate": "demo_plugin:OptionDilate", "textdefault": "demo_plugin:TextDefault",
                "takesextra": "demo_plugin:TakesExtra", "raises": "demo_plugin:Raises",
                "wrongshape": "demo_plugin:WrongShape"}


@pytest.fixture
def site(tmp_path) -> Path:
    """An installed package as pip leaves it: its module and its .dist-info with the entry points."""
    folder = tmp_path / "site"
    info = folder / "demo_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (folder / "demo_plugin.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\n{lines}")
    return folder


def _inpaint(site: Path, *argv) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=site.parent, env=env,
                          capture_output=True, text=True, timeout=300)


def test_an_installed_plugin_fills_and_broken_ones_are_left_out_in_one_sentence(site, brain_files, tmp_path):
    listed = _inpaint(site, "models")
    assert listed.returncode == 0, listed.stderr
    assert ("fill methods: slices2d, poisson3d, refine3d, biharmonic3d, raises (plug-in from demo-plugin 0.1), "
            "shellmean (plug-in from demo-plugin 0.1), wrongshape (plug-in from demo-plugin 0.1)") in listed.stdout
    notes = listed.stderr.strip().splitlines()
    assert notes == [
        "inpaint: note: The fill method plug-in broken (demo-plugin 0.1) is left out: ModuleNotFoundError: No "
        "module named 'demo_plugin_missing'; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in clash (demo-plugin 0.1) is left out: a method named refine3d "
        "exists already; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in number (demo-plugin 0.1) is left out: demo_plugin:NOT_A_METHOD is "
        "not a FillMethod subclass or instance; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in optiondilate (demo-plugin 0.1) is left out: its parameter shellwidth "
        "would take the command line's option or setting dilate; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in takesextra (demo-plugin 0.1) is left out: its parameter extra would "
        "take the command line's option or setting extra; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in takesoutput (demo-plugin 0.1) is left out: its parameter output "
        "would take the command line's option or setting output; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in textdefault (demo-plugin 0.1) is left out: its parameter mode has a "
        "default of str; a parameter is a number or a switch; update or uninstall demo-plugin 0.1.",
        "inpaint: note: The fill method plug-in widerring (demo-plugin 0.1) is left out: its parameter ring "
        "differs from another method's of that name; update or uninstall demo-plugin 0.1."]
    image_path, mask_path, hole = brain_files
    out = tmp_path / "filled.nii.gz"
    done = _inpaint(site, "fill", image_path, mask_path, "-o", out, "--method", "shellmean", "--ring", "2",
                    "--quiet")
    assert done.returncode == 0, done.stderr
    image = np.asarray(nib.load(image_path).dataobj)
    filled = np.asarray(nib.load(out).dataobj)
    assert np.array_equal(filled[~hole], image[~hole]) and np.unique(filled[hole]).size == 1
    record = json.loads(out.with_suffix("").with_suffix(".json").read_text())
    assert record["method"]["name"] == "shellmean" and record["parameters"]["ring"] == 2
    assert record["method"]["plugin"] == "demo-plugin 0.1"
    for name, said in (("raises", "failed (RuntimeError: plug-in bug); nothing was written: choose another "
                                  "method or report it to its authors."),
                       ("wrongshape", "returned a fill of shape")):
        broken = _inpaint(site, "fill", image_path, mask_path, "-o", tmp_path / f"{name}.nii.gz", "--method", name)
        lines = [line for line in broken.stderr.splitlines() if not line.startswith("inpaint: note:")]
        assert broken.returncode == 2 and len(lines) == 1 and said in lines[0], broken.stderr
        assert f"The fill method {name} (plug-in from demo-plugin 0.1)" in lines[0]
        assert not (tmp_path / f"{name}.nii.gz").exists()
    default = _inpaint(site, "fill", image_path, mask_path, "-o", tmp_path / "default.nii.gz", "--quiet")
    assert default.returncode == 0, default.stderr   # the built-in default is untouched by the broken plug-ins


def test_without_plugins_nothing_is_said(site, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = _inpaint(empty, "models")
    assert listed.returncode == 0 and listed.stderr == ""
    assert "fill methods: slices2d, poisson3d, refine3d, biharmonic3d\n" in listed.stdout


def test_the_reserved_names_cover_every_option_and_setting_that_is_not_a_method_parameter():
    import dataclasses

    from core.fill import FillSettings

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    actions = [action for name in ("fill", "bids") for action in commands[name]._actions]
    words = {action.dest for action in actions} | {option.lstrip("-").replace("-", "_") for action in actions
                                                    for option in action.option_strings}
    own = set(parameters()) | {p.flag.lstrip("-").replace("-", "_") for p in parameters().values()}
    assert words - own <= plugins.RESERVED
    assert {f.name for f in dataclasses.fields(FillSettings)} - set(parameters()) <= plugins.RESERVED


class SlicesCopy(type(METHODS["slices2d"])):
    """The original study's method under another name: the latent search's parameters, the same objects."""

    name = "slices2d_copy"


def test_a_plugin_reusing_a_built_in_parameter_object_is_taken(monkeypatch):
    points = [EntryPoint(name="copy", value=f"{__name__}:SlicesCopy", group=plugins.GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: points)
    registered = {}
    found = plugins.load(lambda method: registered.setdefault(method.name, method), dict(METHODS), parameters())
    assert found.problems == [] and list(registered) == ["slices2d_copy"]
    assert found.sources == {"slices2d_copy": f"{__name__}:SlicesCopy"}   # no distribution: its entry point


def test_a_cohort_filled_by_a_plugin_is_filled_again_when_the_plugin_is_upgraded(site, tmp_path):
    """The sidecar names the plug-in's package and version, and `inpaint bids` compares it like a model checksum."""
    from conftest import load_script

    measure = load_script("measure_bids")
    bids, masks = measure.build_cohort(tmp_path / "cohort", measure.EXAMPLE_SCANS[:1], crop=measure.EXAMPLE_CROP)
    out = tmp_path / "filled"
    run = ["bids", bids, out, "participant", "--masks", masks, "--method", "shellmean", "--quiet"]
    first = _inpaint(site, *run)
    assert first.returncode == 0, first.stderr
    again = _inpaint(site, *run)
    assert again.returncode == 0 and "skipped" in (out / "desc-filled_scans.tsv").read_text()
    metadata = site / "demo_plugin-0.1.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 0.1", "Version: 0.2"))
    upgraded = _inpaint(site, *run)
    assert upgraded.returncode == 0, upgraded.stderr
    table = (out / "desc-filled_scans.tsv").read_text()
    assert "\tfilled\t" in table and "the plug-in method's package changed" in table
