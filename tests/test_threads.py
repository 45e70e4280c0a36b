"""Torch thread count for fills: the cores the load average leaves idle, at least one."""

from __future__ import annotations

import pytest

from core.threads import AUTO, choose_threads, cpu_count, resolve_threads


@pytest.mark.parametrize("cores, load, expected", [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.3, 1), (2, 0.8, 1), (2, 1.0, 1), (2, 3.5, 1),
    (8, 0.0, 8), (8, 2.0, 6), (8, 2.3, 5), (8, 20.0, 1), (1, 0.0, 1),
])
def test_the_cores_the_load_leaves_idle_at_least_one(cores, load, expected):
    assert choose_threads(cores=cores, load=load) == expected


def test_unknown_load_means_one_thread(monkeypatch):
    monkeypatch.setattr("core.threads.load_average", lambda: None)
    assert choose_threads(cores=4) == 1 and resolve_threads(AUTO) == 1


def test_a_chosen_count_is_kept_and_auto_reads_the_machine():
    assert resolve_threads(3) == 3 and 1 <= resolve_threads(AUTO) <= cpu_count()


def test_a_slurm_job_uses_the_cores_it_was_given_whatever_the_nodes_load(monkeypatch):
    """On a shared node the load average counts other jobs: a --cpus-per-task=2 job got one thread."""
    monkeypatch.setattr("core.threads.load_average", lambda: 60.0)
    monkeypatch.setattr("core.threads.cpu_count", lambda: 2)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert resolve_threads(AUTO) == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert resolve_threads(AUTO) == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")   # never more than the process may run on
    assert resolve_threads(AUTO) == 2
