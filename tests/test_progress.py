"""`core.progress.ProgressBar`: one redrawn line on a terminal, plain lines without carriage returns in a log."""

import io

import numpy as np

from core import progress
from core.job import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_redrawn_line_and_a_log_plain_lines(monkeypatch) -> None:
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = progress.ProgressBar("bench", stream=stream)
        for step in range(1, 11):
            bar.update(step / 10, f"case {step}")
        bar.update(1.0, "done", force=True)
        bar.close()
    assert terminal.getvalue().count("\r") == 10 and terminal.getvalue().endswith("\n")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 3 <= len(lines) <= 5   # one line per 30 s of 10 s steps, and the end
    assert lines[-1].startswith("bench [") and lines[-1].endswith("done")


def test_a_fill_shows_its_steps_an_eta_without_the_first_steps_warm_up_and_done(monkeypatch) -> None:
    """refine3d's steps are its lesions; the first carries the mirror's registration and torch's start-up."""
    monkeypatch.setattr(progress.time, "monotonic", iter(range(10, 1000, 10)).__next__)
    terminal = Terminal()
    bar = progress.ProgressBar("fill", stream=terminal)
    for step, elapsed in ((0, 0.0), (1, 30.0), (2, 40.0), (3, 50.0)):   # the first lesion 30 s, then 10 s each
        bar.report(Progress(stage="search", step=step, total=4, elapsed=elapsed))
    bar.report(Progress(stage="done", step=1, total=1, elapsed=60.0, best_loss=np.zeros(0)))
    lines = [" ".join(line.split("]")[1].split()) for line in terminal.getvalue().split("\r")[1:]]
    assert lines == ["0.0% 0/4", "25.0% 1/4", "50.0% ETA 0:20 2/4", "75.0% ETA 0:10 3/4", "100.0% done"]
