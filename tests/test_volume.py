"""core.volume: reading, writing and naming volumes without changing their geometry."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from core import jsonfiles as J
from core import targets as T
from core import volume as V
from core.errors import InpaintError

SHAPE = (6, 7, 5)
HELDOUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "heldout_subject" / "t1_2mm.nii.gz"  # ../shared


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


ORIENTATIONS = {
    "RAS": np.eye(3),
    "LAS": np.diag([-1.0, 1.0, 1.0]),
    "LPS": np.diag([-1.0, -1.0, 1.0]),
    "oblique": _rotation(0.3, -0.2, 0.5),
}
VOXELS = {"1mm": (1.0, 1.0, 1.0), "2mm": (2.0, 2.0, 2.0), "aniso": (0.9, 0.9, 3.0)}


def _affine(orientation: str = "LAS", voxel: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = ORIENTATIONS[orientation] @ np.diag(voxel)
    affine[:3, 3] = [12.5, -30.0, 7.25]
    return affine


def _write_nifti(path: Path, stored: np.ndarray, affine: np.ndarray, *, slope: float | None = None,
                 inter: float = 0.0, qcode: int = 1, scode: int = 1,
                 qform: np.ndarray | None = None) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(stored.dtype)
    header.set_qform(affine if qform is None else qform, code=qcode)
    header.set_sform(affine, code=scode)
    image = nib.Nifti1Image(stored, None, header)  # no affine: nibabel leaves both forms and codes as set
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    image.to_filename(str(path))
    return path


def _values(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 100.0, size=shape).astype(np.float32)


def _hole(shape=SHAPE) -> np.ndarray:
    hole = np.zeros(shape, dtype=bool)
    hole[2:4, 3:5, 1:3] = True
    return hole


def _disk_header(path: Path) -> nib.Nifti1Header:
    """The header as stored (nibabel's loaded header hides scl_slope/scl_inter)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        return nib.Nifti1Header.from_fileobj(stream)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_dicom_series(folder: Path, array_zyx: np.ndarray, spacing, origin) -> None:
    """One file per axial slice, with the geometry tags a reader needs."""
    folder.mkdir()
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid, study_uid = "1.2.826.0.1.3680043.2.1125.1.1", "1.2.826.0.1.3680043.2.1125.1.2"
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        tags = {
            "0008|0060": "MR",
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0018|0050": str(spacing[2]),
            "0028|0030": f"{spacing[1]}\\{spacing[0]}",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(plane)


# --- reading and writing back ------------------------------------------------------------

@pytest.mark.parametrize("voxel", VOXELS, ids=list(VOXELS))
@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=list(ORIENTATIONS))
def test_nifti_round_trip_keeps_geometry_and_values(tmp_path, orientation, voxel):
    affine = _affine(orientation, VOXELS[voxel])
    values = _values()
    source = _write_nifti(tmp_path / "in.nii.gz", values, affine)
    vol = V.load_volume(source)
    assert vol.shape == SHAPE and vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(vol.data, values)
    edited = vol.data.copy()
    edited[_hole()] = -5.0
    out = V.save_volume(tmp_path / "out.nii.gz", edited, vol)
    back = nib.load(str(out))
    assert back.shape == SHAPE and back.get_data_dtype() == np.float32
    assert np.array_equal(back.affine, vol.image.affine)
    assert np.array_equal(back.header.get_qform(), vol.image.header.get_qform())
    assert np.array_equal(back.header.get_sform(), vol.image.header.get_sform())
    np.testing.assert_array_equal(np.asarray(back.dataobj), edited)
    assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(affine)


@pytest.mark.parametrize("name", ["out.Nii", "out.Nii.gz", "out.Mha", "out.MHD", "out.Nrrd"])
def test_an_extension_in_a_case_the_readers_miss_is_one_sentence_for_outputs_and_inputs(tmp_path, name):
    """`out.Nii` was written as `out.nii` and `out.Mha` as an `.mhd` + `.zraw` pair, while the command named
    `out.Nii` and the sidecar a file that did not exist; nibabel and ITK cannot read such names either."""
    vol = V.load_volume(_write_nifti(tmp_path / "in.nii.gz", _values(), _affine("RAS", (1.0, 1.0, 1.0))))
    (tmp_path / "out").mkdir()
    with pytest.raises(InpaintError, match="write it as"):
        V.save_volume(tmp_path / "out" / name, vol.data, vol, sidecar={"a": 1})
    assert not list((tmp_path / "out").iterdir())
    (tmp_path / "in.nii.gz").rename(tmp_path / "in.Nii.gz")
    with pytest.raises(InpaintError, match="rename it"):
        V.load_volume(tmp_path / "in.Nii.gz")
    for fine in ("out.NII.GZ", "out.nii.GZ", "out.NRRD"):   # one case per part: read and written as named
        assert V.load_volume(V.save_volume(tmp_path / "out" / fine, vol.data, vol)).shape == vol.shape


def test_a_mask_without_orientation_says_so(tmp_path):
    """A mask with qform and sform codes 0 was refused as 'affines differ by up to 1.5 mm; resample the mask'."""
    vol = V.load_volume(_write_nifti(tmp_path / "in.nii.gz", _values(), _affine("LAS", (1.5, 1.5, 1.5))))
    mask = nib.Nifti1Image((_values() > 0).astype(np.uint8), None)
    mask.header.set_zooms((1.5, 1.5, 1.5))
    mask.set_qform(None, code=0)
    mask.set_sform(None, code=0)
    nib.save(mask, tmp_path / "mask.nii.gz")
    with pytest.raises(InpaintError, match="no orientation in its header"):
        V.load_mask(tmp_path / "mask.nii.gz", vol)


@pytest.mark.parametrize("codes", [(4, 4), (1, 2), (0, 1), (2, 0)])
def test_qform_sform_and_codes_preserved(tmp_path, codes):
    qcode, scode = codes
    sform = _affine("LAS", (2.0, 2.0, 2.0))
    qform = _affine("LAS", (2.0, 2.0, 2.0))
    qform[:3, 3] += [1.0, -2.0, 0.5]  # a different qform: both must survive untouched
    source = _write_nifti(tmp_path / "in.nii", _values(), sform, qcode=qcode, scode=scode, qform=qform)
    vol = V.load_volume(source)
    original = nib.load(str(source)).header
    for out in (V.save_volume(tmp_path / "out.nii.gz", vol.data, vol),
                V.save_volume(tmp_path / "kept.nii", vol.data, vol, keep_dtype=True),
                V.save_mask(tmp_path / "mask.nii.gz", _hole(), vol)):
        header = nib.load(str(out)).header
        assert (int(header["qform_code"]), int(header["sform_code"])) == codes
        np.testing.assert_array_equal(header.get_qform(), original.get_qform())
        np.testing.assert_array_equal(header.get_sform(), original.get_sform())
        np.testing.assert_array_equal(header["pixdim"], original["pixdim"])


@pytest.mark.parametrize("dtype,slope,inter", [
    (np.uint8, None, 0.0), (np.int16, 0.25, -100.0), (np.float32, None, 0.0), (np.float64, None, 0.0),
], ids=["uint8", "int16-scaled", "float32", "float64"])
def test_dtypes_are_scaled_and_kept(tmp_path, dtype, slope, inter):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        stored = rng.normal(50.0, 20.0, size=SHAPE).astype(dtype)
    else:
        info = np.iinfo(dtype)
        stored = rng.integers(max(info.min, -3000), min(info.max, 3000), size=SHAPE, endpoint=True).astype(dtype)
    source = _write_nifti(tmp_path / "in.nii.gz", stored, _affine(), slope=slope, inter=inter)
    vol = V.load_volume(source)
    expected = stored.astype(np.float64) * (1.0 if slope is None else slope) + inter
    np.testing.assert_allclose(vol.data, expected, rtol=1e-6)
    assert vol.data.dtype == np.float32 and vol.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(vol.raw, stored)

    default_path = V.save_volume(tmp_path / "f32.nii.gz", vol.data, vol)
    default = nib.load(str(default_path))
    exact = dtype != np.float64   # float32 holds these values exactly; float64 values are written as float64
    assert default.get_data_dtype() == (np.float32 if exact else np.float64)
    on_disk = _disk_header(default_path)
    assert (float(on_disk["scl_slope"]), float(on_disk["scl_inter"])) == (1.0, 0.0)
    np.testing.assert_array_equal(np.asarray(default.dataobj), vol.data if exact else expected)

    kept = nib.load(str(V.save_volume(tmp_path / "kept.nii.gz", vol.data, vol, keep_dtype=True)))
    assert kept.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(kept.dataobj.get_unscaled()), stored)
    assert (float(kept.dataobj.slope), float(kept.dataobj.inter)) == (vol.slope, vol.inter)


