"""pytest plugin: benchmark suites collected and run as tests.

``pytest suites/`` (or one ``.toml`` file) collects every suite file, i.e. a
TOML file with a ``[suite]`` table, with pytest's non-Python collection
pattern: ``SuiteFile`` -> ``SuiteNode`` (named after the suite) -> items:

* one :class:`CellItem` per cell, id ``<suite>::<cell label>``, which runs the
  cell's trials that are not stored yet and fails if a trial is not ``ok`` or a
  per-cell expectation fails (one whose ``by`` columns single out cells);
* one :class:`ExpectationItem` per other ``[[expect]]`` entry, which runs
  whatever the suite still misses and judges the claim on the stored rows.

Results go to the same Parquet store ``relubench run`` writes
(``RESULTS/<suite>/runs``), with the same schema. Under pytest-xdist every
worker writes its own part files; a per-cell file lock makes a cell that two
workers want at once computed once, and the store dedupes on read anyway.

This module is loaded in every pytest session (``pytest11`` entry point), so
it imports only pytest and the standard library at module level and does
nothing unless a suite file is collected.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from harness.expect import Expectation, Outcome
    from harness.suite import Cell, Suite

DEFAULT_PROFILE = "smoke"
NO_PROFILE = ("", "none")
TABLE_ROWS = 12


# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relubench", "relubench benchmark suites (TOML files as tests)")
    group.addoption(
        "--relubench-profile",
        default=None,
        metavar="NAME",
        help=f"suite profile to run (default: ini relubench_profile, else {DEFAULT_PROFILE!r}); "
        "'none' runs suites as written. A suite without the profile runs as written and "
        "is marked slow.",
    )
    group.addoption(
        "--relubench-results",
        default=None,
        metavar="DIR",
        help="results folder (default: ini relubench_results, else <rootdir>/results)",
    )
    group.addoption(
        "--relubench-force",
        action="store_true",
        default=None,
        help="recompute cells even if their trials are stored",
    )
    group.addoption(
        "--relubench-plugin",
        action="append",
        default=[],
        metavar="PATH_OR_MODULE",
        help="extra relubench plugin (.py file or module), like relubench run --plugin",
    )
    group.addoption(
        "--relubench-block",
        action="append",
        default=[],
        metavar="NAME",
        help="block a relubench plugin by name, like relubench run -p no:NAME",
    )
    group.addoption(
        "--relubench-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads per test process (default 1, as relubench run)",
    )
    parser.addini("relubench_profile", f"suite profile under pytest (default {DEFAULT_PROFILE})")
    parser.addini("relubench_results", "results folder, relative to the ini file's folder")
    parser.addini("relubench_force", "recompute stored cells", type="bool", default=False)
    parser.addini("relubench_plugins", "extra relubench plugins", type="linelist", default=[])
    parser.addini("relubench_block", "relubench plugins to block", type="linelist", default=[])
    parser.addini("relubench_threads", "torch threads per test process")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "relubench: a relubench benchmark suite cell or expectation")
    config.addinivalue_line(
        "markers", "slow: a relubench suite run without a quick profile (or another slow test)"
    )


@dataclass(frozen=True)
class Settings:
    """The relubench options of a pytest session, resolved once."""

    profile: str | None
    results: Path
    force: bool
    plugins: tuple[str, ...]
    blocked: tuple[str, ...]
    threads: int | None
    # what to repeat in a rerun command (only options the user gave)
    rerun_args: tuple[str, ...]

    @classmethod
    def of(cls, config: pytest.Config) -> Settings:
        cached = getattr(config, "_relubench_settings", None)
        if cached is not None:
            return cached
        rerun: list[str] = []
        profile = config.getoption("relubench_profile")
        if profile is not None:
            rerun += ["--relubench-profile", profile]
        else:
            profile = config.getini("relubench_profile") or DEFAULT_PROFILE
        results_opt = config.getoption("relubench_results")
        if results_opt is not None:
            results = Path(config.invocation_params.dir, results_opt)
            rerun += ["--relubench-results", str(results_opt)]
        else:
            ini = config.getini("relubench_results")
            base = config.inipath.parent if config.inipath else config.rootpath
            results = Path(base, ini) if ini else Path(config.rootpath, "results")
        force = config.getoption("relubench_force")
        if force is None:
            force = bool(config.getini("relubench_force"))
        plugins = [str(p) for p in config.getini("relubench_plugins")]
        for p in config.getoption("relubench_plugin"):
            plugins.append(p)
            rerun += ["--relubench-plugin", p]
        blocked = [str(b) for b in config.getini("relubench_block")]
        for b in config.getoption("relubench_block"):
            blocked.append(b)
            rerun += ["--relubench-block", b]
        threads = config.getoption("relubench_threads")
        if threads is None and config.getini("relubench_threads"):
            try:
                threads = int(config.getini("relubench_threads"))
            except ValueError:
                raise pytest.UsageError(
                    f"ini relubench_threads: {config.getini('relubench_threads')!r} "
                    "is not an integer"
                ) from None
        if threads is not None and threads < 1:
            raise pytest.UsageError(f"--relubench-threads {threads}: must be >= 1")
        settings = cls(
            profile=None if profile.lower() in NO_PROFILE else profile,
            results=results.resolve(),
            force=bool(force),
            plugins=tuple(plugins),
            blocked=tuple(blocked),
            threads=threads,
            rerun_args=tuple(rerun),
        )
        config._relubench_settings = settings  # type: ignore[attr-defined]
        return settings


# ------------------------------------------------------------------------ collection


def _read_suite_doc(path: Path) -> dict[str, Any] | None:
    """The TOML document if ``path`` is a suite file (has a [suite] table), else None."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return doc if isinstance(doc.get("suite"), dict) else None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    if file_path.suffix != ".toml":
        return None
    explicit = parent.session.isinitpath(file_path)
    # Any other TOML (pyproject.toml, ...) is left alone; a suite file named on
    # the command line is collected even if broken, so its error is reported.
    if _read_suite_doc(file_path) is None and not explicit:
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteFile(pytest.File):
    """A suite TOML file; collects one :class:`SuiteNode` named after the suite."""

    def collect(self) -> Iterator[SuiteNode]:
        from harness.errors import InputError

        settings = Settings.of(self.config)
        try:
            ctx = SuiteContext.load(self.path, settings, self.config)
        except InputError as exc:
            raise SuiteLoadError(str(exc)) from None
        node = SuiteNode.from_parent(self, name=ctx.suite.name)
        node.ctx = ctx
        yield node

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, SuiteLoadError):
            return f"relubench: cannot load suite {self.path}:\n{excinfo.value}"
        return super().repr_failure(excinfo)


