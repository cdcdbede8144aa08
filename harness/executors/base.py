"""What every executor shares: the :class:`Executor` protocol, thread and worker defaults,
and the ``error`` texts of units that a process boundary stopped."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harness.runner import UnitResult, WorkUnit

EXECUTORS = ("serial", "processes", "dask")

SOLVER_THREADS = 1
"""Torch threads a solver runs with, whatever the executor. Parallelism comes from workers;
one thread everywhere keeps workers off each other's cores and makes serial, processes
(any worker count) and Dask runs bitwise identical (torch splits large reductions
differently with more threads)."""


class Executor(Protocol):
    """Where work units run: takes units, yields their results as they finish.

    Workers *return* rows to the driving process, which alone writes part files, so
    the results folder needs no shared filesystem. A unit that a timeout or a dying
    process stops still yields a result (``timeout`` or ``error`` rows): failures
    are data, and every other unit runs to its own result.
    """

    name: str
    workers: int

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        """Run ``units``; yield one result per unit, in the order they finish."""
        ...

    def close(self) -> None:
        """Release workers and clusters; the executor is not used afterwards."""
        ...


MMAP_THRESHOLD = 4 * 2**20
"""Allocations of at least this many bytes get their own mapping in a worker (glibc)."""


def return_large_blocks_to_the_os() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` in this process (a worker).

    By default glibc raises the threshold to the size of each mapped block freed (up to
    32 MiB), after which blocks of that size come from the heap and stay there when freed:
    a worker sampling a unit's data trial by trial (J1: 100 trials of 0.8 MB each) then
    keeps growing, by about one unit's data per unit (measured: a worker at 430 MB after
    J1's 35 units instead of ~240 MB). A fixed threshold maps every block of 4 MiB or more
    and unmaps it when freed; smaller ones (a solver's per-iteration temporaries) stay on
    the fast heap. Returns whether it applied (False off glibc).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_MMAP_THRESHOLD = -3
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def default_workers() -> int:
    return os.cpu_count() or 1


def timeout_message(unit: WorkUnit) -> str:
    """The ``error`` text of a unit stopped by its timeout."""
    return (
        f"timeout: the work unit ran longer than timeout_s = {unit.timeout_s:g} s and its worker "
        "process was killed"
    )


def died_message(exitcode: int | None) -> str:
    """The ``error`` text of a unit whose worker process died under it."""
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    elif exitcode is not None:
        how = f"exit code {exitcode}"
    else:
        how = "exit status unknown"
    return f"worker process died while running this unit ({how})"
