"""pytest plugin: benchmark suites collected and run as tests.

``pytest suites/`` (or one ``.toml`` file) collects every suite file, i.e. a
TOML file with a ``[suite]`` table, with pytest's non-Python collection
pattern: ``SuiteFile`` -> ``SuiteNode`` (named after the suite) -> items:

* one :class:`CellItem` per cell, id ``<suite>::<cell label>``, which runs the
  cell's trials that are not stored yet and fails if a trial is not ``ok`` or a
  per-cell expectation fails (one whose ``by`` columns single out cells);
* one :class:`ExpectationItem` per other ``[[expect]]`` entry, which runs
  whatever the suite still misses and judges the claim on the stored rows.

A suite with tuning axes (``{ tune = [...] }``) runs its tuning phase when it is
collected (:func:`harness.run.tune`, once per results folder under a lock, resumed
from the store like any cell); its items are then the reported cells with the
selected values, and claims are judged on their rows (``split = "test"``) only.

Cells run through the same run session as ``relubench run``
(:class:`harness.run.RunSession`), into the same store (``RESULTS/<suite>/runs``)
with the same schema; this module keeps only options, collection nodes and
failure text. Under pytest-xdist every worker runs its own cells; a per-cell file
lock makes a cell that two workers want at once computed once, and the store
dedupes on read anyway.

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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from harness.expand import Cell
    from harness.expect import Expectation, Outcome
    from harness.plugins import Registry
    from harness.run import RunSession
    from harness.suite import Suite

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
        cached = config.stash.get(SETTINGS_KEY, None)
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
        config.stash[SETTINGS_KEY] = settings
        return settings


SETTINGS_KEY = pytest.StashKey[Settings]()
RUN_ID_KEY = pytest.StashKey[str]()


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
    registry: Registry
    suite: Suite
    cells: list[Cell]
    expectations: list[Expectation]
    per_cell: list[Expectation]
    suite_level: list[Expectation]
    run_id: str = ""
    nodeids: dict[str, str] = field(default_factory=dict)  # cell_id -> item nodeid
    config: pytest.Config | None = None
    _executor: Any = None
    tuning: list[Any] = field(default_factory=list)  # harness.run.TuningChoice, if tuned

    @classmethod
    def load(cls, path: Path, settings: Settings, config: pytest.Config) -> SuiteContext:
        """Load and expand the suite under the session's profile (no side effects)."""
        from harness.errors import InputError
        from harness.run import prepare

        doc = _read_suite_doc(path)
        profiles = doc.get("profiles", {}) if doc else {}
        wanted = settings.profile
        has = isinstance(profiles, dict) and wanted in profiles
        profile = wanted if has else None
        # A suite without the requested quick profile runs at full size: mark it slow.
        slow = wanted is not None and not has
        try:
            registry, suite, cells, _ = prepare(
                path, profile=profile, plugins=settings.plugins, blocked=settings.blocked
            )
            run_id = _session_run_id(config)
            choices = []
            if suite.tuned:  # `cells` are the tuning cells: tune, then collect the chosen
                cells, choices = _tune(registry, suite, cells, settings, run_id)
            claims = suite.active_expectations
        except InputError:
            raise
        except Exception as exc:  # a plugin that fails to import, say
            raise InputError(f"{path}: {type(exc).__name__}: {exc}") from exc
        per_cell = [e for e in claims if _singles_out_cells(e, cells)]
        suite_level = [e for e in claims if e not in per_cell]
        return cls(
            path,
            settings,
            profile,
            slow,
            registry,
            suite,
            cells,
            claims,
            per_cell,
            suite_level,
            run_id=run_id,
            config=config,
            tuning=choices,
        )

    @cached_property
    def session(self) -> RunSession:
        """The run session this suite's items run their cells in (one per pytest session)."""
        from harness.run import RunSession

        return RunSession(
            self.registry,
            self.suite,
            self.cells,
            results=self.settings.results,
            run_id=self.run_id,
            executor="pytest",
            workers=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
            plugins=self.settings.plugins,
            blocked=self.settings.blocked,
            metadata={"xdist_worker": os.environ.get("PYTEST_XDIST_WORKER")},
        )

    @property
    def folder(self) -> Path:
        return self.session.folder

    # ------------------------------------------------------------------ running
    def ensure(self, cells: list[Cell], *, force: bool = False) -> int:
        """Run the trials of ``cells`` that still need running; return how many ran.

        A trial needs running unless it is stored ``ok`` or this pytest session
        (all its xdist workers) already ran it: a trial that failed is retried
        by the next session, not by every item of this one. ``force`` reruns
        every trial not yet run by this session. Cells run in this process, with
        the solver threads of ``--relubench-threads`` (default: those every
        executor uses, so the numbers are bitwise those of ``relubench run``).
        """
        session = self.session
        snapshot = session.settled(cells, force=force)
        ran = 0
        for cell in cells:
            if all((cell.cell_id, t) in snapshot for t in range(cell.trials)):
                continue
            with _cell_lock(self.folder, cell.cell_id):
                # another worker may have run it while we waited for the lock
                units = session.plan([cell], session.settled([cell], force=force))
                if not units:
                    continue
                ran += session.run(units, self.executor())
        return ran

    def executor(self) -> Any:
        """The serial executor of this suite's cells, kept for the pytest session: units
        with the suite's ``timeout_s`` run in its child process, which is started once,
        not once per cell. Closed when the session ends."""
        if self._executor is None:
            from harness.executors import make_executor

            self._executor = make_executor("serial", threads=self.settings.threads)
            if self.config is not None:
                self.config.add_cleanup(self._executor.close)
        return self._executor

    def rows(self, cells: list[Cell]) -> pd.DataFrame:
        """Stored rows (deduplicated) of these cells' trials under this profile; never a
        tuning trial (``split = "tune"``): claims are judged on reported trials only."""
        rows = self.session.rows(cells)
        if "split" in rows.columns:
            rows = rows[rows["split"] != "tune"]
        return rows

    def rerun(self, nodeid: str) -> str:
        """The pytest command that runs one item of this suite alone (non-ok trials rerun)."""
        args = ["pytest", nodeid, *self.settings.rerun_args]
        return " ".join(shlex.quote(a) for a in args)