class SuiteLoadError(Exception):
    """A suite file that does not load (bad TOML, key, component or expectation)."""


class SuiteNode(pytest.Collector):
    """One suite: its cells then its suite-level expectations."""

    ctx: SuiteContext

    def collect(self) -> Iterator[pytest.Item]:
        ctx = self.ctx
        seen: dict[str, int] = {}
        for cell in ctx.cells:
            name = cell.label
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:  # labels show only varying parameters; keep ids unique
                name = f"{name}#{seen[name]}"
            item = CellItem.from_parent(self, name=name)
            item.setup_cell(ctx, cell)
            yield item
        for exp in ctx.suite_level:
            item = ExpectationItem.from_parent(self, name=exp.key)
            item.setup_expectation(ctx, exp)
            yield item


@dataclass
class SuiteContext:
    """A loaded suite under this session's profile, shared by its items."""

    path: Path
    settings: Settings
    profile: str | None
    slow: bool
    suite: Suite
    cells: list[Cell]
    expectations: list[Expectation]
    per_cell: list[Expectation]
    suite_level: list[Expectation]
    run_id: str = ""
    nodeids: dict[str, str] = field(default_factory=dict)  # cell_id -> item nodeid

    @classmethod
    def load(cls, path: Path, settings: Settings, config: pytest.Config) -> SuiteContext:
        """Load and expand the suite under the session's profile (no side effects)."""
        from harness.api import prepare
        from harness.errors import InputError
        from harness.expect import parse_expectations

        doc = _read_suite_doc(path)
        profiles = doc.get("profiles", {}) if doc else {}
        wanted = settings.profile
        has = isinstance(profiles, dict) and wanted in profiles
        profile = wanted if has else None
        # A suite without the requested quick profile runs at full size: mark it slow.
        slow = wanted is not None and not has
        try:
            _, suite, cells, _ = prepare(
                path, profile=profile, plugins=settings.plugins, blocked=settings.blocked
            )
        except InputError:
            raise
        except Exception as exc:  # a plugin that fails to import, say
            raise InputError(f"{path}: {type(exc).__name__}: {exc}") from exc
        expectations = [
            e for e in parse_expectations(suite.expect, str(path)) if e.applies(profile)
        ]
        per_cell = [e for e in expectations if _singles_out_cells(e, cells)]
        suite_level = [e for e in expectations if e not in per_cell]
        return cls(
            path,
            settings,
            profile,
            slow,
            suite,
            cells,
            expectations,
            per_cell,
            suite_level,
            run_id=_session_run_id(config),
        )

    @property
    def folder(self) -> Path:
        from harness.api import results_root

        return results_root(self.settings.results, self.suite)

    # ------------------------------------------------------------------ running
    def ensure(self, cells: list[Cell], *, force: bool = False) -> int:
        """Run the trials of ``cells`` that still need running; return how many ran.

        A trial needs running unless it is stored ``ok`` or this pytest session
        (all its xdist workers) already ran it: a trial that failed is retried
        by the next session, not by every item of this one. ``force`` reruns
        every trial not yet run by this session.
        """
        from harness.store import Store

        store = Store(self.folder)
        single = cells[0] if len(cells) == 1 else None
        snapshot = self._settled(store, force, single)
        ran = 0
        for cell in cells:
            if all((cell.cell_id, t) in snapshot for t in range(cell.trials)):
                continue
            with _cell_lock(self.folder, cell.cell_id):
                # another worker may have run it while we waited for the lock
                ran += self._run(store, cell, self._settled(store, force, cell))
        return ran

    def _settled(self, store: Any, force: bool, cell: Cell | None = None) -> set[tuple[str, int]]:
        """(cell_id, trial) pairs not to run: stored ok (unless force) or run by this session."""
        columns = ["cell_id", "trial", "status", "run_id"]
        table = _read_parts(_part_files(store, cell), columns)
        out = set()
        for cell_id, trial, status, run_id in zip(*(table[c].tolist() for c in columns)):
            if run_id == self.run_id or (status == "ok" and not force):
                out.add((cell_id, trial))
        return out

    def _run(self, store: Any, cell: Cell, done: set[tuple[str, int]]) -> int:
        from harness.api import plan_units
        from harness.plugins import get_registry
        from harness.runner import run_unit
        from harness.store import provenance, runs_schema

        _limit_threads(self.settings.threads)
        units = plan_units(
            self.suite,
            [cell],
            done,
            run_id=self.run_id,
            workers=1,
            plugins=self.settings.plugins,
            blocked=self.settings.blocked,
        )
        if not units:
            return 0
        schema = runs_schema(self.cells)  # the whole suite's schema, as relubench run writes
        meta = provenance(
            {
                "suite": self.suite.name,
                "suite_file": str(self.path),
                "profile": self.profile,
                "run_id": self.run_id,
                "executor": "pytest",
                "workers": int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
                "xdist_worker": os.environ.get("PYTEST_XDIST_WORKER"),
            }
        )
        hook = get_registry(self.settings.plugins, self.settings.blocked).manager.hook
        ran = 0
        for unit in units:
            result = run_unit(unit)
            stem = f"part-{cell.cell_id}-{unit.trials[0]:05d}-{unit.run_id}"
            store.write(result.runs, result.traces, schema, meta, stem=stem)
            hook.relubench_cell_done(cell=cell, rows=result.runs)
            ran += len(result.runs)
        return ran

    def rows(self, cells: list[Cell]) -> pd.DataFrame:
        """Stored rows (deduplicated) of these cells' trials under this profile."""
        from harness.store import Store, dedupe_runs, load_results

        if len(cells) == 1:  # one cell's own part files, not the whole store
            runs = dedupe_runs(_read_parts(_part_files(Store(self.folder), cells[0])))
        else:
            runs = load_results(self.folder)
        if runs.empty:
            return runs
        wanted = {(c.cell_id, t) for c in cells for t in range(c.trials)}
        mask = [k in wanted for k in zip(runs["cell_id"], runs["trial"])]
        return runs[mask].reset_index(drop=True)

    def rerun(self, nodeid: str) -> str:
        """The pytest command that runs one item of this suite alone (non-ok trials rerun)."""
        args = ["pytest", nodeid, *self.settings.rerun_args]
        return " ".join(shlex.quote(a) for a in args)


