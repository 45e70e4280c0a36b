"""Cohort review in the app, through its QActions and keys (pytest-qt): open, step, rate, quit, reopen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.review import QC_TABLE, read_ratings  # noqa: E402
from inpaint_gui.app import build_parser  # noqa: E402
from review_support import checksums, write_cohort  # noqa: E402
from test_gui_support import ScriptedWindow  # noqa: E402

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
KEYS = {"pass": Qt.Key.Key_P, "fail": Qt.Key.Key_F, "unsure": Qt.Key.Key_U}


def _window(qtbot, tmp_path: Path, dialogs) -> ScriptedWindow:
    w = ScriptedWindow(tmp_path / "settings.ini", dialogs)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()  # shortcuts reach only the active window
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
    return w


def _open_with_keys(qtbot, window, out: Path) -> None:
    window.script.paths.append(out)
    qtbot.keyClick(window, Qt.Key.Key_R, CTRL | SHIFT)  # File > Review cohort..., the folder dialog answered
    assert window.review.cohort is not None and window.review_dock.isVisible()


def _review(qtbot, window, scans: range, verdicts: list[str]) -> None:
    """Step through the lesions of each scan with N / Shift+N, rate it by key, go on with Ctrl+N."""
    review = window.review
    for index in scans:
        assert review.index == index
        scan = review.cohort.scans[index]
        if window.doc is not None:
            seen = set()
            for _ in range(2):
                qtbot.keyClick(window, Qt.Key.Key_N)
                seen.add(tuple(int(v) for v in window.viewer.point))
                assert window.statusBar().currentMessage().startswith("Lesion ")
                assert window.doc.editor.mask[tuple(window.viewer.point)]
            assert len(seen) == 2  # both lesions of the scan were visited
            qtbot.keyClick(window, Qt.Key.Key_N, SHIFT)
            assert window.viewer.layer == "blended" and window.doc.reviewed
        else:  # a failed or missing scan: its message instead of the views
            assert window.viewer.empty.isVisible() and scan.source in window.viewer.empty.text()
        qtbot.keyClick(window, KEYS[verdicts[index]])
        assert review.cohort.rating(index).rating == verdicts[index]
        qtbot.keyClick(window, Qt.Key.Key_N, CTRL)


def test_a_cohort_is_reviewed_with_keys_only_and_its_ratings_survive_a_restart(qtbot, tmp_path, dialogs):
    out = write_cohort(tmp_path, 22, failed=1, missing=1)  # 20 filled scans, one lost its image, one failed
    cohort = (tmp_path / "raw", tmp_path / "masks", out)
    before = checksums(*cohort)
    verdicts = [("pass", "fail", "unsure")[i % 3] for i in range(22)]
    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    assert window.review.index == 0 and window.review_panel.table.rowCount() == 22
    _review(qtbot, window, range(0, 5), verdicts)
    dialogs.texts.append("a rim is left unfilled")
    qtbot.keyClick(window, Qt.Key.Key_C, SHIFT)  # a comment on scan 6, which it rates unsure until P / F / U
    assert window.review.cohort.rating(5).comment == "a rim is left unfilled"
    qtbot.keyClick(window, Qt.Key.Key_Q, CTRL)
    assert not window.isVisible() and not dialogs.errors

    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    assert window.review.index == 6  # resumes at the first unrated scan
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL | SHIFT)  # back to the commented one, rated for real now
    _review(qtbot, window, range(5, 22), verdicts)
    assert "Last scan" in window.statusBar().currentMessage() and window.review.index == 21
    qtbot.keyClick(window, Qt.Key.Key_Q, CTRL)
    assert not window.isVisible() and not dialogs.errors

    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    ratings = read_ratings(out)
    assert [ratings[s.output].rating for s in window.review.cohort.scans] == verdicts
    assert ratings[window.review.cohort.scans[5].output].comment == "a rim is left unfilled"
    assert [window.review_panel.table.item(i, 3).text() for i in range(22)] == verdicts
    after = checksums(*cohort)
    assert {k for k in after if k not in before} == {str(out / QC_TABLE), str(out / "desc-qc_scans.json"),
                                                     str(out / ".bidsignore")}   # the ratings kept from the validator
    assert all(after[k] == v for k, v in before.items())  # nothing else in the cohort changed
    window.close()


def test_the_uncertainty_column_and_overlay_and_the_review_keys_as_actions(qtbot, tmp_path, dialogs):
    out = write_cohort(tmp_path, 3, uncertainty=True)
    window = _window(qtbot, tmp_path, dialogs)
    assert not window.act["rate_pass"].isEnabled()  # no cohort yet
    assert window.review.open(out)
    table = window.review_panel.table
    shares = [scan.uncertainty_share for scan in window.review.cohort.scans]
    assert [table.item(i, 2).text() for i in range(3)] == [f"{share:.1%}" for share in shares]
    window.act["lesion_next"].trigger()
    axial, overlay = window.viewer.views[2], window.act["uncertainty"]
    # the fill shows (the overlay covered it) and the fill settings panel, a fill's and not the scan's, is hidden
    assert not overlay.isChecked() and not axial.uncertainty.isVisible() and not window.act["export"].isEnabled()
    assert not window.panel_dock.isVisible() and not window.act["side_panel"].isChecked()
    overlay.trigger()  # Shift+U: on, for this scan and the next
    assert overlay.isChecked() and axial.uncertainty.isVisible()
    window.act["rate_fail"].trigger()
    window.act["scan_next"].trigger()
    assert overlay.isChecked() and axial.uncertainty.isVisible()
    window.act["rate_unsure"].trigger()
    window.act["scan_prev"].trigger()
    assert window.review.index == 0
    window.act["rate_pass"].trigger()
    dialogs.texts.append("ok")
    window.act["rate_comment"].trigger()
    ratings = read_ratings(out)
    assert [r.rating for r in ratings.values()] == ["pass", "unsure"]
    assert ratings[window.review.cohort.scans[0].output].comment == "ok"
    # painting is refused on a reviewed scan, and so is a fill of it (Ctrl+R): the rating is of the cohort's fill
    assert window.doc.editor.locked
    assert not window.act["run"].isEnabled() and not window.panel.run_button.isEnabled()
    assert not window.panel.metrics.isVisibleTo(window.panel)   # no in-hole metrics: the truth there is unknown
    filled = window.doc.result.fill.filled
    qtbot.keyClick(window, Qt.Key.Key_R, CTRL)
    window.session.run()
    assert window.jobs.idle and window.doc.result.fill.filled is filled and window.viewer.layer == "blended"
    # opening an image ends the review
    window.files.open_image(tmp_path / "raw" / window.review.cohort.scans[0].source)
    assert window.review.cohort is None and not window.review_dock.isVisible() and window.act["run"].isEnabled()
    assert window.panel.metrics.isVisibleTo(window.panel)
    assert not window.act["rate_pass"].isEnabled() and not dialogs.errors
    assert not overlay.isChecked() and not window.viewer.show_uncertainty  # off again, as before the review
    assert window.panel_dock.isVisible() and window.act["side_panel"].isChecked()
    window.forget_changes()


def test_without_an_uncertainty_column_the_list_says_n_a_and_a_wrong_folder_is_refused(qtbot, tmp_path, dialogs):
    out = write_cohort(tmp_path, 2)
    window = _window(qtbot, tmp_path, dialogs)
    assert not window.review.open(tmp_path) and "has no desc-filled_scans.tsv" in dialogs.errors[-1]
    assert window.review.open(out)
    assert window.review_panel.table.item(0, 2).text() == "n/a"
    assert not window.viewer.views[2].uncertainty.isVisible()
    window.forget_changes()


def test_a_rating_or_comment_that_cannot_be_written_is_said_in_one_sentence(qtbot, tmp_path, dialogs, monkeypatch):
    from core.review import CohortReview

    out = write_cohort(tmp_path, 2)
    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CohortReview, "rate", full)
    monkeypatch.setattr(CohortReview, "comment", full)
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert dialogs.errors[-1].startswith(f"The rating could not be written to {out}")
    assert window.review.cohort.rating(window.review.index) is None
    dialogs.texts.append("blurred")
    qtbot.keyClick(window, Qt.Key.Key_C, SHIFT)
    assert dialogs.errors[-1].startswith(f"The comment could not be written to {out}")
    assert not (out / QC_TABLE).exists()
    window.forget_changes()


def test_review_is_a_command_line_option():
    assert build_parser().parse_args(["--review", "out"]).review == Path("out")
    with pytest.raises(SystemExit):
        from inpaint_gui.app import main
        main(["image.nii.gz", "--review", "out"])


def _columns_in_view(table) -> None:
    header = table.horizontalHeader()
    for column in range(table.columnCount()):  # every column lies inside the list, none off to the right
        assert header.sectionViewportPosition(column) + header.sectionSize(column) <= table.viewport().width()


def test_every_column_of_the_list_shows_and_the_sd_says_its_unit_and_share(qtbot, tmp_path, dialogs):
    """The rating header was cut to 'ratin' and comments lay off the panel; SD mixed each scan's own units. A table
    of a version before the uncertainty_share column still shows its SD in the scans' own units."""
    from core.metrics import voided_range
    from core.review_scan import load_scan

    out = write_cohort(tmp_path, 3, uncertainty=True, shares=False)
    window = _window(qtbot, tmp_path, dialogs)
    assert window.review.open(out)
    comment = "a rim is left unfilled at the back of the second lesion; check the slices above it"
    dialogs.texts.append(comment)
    window.act["rate_comment"].trigger()
    qtbot.wait(20)
    table = window.review_panel.table
    header = table.horizontalHeader()
    _columns_in_view(table)
    assert header.sectionSize(3) >= header.fontMetrics().horizontalAdvance("rating")  # the header whole
    assert header.sectionSize(4) >= 60 and table.item(0, 4).text() == comment
    assert table.rowHeight(0) > table.rowHeight(1)  # the comment wraps onto more lines of its row
    assert table.horizontalHeaderItem(2).text() == "SD (a.u.)"
    assert "own intensity units" in table.horizontalHeaderItem(2).toolTip()
    assert [table.item(i, 2).text() for i in range(3)] == ["0.10", "0.20", "0.30"]
    scan = window.review.cohort.scans[0]
    files = load_scan(out, scan)
    lo, hi = voided_range(files.source.data, files.hole)
    share = f"{float(scan.uncertainty) / (hi - lo):.1%} of its intensity range"
    assert share in window.statusBar().currentMessage() and share in table.item(0, 2).toolTip()
    window.forget_changes()


