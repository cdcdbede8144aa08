"""Running a suite end to end: load, expand, skip what is stored, execute, store, check.

This is what ``relubench run`` and :func:`harness.run_suite` call.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness.declarations import declare
from harness.errors import InputError
from harness.executors import EXECUTORS, default_workers, make_executor
from harness.plugins import Registry, get_registry
from harness.runner import UnitResult, WorkUnit
from harness.store import Store, provenance, runs_schema
from harness.suite import Cell, Dropped, Suite, load_suite


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

    @property
    def exit_code(self) -> int:
        failed_expect = any(not o.held for o in self.outcomes)
        return 1 if (self.failed_trials or failed_expect) else 0


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


# A temporary part file older than this, or left by a process that no longer runs on
# this host, belongs to a killed run. Readers skip it anyway; removing it keeps the
# folder tidy. The age guard keeps a live writer on another host (shared filesystem) safe.
STALE_TEMPORARY_S = 600.0
DEAD_WRITER_GRACE_S = 60.0


def clean_stale_temporaries(store: Store, now: float | None = None) -> list[Path]:
    """Remove temporary part files (``.NAME.tmp-PID``) that a killed run left behind."""
    now = time.time() if now is None else now
    removed = []
    for folder in (store.runs_dir, store.traces_dir):
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp-*"):
            try:
                age = now - tmp.stat().st_mtime
            except FileNotFoundError:  # its writer just renamed it into place
                continue
            pid = tmp.name.rpartition(".tmp-")[2]
            dead = pid.isdigit() and not _process_alive(int(pid))
            if age > STALE_TEMPORARY_S or (dead and age > DEAD_WRITER_GRACE_S):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def plan_units(
    suite: Suite,
    cells: list[Cell],
    done: set[tuple[str, int]],
    *,
    run_id: str,
    workers: int,
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
    timeout_s: float | None = None,
) -> list[WorkUnit]:
    """Work units for the trials not yet stored ``ok``.

    A cell is one unit unless the suite's ``chunk_trials`` says otherwise. The
    split never depends on ``workers``: batched linear algebra may round a trial
    differently in batches of different sizes, so a fixed split is what keeps
    serial, processes, Dask and pytest-xdist runs bitwise identical.
    """
    del workers  # kept for callers; deliberately not used (see above)
    pending = [(c, [t for t in range(c.trials) if (c.cell_id, t) not in done]) for c in cells]
    pending = [(c, ts) for c, ts in pending if ts]
    chunk = suite.chunk_trials
    units = []
    for cell, trials in pending:
        size = chunk or len(trials)
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
    folder = results_root(results, suite)
    store = Store(folder)
    done = set() if force else store.completed()
    n_workers = 1 if executor == "serial" else (workers or default_workers())
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    units = plan_units(
        suite,
        cells,
        done,
        run_id=run_id,
        workers=n_workers,
        plugins=plugins,
        blocked=blocked,
        timeout_s=timeout,
    )
    report = RunReport(suite, folder, cells, dropped)
    report.trials_skipped = sum(c.trials for c in cells) - sum(len(u.trials) for u in units)
    schema = runs_schema(cells)
    meta = provenance(
        {
            "suite": suite.name,
            "suite_file": str(suite.path),
            "profile": suite.profile,
            "run_id": run_id,
            "executor": executor,
            "workers": n_workers,
            "plugins": registry.distributions(),
            "declarations": declare(registry, cells),
        }
    )
    hook = registry.manager.hook
    store.ensure()
    clean_stale_temporaries(store)
    hook.relubench_run_start(suite=suite, cells=cells, results_dir=folder)
    total = sum(len(u.trials) for u in units)
    if on_progress:
        on_progress(0, total)
    if units:
        ex = make_executor(executor, n_workers, scheduler)
        # Few units: one part file each (what a reader of a small run expects to see);
        # many small units: coalesced, or the file writes would cost more than the runs.
        parts = _PartBuffer(store, schema, meta, coalesce=len(units) > _PartBuffer.MIN_UNITS)
        try:
            for result in ex.run(units):
                parts.add(result)
                report.units_run += 1
                report.trials_run += len(result.runs)
                hook.relubench_cell_done(cell=result.unit.cell, rows=result.runs)
                if on_progress:
                    on_progress(report.trials_run, total)
        finally:
            try:
                parts.flush()
            finally:
                ex.close()
    runs = suite_rows(store, cells)
    if check and suite.expect:
        from harness.expect import parse_expectations

        for expectation in parse_expectations(suite.expect, str(suite.path)):
            if expectation.applies(suite.profile):  # `profiles = [...]` in an [[expect]] entry
                report.outcomes.extend(expectation.evaluate(runs))
    report.failed_trials = int((runs["status"] != "ok").sum()) if not runs.empty else 0
    report.wall_s = time.perf_counter() - started
    hook.relubench_run_end(suite=suite, results_dir=folder, exit_code=report.exit_code)
    return report


class _PartBuffer:
    """Finished units waiting to be written together as one part file.

    A unit of one tiny trial would otherwise pay for a Parquet file and an fsync of
    its own (about 10 ms, far more than running it). Units are written together once
    ``MAX_ROWS`` rows or ``MAX_AGE_S`` seconds have gathered, and at the end (also on
    an error or interrupt), so a killed run loses at most the units in flight and those
    finished in the last ``MAX_AGE_S`` seconds; writes stay atomic and resume reads the
    part files as before.
    """

    MAX_ROWS = 4096
    MAX_AGE_S = 1.0
    MIN_UNITS = 256  # runs with fewer units write one part file per unit

    def __init__(
        self, store: Store, schema: Any, meta: dict[str, Any], *, coalesce: bool = True
    ) -> None:
        self.store, self.schema, self.meta = store, schema, meta
        self.coalesce = coalesce
        self.results: list[UnitResult] = []
        self.rows = 0
        self.since = 0.0

    def add(self, result: UnitResult) -> None:
        if not self.results:
            self.since = time.perf_counter()
        self.results.append(result)
        self.rows += len(result.runs)
        if (
            not self.coalesce
            or self.rows >= self.MAX_ROWS
            or time.perf_counter() - self.since >= self.MAX_AGE_S
        ):
            self.flush()

    def flush(self) -> None:
        if not self.results:
            return
        first = self.results[0].unit
        stem = f"part-{first.cell.cell_id}-{first.trials[0]:05d}-{first.run_id}"
        if len(self.results) > 1:
            stem += f"-u{len(self.results)}"
        runs = [row for r in self.results for row in r.runs]
        traces = [row for r in self.results for row in r.traces]
        self.results, self.rows = [], 0
        self.store.write(runs, traces, self.schema, self.meta, stem=stem)


def suite_rows(store: Store, cells: list[Cell]) -> Any:
    """The stored rows of exactly this suite's cells and trials (after dedupe).

    Trials beyond a cell's count (stored by an earlier, larger profile) are
    left out, so a claim is judged on the trials the suite asked for.
    """
    from harness.store import load_results

    runs = load_results(store.root)
    if runs.empty:
        return runs
    trials = {c.cell_id: c.trials for c in cells}
    limit = runs["cell_id"].map(trials)
    return runs[limit.notna() & (runs["trial"] < limit.fillna(0))].reset_index(drop=True)


def run_suite(path: str | Path, **options: Any) -> Path:
    """Run a suite file and return its results folder."""
    return execute(path, **options).results_dir
