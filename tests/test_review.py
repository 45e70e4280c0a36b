"""The Qt-free cohort review: the scans table, ratings written atomically beside it, and one scan's files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.cohort.derivatives import TABLE, Row, write_table
from core.errors import InpaintError
from core.review import QC_TABLE, CohortReview, read_ratings
from core.review_scan import load_scan
from review_support import LESIONS, checksums, write_cohort


def test_ratings_survive_a_rewritten_table_and_a_restart_and_resume_at_the_first_unrated(tmp_path):
    out = write_cohort(tmp_path, 5, failed=1)
    review = CohortReview(out)
    assert [s.status for s in review.scans] == ["filled"] * 4 + ["failed"]
    assert review.first_unrated() == 0 and review.scans[0].uncertainty is None
    before = checksums(out)
    review.rate(0, "pass")
    review.rate(1, "fail", "the fill is too bright")
    review.rate(1, "unsure")  # the comment is kept
    after = checksums(out)
    # the ratings, their data dictionary (with the ratings as Levels) and the .bidsignore that keeps the validator
    # from reading the ratings table as a scans file
    assert {k for k in after if k not in before} == {str(out / QC_TABLE), str(out / "desc-qc_scans.json"),
                                                     str(out / ".bidsignore")}
    assert (out / ".bidsignore").read_text() == "desc-qc_scans.tsv\ndesc-qc_scans.json\n"
    assert json.loads((out / "desc-qc_scans.json").read_text())["rating"]["Levels"].keys() == {"pass", "fail", "unsure"}
    assert all(after[k] == v for k, v in before.items())  # nothing else in the cohort changed
    assert [p for p in os.listdir(out) if p.startswith(".")] == [".bidsignore"]  # no temporary file left
    # a rerun of `inpaint bids` rewrites the scans table in its own order, with a scan fewer
    rows = [Row(participant_id="x", session_id="", source=s.source, mask=s.mask, brainmask="", output=s.output,
                status=s.status) for s in review.scans[1:]]
    write_table(out, list(reversed(rows)))
    again = CohortReview(out)
    assert again.rating(0).rating == "unsure" and again.rating(0).comment == "the fill is too bright"
    assert again.first_unrated() == 1  # sub-01 was dropped from the table; sub-03 is the first unrated
    assert set(read_ratings(out)) == {review.scans[0].output, review.scans[1].output}  # sub-01's rating is kept
    with open(out / QC_TABLE, encoding="utf-8") as stream:
        table = list(csv.DictReader(stream, delimiter="\t"))
    assert [r["rating"] for r in table] == ["pass", "unsure"] and table[0]["comment"] == "n/a"
    for index in range(len(again.scans)):
        again.rate(index, "pass")
    assert again.first_unrated() == 0 and again.progress() == "4 of 4 rated"
    with pytest.raises(ValueError):
        again.rate(0, "maybe")


def test_the_table_must_exist_and_its_uncertainty_column_is_read(tmp_path):
    with pytest.raises(InpaintError, match="has no desc-filled_scans.tsv"):
        CohortReview(tmp_path)
    out = write_cohort(tmp_path, 3, uncertainty=True)
    assert [s.uncertainty for s in CohortReview(out).scans] == ["0.10", "0.20", "0.30"]


def test_the_uncertainty_share_column_is_read_and_a_table_of_an_older_version_without_it_still_opens(tmp_path):
    out = write_cohort(tmp_path / "new", 3, uncertainty=True)
    with open(out / TABLE, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    rows[1]["uncertainty_share"], rows[2]["uncertainty_share"] = "n/a", "0.0x"  # not predicted; unreadable
    with open(out / TABLE, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    review = CohortReview(out)
    assert review.shares and [s.uncertainty for s in review.scans] == ["0.10", "0.20", "0.30"]
    assert review.scans[0].uncertainty_share == pytest.approx(float(rows[0]["uncertainty_share"]), rel=1e-12)
    assert 0 < review.scans[0].uncertainty_share < 0.01  # 0.1 of a range of about 100
    assert review.scans[1].uncertainty_share is None and review.scans[2].uncertainty_share is None
    old = CohortReview(write_cohort(tmp_path / "old", 3, uncertainty=True, shares=False))
    assert not old.shares and [s.uncertainty for s in old.scans] == ["0.10", "0.20", "0.30"]
    assert all(s.uncertainty_share is None for s in old.scans)


def test_a_scan_is_read_with_its_mask_and_uncertainty_and_failed_or_missing_ones_say_why(tmp_path):
    out = write_cohort(tmp_path, 4, failed=1, missing=1, uncertainty=True)
    review = CohortReview(out)
    files = load_scan(out, review.scans[0])
    expected = np.zeros(files.hole.shape, bool)
    for box in LESIONS:
        expected[box] = True
    assert np.array_equal(files.hole, expected) and not files.notes
    assert np.all(files.filled[expected] == 55.0) and np.array_equal(files.filled[~expected],
                                                                      files.source.data[~expected])
    assert files.uncertainty is not None and files.uncertainty.max() == pytest.approx(0.1)
    with pytest.raises(InpaintError, match="The filled image .* is missing"):
        load_scan(out, review.scans[2])
    with pytest.raises(InpaintError, match="its status is failed: The lesion mask is empty"):
        load_scan(out, review.scans[3])
    (tmp_path / "masks" / review.scans[1].mask).unlink()  # a moved masks dataset: the changed voxels stand in
    files = load_scan(out, review.scans[1])
    assert np.array_equal(files.hole, expected) and "cannot be read" in files.notes[0]
    (tmp_path / "raw" / review.scans[1].source).unlink()
    with pytest.raises(InpaintError, match="source image .* is not found"):
        load_scan(out, review.scans[1])


def test_a_table_without_the_columns_is_refused(tmp_path):
    (tmp_path / TABLE).write_text("a\tb\n1\t2\n")
    with pytest.raises(InpaintError, match="lacks the output"):
        CohortReview(Path(tmp_path))


def _recorded(out: Path, scans: int = 3) -> Path:
    """A cohort whose filled scans have the records `inpaint bids` writes (their files' SHA-256)."""
    from core.cohort.records import record_outcome

    for scan in CohortReview(out).scans:
        record_outcome(out, Row(participant_id=scan.source.split("/")[0], session_id="", source=scan.source,
                                mask=scan.mask, brainmask="", output=scan.output, status=scan.status))
    return out


def test_two_windows_on_one_cohort_keep_each_other_s_ratings(tmp_path):
    """The second window rewrote the file from what it had read at its start: the first's rating was lost."""
    out = write_cohort(tmp_path, 3)
    first, second = CohortReview(out), CohortReview(out)
    first.rate(0, "pass")
    second.rate(1, "fail")
    assert {r.rating for r in read_ratings(out).values()} == {"pass", "fail"}
    assert second.progress() == "2 of 3 rated"


def test_a_rating_of_an_earlier_fill_counts_as_unrated_and_changed_files_show_as_such(tmp_path):
    """A scan filled again kept its old rating as if it were of the new fill; a deleted or truncated filled image
    still said `filled`."""
    from core.cohort.records import record_outcome

    out = _recorded(write_cohort(tmp_path, 3))
    review = CohortReview(out)
    review.rate(0, "fail")
    review.rate(1, "pass")
    assert review.progress() == "2 of 3 rated" and not review.stale(0)
    scan = review.scans[0]   # filled again: another image, a new record
    (out / scan.output).write_bytes((out / scan.output).read_bytes() + b"\0")
    record_outcome(out, Row(participant_id="sub-01", session_id="", source=scan.source, mask=scan.mask,
                            brainmask="", output=scan.output, status="filled"))
    (out / review.scans[2].output).unlink()
    again = CohortReview(out)
    assert again.stale(0) and not again.stale(1) and again.progress() == "1 of 3 rated"
    assert again.first_unrated() == 0 and again.rating(0).rating == "fail"   # kept, shown as of an earlier fill
    assert [again.status(i) for i in range(3)] == ["filled", "filled", "missing"]
    again.rate(0, "pass")
    assert not again.stale(0) and read_ratings(out)[scan.output].filled_sha256 == again.fills[scan.output]


def test_a_failed_write_changes_no_rating_and_a_read_only_folder_is_known_at_once(tmp_path, monkeypatch):
    import core.review as review_module

    out = write_cohort(tmp_path, 2)
    review = CohortReview(out)
    assert review.read_only == ""

    def refuse(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(review_module, "write_ratings", refuse)
    with pytest.raises(OSError):
        review.rate(0, "pass")
    assert review.rating(0) is None and review.progress() == "0 of 2 rated"   # it counted the unsaved rating
    monkeypatch.setattr(review_module, "check_writable", refuse)
    assert CohortReview(out).read_only == "Read-only file system"


def test_a_rating_can_be_taken_back(tmp_path):
    """A rating could be changed but never removed: a scan rated by mistake stayed rated."""
    out = write_cohort(tmp_path, 2)
    review = CohortReview(out)
    review.rate(0, "fail", "oops")
    review.rate(1, "pass")
    review.clear(0)
    assert review.rating(0) is None and review.progress() == "1 of 2 rated" and review.first_unrated() == 0
    assert set(read_ratings(out)) == {review.scans[1].output}