def test_a_table_with_the_share_column_shows_the_sd_as_a_share_comparable_across_scans(qtbot, tmp_path, dialogs):
    """The SD in each scan's own units could not be compared between scans on different intensity scales."""
    out = write_cohort(tmp_path, 3, uncertainty=True)
    table_path = out / "desc-filled_scans.tsv"
    lines = [line.split("\t") for line in table_path.read_text().splitlines()]
    sd, share = lines[0].index("uncertainty"), lines[0].index("uncertainty_share")
    lines[2][share] = "n/a"                    # sub-02 filled by an earlier version: its own units only
    lines[3][sd] = lines[3][share] = "n/a"    # sub-03 not predicted
    table_path.write_text("".join("\t".join(cells) + "\n" for cells in lines))
    expected = float(lines[1][share])
    window = _window(qtbot, tmp_path, dialogs)
    assert window.review.open(out)
    qtbot.wait(20)
    table = window.review_panel.table
    _columns_in_view(table)
    header = table.horizontalHeaderItem(2)
    assert header.text() == "SD (%)" and "comparable across scans" in header.toolTip()
    assert "brain intensity range" in header.toolTip()
    assert [table.item(i, 2).text() for i in range(3)] == [f"{expected:.1%}", "0.20 a.u.", "n/a"]
    assert table.item(0, 2).text().endswith("%") and table.item(0, 2).text() != "0.0%"
    tip = table.item(0, 2).toolTip()
    assert tip.startswith(f"{expected:.2%} of the scan's brain intensity range") and "0.10 in its own" in tip
    assert "earlier version" in table.item(1, 2).toolTip()
    assert f"Predicted error SD {expected:.1%} of its brain intensity range" in window.statusBar().currentMessage()
    window.act["scan_next"].trigger()  # no share recorded: the share of the scan's range on screen, as before
    assert "of its intensity range" in window.statusBar().currentMessage()
    assert table.item(1, 2).toolTip().startswith("0.20 in the scan's own intensity units (filled by an earlier")
    assert "of its intensity range (0.5th to 99.5th percentile)" in table.item(1, 2).toolTip()
    window.forget_changes()


