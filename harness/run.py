"""Running a suite: plan work units, execute them, store their rows, call the hooks, judge.

This is the one run loop: ``relubench run`` and :func:`harness.run_suite` call
:func:`execute`; the pytest plugin runs its cells through the same
:class:`RunSession`. A session knows the suite's cells, its results store, its
run id and the file metadata of its part files; :meth:`RunSession.run` executes
units on an executor, writes their rows through the store and calls
``relubench_cell_done``; :func:`judge` evaluates the suite's expectations.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from harness.declarations import declare
from harness.errors import InputError
from harness.executors import EXECUTORS, Executor, default_workers, make_executor
from harness.expand import Cell, Dropped
from harness.plugins import Registry, get_registry
from harness.rows import provenance, runs_schema
from harness.runner import UnitResult, WorkUnit
from harness.store import LEASE_TTL_S, Leases, Store
from harness.suite import Suite, load_suite

if TYPE_CHECKING:
    import pandas as pd

    from harness.expect import Expectation, Outcome


@dataclass
class RunReport:
    """What a run did: where results are, what ran, what failed, expectation outcomes."""

    suite: Suite
    results_dir: Path
    cells: list[Cell]
    dropped: list[Dropped]
    units_run: int = 0
    trials_run: int = 0
    trials_skipped: int = 0
    failed_trials: int = 0
    outcomes: list[Any] = field(default_factory=list)
    wall_s: float = 0.0
    runs: Any = None
    """The suite's stored rows after the run (:meth:`Store.suite_rows`)."""
    missing: list[str] = field(default_factory=list)
    """Units whose rows are not on disk at the end of the run (one line each)."""
    trials_waited: int = 0
    """Trials another run on the same folder held a lease on; this run read their rows."""

    @property
    def exit_code(self) -> int:
        failed_expect = any(not o.held for o in self.outcomes)
        return 1 if (self.failed_trials or failed_expect or self.missing) else 0


# ----------------------------------------------------------------------- loading


def prepare(
    path: str | Path,
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
) -> tuple[Registry, Suite, list[Cell], list[Dropped]]:
    """Load and expand a suite (no side effects): what ``--dry-run`` shows."""
    try:
        registry = get_registry(tuple(plugins), tuple(blocked))
    except pluggy.PluginValidationError as exc:  # e.g. a misspelt hook name in a --plugin file
        raise InputError(f"--plugin: {exc}") from None
    suite = load_suite(path, registry, profile=profile, overrides=tuple(overrides))
    cells, dropped = suite.expand(registry)
    return registry, suite, cells, dropped


def results_root(results: str | Path, suite: Suite) -> Path:
    """``RESULTS_DIR/<suite name>``; the suite name is validated to stay inside it."""
    root = Path(results).resolve()
    folder = (root / suite.name).resolve()
    if root not in folder.parents:
        raise InputError(f"suite name {suite.name!r} would write outside {root}")
    return folder


def plugin_paths(plugins: Sequence[str]) -> tuple[str, ...]:
    """``--plugin`` files as absolute paths, so workers with another working directory
    (Dask) import the same file; module names and missing files are left as given."""
    out = []
    for spec in plugins:
        path = Path(spec)
        out.append(str(path.resolve()) if path.is_file() else spec)
    return tuple(out)


