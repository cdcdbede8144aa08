"""Executors: where work units run. Serial (in this process), local processes (default), Dask.

Every executor follows the :class:`Executor` protocol: it takes work units and
yields :class:`~harness.runner.UnitResult` objects as they finish; the run session
(:mod:`harness.run`) stores them. :func:`make_executor` builds one by name.

* :mod:`harness.executors.serial`: in this process, in order;
* :mod:`harness.executors.processes`: a pool of local worker processes (default);
* :mod:`harness.executors.dask`: tasks on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

from harness.errors import InputError
from harness.executors.base import (
    EXECUTORS,
    SOLVER_THREADS,
    Executor,
    default_workers,
    died_message,
    timeout_message,
)
from harness.executors.processes import ProcessExecutor
from harness.executors.serial import SerialExecutor


def make_executor(
    name: str,
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    threads: int | None = None,
) -> Executor:
    """The executor called ``name`` (serial, processes, dask).

    ``threads`` (serial and processes): torch threads per solver, default
    :data:`SOLVER_THREADS`.
    """
    if scheduler is not None and name != "dask":
        raise InputError(f"--scheduler {scheduler}: only used with --executor dask")
    if name == "serial":
        return SerialExecutor(threads=threads)
    if name == "processes":
        return ProcessExecutor(workers, threads=threads)
    if name == "dask":
        from harness.executors.dask import DaskExecutor

        return DaskExecutor(workers=workers, scheduler=scheduler)
    raise InputError(f"--executor {name!r}: unknown executor; allowed: {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "SOLVER_THREADS",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "default_workers",
    "died_message",
    "make_executor",
    "timeout_message",
]
