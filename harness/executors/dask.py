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
  (SIGKILL on this host, else asked to exit; a nanny restarts it). The
  scheduler may hand that dying worker a healthy unit before it notices the
  death; such a unit comes back ``KilledWorker`` too. The driver remembers the
  workers it killed, and a unit whose last worker (``KilledWorker.last_worker``)
  is one of them is resubmitted without being charged.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from harness.errors import InputError
from harness.executors.base import (
    SOLVER_THREADS,
    default_workers,
    died_message,
    timeout_message,
)
from harness.plugins import get_registry
from harness.runner import UnitResult, WorkUnit, failed_result, run_unit

# Scheduler settings of a LocalCluster we start (see the module docstring).
LOCAL_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
# A LocalCluster forgets a worker whose process has not come back this long after it
# died, and closes its nanny for good (default 15 s). A worker we kill for a timeout is
# restarted by its nanny, which can take longer than that on a loaded machine (torch and
# the plugins load again); with the default the cluster shrank to no workers and the run
# waited forever. Read when a worker is lost, so it is set for the process, not only
# while the cluster starts.
LOST_WORKER_TIMEOUT = {"distributed.deploy.lost-worker-timeout": "1 hour"}
POLL_S = 0.1
FETCH_S = 30.0  # fetching a finished result; longer only if it was lost
START_TOPIC = "relubench-started"
RETRIES_AFTER_DEATH = 1
RESUBMITS_AFTER_OUR_KILLS = 10  # a bound, so no unit is resubmitted forever