def new_run_id() -> str:
    """A fresh run id: start time and a random suffix."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def judge(
    claims: Sequence[Expectation], runs: pd.DataFrame, *, covered_only: bool = False
) -> list[Outcome]:
    """Evaluate expectations on stored rows. With ``covered_only``, a claim whose
    ``where`` selects none of ``runs`` is skipped (a per-cell check of another cell's
    claim); a ``where`` that does not evaluate is reported as a failed outcome."""
    outcomes: list[Outcome] = []
    for claim in claims:
        if covered_only:
            try:
                if claim.select(runs).empty:
                    continue
            except ValueError:
                pass  # evaluate() reports the bad filter
        outcomes.extend(claim.evaluate(runs))
    return outcomes


def plan_units(
    suite: Suite,
    cells: Sequence[Cell],
    done: set[tuple[str, int]],
    *,
    run_id: str,
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
    timeout_s: float | None = None,
) -> list[WorkUnit]:
    """Work units for the trials of ``cells`` not in ``done``.

    A cell is one unit unless the suite's ``chunk_trials`` says otherwise. The
    split never depends on the worker count: batched linear algebra may round a
    trial differently in batches of different sizes, so a fixed split is what keeps
    serial, processes, Dask and pytest-xdist runs bitwise identical.
    """
    units = []
    for cell in cells:
        trials = [t for t in range(cell.trials) if (cell.cell_id, t) not in done]
        if not trials:
            continue
        size = suite.chunk_trials or len(trials)
        for i in range(0, len(trials), size):
            units.append(
                WorkUnit(
                    cell=cell,
                    trials=tuple(trials[i : i + size]),
                    run_id=run_id,
                    dtype=suite.dtype,
                    device=suite.device,
                    trace=suite.trace,
                    trace_every=suite.trace_every,
                    plugins=tuple(plugins),
                    blocked=tuple(blocked),
                    timeout_s=timeout_s if timeout_s is not None else suite.timeout_s,
                )
            )
    return units


# ----------------------------------------------------------------------- session


class RunSession:
    """One run of one suite: its cells, store, run id and part-file metadata.

    ``relubench run`` opens one per command; the pytest plugin one per suite file
    and session (all its items share the run id).
    """

    def __init__(
        self,
        registry: Registry,
        suite: Suite,
        cells: list[Cell],
        *,
        results: str | Path,
        run_id: str,
        executor: str,
        workers: int,
        plugins: Sequence[str] = (),
        blocked: Sequence[str] = (),
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.registry, self.suite, self.cells = registry, suite, cells
        self.run_id = run_id
        self.plugins, self.blocked = tuple(plugins), tuple(blocked)
        self.timeout_s = timeout_s
        self.folder = results_root(results, suite)
        self.store = Store(self.folder)
        self.hook = registry.manager.hook
        self.executor, self.workers = executor, workers
        self._extra = dict(metadata or {})
        self._schema: Any = None
        self._metadata: dict[str, Any] | None = None

    @property
    def schema(self) -> Any:
        """The whole suite's runs schema: every part file of the run has it."""
        if self._schema is None:
            self._schema = runs_schema(self.cells)
        return self._schema

    @property
    def metadata(self) -> dict[str, Any]:
        """The Parquet file metadata of this run's part files (key ``relubench``):
        environment (:func:`harness.rows.provenance`), suite, run and executor."""
        if self._metadata is None:
            self._metadata = provenance(
                {
                    "suite": self.suite.name,
                    "suite_file": str(self.suite.path),
                    "profile": self.suite.profile,
                    "run_id": self.run_id,
                    "executor": self.executor,
                    "workers": self.workers,
                    "plugins": self.registry.distributions(),
                    "declarations": declare(self.registry, self.cells),
                    **self._extra,
                }
            )
        return self._metadata

    def plan(self, cells: Sequence[Cell], done: set[tuple[str, int]]) -> list[WorkUnit]:
        """Work units for the trials of ``cells`` not in ``done``."""
        return plan_units(
            self.suite,
            cells,
            done,
            run_id=self.run_id,
            plugins=self.plugins,
            blocked=self.blocked,
            timeout_s=self.timeout_s,
        )

    def settled(self, cells: Sequence[Cell], *, force: bool = False) -> set[tuple[str, int]]:
        """(cell_id, trial) pairs not to run again: stored ``ok`` (unless ``force``) or
        already run by this session (so a failed trial is not retried by every caller).
        One cell reads only its own part files."""
        index = self.store.index(cells[0].cell_id if len(cells) == 1 else None)
        return {
            (cell_id, trial)
            for cell_id, trial, status, run_id in zip(
                index["cell_id"], index["trial"], index["status"], index["run_id"]
            )
            if run_id == self.run_id or (status == "ok" and not force)
        }

    def start(self) -> None:
        """Prepare the results folder and call ``relubench_run_start``."""
        self.store.ensure()
        self.store.clean_stale_temporaries()
        self.hook.relubench_run_start(suite=self.suite, cells=self.cells, results_dir=self.folder)

    def run(
        self,
        units: Sequence[WorkUnit],
        executor: Executor,
        on_result: Callable[[UnitResult], None] | None = None,
        leases: Leases | None = None,
    ) -> int:
        """Run ``units`` on ``executor``, store each result, call ``relubench_cell_done``;
        return the trials run. Rows still buffered are written on an error or interrupt.
        With ``leases``, a cell's lease is released once all its rows are on disk."""
        writer = self.store.writer(self.schema, self.metadata, units=len(units))
        trials = 0
        left: dict[str, int] = {}  # cell_id -> its units not yet finished
        for u in units:
            left[u.cell.cell_id] = left.get(u.cell.cell_id, 0) + 1
        unflushed: list[str] = []  # cells finished, rows possibly still buffered
        try:
            for result in executor.run(units):
                unit = result.unit
                writer.add(
                    result.runs,
                    result.traces,
                    cell_id=unit.cell.cell_id,
                    first_trial=unit.trials[0],
                    run_id=unit.run_id,
                )
                trials += len(result.runs)
                left[unit.cell.cell_id] -= 1
                if leases is not None and not left[unit.cell.cell_id]:
                    unflushed.append(unit.cell.cell_id)
                if leases is not None and writer.first is None:  # all added rows written
                    for cell_id in unflushed:
                        leases.release(cell_id)
                    unflushed.clear()
                self.hook.relubench_cell_done(cell=unit.cell, rows=result.runs)
                if on_result:
                    on_result(result)
        finally:
            writer.flush()
        if leases is not None:
            for cell_id in unflushed:
                leases.release(cell_id)
        return trials

    def run_leased(
        self,
        units: Sequence[WorkUnit],
        executor: Executor,
        on_result: Callable[[UnitResult], None] | None = None,
        *,
        ttl_s: float = LEASE_TTL_S,
        poll_s: float = 0.25,
    ) -> tuple[int, dict[str, str]]:
        """:meth:`run`, coordinated with other runs on the same folder through leases.

        Each cell is leased (``Leases``) before its units run; a cell another live run
        holds is skipped, and this run waits until that lease is released (then reads
        its rows) or expires (then takes it over and runs what is missing). Returns the
        trials this run computed and, per cell computed by another run, that run's id.
        """
        import threading

        leases = Leases(self.folder, self.run_id, ttl_s)
        by_cell: dict[str, list[WorkUnit]] = {}
        for u in units:
            by_cell.setdefault(u.cell.cell_id, []).append(u)
        mine: list[WorkUnit] = []
        waiting: dict[str, str] = {}  # cell_id -> run id of the lease holder
        for cell_id, cell_units in by_cell.items():
            other = leases.acquire(cell_id)
            if other is None:
                mine.extend(cell_units)
            else:
                waiting[cell_id] = other.run_id
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(ttl_s / 3):
                leases.renew()  # one file: the expiry of every lease this run holds

        beat = threading.Thread(target=heartbeat, name="relubench-leases", daemon=True)
        beat.start()
        computed_by: dict[str, str] = {}
        try:
            trials = self.run(mine, executor, on_result, leases) if mine else 0
            while waiting:
                time.sleep(poll_s)
                for cell_id, holder in list(waiting.items()):
                    lease = leases.read(cell_id)
                    if lease is not None and lease.run_id != self.run_id and leases.alive(lease):
                        waiting[cell_id] = lease.run_id
                        continue
                    del waiting[cell_id]
                    index = self.store.index(cell_id)
                    have = set(index["trial"][index["run_id"] == holder])
                    todo = [u for u in by_cell[cell_id] if not set(u.trials) <= have]
                    if not todo:
                        computed_by[cell_id] = holder
                        continue
                    other = leases.acquire(cell_id)  # the holder died or gave up: take over
                    if other is not None:
                        waiting[cell_id] = other.run_id
                        continue
                    trials += self.run(todo, executor, on_result, leases)
        finally:
            stop.set()
            leases.release_all()
        return trials, computed_by

    def missing(self, units: Sequence[WorkUnit], computed_by: dict[str, str]) -> list[str]:
        """One line per unit whose rows are not on disk (written by this run, or by the run
        named in ``computed_by`` for its cell): e.g. the folder was deleted mid-run."""
        index = self.store.index()
        stored = set(zip(index["cell_id"], index["trial"], index["run_id"]))
        lines = []
        for u in units:
            run_id = computed_by.get(u.cell.cell_id, self.run_id)
            lost = [t for t in u.trials if (u.cell.cell_id, t, run_id) not in stored]
            if lost:
                lines.append(
                    f"cell {u.cell.cell_id} ({u.cell.label}): {len(lost)} of {len(u.trials)} "
                    f"trials run by {run_id} are not in {self.store.runs_dir} (trials {lost})"
                )
        return lines

    def rows(self, cells: Sequence[Cell] | None = None) -> pd.DataFrame:
        """Stored rows (deduplicated) of ``cells`` (default: the suite's) and their trials."""
        return self.store.suite_rows(self.cells if cells is None else cells)

    def end(self, exit_code: int) -> None:
        """Call ``relubench_run_end``."""
        self.hook.relubench_run_end(suite=self.suite, results_dir=self.folder, exit_code=exit_code)


