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
* a unit that runs past its ``timeout_s`` (counted from when its task
  announces its start on the ``relubench-started`` event topic) is charged
  ``timeout`` rows, its future is cancelled and its worker process is killed
  (a nanny restarts it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from harness.executors import default_workers, died_message, timeout_message
from harness.plugins import get_registry
from harness.runner import UnitResult, WorkUnit, failed_rows, run_unit

# Scheduler settings of a LocalCluster we start (see the module docstring).
LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
POLL_S = 0.1
START_TOPIC = "relubench-started"
RETRIES_AFTER_DEATH = 1


def run_unit_on_worker(unit: WorkUnit, timed: bool = False) -> UnitResult:
    """The Dask task: one thread for torch (workers share the cores), then the unit.

    With a timeout, the task announces its start on the ``relubench-started``
    event topic once plugins are loaded, so a worker's first import of torch and
    the plugins is not charged to the unit's timeout.
    """
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if timed:
        from distributed import get_worker

        get_registry(unit.plugins, unit.blocked)
        worker = get_worker()
        worker.log_event(START_TOPIC, {"key": worker.get_current_task(), "worker": worker.address})
    return run_unit(unit)


async def _exit_worker() -> None:  # runs on the worker's event loop, not in the hung thread
    os._exit(75)


def _kill_worker(client: Any, worker: str) -> None:
    """Stop the worker process at ``worker`` (its task's thread cannot be interrupted).

    The nanny kills and restarts it, which works even if the stuck task holds the
    GIL; a worker started without a nanny is asked to exit instead.
    """
    try:
        client.restart_workers([worker], raise_for_error=True)
    except Exception:
        try:
            client.run(_exit_worker, workers=[worker], wait=False)
        except Exception:  # already gone
            pass


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
        timed = bool(unit.timeout_s)
        return self.client.submit(run_unit_on_worker, unit, timed, key=key, pure=False)

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        from distributed import as_completed

        units = list(units)
        timed = any(u.timeout_s for u in units)
        started: dict[str, tuple[float, str]] = {}  # key -> (start seen here, worker address)

        def on_start(event: tuple[float, dict[str, str]]) -> None:
            msg = event[1]
            # The latest attempt counts: a task whose worker died is started again.
            started[msg["key"]] = (time.monotonic(), msg["worker"])

        if timed:
            self.client.subscribe_topic(START_TOPIC, on_start)
        futures: dict[str, tuple[Any, WorkUnit, int]] = {}  # key -> (future, unit, deaths)
        for unit in units:
            fut = self._submit(unit)
            futures[fut.key] = (fut, unit, 0)
        # Results are gathered in the background: this loop never blocks on one future, so
        # timeouts are enforced meanwhile, and a result lost with a dead worker is recomputed.
        seq = as_completed(
            [f for f, _, _ in futures.values()], with_results=True, raise_errors=False
        )
        try:
            while futures:
                if timed:
                    batch = seq.next_batch(block=False)
                else:
                    batch = [next(seq)]
                for fut, value in batch:
                    entry = futures.pop(fut.key, None)
                    if entry is None:  # cancelled after its timeout: already charged
                        continue
                    _, unit, deaths = entry
                    started.pop(fut.key, None)
                    result = self._outcome(fut, value, unit, deaths, seq, futures)
                    if result is not None:
                        yield result
                if timed:
                    yield from self._stop_overdue(futures, started)
                    if not batch:
                        time.sleep(POLL_S)
        finally:
            if timed:
                self.client.unsubscribe_topic(START_TOPIC)
            for fut, _, _ in futures.values():
                fut.cancel()

    def _outcome(
        self, fut: Any, value: Any, unit: WorkUnit, deaths: int, seq: Any, futures: dict
    ) -> UnitResult | None:
        from distributed import KilledWorker

        if isinstance(value, UnitResult):
            return value
        exc = value[1] if isinstance(value, tuple) and len(value) == 3 else value
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
        for key, (since, worker) in list(started.items()):
            fut, unit, _ = futures.get(key, (None, None, 0))
            if fut is None or fut.done():  # a recomputed result announces a new start
                started.pop(key)
                continue
            if unit.timeout_s and now - since >= unit.timeout_s and not fut.done():
                del futures[key]
                started.pop(key)
                yield failed_rows(unit, "timeout", timeout_message(unit))
                fut.cancel()
                # In a thread: a restart takes seconds, and other units' results keep coming.
                threading.Thread(
                    target=_kill_worker, args=(self.client, worker), daemon=True
                ).start()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
