"""`core.progress.ProgressBar`: one redrawn line on a terminal, plain lines without carriage returns in a log."""

import io

from core import progress


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
