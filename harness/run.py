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
from harness.errors import InputError, did_you_mean
from harness.executors import EXECUTORS, Executor, default_workers, make_executor
from harness.expand import Cell, Dropped, Limits
from harness.plugins import Registry, get_registry
from harness.rows import provenance, runs_schema
from harness.runner import UnitResult, WorkUnit
from harness.selection import Selection
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
    tuning: list[TuningChoice] = field(default_factory=list)
    """What was tuned, over which grid, and what was chosen (empty: nothing tuned)."""
    tuning_trials_run: int = 0
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
    only: Sequence[str] = (),
    limits: Limits | None = None,
) -> tuple[Registry, Suite, list[Cell], list[Dropped]]:
    """Load and expand a suite (no side effects): what ``--dry-run`` shows. ``only``
    (``KEY=VALUE`` texts, :mod:`harness.selection`) keeps part of the cells. A suite
    larger than ``limits`` (default :class:`~harness.expand.Limits`) is refused."""
    selection = Selection.parse(only)  # a malformed --only fails before plugins load
    try:
        registry = get_registry(tuple(plugins), tuple(blocked))
    except pluggy.PluginValidationError as exc:  # e.g. a misspelt hook name in a --plugin file
        raise InputError(f"--plugin: {exc}") from None
    suite = load_suite(path, registry, profile=profile, overrides=tuple(overrides))
    cells, dropped = suite.expand(registry, limits=limits)
    where = f"suite {suite.name}"
    if suite.tuned and selection:
        # `cells` are the tuning cells; --only may also name what only the reported phase
        # has (a solver without tuning axes): check the terms against both phases, keep the
        # tuning cells they match (maybe none); `execute` filters the reported cells.
        selection.cells([*cells, *reported_preview(registry, suite, cells)], where=where)
        return registry, suite, selection.keep(cells), dropped
    return registry, suite, selection.cells(cells, where=where), dropped


def suite_files(path: str | Path) -> list[Path]:
    """``path`` itself, or for a folder every ``*.toml`` suite file in it, sorted by name."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*.toml") if p.is_file())
    if not files:
        raise InputError(f"{path}: a folder without suite files (*.toml)")
    return files


# ----------------------------------------------------------------------- tuning


@dataclass
class TuningChoice:
    """One tuning selection: for a reported cell, the candidate values of its solver's tuning
    axes, their scores (mean of the tuning metric over the tuning trials) and the choice."""

    solver: str
    cell: str
    """The reported cell it is for: problem, initializer and the solver's fixed parameters."""
    metric: str
    goal: str
    trials: int
    candidates: list[dict[str, Any]]
    scores: list[float]
    chosen: dict[str, Any]

    def describe(self) -> str:
        """One line: ``dante [mnist5k hidden=100]: lr in {0.03, 0.1, 0.3} -> 0.1 (...)``."""
        names = list(self.chosen)
        grid = ", ".join(
            "/".join(f"{c[n]:g}" if isinstance(c[n], float) else str(c[n]) for n in names)
            for c in self.candidates
        )
        chosen = "/".join(str(self.chosen[n]) for n in names)
        scores = ", ".join(f"{x:.4g}" for x in self.scores)
        return (
            f"{self.cell}: {'/'.join(names)} in {{{grid}}} -> {chosen} "
            f"({self.goal} mean {self.metric} over {self.trials} tuning trials: {scores})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "solver": self.solver,
            "cell": self.cell,
            "metric": self.metric,
            "goal": self.goal,
            "trials": self.trials,
            "candidates": self.candidates,
            "scores": [x if math.isfinite(x) else repr(x) for x in self.scores],
            "chosen": self.chosen,
        }


