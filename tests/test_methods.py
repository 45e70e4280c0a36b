"""Fill methods as plug-ins: the registry, declared parameters, a new method through the fill, the command line,
the sidecar and the app's settings form, and the Python API's default fill without a slice model."""

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import synthetic_brain
from core.checkpoint import load_model
from core.cli import build_parser, main
from core.errors import InpaintError
from core.fill import FillSettings, fill_volume
from core.inputs import hole_box
from core.methods import METHODS, FillMethod, MethodFill, Parameter, Run, Slab, register

LAS = np.array([[-2.0, 0, 0, 40], [0, 2, 0, -48], [0, 0, 2, -36], [0, 0, 0, 1]])


class Mean3D(FillMethod):
    """The example of docs/ARCHITECTURE.md: each lesion filled with the mean of the known shell around it."""

    name = "mean3d"
    description = "each lesion filled with the mean of the known voxels around it"
    parameters = (Parameter("shell", 1, "Shell", "width in voxels of the shell of known voxels averaged",
                            low=1, high=3),)

    def box(self, hole, affine, axis):
        return hole_box(hole, margin=3)  # room for the widest shell

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        filled = slab.voided.copy()
        labels, count = ndimage.label(slab.hole, structure=np.ones((3, 3, 3)))
        for lesion in range(1, count + 1):
            inside = labels == lesion
            shell = ndimage.binary_dilation(inside, iterations=run.value("shell")) & ~slab.hole
            filled[inside] = slab.voided[shell].mean()
        return MethodFill(filled=filled)


@pytest.fixture
def mean3d():
    register(Mean3D())
    yield METHODS["mean3d"]
    del METHODS["mean3d"]


def _hole(shape):
    hole = np.zeros(shape, bool)
    hole[14:20, 18:24, 15:18] = True
    hole[28:31, 30:33, 20:23] = True  # a second lesion
    return hole


def _expected_mean3d(image, hole, shell):
    """Each lesion's known shell mean, computed on the whole volume in file order."""
    expected = image.copy()
    labels, count = ndimage.label(hole, structure=np.ones((3, 3, 3)))
    for lesion in range(1, count + 1):
        inside = labels == lesion
        around = ndimage.binary_dilation(inside, iterations=shell) & ~hole
        expected[inside] = image[around].mean()
    return expected


def test_declared_defaults_are_the_settings_defaults_and_every_field_parameter_is_checked() -> None:
    defaults = FillSettings()
    for method in METHODS.values():
        for parameter in method.parameters:
            assert parameter.default == getattr(defaults, parameter.name), (method.name, parameter.name)
            assert type(parameter.default) is type(getattr(defaults, parameter.name))
    assert set(METHODS) == {"slices2d", "poisson3d", "refine3d", "biharmonic3d"}
    assert METHODS["refine3d"].needs_refiner and not METHODS["refine3d"].needs_model
    assert not (METHODS["biharmonic3d"].needs_refiner or METHODS["biharmonic3d"].needs_model)
    assert all(METHODS[m].needs_model for m in ("slices2d", "poisson3d"))


def test_a_registered_method_fills_through_fill_volume(mean3d) -> None:
    image = synthetic_brain()
    hole = _hole(image.shape)
    for shell in (1, 2):
        result = fill_volume(image, LAS, hole, settings=FillSettings(method="mean3d", extra=(("shell", shell),)))
        expected = _expected_mean3d(image, hole, shell)
        assert np.allclose(result.filled, expected, rtol=1e-6)
        assert np.array_equal(result.filled[~hole], image[~hole])
        assert np.array_equal(result.generated_hole, result.filled[hole])
        assert result.refiner is None and result.uncertainty is None and result.final_loss == {}
        assert result.settings.value("shell") == shell and result.settings.to_dict()["shell"] == shell
    assert FillSettings(method="mean3d").value("shell") == 1  # the declared default
    with pytest.raises(InpaintError, match="shell"):
        FillSettings(method="mean3d", extra=(("shell", 9),))
    with pytest.raises(InpaintError, match="no parameter 'shell'"):
        FillSettings(method="slices2d", extra=(("shell", 2),))


def test_a_registered_method_gets_its_options_and_sidecar(mean3d, brain_files, tmp_path, capsys) -> None:
    image_path, mask_path, hole = brain_files
    parser = build_parser()
    args = parser.parse_args(["fill", str(image_path), str(mask_path), "-o", "x.nii.gz", "--method", "mean3d",
                              "--shell", "2"])
    assert args.shell == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["fill", "--help"])
    assert "--shell SHELL mean3d: width in voxels" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["fill", str(image_path), str(mask_path), "-o", "x.nii.gz", "--shell", "9"])
    assert exit_info.value.code == 2
    out = tmp_path / "filled.nii.gz"
    assert main(["fill", str(image_path), str(mask_path), "-o", str(out), "--method", "mean3d", "--shell", "2",
                 "--quiet"]) == 0
    sidecar = json.loads(out.with_name("filled.json").read_text())
    assert sidecar["method"] == {"name": "mean3d", "description": Mean3D.description, "refiner": None}
    assert sidecar["parameters"]["shell"] == 2 and sidecar["parameters"]["method"] == "mean3d"


def test_the_settings_form_shows_only_the_chosen_methods_fields(mean3d, qtbot) -> None:
    from inpaint_gui.settings_form import SettingsForm

    form = SettingsForm()
    qtbot.addWidget(form)
    form.method.setCurrentIndex(form.method.findData("mean3d"))
    assert form.shell.isVisibleTo(form)
    assert not any(w.isVisibleTo(form) for w in (form.model, form.mirror, form.iterations, form.blend))
    form.shell.setValue(3)
    settings = form.fill_settings(0)
    assert settings.method == "mean3d" and settings.extra == (("shell", 3),)
    form.method.setCurrentIndex(form.method.findData("refine3d"))
    assert form.mirror.isVisibleTo(form) and not form.shell.isVisibleTo(form)
    assert form.fill_settings(0).extra == ()