def _edit_table(out: Path, column: str, values: list[str]) -> None:
    """Set `column` of desc-filled_scans.tsv, row by row."""
    table_path = out / "desc-filled_scans.tsv"
    lines = [line.split("\t") for line in table_path.read_text().splitlines()]
    at = lines[0].index(column)
    for cells, value in zip(lines[1:], values):
        cells[at] = value
    table_path.write_text("".join("\t".join(cells) + "\n" for cells in lines))


def _click_header(qtbot, table, column: int) -> None:
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))


def _click_row(qtbot, table, row: int) -> None:
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(table.item(row, 0)).center())


def _shown(table) -> list[int]:
    """The scans' indices, top to bottom."""
    return [table.item(row, 0).data(Qt.ItemDataRole.UserRole) for row in range(table.rowCount())]


def _selected(table) -> list[int]:
    rows = table.selectionModel().selectedRows()
    return [table.item(index.row(), 0).data(Qt.ItemDataRole.UserRole) for index in rows]


def test_sorted_by_sd_the_clicks_keys_and_ratings_address_the_scans_shown(qtbot, tmp_path, dialogs):
    """A reviewer of many scans looks at the most uncertain fills first: a second click on SD puts the largest on top
    (n/a last), and a click, P and Ctrl+N then act on the rows as sorted, not on the table's order."""
    out = write_cohort(tmp_path, 6, uncertainty=True)
    _edit_table(out, "uncertainty_share", ["0.02", "0.105", "0.011", "n/a", "0.05", "n/a"])
    _edit_table(out, "uncertainty", ["0.10", "0.20", "0.30", "0.40", "0.50", "n/a"])  # scan 4: its own units only
    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    review, table = window.review, window.review_panel.table
    assert _shown(table) == list(range(6)) and review.index == 0
    _click_header(qtbot, table, 2)
    assert _shown(table) == [2, 0, 4, 1, 3, 5] and _selected(table) == [0]  # ascending, n/a last
    _click_header(qtbot, table, 2)
    assert _shown(table) == [1, 4, 0, 2, 3, 5] and _selected(table) == [0]  # the largest first, n/a still last
    assert [table.item(row, 2).text() for row in range(6)] == ["10.5%", "5.0%", "2.0%", "1.1%", "0.40 a.u.", "n/a"]

    _click_row(qtbot, table, 0)
    scans = review.cohort.scans
    assert review.index == 1 and _selected(table) == [1]
    message = window.statusBar().currentMessage()
    assert message.startswith("Scan 1 of 6 (") and f": {scans[1].source}. Predicted error SD 10.5%" in message
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert {k: r.rating for k, r in read_ratings(out).items()} == {scans[1].output: "pass"}
    assert table.item(0, 3).text() == "pass" and _shown(table) == [1, 4, 0, 2, 3, 5] and _selected(table) == [1]
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL)  # the next row, not scan 3
    assert review.index == 4 and _selected(table) == [4]
    assert window.statusBar().currentMessage().startswith(f"Scan 2 of 6 (1 of 6 rated): {scans[4].source}")  # row 2
    qtbot.keyClick(window, Qt.Key.Key_F)
    assert read_ratings(out)[scans[4].output].rating == "fail" and table.item(1, 3).text() == "fail"
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_N, CTRL)
    assert review.index == 3  # its SD in its own units: the share of its range goes to its own row's tooltip
    assert "of its intensity range (0.5th" in table.item(4, 2).toolTip()
    assert not any("of its intensity range (0.5th" in table.item(row, 2).toolTip() for row in (0, 1, 2, 3, 5))
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL | SHIFT)
    assert review.index == 2

    assert review.open(out)  # reopened: sorted as it was, at the first unrated scan
    assert table.horizontalHeader().sortIndicatorSection() == 2
    assert _shown(table) == [1, 4, 0, 2, 3, 5] and review.index == 0 and _selected(table) == [0]
    assert [table.item(row, 3).text() for row in range(6)] == ["pass", "fail", "", "", "", ""]
    assert not dialogs.errors
    window.forget_changes()
    window.close()

    again = _window(qtbot, tmp_path, dialogs)  # the app restarted: the list sorted as it was left
    _open_with_keys(qtbot, again, out)
    table = again.review_panel.table
    assert table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    assert _shown(table) == [1, 4, 0, 2, 3, 5] and again.review.index == 0
    _click_header(qtbot, table, 2)
    assert _shown(table) == [2, 0, 4, 1, 3, 5]
    assert again.review.open(out)  # the first unrated scan of the list's order, not of the table's
    assert again.review.index == 2 and _selected(table) == [2] and _shown(table)[0] == 2
    assert again.statusBar().currentMessage().startswith("Scan 1 of 6 (2 of 6 rated)")
    again.forget_changes()