def test_keep_dtype_is_bit_identical_outside_changed_voxels(tmp_path):
    slope, inter = 0.37, 12.5
    stored = np.random.default_rng(2).integers(-2000, 2000, size=SHAPE).astype(np.int16)
    source = _write_nifti(tmp_path / "in.nii.gz", stored, _affine("oblique", (0.9, 0.9, 3.0)),
                          slope=slope, inter=inter, qcode=4, scode=4)
    vol = V.load_volume(source)
    hole = _hole()
    filled = vol.data.copy()
    filled[hole] = np.linspace(-300.0, 300.0, hole.sum(), dtype=np.float32)
    filled[0, 0, 0] = 1e9  # far beyond int16 after scaling: clipped
    out = V.save_volume(tmp_path / "out.nii.gz", filled, vol, keep_dtype=True)
    back = nib.load(str(out))
    raw = np.asarray(back.dataobj.get_unscaled())
    assert raw.dtype == np.int16
    untouched = ~hole
    untouched[0, 0, 0] = False
    np.testing.assert_array_equal(raw[untouched], stored[untouched])
    assert raw[0, 0, 0] == np.iinfo(np.int16).max
    np.testing.assert_allclose(raw[hole] * slope + inter, filled[hole], atol=slope / 2 + 1e-4)
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (4, 4)

    # `changed` says which voxels to take from the data; everything else keeps its stored value
    only = np.zeros(SHAPE, dtype=bool)
    only[hole.nonzero()[0][0], hole.nonzero()[1][0], hole.nonzero()[2][0]] = True
    partial = nib.load(str(V.save_volume(tmp_path / "partial.nii.gz", filled, vol, keep_dtype=True, changed=only)))
    raw = np.asarray(partial.dataobj.get_unscaled())
    np.testing.assert_array_equal(raw[~only], stored[~only])
    assert raw[only][0] != stored[only][0]


