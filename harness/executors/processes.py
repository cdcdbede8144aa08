"""The local process pool (the default executor).

Failures that take a process down are data too:

* a unit that runs past its ``timeout_s`` is stopped by killing the process
  that runs it (no cooperative check: a solver stuck in C code stops too); its
  trials get status ``timeout``;
* a unit whose process dies (``os._exit``, a segfault, the OOM killer) gets
  ``error`` rows saying the worker died, and a fresh worker replaces the dead
  one. Only that unit is charged: every other unit runs to its own result.

The pool is a handful of long-lived worker processes, each with its own
pipe, so the driver always knows which unit each process runs and since when.
That is what makes both rules exact (a ``ProcessPoolExecutor`` cannot say which
of its workers died, nor kill one).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.executors.base import (
    SOLVER_THREADS,
    default_workers,
    died_message,
    return_large_blocks_to_the_os,
    timeout_message,
)
from harness.plugins import get_registry
from harness.runner import UnitResult, WorkUnit, failed_result, run_unit

STARTED = "started"  # a worker's message: the unit's clock starts now


def _init_worker(threads: int) -> None:
    import torch

    return_large_blocks_to_the_os()  # a unit's data is freed for real after the unit

    # Several workers share the cores: one BLAS/OpenMP thread each avoids oversubscription.
    torch.set_num_threads(threads)


_DRIVER_ENDS: weakref.WeakSet[Connection] = weakref.WeakSet()
"""The driver's ends of its workers' pipes. A forked worker inherits them and closes them
first: otherwise its own pipe never reads EOF when the driver is gone (the worker itself
would hold the other end), and it would live on holding the driver's stdout and stderr."""


def _worker_main(conn: Connection, threads: int) -> None:
    """A worker's loop: receive a unit, run it, send its result; stop on ``None`` or EOF."""
    # Ctrl-C reaches the whole process group: the driver handles it and stops workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in list(_DRIVER_ENDS):  # inherited by fork (none after a forkserver or spawn)
        end.close()
    _init_worker(threads)
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):  # the driver is gone (killed): nothing to report to
            return
        if unit is None:
            return
        try:
            # Plugins load before the clock starts: a unit's timeout is for its own work.
            get_registry(unit.plugins, unit.blocked)
            conn.send(STARTED)
            result = run_unit(unit)
        except BaseException as exc:  # noqa: BLE001 - e.g. sys.exit() in a solver, a bad plugin
            result = failed_result(
                unit, "error", f"worker failed outside the solver: {type(exc).__name__}: {exc}"
            )
        try:
            conn.send(result)
        except (BrokenPipeError, EOFError, OSError):
            return
        except Exception as exc:  # the result does not pickle
            conn.send(failed_result(unit, "error", f"result could not be sent back: {exc}"))


class _Worker:
    """One worker process, the driver's end of its pipe, and the unit it runs."""

    def __init__(self, ctx: Any, threads: int) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        _DRIVER_ENDS.add(self.conn)
        self.proc = ctx.Process(target=_worker_main, args=(child, threads), name="relubench-worker")
        try:
            self.proc.start()
        finally:
            child.close()
        self.unit: WorkUnit | None = None
        self.started: float | None = None

    def send(self, unit: WorkUnit) -> None:
        self.conn.send(unit)
        self.unit = unit
        self.started = None

    def deadline(self) -> float | None:
        if self.unit is None or not self.unit.timeout_s or self.started is None:
            return None
        return self.started + self.unit.timeout_s

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self, grace: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(grace)
        self.kill()


def start_method(threads: int) -> str:
    """How worker processes start: ``fork`` of the driver where that is safe, else a forkserver.

    A forked worker starts in milliseconds with torch, the harness and the plugins the
    driver has loaded already: no second ``import torch`` (~1.5 s of CPU) in a forkserver
    before the first unit runs. That is safe on Linux when every worker runs with one
    torch thread (the default): torch then runs its kernels inline and MKL sequentially,
    so no child ever starts an OpenMP team and whatever OpenMP threads the driver had do
    not matter (the pattern of torch's own DataLoader workers); OpenBLAS re-creates its
    pool after a fork. With more threads a worker would start OpenMP teams, which GNU
    OpenMP does not support after a fork of a process that used them: then workers fork
    from a forkserver that has imported torch and the harness (``spawn`` without one).
    """
    if threads == 1 and sys.platform.startswith("linux"):
        return "fork"
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def _context(threads: int) -> Any:
    method = start_method(threads)
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Workers fork from a server that has imported torch and the harness already,
        # so starting (or replacing) one is cheap and no child inherits OpenMP state.
        ctx.set_forkserver_preload(["torch", "harness.runner"])
    return ctx


class ProcessExecutor:
    """A pool of local worker processes (the default).

    Each worker is a long-lived process with its own pipe; the driver hands it
    one unit at a time. A unit past its ``timeout_s`` is stopped by killing its
    worker (``timeout`` rows); a worker that dies under its unit gives ``error``
    rows for that unit alone. Either way a fresh worker takes the slot and the
    run goes on.
    """

    name = "processes"

    def __init__(
        self, workers: int | None = None, *, threads: int | None = None, **_: object
    ) -> None:
        self.workers = max(1, workers or default_workers())
        self.threads = threads or SOLVER_THREADS
        self._ctx: Any = None
        self._idle: list[_Worker] = []
        self._busy: dict[Connection, _Worker] = {}
        self._started: list[_Worker] = []  # every worker, also one a Ctrl-C caught in between

    def _worker(self) -> _Worker:
        if self._idle:
            return self._idle.pop()
        if self._ctx is None:
            self._ctx = _context(self.threads)
        worker = _Worker(self._ctx, self.threads)
        self._started.append(worker)
        return worker

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        pending = deque(units)
        busy = self._busy
        while pending or busy:
            while pending and len(busy) < self.workers:
                worker = self._worker()
                unit = pending.popleft()
                try:
                    worker.send(unit)
                except (BrokenPipeError, OSError):  # died while idle: replace it, retry the unit
                    worker.kill()
                    pending.appendleft(unit)
                    continue
                busy[worker.conn] = worker
            deadlines = [d for w in busy.values() if (d := w.deadline()) is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            handles: list[Any] = [*busy, *(w.proc.sentinel for w in busy.values())]
            ready = set(wait(handles, timeout))
            for conn, worker in list(busy.items()):
                if conn not in ready and worker.proc.sentinel not in ready:
                    continue
                result = self._receive(worker)
                if isinstance(result, str):  # STARTED
                    worker.started = time.monotonic()
                    continue
                del busy[conn]
                if result is None:  # the process died: its unit alone is charged
                    worker.proc.join(5)
                    yield failed_result(worker.unit, "error", died_message(worker.proc.exitcode))
                    worker.kill()
                else:
                    worker.unit = None
                    self._idle.append(worker)
                    yield result
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                deadline = worker.deadline()
                if deadline is not None and now >= deadline and not conn.poll():
                    del busy[conn]
                    worker.kill()
                    yield failed_result(worker.unit, "timeout", timeout_message(worker.unit))

    @staticmethod
    def _receive(worker: _Worker) -> UnitResult | str | None:
        """The worker's next message (``STARTED`` or a result), or ``None`` if it died."""
        try:
            if worker.conn.poll():
                return worker.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def close(self) -> None:
        for worker in self._busy.values():
            worker.kill()
        self._busy.clear()
        for worker in self._idle:
            worker.stop()
        self._idle.clear()
        for worker in self._started:  # between start and busy/idle when Ctrl-C came
            if worker.proc.exitcode is None:
                worker.kill()
        self._started.clear()