def test_names_sort_naturally_ratings_unrated_last_and_an_old_tables_sd_by_its_value(qtbot, tmp_path, dialogs):
    """An older table's SD (a.u.) sorts by its value, not its text (9.5 before 10.2 before 100); sub-9 comes before
    sub-10; a rating leaves its row in place until the next sort, and Ctrl+N stops at the list's last row."""
    out = write_cohort(tmp_path, 4, failed=1, uncertainty=True, shares=False)
    _edit_table(out, "source", [f"sub-{n}/anat/sub-{n}_T1w.nii.gz" for n in ("10", "9", "1", "04")])
    _edit_table(out, "uncertainty", ["9.5", "10.2", "n/a", "100"])
    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    review, table = window.review, window.review_panel.table
    assert table.horizontalHeaderItem(2).text() == "SD (a.u.)"
    _click_header(qtbot, table, 2)
    assert _shown(table) == [0, 1, 3, 2]
    _click_header(qtbot, table, 2)
    assert _shown(table) == [3, 1, 0, 2]
    _click_header(qtbot, table, 1)
    assert _shown(table)[0] == 3 and table.item(0, 1).text() == "failed"
    _click_header(qtbot, table, 0)
    assert _shown(table) == [2, 3, 1, 0] and review.index == 0  # sub-1, sub-04, sub-9, sub-10
    assert [table.item(row, 0).text() for row in range(4)] == ["sub-1", "sub-04", "sub-9", "sub-10"]  # no _T1w
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL)
    assert review.index == 0 and "Last scan of the list" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL | SHIFT)
    assert review.index == 1
    window.act["rate_pass"].trigger()
    window.act["scan_prev"].trigger()
    assert review.index == 3
    window.act["rate_fail"].trigger()
    _click_header(qtbot, table, 3)
    assert _shown(table) == [3, 1, 2, 0]  # fail, pass, then the unrated
    _click_header(qtbot, table, 3)
    assert _shown(table) == [1, 3, 2, 0]  # pass, fail, the unrated still last
    _click_row(qtbot, table, 3)
    window.act["rate_unsure"].trigger()
    assert read_ratings(out)[review.cohort.scans[0].output].rating == "unsure"
    assert _shown(table) == [1, 3, 2, 0] and table.item(3, 3).text() == "unsure" and _selected(table) == [0]
    assert not dialogs.errors
    window.forget_changes()