def test_four_d_single_frame_is_squeezed_and_written_back_in_its_shape(tmp_path):
    values = _values()
    source = _write_nifti(tmp_path / "in.nii.gz", values[..., None], _affine())
    vol = V.load_volume(source)
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.data, values)
    out = nib.load(str(V.save_volume(tmp_path / "out.nii.gz", vol.data + 1, vol)))
    assert out.shape == SHAPE + (1,)
    np.testing.assert_array_equal(np.asarray(out.dataobj)[..., 0], values + 1)


def test_four_d_multi_frame_and_two_d_are_refused(tmp_path):
    multi = _write_nifti(tmp_path / "multi.nii.gz", np.ones(SHAPE + (2,), np.float32), _affine())
    with pytest.raises(InpaintError, match=r"multi\.nii\.gz has shape 6x7x5x2"):
        V.load_volume(multi)
    flat = _write_nifti(tmp_path / "flat.nii.gz", np.ones((6, 7), np.float32), _affine())
    with pytest.raises(InpaintError, match=r"flat\.nii\.gz has shape 6x7\b"):
        V.load_volume(flat)


# --- SimpleITK formats -------------------------------------------------------------------

def test_itk_file_geometry_is_converted_from_lps_to_ras(tmp_path):
    array_zyx = np.arange(5 * 7 * 6, dtype=np.int16).reshape(5, 7, 6)
    itk = sitk.GetImageFromArray(array_zyx)
    itk.SetSpacing((0.9, 1.1, 3.0))
    itk.SetOrigin((10.0, -20.0, 30.0))
    itk.SetDirection(tuple(_rotation(0.2, 0.1, -0.4).ravel()))
    path = tmp_path / "in.mha"
    sitk.WriteImage(itk, str(path))
    vol = V.load_volume(path)
    assert vol.shape == (6, 7, 5) and vol.dtype == np.int16
    for index in [(0, 0, 0), (5, 1, 2), (3, 6, 4)]:
        assert vol.data[index] == array_zyx[index[::-1]]
        lps = np.array(itk.TransformIndexToPhysicalPoint(index))
        ras = vol.affine @ np.array([*index, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_itk_formats_round_trip(tmp_path, suffix):
    affine = _affine("oblique", (0.9, 0.9, 3.0))
    stored = np.random.default_rng(3).integers(0, 1000, size=SHAPE).astype(np.int16)
    vol = V.load_volume(_write_nifti(tmp_path / "in.nii.gz", stored, affine))
    out = V.save_volume(tmp_path / f"out{suffix}", vol.data, vol, keep_dtype=True)
    back = V.load_volume(out)
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back.raw, stored)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    float_back = V.load_volume(V.save_volume(tmp_path / f"float{suffix}", vol.data * 0.5, vol))
    assert float_back.dtype == np.float32
    np.testing.assert_array_equal(float_back.data, vol.data * 0.5)
    # and from an ITK input back to NIfTI
    nifti = nib.load(str(V.save_volume(tmp_path / "again.nii.gz", back.data, back)))
    np.testing.assert_allclose(nifti.affine, affine, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".inpaint-tmp")]


