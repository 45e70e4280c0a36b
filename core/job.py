"""Progress reports and cooperative cancellation for long-running work (no Qt)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import numpy as np

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set; the job leaves no partial result."""

    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)


class CancelToken:
    """Thread-safe flag that a job checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop (from any thread); it raises `Cancelled` at its next check."""
        self._event.set()

    def raise_if_cancelled(self) -> None:
        """Raise `Cancelled` if `cancel` was called."""
        if self._event.is_set():
            raise Cancelled()


@dataclass
class Progress:
    """One progress report of a job.

    `best_loss` holds the best total loss so far of each slice being filled (same order as
    `slices`). `preview`, when previews were asked for, holds the current best fill at the
    voxels of the hole the fill was given (those it leaves, outside the brain, at their values), in
    the order of `numpy.flatnonzero(hole)` over the volume as stored in the file (C order), so a
    viewer updates its copy with `copy.reshape(-1)[index] = preview`.
    """

    stage: str
    step: int
    total: int
    elapsed: float
    slices: list[int] = field(default_factory=list)
    best_loss: Optional[np.ndarray] = None
    preview: Optional[np.ndarray] = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)

    @property
    def eta(self) -> Optional[float]:
        """Seconds left, extrapolated from the elapsed time, or None before the first step."""
        if self.step <= 0 or self.total <= 0:
            return None
        return self.elapsed * (self.total - self.step) / self.step


ProgressCallback = Callable[[Progress], None]


class EtaClock:
    """Seconds left of a job, from the rate of the steps after its first reported step.

    The first step carries the warm-up (model transfer, memory allocation, the first pass through
    the networks), which can take longer than ten later steps; `Progress.eta` includes it and
    overestimates the rest. Feed every report of one job to `update`.
    """

    def __init__(self) -> None:
        self._first: Optional[tuple[int, float]] = None  # (step, elapsed) of the first report after a step

    def update(self, progress: Progress) -> Optional[float]:
        """Seconds left after this report, or None until two steps have been seen."""
        if progress.step <= 0 or progress.total <= 0:
            return None
        if self._first is None or progress.step < self._first[0]:
            self._first = (progress.step, progress.elapsed)
            return None
        step, elapsed = self._first
        if progress.step == step:
            return None
        rate = (progress.elapsed - elapsed) / (progress.step - step)
        return max(0.0, rate * (progress.total - progress.step))


def run_interruptibly(work: Callable[[], T]) -> T:
    """`work()` on a helper thread while this thread waits in short steps, so that Ctrl+C (KeyboardInterrupt)
    reaches the caller within a tenth of a second even when `work` is a long call into C++ that releases the
    GIL (SimpleITK). After an interrupt the helper (a daemon thread) is left to finish and its result dropped.
    """
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    helper = threading.Thread(target=target, name="inpaint-interruptible", daemon=True)
    helper.start()
    while helper.is_alive():
        helper.join(0.1)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