def test_a_damaged_sort_setting_opens_the_list_unsorted_or_ascending(qtbot, tmp_path, dialogs):
    (tmp_path / "settings.ini").write_text("[review]\nsortColumn=17\nsortOrder=5\n", encoding="utf-8")
    out = write_cohort(tmp_path, 3)
    window = _window(qtbot, tmp_path, dialogs)
    _open_with_keys(qtbot, window, out)
    header = window.review_panel.table.horizontalHeader()
    assert header.sortIndicatorSection() == -1 and header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    assert _shown(window.review_panel.table) == [0, 1, 2] and not dialogs.errors
    window.forget_changes()


def test_the_list_names_a_scan_by_its_entities() -> None:
    from inpaint_gui.review_panel import scan_name
    assert scan_name("sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz") == "sub-02_ses-1"
    assert scan_name("sub-02/anat/sub-02_acq-mprage_run-2_T1w.nii") == "sub-02_acq-mprage_run-2"
    assert scan_name("sub-02/anat/T1w.nii.gz") == "T1w"


def test_the_list_shows_changed_files_and_ratings_of_an_earlier_fill_and_a_read_only_folder_is_said(
        qtbot, tmp_path, dialogs, monkeypatch):
    import core.review as review_module
    from core.cohort.derivatives import Row
    from core.cohort.records import record_outcome
    from core.review import CohortReview

    out = write_cohort(tmp_path, 3)
    for scan in CohortReview(out).scans:
        record_outcome(out, Row(participant_id=scan.source.split("/")[0], session_id="", source=scan.source,
                                mask=scan.mask, brainmask="", output=scan.output, status=scan.status))
    window = _window(qtbot, tmp_path, dialogs)
    assert window.review.open(out)
    window.act["rate_fail"].trigger()
    first = window.review.cohort.scans[window.review.index]
    (out / first.output).write_bytes((out / first.output).read_bytes() + b"\0")   # filled again, recorded
    record_outcome(out, Row(participant_id="x", session_id="", source=first.source, mask=first.mask, brainmask="",
                            output=first.output, status="filled"))
    gone = next(s for s in window.review.cohort.scans if s is not first)
    (out / gone.output).unlink()
    assert window.review.open(out)
    table, cohort = window.review_panel.table, window.review.cohort
    rows = {table.item(r, 0).data(Qt.ItemDataRole.UserRole): r for r in range(table.rowCount())}
    texts = {cohort.scans[i].output: (table.item(row, 1).text(), table.item(row, 3).text()) for i, row in rows.items()}
    assert texts[first.output] == ("filled", "fail (earlier fill)") and texts[gone.output][0] == "missing"
    assert "0 of 3 rated" in window.review_panel.title.text()
    monkeypatch.setattr(review_module, "check_writable", lambda _folder: (_ for _ in ()).throw(OSError(30, "Read-only")))
    assert window.review.open(out) and "cannot be written" in dialogs.errors[-1]
    window.close()


