"""Executors: where work units run. Serial (in this process), local processes (default), Dask.

An executor takes work units and yields :class:`UnitResult` objects as they
finish; the caller stores them. Workers return rows to the driving process,
which alone writes part files, so the results folder needs no shared
filesystem and a killed run loses only the units in flight.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from harness.errors import InputError
from harness.runner import UnitResult, WorkUnit, failed_rows, run_unit

EXECUTORS = ("serial", "processes", "dask")


def default_workers() -> int:
    return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    import torch

    # Several workers share the cores: one BLAS/OpenMP thread each avoids oversubscription.
    torch.set_num_threads(threads)


class SerialExecutor:
    """Runs every unit in this process, in order (debugging, profiling, tiny suites)."""

    name = "serial"

    def __init__(self, workers: int = 1, **_: object) -> None:
        self.workers = 1

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        for unit in units:
            yield run_unit(unit)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A pool of local worker processes (the default).

    Workers start from a forkserver that has already imported torch and the
    harness, so starting one is cheap and no forked child inherits OpenMP
    thread state. A worker that dies takes only its unit with it: that unit
    becomes ``error`` rows and the pool is rebuilt for the rest.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, **_: object) -> None:
        self.workers = max(1, workers or default_workers())
        self.threads = 1 if self.workers > 1 else max(1, (os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["torch", "harness.runner"])
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads,),
        )

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        from concurrent.futures.process import BrokenProcessPool

        pending = list(units)
        pending.reverse()
        while pending:
            self._pool = self._pool or self._new_pool()
            futures = {}
            # Keep a bounded number of units in flight, so a broken pool loses few.
            while pending or futures:
                while pending and len(futures) < 2 * self.workers:
                    unit = pending.pop()
                    futures[self._pool.submit(run_unit, unit)] = unit
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    unit = futures.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        yield failed_rows(
                            unit, "error", "worker process died while running this unit"
                        )
                if broken:
                    # Units still in flight are resubmitted on a fresh pool.
                    pending.extend(futures.values())
                    futures.clear()
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
                    break

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(name: str, workers: int | None = None, scheduler: str | None = None):
    """The executor called ``name`` (serial, processes, dask)."""
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "dask":
        from harness.dask_executor import DaskExecutor

        return DaskExecutor(workers=workers, scheduler=scheduler)
    raise InputError(f"--executor {name!r}: unknown executor; allowed: {', '.join(EXECUTORS)}")
