"""The Qt-free part of the live preview: the lesions a stroke touched, the preview's fill and its sparse layer."""

from __future__ import annotations

import numpy as np

from conftest import synthetic_brain
from core.checkpoint import load_model
from core.fill import fill_volume
from core.live_preview import PREVIEW_SETTINGS, PreviewLayer, preview_fill, preview_hole, touched_lesions
from core.modelspace import Reorientation
from core.volume import dilate_mask


def _flat(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def test_the_lesions_a_stroke_touched_are_found_whole_and_erasing_previews_what_is_left():
    mask = np.zeros((60, 50, 40), np.uint8)
    mask[5:8, 5:8, 5:8] = 1            # another lesion
    mask[20:23, 10:45, 20:22] = 1      # a long bar, far beyond the first box around the stroke
    stroke = np.zeros(mask.shape, bool)
    stroke[21, 11, 20] = True
    assert np.array_equal(touched_lesions(mask, _flat(stroke)), _flat(mask * (np.arange(60) >= 20)[:, None, None]))
    mask[21, 30:32, :] = 0              # an erase splits the bar: both parts are previewed, the erased voxels not
    erased = np.zeros(mask.shape, bool)
    erased[21, 30:32, 20:22] = True
    found = touched_lesions(mask, _flat(erased))
    assert np.array_equal(found, _flat((mask != 0) & (np.arange(60) >= 20)[:, None, None]))
    assert touched_lesions(mask, np.zeros(0, np.int64)).size == 0


def test_the_preview_hole_is_the_lesion_dilated_as_a_run_would():
    lesion = np.zeros((20, 20, 20), bool)
    lesion[8:11, 9:12, 10] = True
    assert np.array_equal(preview_hole(lesion.shape, _flat(lesion), 0), _flat(lesion))
    assert np.array_equal(preview_hole(lesion.shape, _flat(lesion), 2), _flat(dilate_mask(lesion, 2)))


def test_the_preview_is_the_fast_default_fill_in_display_order(tiny_vae):
    image = synthetic_brain()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # LAS: the display order flips the first axis
    reo = Reorientation.of(affine, image.shape)
    hole_ras = np.zeros(reo.apply(image).shape, bool)
    hole_ras[10:14, 20:24, 15:18] = True
    model = load_model(tiny_vae)
    values = preview_fill(image, affine, _flat(hole_ras), model)
    expected = fill_volume(image, affine, reo.undo(hole_ras), model, PREVIEW_SETTINGS)
    assert np.array_equal(values, reo.apply(expected.filled)[hole_ras])
    assert PREVIEW_SETTINGS.method == "refine3d" and PREVIEW_SETTINGS.mirror == 0


def test_the_layer_draws_its_values_over_slices_and_replaces_them_lesion_by_lesion():
    layer = PreviewLayer((4, 5, 6))
    first = np.array([np.ravel_multi_index(v, (4, 5, 6)) for v in ((1, 2, 3), (1, 3, 3), (2, 2, 3))])
    layer.update(np.zeros(0, np.int64), first, np.array([7.0, 8.0, 9.0]))
    drawn = layer.draw(np.zeros((5, 6)), 0, 1)
    assert drawn[2, 3] == 7 and drawn[3, 3] == 8 and drawn.sum() == 15
    assert layer.draw(np.ones((4, 5)), 2, 3).sum() == 20 - 3 + 24
    layer.update(first[:1], first[1:2], np.array([5.0]))  # the first voxel dropped, the second replaced
    assert len(layer) == 2 and layer.value((1, 3, 3)) == 5 and layer.value((1, 2, 3)) is None


def test_the_preview_keeps_the_fills_edge_rules_painted_background_stays_as_it_was(tiny_vae):
    image = synthetic_brain()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    hole = np.zeros(image.shape, bool)
    hole[18:23, 20:25, 0:6] = True                      # from the background into the brain's edge
    inside, outside = hole & (image != 0), hole & (image == 0)
    assert inside.any() and outside.any()
    values = preview_fill(image, affine, _flat(hole), load_model(tiny_vae))
    filled = np.zeros(image.shape, np.float32)
    filled[hole] = values
    assert np.all(filled[outside] == 0)                  # left as they were: background
    known = image[(image != 0) & ~hole]
    assert known.min() <= filled[inside].min() and filled[inside].max() <= known.max()