def _tune(
    registry: Registry, suite: Suite, cells: list[Cell], settings: Settings, run_id: str
) -> tuple[list[Cell], list[Any]]:
    """The tuning phase of a tuned suite, through the run loop of ``relubench run``
    (:func:`harness.run.tune`): the reported cells and the choices. Under xdist every
    worker collects the suite; the lock makes the first one run the tuning trials and the
    others read them from the store, so all select (and collect) the same cells."""
    from harness.run import results_root, tune

    with _cell_lock(results_root(settings.results, suite), "tuning"):
        reported, _, choices, _ = tune(
            registry,
            suite,
            cells,
            results=settings.results,
            run_id=run_id,
            executor="pytest",
            workers=1,
            plugins=settings.plugins,
            blocked=settings.blocked,
            force=settings.force,
            threads=settings.threads,
            metadata={"xdist_worker": os.environ.get("PYTEST_XDIST_WORKER")},
        )
    return reported, choices


def _session_run_id(config: pytest.Config) -> str:
    """One run id for the whole pytest session, shared by its xdist workers."""
    cached = config.stash.get(RUN_ID_KEY, None)
    if cached is None:
        workerinput = getattr(config, "workerinput", None)
        token = workerinput["testrunuid"] if workerinput else uuid.uuid4().hex
        stamp = time.strftime("%Y%m%dT%H%M%S")
        cached = f"pytest-{token[:12]}" if workerinput else f"pytest-{stamp}-{token[:6]}"
        config.stash[RUN_ID_KEY] = cached
    return cached


def _singles_out_cells(exp: Expectation, cells: list[Cell]) -> bool:
    """Whether each ``by`` group of ``exp`` is (part of) one cell, so the claim is per cell."""
    from harness.rows import cell_columns

    columns = [cell_columns(c) for c in cells]
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
        from harness.run import judge, tuning_lines

        # a claim whose `where` does not cover this cell is another cell's
        outcomes = judge(ctx.per_cell, rows, covered_only=True, traces=ctx.folder)
        for o in outcomes:
            self.user_properties.append((f"{o.expectation.key}", repr(o.value)))
        mine = [c for c in ctx.tuning if c.solver == cell.solver.name]
        lines = tuning_lines(mine) if cell.tuned else []
        lines += [o.describe() for o in outcomes]
        self.add_report_section("call", "relubench", "\n".join(lines))
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
        from harness.run import judge

        rows = ctx.rows(ctx.cells)
        outcomes = judge([exp], rows, traces=ctx.folder)
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
