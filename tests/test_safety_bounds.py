"""Issue 26, the fill side: bounded work on odd values, every file a run reads protected, pairs that
survive a kill, Ctrl+C during SimpleITK work, and sentences that say what is true.

The command-line cases run in one child process (the driver of `test_safety_cli`); kills and
interrupts get a child of their own, each with a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import make_tiny_model, synthetic_brain
from core.checkpoint import load_model
from core.errors import InpaintError
from core.fill import FillSettings, fill_volume
from core.inputs import MAX_HOLE_VOXELS, check_affine
from core.refine3d import Refiner, Refiner3D, RefinerConfig
from core.targets import check_outputs, input_files
from core.volume import load_volume
from test_safety_cli import AFFINE, DRIVER, FAST, _lesion, _model_variant, _nifti, _one_sentence, _poison

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
SHAPE = (40, 48, 36)
FAST_API = FillSettings(method="slices2d", iterations=2, restarts=1, device="cpu")


def _scaled(voxel_mm: float) -> np.ndarray:
    affine = AFFINE.copy()
    affine[:3, :3] *= voxel_mm / 2.0
    return affine


def _itk_image(folder: Path) -> sitk.Image:
    """The synthetic brain as a SimpleITK image, for headers of every data-file form."""
    image = sitk.GetImageFromArray(synthetic_brain(SHAPE).transpose(2, 1, 0).copy())
    image.SetSpacing((2.0, 2.0, 2.0))
    lesion = sitk.GetImageFromArray(_lesion(SHAPE).transpose(2, 1, 0).copy())
    lesion.CopyInformation(image)
    sitk.WriteImage(lesion, str(folder / "lmask.nrrd"))
    return image


def _slices(image: sitk.Image, folder: Path, names: list[str]) -> None:
    data = sitk.GetArrayFromImage(image).astype("<f4")
    for z, name in enumerate(names):
        (folder / name).write_bytes(data[z].tobytes())


def _mhd(folder: Path, name: str, data_file: str, extra: str = "") -> Path:
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              "ElementSpacing = 2 2 2\nDimSize = 40 48 36\nElementType = MET_FLOAT\n"
              f"ElementDataFile = {data_file}\n{extra}")
    (folder / name).write_text(header)
    return folder / name


def _prepare(folder: Path, name: str, models: dict[str, Path]) -> list[str]:
    """The inputs of one case; returns its argv (after `fill`)."""
    image, lesion = synthetic_brain(SHAPE), _lesion(SHAPE)
    if name.startswith("voxels_"):
        size = float(name.split("_")[1])
        _nifti(folder / "img.nii.gz", image, _scaled(size))
        _nifti(folder / "les.nii.gz", lesion, _scaled(size))
        return ["img.nii.gz", "les.nii.gz", "-o", "o.nii.gz", "--quiet"]
    _nifti(folder / "img.nii.gz", image)
    _nifti(folder / "les.nii.gz", lesion)
    if name in ("nan_sform_image", "nan_sform_mask"):
        target = folder / ("img.nii.gz" if name.endswith("image") else "les.nii.gz")
        stored = nib.load(target)
        header = stored.header.copy()
        header["srow_x"][3] = np.nan
        nib.save(nib.Nifti1Image(np.asarray(stored.dataobj), None, header), target)
        return ["img.nii.gz", "les.nii.gz", "-o", "o.nii.gz", "--quiet"]
    if name == "values_near_float32_max":
        _nifti(folder / "img.nii.gz", image * np.float32(3e38 / image.max()))
        return ["img.nii.gz", "les.nii.gz", "-o", "o.nii.gz", "--quiet"]
    if name.startswith("mhd_") or name == "nrrd_detached":
        itk = _itk_image(folder)
        if name == "mhd_list":  # ElementDataFile = LIST 2D: one file per slice, one of them named o.json
            names = [f"s{z:02d}.raw" for z in range(SHAPE[2])]
            names[7] = "o.json"
            _slices(itk, folder, names)
            _mhd(folder, "in.mhd", "LIST 2D", "\n".join(names) + "\n")
            return ["in.mhd", "lmask.nrrd", "-o", "o.nii.gz", "--force"] + FAST
        if name == "mhd_pattern":  # ElementDataFile = o%d.json 0 35 1: slice 7 is the sidecar of o7.nii.gz
            _slices(itk, folder, [f"o{z}.json" for z in range(SHAPE[2])])
            _mhd(folder, "in.mhd", "o%d.json 0 35 1")
            return ["in.mhd", "lmask.nrrd", "-o", "o7.nii.gz", "--force"] + FAST
        sitk.WriteImage(itk, str(folder / "in.nhdr"), False)  # then renamed to .nrrd, its data file to o.json
        text = (folder / "in.nhdr").read_text().replace("in.raw", "o.json")
        (folder / "in.raw").rename(folder / "o.json")
        (folder / "in.nrrd").write_text(text)
        (folder / "in.nhdr").unlink()
        return ["in.nrrd", "lmask.nrrd", "-o", "o.nii.gz", "--force"] + FAST
    if name == "model_config":
        return ["img.nii.gz", "les.nii.gz", "-o", str(models["copy"] / "config.nii.gz"), "--force",
                "--model", str(models["copy"])] + FAST
    if name == "non_utf8_name":
        raw = os.fsencode(str(folder)) + b"/sub-\xff_T1w.nii.gz"
        os.rename(folder / "img.nii.gz", raw)
        return [os.fsdecode(raw), "les.nii.gz", "-o", "o.nii.gz"] + FAST
    raise AssertionError(name)


CASES = {
    "voxels_50": (2, "0.05-20 mm"), "voxels_1000": (2, "0.05-20 mm"), "voxels_1e6": (2, "0.05-20 mm"),
    "voxels_1e-6": (2, "0.05-20 mm"), "nan_sform_image": (2, "img.nii.gz"), "nan_sform_mask": (2, "les.nii.gz"),
    "values_near_float32_max": (2, "rescale"), "mhd_list": (2, "o.json"), "mhd_pattern": (2, "o7.json"),
    "nrrd_detached": (2, "o.json"), "model_config": (2, "config"), "non_utf8_name": (0, ""),
}
KEPT = {"mhd_list": "o.json", "mhd_pattern": "o7.json", "nrrd_detached": "o.json"}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("bounds")
    models = {"tiny": make_tiny_model(root / "models" / "tiny")}
    models["copy"] = _model_variant(models["tiny"], root / "models" / "copy")
    argvs, before = {}, {}
    for name in CASES:
        folder = root / name
        folder.mkdir()
        argv = _prepare(folder, name, models)
        argvs[name] = ["fill"] + [str(folder / a) if (folder / a).exists() or a.startswith("o") else a
                                  for a in argv] + (["--model", str(models["tiny"])]
                                                    if "--method" in argv and "--model" not in argv else [])
        kept = folder / KEPT[name] if name in KEPT else models["copy"] / "config.json"
        before[name] = kept.read_bytes()
    cases_file, results_file = root / "cases.json", root / "results.json"
    cases_file.write_text(json.dumps(argvs))
    run = subprocess.run([sys.executable, "-c", DRIVER, str(cases_file), str(results_file)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(results_file.read_text())
    for name in CASES:
        results[name].update(folder=root / name, before=before[name], model=models["copy"])
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_odd_input_gets_a_fill_or_one_true_sentence(name: str, outcomes) -> None:
    got, (code, words) = outcomes[name], CASES[name]
    assert got["code"] == code, got["err"]
    if code == 2:
        line = _one_sentence(got["err"])
        assert words in line and "nan mm" not in line and "singular" not in line, line
    kept = got["folder"] / KEPT[name] if name in KEPT else got["model"] / "config.json"
    assert kept.read_bytes() == got["before"], f"{kept} was written"


def test_a_non_utf8_file_name_is_escaped_in_the_sidecar_for_strict_readers(outcomes) -> None:
    text = (outcomes["non_utf8_name"]["folder"] / "o.json").read_bytes().decode("utf-8")

    def strict(value):  # what a strict reader (no lone surrogates) requires of every string
        if isinstance(value, str):
            value.encode("utf-8")
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else []:
            strict(item)

    record = json.loads(text)
    strict(record)
    assert record["input"]["path"].endswith("sub-\\xff_T1w.nii.gz") and "xNN" in record["escaped_file_names"]


@pytest.mark.parametrize("affine, words", [
    (np.diag([1e-6, 1e-6, 1e-6, 1.0]), "0.05-20 mm"),
    (np.diag([60.0, 60.0, 60.0, 1.0]), "0.05-20 mm"),
    (np.diag([2.0, 0.0, 2.0, 1.0]), "singular"),
])
def test_the_api_states_the_supported_voxel_sizes(affine, words) -> None:
    with pytest.raises(InpaintError, match=words):
        check_affine(affine)


def test_every_data_file_form_of_a_header_is_protected(tmp_path: Path) -> None:
    listed = _mhd(tmp_path, "list.mhd", "LIST 3D", "a.raw\nsub/b.raw\n")
    pattern = _mhd(tmp_path, "pattern.mha", "s%03d.raw 2 10 4")
    nrrd = tmp_path / "detached.nrrd"
    nrrd.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 2 2 2\ndata file: LIST\nx.raw\ny.raw\n")
    names = {p: {f.relative_to(tmp_path).as_posix() for f, _ in input_files(p)} for p in (listed, pattern, nrrd)}
    assert {"a.raw", "sub/b.raw"} <= names[listed]
    assert {"s002.raw", "s006.raw", "s010.raw"} <= names[pattern] and "s003.raw" not in names[pattern]
    assert {"x.raw", "y.raw"} <= names[nrrd]
    assert "pair.img" in {f.name for f, _ in input_files(tmp_path / "pair.hdr")}


def _brain_and_hole() -> tuple[np.ndarray, np.ndarray]:
    image = synthetic_brain(SHAPE)
    return image, _lesion(SHAPE) > 0


def test_a_failing_refiner_is_named_not_the_slice_model(tiny_vae) -> None:
    network = Refiner3D(RefinerConfig())
    with torch.no_grad():
        for weight in network.parameters():
            weight.fill_(1e30)  # finite weights whose output overflows
    broken = Refiner(network=network.eval(), config=RefinerConfig(), name="broken", path=None, checksum="0")
    image, hole = _brain_and_hole()
    settings = FillSettings(method="refine3d", mirror=0.0, device="cpu")
    with pytest.raises(InpaintError) as error:
        fill_volume(image, AFFINE, hole, load_model(tiny_vae), settings, refiner=broken)
    assert "refiner broken" in str(error.value) and "--lr" not in str(error.value)


def test_a_lesion_too_large_for_bounded_work_is_refused_before_the_fill(tiny_vae) -> None:
    image, _ = _brain_and_hole()
    hole = np.zeros(SHAPE, bool)
    hole[5:35, 5:43, 5:31] = True  # 30 x 38 x 26 voxels of 20 mm: 33 million voxels on the 2 mm grid
    start = time.perf_counter()
    with pytest.raises(InpaintError, match="bounded time and memory"):
        fill_volume(image, _scaled(20.0), hole, load_model(tiny_vae), FillSettings(device="cpu"))
    assert time.perf_counter() - start < 10


def test_a_hole_beyond_the_voxel_bound_is_refused(tiny_vae) -> None:
    side = int(np.ceil((MAX_HOLE_VOXELS + 1) ** (1 / 3))) + 2
    image = np.full((side, side, side), 50.0, np.float32)
    hole = np.zeros(image.shape, bool)
    hole[1:-1, 1:-1, 1:-1] = True
    with pytest.raises(InpaintError, match="voxels, more than"):
        fill_volume(image, np.eye(4), hole, load_model(tiny_vae), FAST_API)


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


SPIN = r"""
import numpy as np, SimpleITK as sitk
from core.job import run_interruptibly
image = np.ones((20, 24, 20), np.float32)
image[5, 5, 5] = np.inf  # CenteredTransformInitializer never returns on this image
itk = sitk.GetImageFromArray(image)
print("started", flush=True)
run_interruptibly(lambda: sitk.CenteredTransformInitializer(itk, itk, sitk.Euler3DTransform(),
                  sitk.CenteredTransformInitializerFilter.MOMENTS))
