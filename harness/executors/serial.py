"""The serial executor: every unit in this process, in order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from harness.executors.base import SOLVER_THREADS
from harness.executors.processes import ProcessExecutor
from harness.runner import UnitResult, WorkUnit, contained_exits, run_unit


class SerialExecutor:
    """Runs every unit in this process, in order (debugging, profiling, tiny suites, pytest).

    A unit with a timeout runs in one child process instead (one at a time, with
    the same solver threads, so its numbers are the same): only a process
    boundary can stop a solver that hangs. In this process, a solver's ``sys.exit()``
    and ``os._exit()`` become ``error`` rows of its unit (:func:`contained_exits`),
    like any exception; a crash below Python (segfault) is contained only by a
    process boundary (``processes``, or a ``timeout_s``).
    """

    name = "serial"

    def __init__(self, workers: int = 1, *, threads: int | None = None, **_: object) -> None:
        self.workers = 1
        self.threads = threads or SOLVER_THREADS
        self._child: ProcessExecutor | None = None

    def run(self, units: Iterable[WorkUnit]) -> Iterator[UnitResult]:
        import torch

        saved = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for unit in units:
                if unit.timeout_s:
                    if self._child is None:
                        self._child = ProcessExecutor(1, threads=self.threads)
                    yield from self._child.run([unit])
                else:
                    with contained_exits():
                        result = run_unit(unit)
                    yield result
        finally:
            torch.set_num_threads(saved)

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None
