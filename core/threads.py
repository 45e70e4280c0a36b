"""How many torch threads a fill should use: fast on an idle machine, and still fast on a busy one (no Qt).

On a shared CPU, torch's threads wait for each other at every operation: when another process
holds a core, two threads on two cores run a fill 2-3 times slower than one thread
(`scripts/measure_gui_fill.py`). More threads than free cores therefore never pay; so a fill takes the
cores the load average leaves idle, at least one.
"""

from __future__ import annotations

import math
import os
from typing import Optional

AUTO = 0  # a thread setting of 0 means: choose with `choose_threads` when the fill starts


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_average() -> Optional[float]:
    """One-minute load average (runnable processes), or None where the system has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def dedicated_cores() -> Optional[int]:
    """The cores a batch scheduler gave this process alone (SLURM_CPUS_PER_TASK within the process's affinity), or
    None: on a shared node the load average counts every job's processes, not this one's cores."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(int(given), cpu_count()) if given.isdigit() and int(given) > 0 else None


def choose_threads(cores: Optional[int] = None, load: Optional[float] = None) -> int:
    """Threads for the next fill: the cores a scheduler dedicated to this job (`dedicated_cores`), else the cores
    left idle by the current load, at least 1.

    A core counts as free only when less than a quarter of it is in use (`load` is the
    one-minute load average; `None` reads it). Where the load is unknown, one thread.
    """
    if cores is None and load is None and dedicated_cores() is not None:
        return dedicated_cores()
    cores = cpu_count() if cores is None else max(1, int(cores))
    load = load_average() if load is None else load
    if load is None:
        return 1
    free = math.floor(cores - max(0.0, load) + 0.25)
    return max(1, min(cores, free))


def resolve_threads(setting: int) -> int:
    """The thread count to use for a setting: `AUTO` chooses now, any other value is kept."""
    return choose_threads() if setting == AUTO else max(1, int(setting))