def select_tuned(
    suite: Suite, cells: Sequence[Cell], runs: pd.DataFrame
) -> tuple[dict[str, dict[str, Any]], list[TuningChoice]]:
    """Per reported cell, the tuning values with the best mean ``suite.tuning.metric`` over the
    tuning trials of ``cells`` (their rows in ``runs``).

    A trial that is not ``ok`` or has no value counts as the worst possible score, so a value
    under which any trial diverged ranks last; ties go to the first value of the grid.
    Returns the selection for :meth:`Suite.expand` and one :class:`TuningChoice` per cell.
    """
    from harness.expand import tuning_key

    assert suite.tuning is not None
    t = suite.tuning
    column = f"metric.{t.metric}"
    worst = math.inf if t.goal == "min" else -math.inf
    by_cell = {}
    if not runs.empty:
        for cell_id, group in runs.groupby("cell_id"):
            values = group[column].astype("float64") if column in group else None
            ok = group["status"] == "ok"
            scores = [
                v if (k and v == v) else worst
                for v, k in zip(values if values is not None else [math.nan] * len(group), ok)
            ]
            by_cell[cell_id] = sum(scores) / len(scores) if scores else worst
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        key = tuning_key(cell.problem, cell.initializer, cell.solver, cell.tuned)
        groups.setdefault(key, []).append(cell)
    selected: dict[str, dict[str, Any]] = {}
    choices: list[TuningChoice] = []
    for key, members in groups.items():
        scores = [float(by_cell.get(c.cell_id, worst)) for c in members]
        if t.goal == "min":
            best = min(range(len(members)), key=lambda i: (math.isnan(scores[i]), scores[i]))
        else:
            best = max(range(len(members)), key=lambda i: (not math.isnan(scores[i]), scores[i]))
        # the first of equal scores: min/max return the first extreme in grid order
        first = members[0]
        params = [c.solver.param_dict for c in members]
        chosen = {n: params[best][n] for n in first.tuned}
        selected[key] = chosen
        label = _untuned_label(first)
        choices.append(
            TuningChoice(
                solver=first.solver.name,
                cell=label,
                metric=t.metric,
                goal=t.goal,
                trials=t.trials,
                candidates=[{n: p[n] for n in first.tuned} for p in params],
                scores=scores,
                chosen=chosen,
            )
        )
    return selected, choices


def _untuned_label(cell: Cell) -> str:
    """``dante[mnist5k hidden=100, glorot]``: the cell's label without its tuned parameters."""
    shown = [
        f"{spec.name}"
        + "".join(
            f" {k}={v}"
            for k, v in spec.params
            if f"{spec.kind}.{k}" in cell.varying and not (spec is cell.solver and k in cell.tuned)
        )
        for spec in (cell.problem, cell.initializer)
    ]
    fixed = [
        f"{k}={v}"
        for k, v in cell.solver.params
        if f"solver.{k}" in cell.varying and k not in cell.tuned
    ]
    return f"{cell.solver.name}[{', '.join(shown + fixed)}]"


def tune(
    registry: Registry,
    suite: Suite,
    tuning_cells: list[Cell],
    *,
    results: str | Path,
    run_id: str,
    executor: str,
    workers: int,
    scheduler: str | None = None,
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
    timeout_s: float | None = None,
    force: bool = False,
    threads: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[list[Cell], list[Dropped], list[TuningChoice], int]:
    """Run the tuning cells (stored with ``split = "tune"``), select each reported cell's
    values (:func:`select_tuned`) and return the reported cells, the dropped combinations,
    the choices (also written to ``<results>/<suite>/tuning.json``) and the trials run.

    The run of a tuned suite starts here: ``relubench_run_start`` is called (with the
    tuning cells) before any tuning cell runs, so the reported phase must not call it
    again. Trials stored ``ok`` or already run under ``run_id`` are not rerun (``force``:
    only the latter). ``executor`` ``pytest`` runs the units in this process."""
    import json

    session = RunSession(
        registry,
        suite,
        tuning_cells,
        results=results,
        run_id=run_id,
        executor=executor,
        workers=workers,
        plugins=plugins,
        blocked=blocked,
        timeout_s=timeout_s,
        metadata={**(metadata or {}), "split": "tune"},
    )
    session.start()
    units = session.plan(tuning_cells, session.settled(tuning_cells, force=force))
    ran = 0
    if units:
        name = "serial" if executor == "pytest" else executor
        ex = make_executor(name, workers, scheduler, threads=threads)
        try:
            ran = session.run(units, ex)
        finally:
            ex.close()
    selected, choices = select_tuned(suite, tuning_cells, session.rows())
    cells, dropped = suite.expand(registry, selected)
    (session.folder / "tuning.json").write_text(
        json.dumps([c.to_json() for c in choices], indent=1, default=str) + "\n"
    )
    return cells, dropped, choices, ran


def reported_preview(registry: Registry, suite: Suite, tuning_cells: Sequence[Cell]) -> list[Cell]:
    """The reported cells of a tuned suite as if tuning chose each grid's first value: one
    per tuning group of ``tuning_cells`` plus the cells of the solvers without tuning axes
    (which values tuning chooses is not known before it runs)."""
    import pandas as pd

    selected, _ = select_tuned(suite, tuning_cells, pd.DataFrame())
    return suite.expand(registry, selected)[0]


def reported_count(
    registry: Registry, suite: Suite, tuning_cells: Sequence[Cell], only: Sequence[str] = ()
) -> int:
    """How many reported cells a tuned suite will run (:func:`reported_preview`), of those
    ``only`` (``--only`` texts) keeps."""
    return len(Selection.parse(only).keep(reported_preview(registry, suite, tuning_cells)))


def tuning_lines(choices: Sequence[TuningChoice]) -> list[str]:
    """Lines for a run summary: what was tuned, over which grid, what was chosen."""
    return [f"tuned {c.describe()}" for c in choices]


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
    claims: Sequence[Expectation],
    runs: pd.DataFrame,
    *,
    covered_only: bool = False,
    traces: pd.DataFrame | str | Path | None = None,
) -> list[Outcome]:
    """Evaluate expectations on stored rows. With ``covered_only``, a claim whose
    ``where`` selects none of ``runs`` is skipped (a per-cell check of another cell's
    claim); a ``where`` that does not evaluate is reported as a failed outcome.

    ``traces`` is the long traces table, or the suite's results folder to read it from
    (:func:`suite_traces`, only when a claim reads trace values)."""
    if isinstance(traces, (str, Path)):
        traces = suite_traces(traces, runs) if any(c.needs_traces for c in claims) else None
    outcomes: list[Outcome] = []
    for claim in claims:
        if covered_only:
            try:
                if claim.select(runs, traces).empty:
                    continue
            except ValueError:
                pass  # evaluate() reports the bad filter
        outcomes.extend(claim.evaluate(runs, traces))
    return outcomes


