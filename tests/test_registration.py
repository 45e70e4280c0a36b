"""Registration bias (`inpaint bench --downstream --registration`): the maps to the template and their distances."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from scipy import ndimage

from core.bench import downstream
from core.bench.downstream_report import registration_table
from core.bench.registration import Template, bias, lesion_points, subject_points
from core.resources import MNI152_T1

LPS = np.diag([-1.0, -1.0, 1.0])


def _template_at_2mm(shift_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The template's brain averaged into 2 mm voxels, as a scan placed `shift_ras` mm away in the scanner."""
    image = nib.load(MNI152_T1)
    data = np.asarray(image.dataobj, dtype=np.float32)
    shape = [n // 2 * 2 for n in data.shape]
    data = data[:shape[0], :shape[1], :shape[2]].reshape(shape[0] // 2, 2, shape[1] // 2, 2, shape[2] // 2, 2)
    affine = image.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] += image.affine[:3, :3] @ [0.5, 0.5, 0.5] + shift_ras
    return data.mean(axis=(1, 3, 5)), affine


def test_a_shifted_scan_maps_the_template_shifted_and_a_lesion_pulls_the_map_near_it() -> None:
    template = Template.load()
    shift = np.array([6.0, -4.0, 3.0])
    image, affine = _template_at_2mm(shift)
    points, correlation = subject_points(template, image, affine)
    assert correlation > 0.9
    # every template point lands where the shifted scan shows it: LPS position + the shift (in LPS)
    assert np.median(np.linalg.norm(points - (template.points + LPS @ shift), axis=1)) < 1.0
    again, _ = subject_points(template, image, affine)
    lesion = np.zeros(image.shape, dtype=bool)
    deep = ndimage.uniform_filter(image, 9)
    deep[image.shape[0] // 2 - 8:] = 0   # one hemisphere
    centre = np.unravel_index(np.argmax(deep), image.shape)   # the brightest 18 mm of white matter
    lesion[tuple(slice(c - 4, c + 5) for c in centre)] = np.linalg.norm(np.indices((9, 9, 9)) - 4, axis=0) <= 4
    assert image[lesion].mean() > 0.8 * image.max()
    lesioned, _ = subject_points(template, np.where(lesion, np.float32(0.3 * image.max()), image), affine)
    near = lesion_points(points, lesion, affine)
    assert 0 < near.sum() < 0.05 * len(points)
    assert bias(again, points, near) == {"brain_mm": 0.0, "lesion_mm": 0.0}   # one thread: the same map
    moved = bias(lesioned, points, near)
    assert moved["lesion_mm"] > 0.3 and moved["lesion_mm"] > 3 * moved["brain_mm"]


def test_register_all_records_each_images_distance_from_the_originals_map_and_the_table_pairs_them(monkeypatch):
    points = np.zeros((10, 3))
    offsets = {"original": 0.0, downstream.NO_FILL: 2.0, "biharmonic-3d": 0.5, "refine3d": 0.25}
    images = {key: np.full((4, 4, 4), value, dtype=np.float32) for key, value in offsets.items()}
    monkeypatch.setattr(downstream, "subject_points", lambda _t, image, _a: (points + [image.flat[0], 0, 0], 0.95))
    monkeypatch.setattr(downstream, "lesion_points", lambda p, _l, _a: np.arange(len(p)) < 4)
    ticks = []
    record = downstream.register_all(None, images, np.ones((4, 4, 4), bool), np.eye(4), ticks.append)
    assert len(ticks) == 4 and record["near_points"] == 4 and record["original_correlation"] == 0.95
    assert record["methods"]["refine3d"] == {"brain_mm": 0.25, "lesion_mm": 0.25, "correlation": 0.95}
    json.dumps(record)
    report = {"brains": {"a": {"registration": record}, "b": {"registration": record}},
              "methods": ["biharmonic-3d", "refine3d"], "default_method": "refine3d"}
    rows = {line.split(" | ")[0]: line for line in registration_table(report) if line.startswith("| ")}
    assert rows["| no fill"] == "| no fill | 2.000 +/- 0.000 (+1.500 +/- 0.000) | 2.000 +/- 0.000 (+1.500 +/- 0.000) |"
    assert rows["| **refine3d** (app default)"].endswith("| 0.250 +/- 0.000 (-0.250 +/- 0.000) |")


def test_registration_without_the_downstream_test_is_one_sentence(capsys) -> None:
    from core.cli import main

    assert main(["bench", "--registration", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--registration is a part of the downstream test: pass --downstream with it." in err
    assert "Traceback" not in err
