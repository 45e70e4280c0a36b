"""Brush, eraser, stroke interpolation and undo of the Qt-free mask model, with exact voxel counts."""

from __future__ import annotations

import numpy as np
import pytest

from core.mask_editor import EditRefused, MaskEditor

AXIAL = 2


def editor(shape=(30, 30, 10), size=1.0, **kw) -> MaskEditor:
    ed = MaskEditor(shape, **kw)
    ed.brush_size = size
    return ed


def stamp(ed: MaskEditor, point, axis=AXIAL, erase=False):
    ed.begin_stroke(point, axis, erase=erase)
    return ed.end_stroke()


@pytest.mark.parametrize("size,count", [(1, 1), (2, 5), (3, 9), (4, 13), (5, 21)])
def test_disc_stamp_counts(size, count):
    ed = editor(size=size)
    edit = stamp(ed, (15, 15, 4))
    assert ed.voxel_count == count == edit.count
    assert ed.mask[:, :, 4].sum() == count  # a 2D brush stays in its slice
    assert ed.mask.dtype == np.uint8 and set(np.unique(ed.mask)) == {0, 1}


def test_stamp_centre_snaps_to_nearest_voxel():
    ed = editor(size=1)
    stamp(ed, (15.4, 14.6, 4.2))
    assert ed.mask[15, 15, 4] == 1 and ed.voxel_count == 1


def test_ball_stamp_counts():
    ed = editor(size=3)
    ed.sphere = True
    stamp(ed, (15, 15, 5))
    assert ed.voxel_count == 19  # |d|^2 <= 2.25: centre, 6 faces, 12 edges
    assert ed.mask[:, :, 4].sum() == 5 and ed.mask[:, :, 5].sum() == 9 and ed.mask[:, :, 6].sum() == 5


def test_anisotropic_voxels_give_a_round_brush_in_mm():
    ed = editor(size=5, spacing=(1.0, 1.0, 3.0))
    stamp(ed, (10, 15, 5), axis=0)  # sagittal disc in the (y, z) plane: z voxels are 3 mm
    assert ed.voxel_count == 5 and ed.mask[10, 13:18, 5].all()


def test_stroke_interpolates_between_distant_points():
    ed = editor(size=3)
    ed.begin_stroke((10, 5, 4), AXIAL)
    ed.extend_stroke((10, 20, 4))  # one big jump: the capsule leaves no gap
    edit = ed.end_stroke()
    # rows 9..11 over columns 4..21 (the caps reach one voxel past each end)
    expected = np.zeros_like(ed.mask)
    expected[9:12, 4:22, 4] = 1
    assert np.array_equal(ed.mask, expected) and edit.count == 3 * 18


def test_diagonal_thin_stroke_is_connected():
    ed = editor(size=1)
    ed.begin_stroke((2, 3, 1), AXIAL)
    ed.extend_stroke((12, 13, 1))
    ed.end_stroke()
    assert ed.voxel_count == 11
    assert all(ed.mask[2 + i, 3 + i, 1] for i in range(11))


def test_2d_stroke_stays_in_its_slice():
    ed = editor(size=3)
    ed.begin_stroke((10, 10, 4), AXIAL)
    ed.extend_stroke((12, 10, 7))  # the slice coordinate of later points is ignored
    ed.end_stroke()
    assert ed.mask[:, :, 4].sum() == ed.voxel_count == 15


def test_eraser_and_single_undo_step_per_stroke():
    ed = editor(size=3)
    ed.begin_stroke((10, 10, 4), AXIAL)
    for col in range(11, 16):
        ed.extend_stroke((10, col, 4))
    paint = ed.end_stroke()
    assert paint.count == ed.voxel_count == 3 * 8
    ed.brush_size = 1
    erase = stamp(ed, (10, 12, 4), erase=True)
    assert erase.count == 1 and ed.voxel_count == 23 and ed.mask[10, 12, 4] == 0
    assert ed.undo() is erase and ed.voxel_count == 24
    assert ed.undo() is paint and ed.voxel_count == 0
    assert ed.undo() is None and not ed.can_undo
    assert ed.redo() is paint and ed.voxel_count == 24
    assert ed.redo() is erase and ed.voxel_count == 23 and not ed.can_redo


def test_undo_stores_only_changed_voxels_of_a_self_overlapping_stroke():
    ed = editor(size=5)
    ed.begin_stroke((15, 15, 4), AXIAL)
    ed.extend_stroke((15, 16, 4))
    ed.extend_stroke((15, 15, 4))  # back over painted voxels
    edit = ed.end_stroke()
    assert edit.count == ed.voxel_count == len(np.unique(edit.indices))
    assert edit.old.dtype == np.uint8 and not edit.old.any()


def test_undo_across_slices_restores_exact_old_values():
    ed = editor(size=3)
    stamp(ed, (10, 10, 2))
    stamp(ed, (10, 10, 6))
    before = ed.mask.copy()
    stamp(ed, (11, 10, 2), erase=True)
    ed.undo()
    assert np.array_equal(ed.mask, before)
    ed.undo()
    assert ed.mask[:, :, 6].sum() == 0 and ed.mask[:, :, 2].sum() == 9