"""


def test_ctrl_c_stops_simpleitk_work_within_seconds() -> None:
    child = _child(SPIN)
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = child.communicate(timeout=10)
        assert time.monotonic() - start < 5 and "KeyboardInterrupt" in err
    finally:
        child.kill()
        child.wait(timeout=30)


REFLECT = r"""
import numpy as np
from conftest import synthetic_brain
from core.mirror import find_reflection
image = synthetic_brain((40, 48, 36))
image = (image / image.max() * 3e38).astype(np.float32)  # finite, near float32's largest value
hole = np.zeros(image.shape, bool)
hole[16:22, 20:26, 15:18] = True
print(find_reflection(image, hole, (2.0, 2.0, 2.0), 0).correlation)
"""


def test_the_mirror_registration_finishes_on_values_near_float32_max() -> None:
    child = subprocess.Popen([sys.executable, "-c", REFLECT], cwd=ROOT / "tests", env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0 and float(out) > 0.5, err
    finally:
        child.kill()
        child.wait(timeout=30)


KILLED_COMMIT = r"""
import os, sys, time
from pathlib import Path
import core.atomic
from core.volume import load_volume, save_volume
real = os.replace
def slow(source, target):
    real(source, target)
    if str(target).endswith(".json"):
        print("renamed", flush=True)
        time.sleep(60)