def test_mhd_companion_data_file_is_placed_next_to_header(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "in.nii.gz", _values(), _affine()))
    V.save_volume(tmp_path / "out.mhd", vol.data, vol)
    header = (tmp_path / "out.mhd").read_text()
    data_file = next(line.split("=")[1].strip() for line in header.splitlines() if line.startswith("ElementDataFile"))
    assert (tmp_path / data_file).is_file() and data_file.startswith("out.")
    with pytest.raises(InpaintError, match="--force"):
        V.save_volume(tmp_path / "out.mhd", vol.data, vol)


def test_keep_dtype_with_scaling_cannot_go_to_itk_formats(tmp_path):
    stored = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    vol = V.load_volume(_write_nifti(tmp_path / "in.nii.gz", stored, _affine(), slope=0.5, inter=1.0))
    with pytest.raises(InpaintError, match=r"out\.nrrd.*slope/intercept"):
        V.save_volume(tmp_path / "out.nrrd", vol.data, vol, keep_dtype=True)
    assert not (tmp_path / "out.nrrd").exists()


def test_dicom_series_folder_loads(tmp_path):
    array_zyx = (np.arange(4 * 6 * 5).reshape(4, 6, 5) * 7 - 50).astype(np.int16)
    folder = tmp_path / "dicom"
    _write_dicom_series(folder, array_zyx, spacing=(0.8, 0.8, 2.5), origin=(-20.0, 15.0, 40.0))
    vol = V.load_volume(folder)
    assert vol.shape == (5, 6, 4)
    np.testing.assert_array_equal(vol.data, array_zyx.transpose().astype(np.float32))
    expected = np.diag([-0.8, -0.8, 2.5, 1.0])
    expected[:3, 3] = [20.0, -15.0, 40.0]
    np.testing.assert_allclose(vol.affine, expected, atol=1e-4)
    out = nib.load(str(V.save_volume(tmp_path / "dicom.nii.gz", vol.data, vol)))
    np.testing.assert_allclose(out.affine, expected, atol=1e-4)
    assert len(J.sha256_file(folder)) == 64



def test_a_dicom_folder_input_is_recorded_with_the_checksum_of_its_files(tmp_path):
    """The sidecar's input had a path but no sha256 for a DICOM folder."""
    from conftest import synthetic_brain
    from core.cli import main

    folder = tmp_path / "dicom"
    _write_dicom_series(folder, np.round(synthetic_brain()).astype(np.int16).transpose(), spacing=(2.0, 2.0, 2.0),
                        origin=(-40.0, -48.0, -36.0))
    vol = V.load_volume(folder)
    hole = np.zeros(vol.shape, np.uint8)
    hole[16:22, 20:26, 15:19] = 1
    nib.save(nib.Nifti1Image(hole, vol.affine), tmp_path / "lesion.nii.gz")
    out = tmp_path / "filled.nii.gz"
    assert main(["fill", str(folder), str(tmp_path / "lesion.nii.gz"), "-o", str(out), "--mirror", "0",
                 "--quiet"]) == 0
    digest = hashlib.sha256()   # what it covers: every file of the folder, by relative name, in sorted order
    for file in sorted(folder.rglob("*")):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes())
    record = json.loads((tmp_path / "filled.json").read_text())["input"]
    assert record == {"path": str(folder.resolve()), "sha256": digest.hexdigest()}

