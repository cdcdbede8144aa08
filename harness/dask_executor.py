"""The Dask executor: work units as tasks on a ``dask.distributed`` cluster.

Without a scheduler address it starts a :class:`distributed.LocalCluster`
(worker processes, one thread each, as many as cores or ``--workers``); with
``--scheduler tcp://HOST:PORT`` it connects to a running cluster (e.g. one
that dask-jobqueue started on Slurm or PBS, see docs/execution.md).

Tasks *return* their rows; the driving process alone writes part files, so
workers need no access to the results folder (no shared filesystem for
results). Workers do need the harness, the plugins and any ``--plugin`` file
at the same path.

Timeouts and crashes use Dask's own machinery, no side channel:

* a task that dies with its worker process comes back as ``KilledWorker``.
  On a LocalCluster we start, the scheduler is told to give up after the
  first death (``allowed-failures = 0``) and to keep one task per worker
  thread (``worker-saturation = 1.0``), so only the culprit is charged. A unit
  that comes back ``KilledWorker`` is retried once; a second death gives
  ``error`` rows saying the worker died;
* a unit that runs past its ``timeout_s`` (counted from when the scheduler
  shows it processing on a worker) is charged ``timeout`` rows, its future is
  cancelled and its worker process is killed (a nanny restarts it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from harness.executors import default_workers, died_message, timeout_message
from harness.runner import UnitResult, WorkUnit, failed_rows, run_unit

# Scheduler settings of a LocalCluster we start (see the module docstring).
LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
POLL_S = 0.1
RETRIES_AFTER_DEATH = 1


def run_unit_on_worker(unit: WorkUnit) -> UnitResult:
    """The Dask task: one thread for torch (workers share the cores), then the unit."""
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return run_unit(unit)


def _exit_worker() -> None:  # runs on the worker's event loop, not in the hung task's thread
    os._exit(75)


class DaskExecutor:
    """Runs work units as tasks on a Dask distributed cluster (LocalCluster or ``--scheduler``)."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, **_: Any) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.scheduler = scheduler
        self._cluster = None
        if scheduler:
            self.client = Client(scheduler)
            self.workers = len(self.client.nthreads()) or 1
        else:
            self.workers = max(1, workers or default_workers())
            with dask.config.set(LOCAL_CONFIG):
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            self.client = Client(self._cluster)
        self._seq = 0

    def _submit(self, unit: WorkUnit) -> Any:
        self._seq += 1
        key = f"relubench-{unit.cell.cell_id}-{unit.trials[0]}-{unit.run_id}-{self._seq}"
        return self.client.submit(run_unit_on_worker, unit, key=key, pure=False)

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        from distributed import as_completed

        futures: dict[str, tuple[Any, WorkUnit, int]] = {}  # key -> (future, unit, deaths)
        timed = False
        for unit in units:
            fut = self._submit(unit)
            futures[fut.key] = (fut, unit, 0)
            timed = timed or bool(unit.timeout_s)
        seq = as_completed([f for f, _, _ in futures.values()])
        started: dict[str, tuple[float, str]] = {}  # key -> (first seen processing, worker)
        last_poll = 0.0
        while futures:
            batch = seq.next_batch(block=not timed)
            for fut in batch:
                entry = futures.pop(fut.key, None)
                if entry is None:  # cancelled after its timeout: already charged
                    continue
                _, unit, deaths = entry
                started.pop(fut.key, None)
                result = self._outcome(fut, unit, deaths, seq, futures)
                if result is not None:
                    yield result
            if timed and time.monotonic() - last_poll >= POLL_S:
                last_poll = time.monotonic()
                yield from self._stop_overdue(futures, started)
            if timed and not batch:
                time.sleep(POLL_S / 2)

    def _outcome(
        self, fut: Any, unit: WorkUnit, deaths: int, seq: Any, futures: dict
    ) -> UnitResult | None:
        from distributed import KilledWorker

        if fut.status == "finished":
            return fut.result()
        exc = fut.exception() if fut.status == "error" else None
        fut.release()
        if isinstance(exc, KilledWorker):
            if deaths < RETRIES_AFTER_DEATH:
                # Several tasks may share a dying worker; only a repeat offender is charged.
                again = self._submit(unit)
                futures[again.key] = (again, unit, deaths + 1)
                seq.add(again)
                return None
            return failed_rows(unit, "error", died_message(None) + f": {exc}")
        return failed_rows(unit, "error", f"dask task failed: {type(exc).__name__}: {exc}")

    def _stop_overdue(
        self, futures: dict[str, tuple[Any, WorkUnit, int]], started: dict[str, tuple[float, str]]
    ) -> Iterator[UnitResult]:
        now = time.monotonic()
        for worker, keys in self.client.processing().items():
            for key in keys:
                if key in futures and key not in started:
                    started[key] = (now, worker)
        for key, (since, worker) in list(started.items()):
            fut, unit, _ = futures.get(key, (None, None, 0))
            if fut is None:
                started.pop(key)
                continue
            if unit.timeout_s and now - since >= unit.timeout_s:
                del futures[key]
                started.pop(key)
                yield failed_rows(unit, "timeout", timeout_message(unit))
                fut.cancel()
                # The task's thread cannot be interrupted: stop its whole process.
                try:
                    self.client.run(_exit_worker, workers=[worker], wait=False)
                except Exception:  # already gone
                    pass

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