core.atomic.os.replace = slow
folder = Path(sys.argv[1])
like = load_volume(folder / "in.nii.gz")
save_volume(folder / "o.nii.gz", like.data + 1, like, sidecar={"made": "now"})
"""


def test_a_pair_half_placed_by_sigkill_is_completed_by_the_next_run(tmp_path: Path) -> None:
    _nifti(tmp_path / "in.nii.gz", synthetic_brain((8, 9, 7)))
    child = _child(KILLED_COMMIT, str(tmp_path))
    try:
        assert child.stdout.readline().strip() == "renamed", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert (tmp_path / "o.json").exists() and not (tmp_path / "o.nii.gz").exists()  # the half pair
    with pytest.raises(InpaintError, match="already exists"):
        check_outputs(tmp_path / "o.nii.gz", inputs=[tmp_path / "in.nii.gz"])
    assert json.loads((tmp_path / "o.json").read_text()) == {"made": "now"}
    filled = load_volume(tmp_path / "o.nii.gz").data
    assert np.array_equal(filled, load_volume(tmp_path / "in.nii.gz").data + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz", "o.json", "o.nii.gz"]


READ_ONLY = r"""
import ctypes, os, sys
if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that override permissions
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        assert libc.prctl(24, capability, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())  # PR_CAPBSET_DROP
    os.execv(sys.executable, [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main(sys.argv[1:]))"]
             + sys.argv[1:])
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_read_only_output_folder_is_refused_before_the_fill(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "tiny")
    exploding = _model_variant(model, tmp_path / "exploding", tensors=_poison(3e38, "decoder.blocks.1.weight"))
    _nifti(tmp_path / "img.nii.gz", synthetic_brain(SHAPE))
    _nifti(tmp_path / "les.nii.gz", _lesion(SHAPE))
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        child = _child(READ_ONLY, "fill", str(tmp_path / "img.nii.gz"), str(tmp_path / "les.nii.gz"), "-o",
                       str(out / "o.nii.gz"), "--model", str(exploding), *FAST)
        _, err = child.communicate(timeout=120)
    finally:
        out.chmod(0o755)
    assert child.returncode == 2 and "is not writable" in _one_sentence(err), err  # not the model's failure
    assert not list(out.iterdir())