# --- masks -------------------------------------------------------------------------------

def test_mask_nonzero_is_hole_and_four_d_single_frame_ok(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine("LPS", (0.9, 0.9, 3.0))))
    labels = np.zeros(SHAPE, np.float32)
    labels[1, 2, 3], labels[4, 4, 4], labels[0, 6, 0] = 2.0, -1.0, 3.0  # any whole label (fractions: test_safety_api)
    mask = V.load_mask(_write_nifti(tmp_path / "m.nii.gz", labels[..., None], vol.affine), vol)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, labels != 0)
    tiny = vol.affine.copy()
    tiny[0, 3] += 1e-4  # rounding noise is fine
    assert V.load_mask(_write_nifti(tmp_path / "n.nii", labels, tiny), vol).sum() == 3


def test_mask_on_another_grid_is_refused(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine()))
    other = _write_nifti(tmp_path / "small.nii.gz", np.ones((6, 7, 4), np.uint8), _affine())
    with pytest.raises(InpaintError) as info:
        V.load_mask(other, vol)
    message = str(info.value)
    for part in ("small.nii.gz", "img.nii.gz", "6x7x4", "6x7x5"):
        assert part in message
    shifted = _affine()
    shifted[1, 3] += 0.5
    moved = _write_nifti(tmp_path / "moved.nii.gz", np.ones(SHAPE, np.uint8), shifted)
    with pytest.raises(InpaintError, match=r"moved\.nii\.gz.*img\.nii\.gz.*differ by up to 0\.5 mm"):
        V.load_mask(moved, vol)


def test_empty_mask_is_refused(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine()))
    empty = _write_nifti(tmp_path / "empty.nii.gz", np.zeros(SHAPE, np.uint8), _affine())
    with pytest.raises(InpaintError, match=r"empty\.nii\.gz contains no nonzero voxel; paint or choose"):
        V.load_mask(empty, vol)


def test_save_mask_is_uint8_zero_one(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine(), qcode=4, scode=4))
    weights = np.where(_hole(), 3.7, 0.0)
    back = nib.load(str(V.save_mask(tmp_path / "mask.nii.gz", weights, vol)))
    assert back.get_data_dtype() == np.uint8
    stored = _disk_header(tmp_path / "mask.nii.gz")
    assert (float(stored["scl_slope"]), float(stored["scl_inter"])) == (1.0, 0.0)
    np.testing.assert_array_equal(np.asarray(back.dataobj), _hole().astype(np.uint8))
    assert V.load_mask(tmp_path / "mask.nii.gz", vol).sum() == _hole().sum()


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_dilate_mask_grows_by_city_block_steps(steps):
    mask = np.zeros((11, 11, 11), dtype=bool)
    mask[5, 5, 5] = True
    mask[0, 0, 10] = True  # at the border: growth is cut, not wrapped
    grown = V.dilate_mask(mask, steps)
    grid = np.indices(mask.shape)
    corner = np.array([0, 0, 10])[:, None, None, None]
    distance = np.minimum(np.abs(grid - 5).sum(axis=0), np.abs(grid - corner).sum(axis=0))
    np.testing.assert_array_equal(grown, distance <= steps)
    assert grown is not mask and mask.sum() == 2


def test_dilate_mask_refuses_negative():
    with pytest.raises(InpaintError, match="-1"):
        V.dilate_mask(np.zeros((3, 3, 3), bool), -1)


# --- unusable inputs ---------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InpaintError, match=r"nothere\.nii\.gz does not exist"):
        V.load_volume(tmp_path / "nothere.nii.gz")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InpaintError, match=f"{tmp_path.name} is a folder with no DICOM series"):
        V.load_volume(tmp_path)