def run_unit_on_worker(unit: WorkUnit, timed: bool = False) -> UnitResult:
    """The Dask task: the solver threads every executor uses, then the unit.

    With a timeout, the task announces its start on the ``relubench-started``
    event topic once plugins are loaded, so a worker's first import of torch and
    the plugins is not charged to the unit's timeout.
    """
    import torch

    if torch.get_num_threads() != SOLVER_THREADS:
        torch.set_num_threads(SOLVER_THREADS)
    if timed:
        from distributed import get_worker

        get_registry(unit.plugins, unit.blocked)
        worker = get_worker()
        worker.log_event(
            START_TOPIC,
            {
                "key": worker.get_current_task(),
                "worker": worker.address,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
    return run_unit(unit)


async def _exit_worker() -> None:  # runs on the worker's event loop, not in the hung thread
    os._exit(75)


def _kill_worker(client: Any, worker: str, host: str, pid: int) -> None:
    """Stop the worker process running a hung task (its thread cannot be interrupted).

    On this host the process is killed outright (SIGKILL works even if the task
    holds the GIL), and its nanny starts a fresh one. A remote worker is asked to
    exit from its event loop.
    """
    if host == socket.gethostname():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    try:
        client.run(_exit_worker, workers=[worker], wait=False)
    except Exception:  # already gone
        pass


CONNECT_TIMEOUT_S = 10.0
"""How long ``--scheduler ADDR`` may take to answer before the run gives up (Dask's
default is 30 s)."""


def _connect(client_cls: Any, scheduler: str) -> Any:
    """A client of the scheduler at ``scheduler``; a one-line error naming the address
    (``ConnectionError``, exit 3; ``InputError`` for an address that is not one)."""
    try:
        return client_cls(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"--scheduler {scheduler}: no Dask scheduler answered within "
            f"{CONNECT_TIMEOUT_S:g} s ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise InputError(f"--scheduler {scheduler}: not a scheduler address: {exc}") from exc


class DaskExecutor:
    """Runs work units as tasks on a Dask distributed cluster (LocalCluster or ``--scheduler``)."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, **_: Any) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.scheduler = scheduler
        self._cluster = None
        if scheduler:
            self.client = _connect(Client, scheduler)
            self.workers = len(self.client.nthreads()) or 1
        else:
            self.workers = max(1, workers or default_workers())
            dask.config.set(LOST_WORKER_TIMEOUT)
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
        self._killed: set[str] = set()  # addresses of workers killed for a timeout
        self._spared: dict[WorkUnit, int] = {}

    def _submit(self, unit: WorkUnit) -> Any:
        self._seq += 1
        key = f"relubench-{unit.cell.cell_id}-{unit.trials[0]}-{unit.run_id}-{self._seq}"
        timed = bool(unit.timeout_s)
        return self.client.submit(run_unit_on_worker, unit, timed, key=key, pure=False)

    def _submit_all(self, units: list[WorkUnit]) -> list[Any]:
        """All units as one graph (one ``client.map``: one message to the scheduler, not
        one per unit)."""
        if not units:
            return []
        keys = []
        for unit in units:
            self._seq += 1
            keys.append(f"relubench-{unit.cell.cell_id}-{unit.trials[0]}-{unit.run_id}-{self._seq}")
        timed = [bool(u.timeout_s) for u in units]
        return self.client.map(run_unit_on_worker, units, timed, key=keys, pure=False)

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        from distributed import as_completed

        units = list(units)
        timed = any(u.timeout_s for u in units)
        started: dict[str, tuple[float, dict]] = {}  # key -> (start seen here, start event)

        def on_start(event: tuple[float, dict[str, str]]) -> None:
            msg = event[1]
            # The latest attempt counts: a task whose worker died is started again.
            started[msg["key"]] = (time.monotonic(), msg)

        if timed:
            self.client.subscribe_topic(START_TOPIC, on_start)
        futures: dict[str, tuple[Any, WorkUnit, int]] = {}  # key -> (future, unit, deaths)
        for unit, fut in zip(units, self._submit_all(units)):
            futures[fut.key] = (fut, unit, 0)
        # with_results: results are fetched on the client's event loop as tasks finish,
        # all at once; fetching each with fut.result() here was a blocking round trip to
        # the worker per unit (9 of the 11 ms per unit this executor cost, measured).
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
        """What a finished task means: its result, a retry, or ``error`` rows.

        ``value`` is what ``as_completed(with_results=True, raise_errors=False)`` fetched:
        the task's result, ``(type, exception, traceback)`` for a task that failed, or the
        ``CancelledError``.
        """
        from distributed import KilledWorker

        exc: BaseException | None = None
        lost = fut.status not in ("finished", "error", "cancelled")
        if not lost:
            if fut.status == "finished" and isinstance(value, UnitResult):
                fut.release()
                return value
            if isinstance(value, tuple) and len(value) == 3:
                exc = value[1]
            elif isinstance(value, BaseException):
                exc = value
            else:  # finished but its result came back as something else: fetch it again
                try:
                    value = fut.result(timeout=FETCH_S)
                    fut.release()
                    return value
                except TimeoutError:
                    lost = True
                except Exception as e:
                    exc = e
        if lost:
            # Its worker died before we fetched the result: Dask recomputes it. Wait for
            # that like for any other task, without blocking this loop (timeouts go on).
            futures[fut.key] = (fut, unit, deaths)
            seq.add(fut)
            return None
        fut.release()
        if isinstance(exc, KilledWorker):
            last = getattr(getattr(exc, "last_worker", None), "address", None)
            if last in self._killed:
                # Not this unit's doing: the scheduler handed it a worker we had just killed
                # for another unit's timeout (or it shared that worker). Run it again
                # without charging it; the bound only guards against a loop.
                spared = self._spared.get(unit, 0)
                if spared < RESUBMITS_AFTER_OUR_KILLS:
                    self._spared[unit] = spared + 1
                    again = self._submit(unit)
                    futures[again.key] = (again, unit, deaths)
                    seq.add(again)
                    return None
            if deaths < RETRIES_AFTER_DEATH:
                # Several tasks may share a dying worker; only a repeat offender is charged.
                again = self._submit(unit)
                futures[again.key] = (again, unit, deaths + 1)
                seq.add(again)
                return None
            return failed_result(unit, "error", died_message(None) + f": {exc}")
        return failed_result(unit, "error", f"dask task failed: {type(exc).__name__}: {exc}")

    def _stop_overdue(
        self, futures: dict[str, tuple[Any, WorkUnit, int]], started: dict[str, tuple[float, dict]]
    ) -> Iterator[UnitResult]:
        now = time.monotonic()
        for key, (since, event) in list(started.items()):
            fut, unit, _ = futures.get(key, (None, None, 0))
            if fut is None or fut.done():  # a recomputed result announces a new start
                started.pop(key)
                continue
            if unit.timeout_s and now - since >= unit.timeout_s and not fut.done():
                del futures[key]
                started.pop(key)
                yield failed_result(unit, "timeout", timeout_message(unit))
                # Kill first, then cancel: a cancelled task frees its slot, and the scheduler
                # could hand the doomed worker an innocent task in between.
                args = (self.client, event["worker"], event["host"], event["pid"])
                self._killed.add(event["worker"])
                if event["host"] == socket.gethostname():
                    _kill_worker(*args)
                else:  # a remote call may take seconds; other results keep coming
                    threading.Thread(target=_kill_worker, args=args, daemon=True).start()
                fut.cancel()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