def _part_files(store: Any, cell: Cell | None = None) -> list[str]:
    """The store's part files; with ``cell``, only that cell's (the store names them
    ``part-<cell_id>-...``), so a cell item reads a few files, not the whole store."""
    from harness.store import part_files

    files = part_files(store.runs_dir)
    if cell is None:
        return files
    prefix = f"part-{cell.cell_id}-"
    return [f for f in files if os.path.basename(f).startswith(prefix)]


def _read_parts(files: list[str], columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of some part files (schemas unified, as the store reads them)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if not files:
        return pd.DataFrame(columns=columns or ["cell_id", "trial", "status", "run_id"])
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    table = ds.dataset(files, schema=schema, format="parquet").to_table(columns=columns)
    return table.to_pandas()


def _session_run_id(config: pytest.Config) -> str:
    """One run id for the whole pytest session, shared by its xdist workers."""
    cached = getattr(config, "_relubench_run_id", None)
    if cached is None:
        workerinput = getattr(config, "workerinput", None)
        token = workerinput["testrunuid"] if workerinput else uuid.uuid4().hex
        stamp = time.strftime("%Y%m%dT%H%M%S")
        cached = f"pytest-{token[:12]}" if workerinput else f"pytest-{stamp}-{token[:6]}"
        config._relubench_run_id = cached  # type: ignore[attr-defined]
    return cached


def _cell_columns(cell: Cell) -> dict[str, Any]:
    """Columns of a runs row that are the same for every trial of a cell."""
    from harness.runner import param_value

    out: dict[str, Any] = {
        "suite": cell.suite,
        "cell_id": cell.cell_id,
        "problem": cell.problem.name,
        "initializer": cell.initializer.name,
        "solver": cell.solver.name,
    }
    for spec in (cell.problem, cell.initializer, cell.solver):
        for k, v in spec.params:
            out[f"{spec.kind}.{k}"] = param_value(v)
    return out


def _singles_out_cells(exp: Expectation, cells: list[Cell]) -> bool:
    """Whether each ``by`` group of ``exp`` is (part of) one cell, so the claim is per cell."""
    columns = [_cell_columns(c) for c in cells]
    if not exp.by:
        return len(cells) == 1
    if not all(b in columns[0] for b in exp.by):
        return False
    keys = {tuple(repr(col[b]) for b in exp.by) for col in columns}
    return len(keys) == len(cells)


@contextlib.contextmanager
def _cell_lock(folder: Path, cell_id: str) -> Iterator[None]:
    """An exclusive lock on one cell across processes (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent duplicates are deduplicated on read
        yield
        return
    locks = folder / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{cell_id}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _limit_threads(threads: int | None) -> None:
    """Set torch's intra-op threads: as asked, else the single solver thread every
    executor uses (harness.executors.SOLVER_THREADS), so a cell run by pytest gives
    bitwise the numbers ``relubench run`` gives."""
    import torch

    from harness.executors import SOLVER_THREADS

    threads = threads or SOLVER_THREADS
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- items


class RelubenchFailure(Exception):
    """A cell with failed trials or a claim that did not hold; the text is the report."""


def _format_outcomes(
    outcomes: list[Outcome], ctx: SuiteContext, *, cell_reruns: bool = True, limit: int = 6
) -> str:
    """Each failed outcome with its rows and the command to rerun each cell behind it."""
    lines: list[str] = []
    failed = [o for o in outcomes if not o.held]
    for o in failed[:limit]:
        lines.append(o.describe())
        if len(o.rows):
            lines.append(_indent(o.table(TABLE_ROWS)))
            ids = list(dict.fromkeys(o.rows["cell_id"])) if "cell_id" in o.rows else []
            by_id = {c.cell_id: c for c in ctx.cells}
            cells = [by_id[i] for i in ids if i in by_id]
            if cells and cell_reruns:
                lines.append("  rerun a cell alone:")
                for cell in cells[:3]:
                    lines.append("    " + ctx.rerun(ctx.nodeids.get(cell.cell_id, "")))
                if len(cells) > 3:
                    lines.append(f"    ... and {len(cells) - 3} more cells")
    if len(failed) > limit:
        lines.append(f"... {len(failed) - limit} more failed groups")
    held = [o for o in outcomes if o.held]
    for o in held[:limit]:
        lines.append(o.describe())
    if len(held) > limit:
        lines.append(f"... {len(held) - limit} more groups held")
    return "\n".join(lines)


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


class _RelubenchItem(pytest.Item):
    ctx: SuiteContext

    def _setup_common(self, ctx: SuiteContext) -> None:
        self.ctx = ctx
        self.add_marker("relubench")
        if ctx.slow:
            self.add_marker("slow")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, RelubenchFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    @property
    def profile_text(self) -> str:
        if self.ctx.profile:
            return f"profile {self.ctx.profile}"
        return "no profile (as written)" + (", marked slow" if self.ctx.slow else "")


class CellItem(_RelubenchItem):
    """One cell: runs its pending trials; fails on a trial not ``ok`` or a per-cell claim."""

    cell: Cell

    def setup_cell(self, ctx: SuiteContext, cell: Cell) -> None:
        self._setup_common(ctx)
        self.cell = cell
        ctx.nodeids[cell.cell_id] = self.nodeid
        self.extra_keyword_matches.update(
            {cell.solver.name, cell.problem.name, cell.initializer.name}
        )

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"relubench {self.ctx.suite.name}::{self.name}"

    def runtest(self) -> None:
        ctx, cell = self.ctx, self.cell
        ran = ctx.ensure([cell], force=ctx.settings.force)
        self.user_properties.append(("trials_run", ran))
        rows = ctx.rows([cell])
        header = (
            f"  cell_id {cell.cell_id}, {cell.trials} trials, {self.profile_text}, "
            f"results {ctx.folder}"
        )
        rerun = "rerun this cell alone:\n  " + ctx.rerun(self.nodeid)
        present = set(rows["trial"]) if len(rows) else set()
        missing = [t for t in range(cell.trials) if t not in present]
        bad = rows[rows["status"] != "ok"] if len(rows) else rows
        if missing or len(bad):
            what = f"{len(bad)} of {cell.trials} trials not ok" if len(bad) else "trials missing"
            parts = [f"{what}: {ctx.suite.name}::{self.name}", header]
            if len(bad):
                parts.append("trials not ok:")
                table = bad[["trial", "status", "error"]].copy()
                table["error"] = table["error"].map(_first_line)
                parts.append(_indent(table.head(TABLE_ROWS).to_string(index=False)))
                first = bad["error"].dropna()
                if len(first):
                    parts.append("first error:\n" + _indent(str(first.iloc[0]).rstrip()))
            if missing:
                parts.append(f"trials missing from the store: {missing}")
            parts.append(rerun)
            raise RelubenchFailure("\n".join(parts))
        outcomes: list[Outcome] = []
        for exp in ctx.per_cell:
            try:
                if exp.select(rows).empty:
                    continue  # the claim's `where` does not cover this cell
            except ValueError:
                pass  # evaluate() reports the bad filter as a failed outcome
            outcomes.extend(exp.evaluate(rows))
        for o in outcomes:
            self.user_properties.append((f"{o.expectation.key}", repr(o.value)))
        self.add_report_section("call", "relubench", "\n".join(o.describe() for o in outcomes))
        if any(not o.held for o in outcomes):
            raise RelubenchFailure(
                "\n".join(
                    [
                        next(o.describe() for o in outcomes if not o.held),
                        header,
                        "per-cell expectations:",
                        _format_outcomes(outcomes, ctx, cell_reruns=False),
                        rerun,
                    ]
                )
            )


class ExpectationItem(_RelubenchItem):
    """One suite-level ``[[expect]]`` entry: judged on the stored rows of every cell."""

    expectation: Expectation

    def setup_expectation(self, ctx: SuiteContext, exp: Expectation) -> None:
        self._setup_common(ctx)
        self.expectation = exp

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return (
            self.path,
            None,
            f"relubench {self.ctx.suite.name}::{self.name}: {self.expectation.label}",
        )

    def runtest(self) -> None:
        ctx, exp = self.ctx, self.expectation
        # Cells this session has not run yet (deselected, or on another worker) run here.
        ctx.ensure(ctx.cells)
        rows = ctx.rows(ctx.cells)
        outcomes = exp.evaluate(rows)
        for o in outcomes:
            self.user_properties.append(
                (" ".join(f"{k}={v}" for k, v in o.group.items()) or "all", repr(o.value))
            )
        self.add_report_section("call", "relubench", "\n".join(o.describe() for o in outcomes))
        if any(not o.held for o in outcomes):
            n_failed = sum(not o.held for o in outcomes)
            raise RelubenchFailure(
                "\n".join(
                    [
                        next(o.describe() for o in outcomes if not o.held),
                        f"relubench {ctx.suite.name}::{exp.key} ({ctx.path}, "
                        f"{self.profile_text}): {n_failed} of {len(outcomes)} groups failed",
                        f"  check = {exp.check!r}"
                        + (f"\n  where = {exp.where!r}" if exp.where else "")
                        + (f"\n  by = {list(exp.by)!r}" if exp.by else ""),
                        _format_outcomes(outcomes, ctx),
                        "rerun this expectation:\n  " + ctx.rerun(self.nodeid),
                    ]
                )
            )


def _first_line(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 80 else line[:77] + "..."