@pytest.mark.parametrize("name", ["trunc.nii.gz", "trunc.nii", "trunc.nrrd"])
def test_truncated_file(tmp_path, name):
    good = tmp_path / f"good{name[5:]}"
    if name.endswith(".nrrd"):
        sitk.WriteImage(sitk.GetImageFromArray(_values((8, 9, 10))), str(good))
    else:
        _write_nifti(good, _values((8, 9, 10)), _affine())
    blob = good.read_bytes()
    (tmp_path / name).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InpaintError, match=f"Could not read .*{name.replace('.', '[.]')}: the file is corrupt"):
        V.load_volume(tmp_path / name)


def test_garbage_and_unsupported_extension(tmp_path):
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"not a nifti header at all"))
    with pytest.raises(InpaintError, match=r"junk\.nii\.gz"):
        V.load_volume(junk)
    other = tmp_path / "scan.png"
    other.write_bytes(b"\x89PNG")
    with pytest.raises(InpaintError, match=r"scan\.png has an unsupported extension"):
        V.load_volume(other)


def test_non_finite_only_data(tmp_path):
    bad = _write_nifti(tmp_path / "nan.nii.gz", np.full(SHAPE, np.nan, np.float32), _affine())
    with pytest.raises(InpaintError, match=r"nan\.nii\.gz contains no finite value"):
        V.load_volume(bad)


# --- safe writing ------------------------------------------------------------------------

def test_refuses_to_overwrite_without_force(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine()))
    target = tmp_path / "out.nii.gz"
    V.save_volume(target, vol.data, vol)
    before = _sha(target)
    with pytest.raises(InpaintError, match=r"out\.nii\.gz already exists; pass --force"):
        V.save_volume(target, vol.data * 2, vol)
    with pytest.raises(InpaintError, match="--force"):
        V.save_mask(target, _hole(), vol)
    assert _sha(target) == before
    V.save_volume(target, vol.data * 2, vol, force=True)
    np.testing.assert_array_equal(V.load_volume(target).data, vol.data * 2)


def test_never_overwrites_the_input_even_with_force(tmp_path):
    source = _write_nifti(tmp_path / "img.nii.gz", _values(), _affine())
    before = _sha(source)
    vol = V.load_volume(source)
    link = tmp_path / "alias.nii.gz"
    os.link(source, link)
    for target in (source, tmp_path / "." / "img.nii.gz", link):
        with pytest.raises(InpaintError, match="input"):
            V.save_volume(target, vol.data * 3, vol, force=True)
        with pytest.raises(InpaintError, match="input"):
            V.save_mask(target, _hole(), vol, force=True)
    assert _sha(source) == before


def test_missing_output_folder_and_unsupported_output_suffix(tmp_path):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine()))
    with pytest.raises(InpaintError, match="does not exist; create it"):
        V.save_volume(tmp_path / "nowhere" / "out.nii.gz", vol.data, vol)
    with pytest.raises(InpaintError, match=r"out\.png: unsupported extension"):
        V.save_volume(tmp_path / "out.png", vol.data, vol)


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_failed_write_leaves_no_temp_file_and_keeps_old_output(tmp_path, monkeypatch, suffix):
    vol = V.load_volume(_write_nifti(tmp_path / "img.nii.gz", _values(), _affine()))
    target = tmp_path / f"out{suffix}"
    V.save_volume(target, vol.data, vol)
    listing, before = sorted(os.listdir(tmp_path)), _sha(target)

    def broken(*args, **kwargs):
        written = Path(str(args[1] if suffix == ".mha" else args[0]))
        written.write_bytes(b"partial")
        raise OSError("disk full")

    if suffix == ".mha":
        monkeypatch.setattr(V.sitk, "WriteImage", broken)
    else:
        monkeypatch.setattr(nib.Nifti1Image, "to_filename", lambda self, name: broken(name))
    with pytest.raises(InpaintError, match=r"Could not write .*out\.(nii\.gz|mha): disk full"):
        V.save_volume(target, vol.data * 2, vol, force=True)
    assert sorted(os.listdir(tmp_path)) == listing
    assert _sha(target) == before