def execute(
    path: str | Path,
    *,
    profile: str | None = None,
    workers: int | None = None,
    executor: str = "processes",
    scheduler: str | None = None,
    results: str | Path = "results",
    force: bool = False,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    check: bool = True,
) -> RunReport:
    """Run a suite and return a :class:`RunReport` (see :func:`harness.run_suite`)."""
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: unknown; allowed: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be >= 1")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise InputError(f"--timeout {timeout}: must be a positive number of seconds")
    if scheduler is not None and executor != "dask":
        raise InputError(f"--scheduler {scheduler}: only used with --executor dask")
    plugins = plugin_paths(plugins)
    registry, suite, cells, dropped = prepare(
        path, profile=profile, overrides=overrides, plugins=plugins, blocked=blocked
    )
    started = time.perf_counter()
    session = RunSession(
        registry,
        suite,
        cells,
        results=results,
        run_id=new_run_id(),
        executor=executor,
        workers=1 if executor == "serial" else (workers or default_workers()),
        plugins=plugins,
        blocked=blocked,
        timeout_s=timeout,
    )
    done = set() if force else session.store.completed()
    units = session.plan(cells, done)
    report = RunReport(suite, session.folder, cells, dropped)
    total = sum(len(u.trials) for u in units)
    report.trials_skipped = sum(c.trials for c in cells) - total
    session.start()
    if on_progress:
        on_progress(0, total)
    if units:

        def on_result(result: UnitResult) -> None:
            report.units_run += 1
            report.trials_run += len(result.runs)
            if on_progress:
                on_progress(report.trials_run, total)

        ex = make_executor(executor, session.workers, scheduler)
        try:
            _, computed_by = session.run_leased(units, ex, on_result)
        finally:
            ex.close()
        report.trials_waited = sum(len(u.trials) for u in units if u.cell.cell_id in computed_by)
        report.missing = session.missing(units, computed_by)
    report.runs = runs = session.rows()
    if check and suite.expectations:
        report.outcomes = judge(suite.active_expectations, runs)
    report.failed_trials = int((runs["status"] != "ok").sum()) if not runs.empty else 0
    report.wall_s = time.perf_counter() - started
    session.end(report.exit_code)
    return report


def run_suite(path: str | Path, **options: Any) -> Path:
    """Run a suite file and return its results folder."""
    return execute(path, **options).results_dir