def test_new_edit_clears_redo():
    ed = editor(size=1)
    stamp(ed, (1, 1, 1))
    ed.undo()
    stamp(ed, (2, 2, 2))
    assert not ed.can_redo and ed.voxel_count == 1 and ed.mask[2, 2, 2] == 1


def test_clear_slice_and_clear_all_are_undoable():
    ed = editor(size=3)
    stamp(ed, (10, 10, 2))
    stamp(ed, (20, 20, 3))
    cleared = ed.clear_slice(AXIAL, 2)
    assert cleared.count == 9 and ed.voxel_count == 9
    assert ed.clear_slice(AXIAL, 5) is None  # empty slice: no undo step
    everything = ed.clear_all()
    assert everything.count == 9 and ed.voxel_count == 0
    ed.undo()
    ed.undo()
    assert ed.voxel_count == 18
    with pytest.raises(EditRefused):
        ed.clear_slice(AXIAL, 10)


def test_replace_is_one_undo_step():
    ed = editor(size=3)
    stamp(ed, (5, 5, 5))
    imported = np.zeros(ed.shape, dtype=np.int16)
    imported[5, 5, 5] = 7  # nonzero counts as 1; overlaps the stamp's centre
    imported[20:22, 20:22, 1] = 1
    edit = ed.replace(imported)
    assert edit.count == 8 + 4 and ed.voxel_count == 5 and ed.mask.max() == 1
    ed.undo()
    assert ed.voxel_count == 9 and ed.mask[20, 20, 1] == 0
    ed.redo()
    assert ed.voxel_count == 5 and ed.mask[20, 20, 1] == 1


def test_stroke_outside_volume_is_refused_and_partly_outside_is_clipped():
    ed = editor(size=3)
    with pytest.raises(EditRefused, match="outside the volume"):
        ed.begin_stroke((-5, 10, 4), AXIAL)
    with pytest.raises(EditRefused, match="outside the volume"):
        ed.begin_stroke((10, 10, 12), AXIAL)  # slice beyond the last
    assert not ed.stroke_active
    stamp(ed, (0, 0, 0))
    assert ed.voxel_count == 4  # a quarter of the 3x3 disc lies inside


def test_locked_editor_refuses_with_the_reason():
    ed = editor(size=3)
    ed.lock("A fill job is running; wait for it or cancel it.")
    for action in (lambda: ed.begin_stroke((5, 5, 5), AXIAL), ed.clear_all, ed.undo):
        with pytest.raises(EditRefused, match="fill job is running"):
            action()
    ed.unlock()
    stamp(ed, (5, 5, 5))
    assert ed.voxel_count == 9


def test_modified_follows_history_and_save_point():
    ed = editor(size=1)
    assert not ed.modified
    stamp(ed, (1, 1, 1))
    assert ed.modified
    ed.mark_saved()
    assert not ed.modified
    ed.undo()
    assert ed.modified
    ed.redo()
    assert not ed.modified


def test_brush_size_is_clamped():
    ed = editor()
    ed.brush_size = 0
    assert ed.brush_size == 1
    ed.brush_size = 1000
    assert ed.brush_size == 99


def test_undo_clear_or_lock_during_a_stroke_closes_it_first():
    ed = editor(size=1)
    stamp(ed, (5, 5, 4))
    ed.begin_stroke((10, 10, 4), AXIAL)
    ed.extend_stroke((12, 10, 4))
    ed.undo()  # undoes the stroke in progress (3 voxels), not the stamp before it
    assert ed.voxel_count == 1 and ed.mask[5, 5, 4] and not ed.stroke_active
    ed.redo()
    assert ed.voxel_count == 4
    ed.begin_stroke((20, 20, 4), AXIAL)
    ed.clear_all()
    ed.undo()
    assert ed.voxel_count == 5  # the stroke became its own step before the clear
    ed.begin_stroke((25, 25, 4), AXIAL)
    ed.lock("A fill is running.")
    assert not ed.stroke_active and ed.voxel_count == 6
    with pytest.raises(EditRefused, match="No stroke"):
        ed.extend_stroke((26, 25, 4))
    ed.unlock()
    ed.undo()
    assert ed.voxel_count == 5


def test_lesions_are_the_26_connected_parts_in_slice_order() -> None:
    from core.mask_editor import lesions

    mask = np.zeros((20, 20, 12), np.uint8)
    mask[2:5, 2:5, 8] = 1                      # 9 voxels on slice 8
    mask[10:13, 10:13, 2:4] = 1                # 18 voxels on slices 2-3
    mask[13, 13, 4] = 1                        # touches the second part at a corner only: the same lesion
    mask[15, 3, 2] = 1                         # one voxel on slice 2, lower along the second axis: first
    # each lesion's voxel nearest its centroid (the second's centroid is (11.05, 11.05, 2.58))
    assert lesions(mask) == [((15, 3, 2), 1), ((11, 11, 3), 19), ((3, 3, 8), 9)]
    assert lesions(np.zeros((4, 4, 4))) == []