def test_input_file_is_never_modified(tmp_path):
    source = _write_nifti(tmp_path / "img.nii", np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE),
                          _affine(), slope=2.0, inter=1.0)
    before, mtime = _sha(source), source.stat().st_mtime_ns
    vol = V.load_volume(source)
    vol.data[...] = 0  # editing what was read must not reach the file
    vol.raw[...] = 0
    V.save_volume(tmp_path / "out.nii", vol.data, vol, keep_dtype=True)
    V.load_mask(V.save_mask(tmp_path / "m.nii", _hole(), vol), vol)
    assert _sha(source) == before and source.stat().st_mtime_ns == mtime


# --- small helpers -----------------------------------------------------------------------

def test_write_json_and_sha256(tmp_path):
    target = tmp_path / "side.json"
    payload = {"loss": np.float32(0.5), "slices": np.arange(3), "input": tmp_path / "a.nii.gz", "n": np.int64(4)}
    J.write_json(target, payload)
    assert json.loads(target.read_text()) == {"loss": 0.5, "slices": [0, 1, 2], "input": str(tmp_path / "a.nii.gz"),
                                              "n": 4}
    with pytest.raises(InpaintError, match="--force"):
        J.write_json(target, {}, force=False)
    J.write_json(target, {"x": 1})
    assert json.loads(target.read_text()) == {"x": 1}
    with pytest.raises(TypeError):
        J.write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["side.json"]
    assert J.sha256_file(target) == hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(InpaintError, match="does not exist"):
        J.sha256_file(tmp_path / "gone.nii")


@pytest.mark.parametrize("name,kind,expected", [
    ("sub-01_T1w.nii.gz", "inpainted", "sub-01_desc-inpainted_T1w.nii.gz"),
    ("sub-01_T1w.nii.gz", "mask", "sub-01_label-lesion_mask.nii.gz"),
    ("/data/sub-02_ses-1_T1w.nii", "inpainted", "sub-02_ses-1_desc-inpainted_T1w.nii.gz"),
    ("brain.nrrd", "inpainted", "brain_desc-inpainted_T1w.nii.gz"),
    ("scan.v2.mha", "mask", "scan.v2_label-lesion_mask.nii.gz"),
    ("sub-01_FLAIR.nii.gz", "inpainted", "sub-01_desc-inpainted_FLAIR.nii.gz"),   # it read _T1w for any contrast
    ("sub-01_T2w.nii", "mask", "sub-01_label-lesion_mask.nii.gz"),
    ("/data/dicom_T1w", "mask", "dicom_label-lesion_mask.nii.gz"),
])
def test_derived_name(name, kind, expected):
    assert T.derived_name(name, kind) == expected


def test_derived_name_unknown_kind():
    with pytest.raises(ValueError):
        T.derived_name("a.nii.gz", "other")



@pytest.mark.parametrize("name, expected", [
    ("sub-01_desc-inpainted_T1w.nii.gz", "sub-01_desc-uncertainty_T1w.nii.gz"),
    ("/out/T1_filled.nii", "T1_filled_uncertainty.nii"),
    ("filled.mha", "filled_uncertainty.mha"),
    ("filled", "filled_uncertainty.nii.gz"),
])
def test_uncertainty_name_beside_an_export(name, expected):
    assert T.uncertainty_name(name) == expected

# --- real data ---------------------------------------------------------------------------