def test_a_parameter_named_like_the_forms_own_attributes_leaves_the_form_working(qtbot) -> None:
    """A plug-in's parameter `chosen` replaced the form's method of that name: the app could not build its window."""
    from inpaint_gui.settings_form import SettingsForm

    class Chosen(Mean3D):
        name = "chosen3d"
        parameters = (Parameter("chosen", 2, "Chosen", "a name the form uses itself", low=1, high=3),)

    register(Chosen())
    try:
        form = SettingsForm()
        qtbot.addWidget(form)
        form.method.setCurrentIndex(form.method.findData("chosen3d"))
        assert form.chosen().name == "chosen3d" and form.parameters["chosen"].isVisibleTo(form)
        assert form.fill_settings(0).extra == (("chosen", 2),)
    finally:
        del METHODS["chosen3d"]


def test_the_api_fills_with_the_default_method_without_a_slice_model(tiny_vae, monkeypatch) -> None:
    import core.registry

    image = synthetic_brain()
    hole = _hole(image.shape)
    with_model = fill_volume(image, LAS, hole, load_model(tiny_vae), FillSettings())
    monkeypatch.setattr(core.registry, "resolve_model", lambda *a: pytest.fail("refine3d loaded a slice model"))
    default = fill_volume(image, LAS, hole)
    assert default.settings == FillSettings() and default.axis == "axial"
    assert np.array_equal(default.filled, with_model.filled) and default.refiner == with_model.refiner
    monkeypatch.setattr(core.registry, "resolve_model", lambda *a: load_model(tiny_vae))  # loaded when needed
    lazily = fill_volume(image, LAS, hole, settings=FillSettings(method="slices2d", iterations=2, restarts=1))
    assert np.array_equal(lazily.filled, fill_volume(image, LAS, hole, load_model(tiny_vae),
                                                     FillSettings(method="slices2d", iterations=2, restarts=1)).filled)


class Careless(FillMethod):
    """A plug-in with two bugs: it normalises the whole volume in place, and (`nan`) returns NaN in the hole."""

    name = "careless"
    description = "a method with bugs"
    parameters = (Parameter("nan", False, "NaN", "return NaN in the hole"),)

    def fill(self, slab: Slab, run: Run) -> MethodFill:
        filled = slab.voided.copy()
        if run.value("nan"):
            filled[slab.hole] = np.nan
        else:
            slab.volume[slab.volume > 0] += 5
        return MethodFill(filled=filled)


def test_a_method_cannot_change_the_callers_image_and_its_nan_is_blamed_on_it(tiny_vae) -> None:
    """The whole volume a method sees is read-only (a write once changed the caller's array and every voxel of the
    output); NaN from a method without a slice model names the method, not a model it never used."""
    register(Careless())
    try:
        image = synthetic_brain()
        before = image.copy()
        with pytest.raises(ValueError, match="read-only"):
            fill_volume(image, LAS, _hole(image.shape), None, FillSettings(method="careless"))
        assert np.array_equal(image, before)
        with pytest.raises(InpaintError, match=r"^The fill method careless produced 135 NaN or infinite values in the hole"):
            fill_volume(image, LAS, _hole(image.shape), load_model(tiny_vae),
                        FillSettings(method="careless", extra=(("nan", True),)))
    finally:
        del METHODS["careless"]


def test_biharmonic3d_is_the_benchs_biharmonic_3d_mm_and_reads_no_network(brain_files, tmp_path, capsys) -> None:
    """The classical fill alone, for images the networks never learned: the bench's strongest classical baseline
    on anisotropic voxels, through the command line, with a sidecar that names no model or refiner."""
    from core.baselines import biharmonic_3d_mm_fill
    from core.modelspace import Reorientation, voxel_sizes

    image = synthetic_brain()
    hole = _hole(image.shape)
    affine = np.diag([-1.0, 1.33, 1.33, 1.0])   # 1 x 1.33 x 1.33 mm, as the ds000011 scans
    result = fill_volume(image, affine, hole, None, FillSettings(method="biharmonic3d"))
    reo = Reorientation.of(affine, image.shape)
    expected = reo.undo(biharmonic_3d_mm_fill(reo.apply(image), reo.apply(hole), voxel_sizes(reo.ras_affine)))
    np.testing.assert_allclose(result.filled[hole], expected[hole], rtol=1e-5, atol=1e-4)
    assert np.array_equal(result.filled[~hole], image[~hole]) and result.refiner is None
    image_path, mask_path, _ = brain_files
    out = tmp_path / "classical.nii.gz"
    assert main(["fill", str(image_path), str(mask_path), "-o", str(out), "--method", "biharmonic3d", "--quiet"]) == 0
    record = json.loads((tmp_path / "classical.json").read_text())
    assert record["method"]["name"] == "biharmonic3d" and record["method"]["refiner"] is None
    assert "model" not in record and record["parameters"] == {"method": "biharmonic3d", "device": "auto"}
    assert main(["fill", str(image_path), str(mask_path), "-o", str(tmp_path / "x.nii.gz"), "--method",
                 "biharmonic3d", "--mirror", "0"]) == 2     # an option it does not read is refused
    assert "--mirror is read only by --method refine3d" in capsys.readouterr().err