def suite_traces(folder: str | Path, runs: pd.DataFrame) -> pd.DataFrame:
    """The traces of the ``(cell_id, trial)`` pairs of ``runs``, from ``<folder>/traces``."""
    from harness.store import load_traces

    traces = load_traces(folder)
    if traces.empty or runs.empty:
        return traces
    keys = set(zip(runs["cell_id"], runs["trial"].astype("int64")))
    mask = [k in keys for k in zip(traces["cell_id"], traces["trial"].astype("int64"))]
    return traces[mask].reset_index(drop=True)


def plan_units(
    suite: Suite,
    cells: Sequence[Cell],
    done: set[tuple[str, int]],
    *,
    run_id: str,
    plugins: Sequence[str] = (),
    blocked: Sequence[str] = (),
    timeout_s: float | None = None,
    workers: int = 1,
    splittable: Callable[[Cell], bool] | None = None,
) -> list[WorkUnit]:
    """Work units for the trials of ``cells`` not in ``done``.

    A cell is one unit unless the suite's ``chunk_trials`` says otherwise, or unless
    fewer cells than ``workers`` have trials to run and ``splittable(cell)`` says the
    cell's trials give the same numbers whatever batch they run in (the solver's
    :meth:`~harness.components.Solver.batch_invariant`): then each such cell is split
    into about ``workers / cells`` equal chunks so every worker has work. Other cells
    are never split by the worker count: batched linear algebra may round a trial
    differently in batches of different sizes, and a fixed split is what keeps serial,
    processes, Dask and pytest-xdist runs bitwise identical.
    """
    pending = []
    for cell in cells:
        trials = [t for t in range(cell.trials) if (cell.cell_id, t) not in done]
        if trials:
            pending.append((cell, trials))
    split = not suite.chunk_trials and 0 < len(pending) < workers
    parts = -(-workers // len(pending)) if split else 1
    units = []
    for cell, trials in pending:
        size = suite.chunk_trials or len(trials)
        if parts > 1 and splittable is not None and splittable(cell):
            size = -(-len(trials) // parts)
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


def batch_invariant(registry: Registry, suite: Suite, cell: Cell) -> bool:
    """Whether ``cell``'s solver declares its trials' numbers independent of the batch."""
    solver = registry.get("solver", cell.solver.name)
    return bool(
        solver.batch_invariant(  # type: ignore[attr-defined]
            solver.make_params(cell.solver.param_dict),
            cell.problem.param_dict,
            dtype=suite.dtype,
            device=suite.device,
        )
    )


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
                    "trials": self.suite.trials,
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
            # Cells run one after another in this process (serial, pytest): no split.
            workers=1 if self.executor in ("serial", "pytest") else self.workers,
            splittable=lambda cell: batch_invariant(self.registry, self.suite, cell),
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

    def start(self, *, hook: bool = True) -> None:
        """Prepare the results folder and call ``relubench_run_start`` (unless not ``hook``:
        the reported phase of a tuned suite, whose run started with :func:`tune`)."""
        self.store.ensure()
        self.store.clean_stale_temporaries()
        if hook:
            self.hook.relubench_run_start(
                suite=self.suite, cells=self.cells, results_dir=self.folder
            )

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


def check_options(
    *,
    executor: str = "processes",
    workers: int | None = None,
    scheduler: str | None = None,
    timeout: float | None = None,
) -> None:
    """Validate the execution options (``--dry-run`` checks them too); :class:`InputError`."""
    if executor not in EXECUTORS:
        raise InputError(
            f"--executor {executor!r}: unknown{did_you_mean(executor, EXECUTORS)}; "
            f"allowed: {', '.join(EXECUTORS)}"
        )
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be >= 1")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise InputError(f"--timeout {timeout}: must be a positive number of seconds")
    if scheduler is not None and executor != "dask":
        raise InputError(f"--scheduler {scheduler}: only used with --executor dask")


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
    only: Sequence[str] = (),
    limits: Limits | None = None,
) -> RunReport:
    """Run a suite and return a :class:`RunReport` (see :func:`harness.run_suite`)."""
    check_options(executor=executor, workers=workers, scheduler=scheduler, timeout=timeout)
    plugins = plugin_paths(plugins)
    registry, suite, cells, dropped = prepare(
        path,
        profile=profile,
        overrides=overrides,
        plugins=plugins,
        blocked=blocked,
        only=only,
        limits=limits,
    )
    started = time.perf_counter()
    run_id = new_run_id()
    n_workers = 1 if executor == "serial" else (workers or default_workers())
    choices: list[TuningChoice] = []
    tuning_trials = 0
    if suite.tuned:  # `cells` are the tuning cells: run them, then the selected cells
        cells, dropped, choices, tuning_trials = tune(
            registry,
            suite,
            cells,
            results=results,
            run_id=run_id,
            executor=executor,
            workers=n_workers,
            scheduler=scheduler,
            plugins=plugins,
            blocked=blocked,
            timeout_s=timeout,
            force=force,
        )
        cells = Selection.parse(only).keep(cells) if only else cells
    session = RunSession(
        registry,
        suite,
        cells,
        results=results,
        run_id=run_id,
        executor=executor,
        workers=n_workers,
        plugins=plugins,
        blocked=blocked,
        timeout_s=timeout,
    )
    done = set() if force else session.store.completed()
    units = session.plan(cells, done)
    report = RunReport(suite, session.folder, cells, dropped, tuning=choices)
    report.tuning_trials_run = tuning_trials
    total = sum(len(u.trials) for u in units)
    report.trials_skipped = sum(c.trials for c in cells) - total
    session.start(hook=not suite.tuned)  # a tuned run started before its tuning phase
    if on_progress:
        on_progress(0, total)
    if units:

        def on_result(result: UnitResult) -> None:
            report.units_run += 1
            report.trials_run += len(result.runs)
            if on_progress:
                on_progress(report.trials_run, total)

        # One unit gains nothing from a pool: run it here (same threads, same numbers;
        # a unit with a timeout still gets a child process), not in a forkserver and a
        # worker that import torch again.
        in_process = executor == "processes" and len(units) == 1
        ex = make_executor("serial" if in_process else executor, session.workers, scheduler)
        try:
            _, computed_by = session.run_leased(units, ex, on_result)
        finally:
            ex.close()
        report.trials_waited = sum(len(u.trials) for u in units if u.cell.cell_id in computed_by)
        report.missing = session.missing(units, computed_by)
    report.runs = runs = session.rows()
    if check and suite.expectations:
        # Under --only, a claim about cells left out is not judged (nor failed).
        report.outcomes = judge(
            suite.active_expectations, runs, covered_only=bool(only), traces=session.folder
        )
    report.failed_trials = int((runs["status"] != "ok").sum()) if not runs.empty else 0
    report.wall_s = time.perf_counter() - started
    session.end(report.exit_code)
    return report


def run_suite(
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
    only: Sequence[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run a suite file and return its results folder, ``RESULTS/<suite name>``.

    The options are those of ``relubench run``: ``profile`` (``[profiles.NAME]``),
    ``workers``, ``executor`` (``serial``, ``processes``, ``dask``), ``scheduler``
    (a Dask address), ``results`` (the results root), ``force`` (recompute stored
    trials), ``overrides`` (``KEY=VALUE`` texts of ``--set``), ``plugins`` (``.py``
    files or modules), ``blocked`` (plugin names), ``timeout`` (seconds per work
    unit), ``only`` (``KEY=VALUE`` texts of ``--only``) and ``on_progress(done,
    total)``. Raises :class:`harness.InputError` on bad input. A folder of suites is
    run by ``relubench run FOLDER`` (:func:`suite_files`).
    """
    return execute(
        path,
        profile=profile,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        results=results,
        force=force,
        overrides=overrides,
        plugins=plugins,
        blocked=blocked,
        timeout=timeout,
        only=only,
        on_progress=on_progress,
    ).results_dir