def test_real_subject_round_trip(tmp_path):
    vol = V.load_volume(HELDOUT)
    original = nib.load(str(HELDOUT))
    assert vol.shape == original.shape and nib.aff2axcodes(vol.affine) == ("L", "A", "S")
    np.testing.assert_array_equal(vol.data, original.get_fdata(dtype=np.float32))
    back = nib.load(str(V.save_volume(tmp_path / "t1.nii.gz", vol.data, vol)))
    assert np.array_equal(back.affine, original.affine)
    for field in ("qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "pixdim", "quatern_b", "qoffset_x"):
        np.testing.assert_array_equal(back.header[field], original.header[field])
    np.testing.assert_array_equal(np.asarray(back.dataobj), vol.data)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_outputs_get_the_users_default_permissions(tmp_path, umask):
    from core.atomic import write_atomically
    from conftest import make_tiny_model
    previous = os.umask(umask)
    try:
        J.write_json(tmp_path / "side.json", {"a": 1})
        write_atomically(tmp_path / "plain.txt", lambda temp: temp.write_text("x", encoding="utf-8"))
        model = make_tiny_model(tmp_path / "model", "vae")
    finally:
        os.umask(previous)
    for path in [tmp_path / "side.json", tmp_path / "plain.txt", model / "model.safetensors", model / "config.json"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    from core.atomic import write_atomically
    target = tmp_path / "out.json"
    target.write_text("old", encoding="utf-8")

    def broken(temp):
        temp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, broken)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_the_grid_read_from_a_header_is_the_grid_of_the_loaded_volume(tmp_path):
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    nifti = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(data[..., None], _affine("oblique", (0.9, 1.1, 2.5))), nifti)   # 4D, one frame
    itk = sitk.GetImageFromArray(data.transpose())
    itk.SetSpacing((0.9, 1.1, 3.0))
    itk.SetOrigin((10.0, -20.0, 30.0))
    itk.SetDirection(tuple(_rotation(0.2, 0.1, -0.4).ravel()))
    mha = tmp_path / "a.mha"
    sitk.WriteImage(itk, str(mha))
    for path in (nifti, mha):
        shape, affine = V.read_grid(path)
        loaded = V.load_volume(path)
        assert shape == loaded.shape and np.array_equal(affine, loaded.affine)
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7, 2), np.float32), np.eye(4)), tmp_path / "two.nii.gz")
    with pytest.raises(InpaintError, match="only 3D volumes"):
        V.read_grid(tmp_path / "two.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InpaintError, match="corrupt, truncated or not an image"):
        V.read_grid(tmp_path / "bad.nii.gz")


@pytest.mark.parametrize("change, says", [("shape", "has shape 5x6x8 but the image"),
                                          ("shift", "their affines differ by up to 3 mm")])
def test_a_grid_is_refused_from_its_header_as_the_loaded_volume_would_be(tmp_path, change, says):
    image_path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 6, 7), np.float32), _affine("LAS")), image_path)
    image = V.load_volume(image_path)
    flipped = tmp_path / "flipped.nii.gz"                             # the same grid in another voxel order
    nib.save(nib.Nifti1Image(np.ones((5, 6, 7), np.float32)[::-1], _affine("LAS") @ np.array(
        [[-1, 0, 0, 4], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)), flipped)
    V.check_grid(flipped, image, "reference")
    assert V.on_image_grid(V.load_volume(flipped), image, "reference").shape == image.shape
    other = tmp_path / "other.nii.gz"
    affine = _affine("LAS")
    if change == "shift":
        affine[0, 3] += 3.0
    nib.save(nib.Nifti1Image(np.ones((5, 6, 8) if change == "shape" else (5, 6, 7), np.float32), affine), other)
    with pytest.raises(InpaintError, match=says) as header:
        V.check_grid(other, image, "reference")
    with pytest.raises(InpaintError) as loaded:
        V.on_image_grid(V.load_volume(other), image, "reference")
    assert str(header.value) == str(loaded.value)


@pytest.mark.parametrize("stored", [">i2", "<f4", ">f8", "<u1"])
def test_nifti_values_are_read_in_c_order_exactly_as_stored(tmp_path, stored):
    rng = np.random.default_rng(2)
    values = rng.uniform(0, 200, size=(7, 9, 11, 1)).astype(np.dtype(stored))
    header = nib.Nifti1Header(endianness=stored[0])
    image = nib.Nifti1Image(values, _affine("oblique"), header)
    if stored == ">i2":
        image.header.set_slope_inter(0.5, 3.0)
    path = tmp_path / "v.nii.gz"
    nib.save(image, path)
    assert nib.load(path).header.endianness == stored[0]
    volume = V.load_volume(path)
    on_disk = nib.load(path, mmap=False).dataobj
    assert volume.raw.shape == (7, 9, 11) and volume.data.flags["C_CONTIGUOUS"]
    assert np.array_equal(volume.raw, np.asarray(on_disk.get_unscaled())[..., 0])
    assert np.array_equal(volume.data, np.asarray(on_disk, dtype=np.float64)[..., 0].astype(np.float32))