def _reviewing(qtbot, tmp_path: Path, dialogs, scans: int) -> tuple[Path, ScriptedWindow]:
    """A cohort of `scans` scans, open for review in a window."""
    out = write_cohort(tmp_path, scans)
    window = _window(qtbot, tmp_path, dialogs)
    assert window.review.open(out)
    return out, window


def test_backspace_takes_back_the_shown_scan_s_rating(qtbot, tmp_path, dialogs):
    out, window = _reviewing(qtbot, tmp_path, dialogs, 2)
    window.act["rate_fail"].trigger()
    assert "1 of 2 rated" in window.review_panel.title.text()
    qtbot.keyClick(window, Qt.Key.Key_Backspace)
    assert read_ratings(out) == {} and "0 of 2 rated" in window.review_panel.title.text()
    row = window.review_panel.order().index(window.review.index)
    assert window.review_panel.table.item(row, 3).text() == ""
    window.close()


def test_a_ratings_file_damaged_meanwhile_is_one_sentence_and_no_rating(qtbot, tmp_path, dialogs):
    """Each rating reads the file again to merge it: a file another tool broke meanwhile raised out of the key press."""
    out, window = _reviewing(qtbot, tmp_path, dialogs, 2)
    window.act["rate_pass"].trigger()
    (out / QC_TABLE).write_bytes(b"output\trating\n\xff\xfe\n")
    window.act["rate_fail"].trigger()
    assert "cannot be read" in dialogs.errors[-1] and window.review.cohort.rating(window.review.index).rating == "pass"
    window.close()
