"""The ``relubench`` command: list, show, run, report, export, compare, check, new.

Exit codes: 0 success; 1 the run finished but some trials failed or an
expectation failed; 2 bad input (suite file, arguments, unknown component, a broken
plugin); 3 the system refused (a results folder that cannot be written, a full disk,
a scheduler that does not answer); 130 interrupted. Errors are one line, no traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import InputError, did_you_mean
from harness.expand import MAX_CELLS, MAX_TRIALS, Limits

DESCRIPTION_WIDTH = 72
OFF_TERMINAL_WIDTH = 500
"""Console width in a log, a pipe or CI: tables print at their natural width there (a
terminal's width is what rich measures; 80 columns squeezed the summary unreadably)."""

KIND_ALIASES = {
    "problems": "problem",
    "initializers": "initializer",
    "solvers": "solver",
    "metrics": "metric",
}


def _plugin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="PATH_OR_MODULE",
        help="load a plugin from a .py file or an importable module (repeatable)",
    )
    p.add_argument(
        "-p",
        dest="block",
        action="append",
        default=[],
        metavar="no:NAME",
        help="block a plugin by name, e.g. -p no:dante (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relubench", description="Benchmark harness for algorithms that learn ReLU networks."
    )
    parser.add_argument("--version", action="version", version=f"relubench {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", choices=sorted(KIND_ALIASES), help="only this kind")
    _plugin_args(p)

    p = sub.add_parser(
        "show", help="documentation and parameters of a component, or a suite file's contents"
    )
    p.add_argument("kind", choices=sorted({*KIND_ALIASES, *KIND_ALIASES.values(), "suite"}))
    p.add_argument("name", help="a component name, or for 'show suite' a suite file")
    p.add_argument("--profile", help="show suite: apply [profiles.NAME] of the suite")
    _plugin_args(p)

    p = sub.add_parser("run", help="run a suite (resumes by default)")
    p.add_argument("suite", type=Path, help="a suite file, or a folder: every *.toml in it")
    p.add_argument("--profile", help="apply [profiles.NAME] of the suite")
    p.add_argument("--workers", type=int, help="worker processes (default: number of cores)")
    p.add_argument("--executor", default="processes", help="serial | processes | dask")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    p.add_argument("--force", action="store_true", help="recompute trials already stored")
    p.add_argument("--dry-run", action="store_true", help="print cells and write nothing")
    p.add_argument("--timeout", type=float, help="seconds per work unit before it is stopped")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a suite value, e.g. --set trials=5 --set problems.d=[10,20]",
    )
    _only_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-cells",
        type=int,
        default=MAX_CELLS,
        metavar="N",
        help=f"refuse a suite of more cells than this (default {MAX_CELLS:,})",
    )
    p.add_argument(
        "--max-trials",
        type=int,
        default=MAX_TRIALS,
        metavar="N",
        help=f"refuse a suite of more trials, cells x trials, than this (default {MAX_TRIALS:,})",
    )
    _plugin_args(p)

    p = sub.add_parser("check", help="conformance checks of components (exit 1 on failure)")
    p.add_argument("target", help="a component name, plugin name, plugin .py file or module")
    p.add_argument("--only", action="append", default=[], metavar="CHECK", help="run only this")
    _plugin_args(p)

    p = sub.add_parser("new", help="write an installable plugin package for a new component")
    p.add_argument("kind", choices=["solver", "problem", "metric"])
    p.add_argument("name", help="the component's name, e.g. my_solver")
    p.add_argument("--dir", type=Path, default=Path("."), help="where to create it")

    p = sub.add_parser("report", help="figures and a summary from a results folder")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, help="output folder (default RESULTS_DIR/report)")
    p.add_argument(
        "--profile",
        help="report the rows of this profile (default: the most recent; 'all' mixes them)",
    )
    _only_arg(p)

    p = sub.add_parser(
        "export", help="deduplicated runs and traces as one Parquet or CSV file each"
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    p.add_argument("--format", dest="fmt", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--out", type=Path, help="output folder (default RESULTS_DIR/export)")
    p.add_argument(
        "--sql-names",
        action="store_true",
        help="columns named problem_d rather than problem.d (no quoting in SQL)",
    )

    p = sub.add_parser("compare", help="paired tests of the solvers of a run, or of two runs")
    p.add_argument("results", type=Path, help="a suite's results folder")
    p.add_argument("other", type=Path, nargs="?", help="a second run of the suite (new)")
    p.add_argument("--metric", action="append", default=[], help="compare this metric (repeat)")
    p.add_argument("--baseline", help="compare every solver with this one only")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="SPEC",
        help="exit 1 on a significant worsening: success, time_s>1.10x, ...",
    )
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument(
        "--direction",
        action="append",
        default=[],
        metavar="METRIC=min|max",
        help="which way a metric is better (default: as declared; undeclared: minimised)",
    )
    p.add_argument(
        "--budget",
        default="iteration",
        help="budget axis of ERT/ECDFs: iteration, time_s or a traced series",
    )
    p.add_argument("--figures", type=Path, help="write CD diagrams, profiles, ECDFs (PNG) here")
    return parser


def _only_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep part of the cells: a component (solver=altmin) or a parameter "
        "(problem.d=50); repeat a key for either value, different keys must all match",
    )


def _version() -> str:
    from harness import __version__

    return __version__


def _blocked(values: Sequence[str]) -> list[str]:
    out = []
    for v in values:
        if not v.startswith("no:") or len(v) <= 3:
            raise InputError(f"-p {v}: expected -p no:NAME to block the plugin NAME")
        out.append(v[3:])
    return out


# Words a period follows without ending a sentence (the plugins cite papers).
_ABBREVIATIONS = {"al", "e.g", "i.e", "fig", "figs", "sec", "eq", "eqs", "alg", "def", "vs", "cf"}


def first_sentence(obj: object) -> str:
    """The first sentence of ``obj``'s docstring, whatever line breaks it spans.

    A period ends it when it is outside brackets, followed by a space and a capital
    (or the paragraph's end), and not after an abbreviation (``et al.``, ``Fig.``).
    """
    doc = inspect.getdoc(obj) or ""
    para = " ".join(doc.strip().split("\n\n", 1)[0].split())
    depth = 0
    for i, ch in enumerate(para):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        elif ch in ".!?" and depth == 0:
            rest = para[i + 1 :]
            word = re.search(r"([\w.]*)$", para[:i]).group(1).lower()
            if word in _ABBREVIATIONS:
                continue
            if not rest or re.match(r"\s+[A-Z]", rest):
                return para[: i + 1]
    return para


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    from harness.plugins import get_registry

    registry = get_registry(tuple(args.plugin), tuple(_blocked(args.block)))
    kinds = [KIND_ALIASES[args.kind]] if args.kind else list(KIND_ALIASES.values())
    for kind in kinds:
        table = Table(title=f"{kind}s", title_justify="left", show_edge=False)
        table.add_column("name")
        table.add_column("plugin")
        table.add_column("families")
        # Wrapped at a readable width, on a terminal and in a log alike.
        table.add_column("description", max_width=DESCRIPTION_WIDTH)
        for name, cls in sorted(registry.components[kind].items()):
            # escaped: a docstring's "w*[k]" is text, not rich markup
            cells = (name, registry.plugin_of(kind, name), ", ".join(cls.families))
            table.add_row(*map(escape, cells), escape(first_sentence(cls)))
        out.print(table)
    return 0


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    from harness.plugins import get_registry

    if args.kind == "suite":
        return cmd_show_suite(args, out)
    registry = get_registry(tuple(args.plugin), tuple(_blocked(args.block)))
    kind = KIND_ALIASES.get(args.kind, args.kind)
    cls = registry.get(kind, args.name)
    out.print(f"[bold]{kind} {cls.name}[/bold]  (plugin {registry.plugin_of(kind, cls.name)})")
    out.print(f"families: {', '.join(cls.families)}")
    if kind == "solver":
        out.print(f"batched over trials: {'yes' if getattr(cls, 'batched', True) else 'no'}")
    out.print()
    out.print(inspect.getdoc(cls) or "(no documentation)", markup=False, highlight=False)
    specs = cls.param_specs()
    out.print()
    if not specs:
        out.print("parameters: none")
        return 0
    table = Table(title="parameters", title_justify="left", show_edge=False)
    for col in ("name", "type", "default", "allowed", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(s.name, s.type, repr(s.default), s.allowed, s.doc)
    out.print(table)
    return 0


def cmd_show_suite(args: argparse.Namespace, out: Console) -> int:
    """``relubench show suite FILE``: its cells, profiles and claims, without running."""
    from harness import run
    from harness.suite import result_columns

    registry, suite, cells, dropped = run.prepare(
        args.name, profile=args.profile, plugins=args.plugin, blocked=_blocked(args.block)
    )
    out.print(f"[bold]suite {suite.name}[/bold]: {escape(suite.title)}  ({suite.path})")
    if suite.source:
        out.print(f"source: {escape(suite.source)}", highlight=False)
    out.print(
        f"profile {suite.profile or '- (none given)'}: {len(cells)} cells x {suite.trials} "
        f"trials = {len(cells) * suite.trials} trials, seed {suite.seed}, {suite.dtype}, "
        f"{len(dropped)} incompatible combinations dropped",
        highlight=False,
    )
    out.print()
    profiles = suite.raw.get("profiles", {})
    if profiles:
        table = Table(title="profiles", title_justify="left", show_edge=False)
        table.add_column("name", no_wrap=True)
        table.add_column("overrides")
        for pname, body in profiles.items():
            table.add_row(pname, escape(_toml_inline(body)))
        out.print(table)
    else:
        out.print("profiles: none (run as written)")
    out.print()
    table = Table(title="cells", title_justify="left", show_edge=False)
    table.add_column("cell")
    table.add_column("cell_id", no_wrap=True)
    for c in cells:
        table.add_row(escape(c.label), c.cell_id)
    out.print(table)
    out.print()
    claims = suite.expectations
    if claims:
        table = Table(title=escape("claims ([[expect]])"), title_justify="left", show_edge=False)
        for col in ("key", "claim", "checked under this profile"):
            table.add_column(col)
        for e in claims:
            table.add_row(e.key, escape(e.label), "yes" if e.applies(suite.profile) else "no")
        out.print(table)
    else:
        out.print("claims: none")
    columns = result_columns(suite.entries, suite.metrics)
    out.print()
    out.print(
        "columns a claim may name (--only takes the component and parameter ones): "
        + ", ".join(columns),
        highlight=False,
        markup=False,
    )
    return 0


def _toml_inline(body: object, prefix: str = "") -> str:
    if isinstance(body, dict) and not ({"start", "stop"} <= set(body)):
        return ", ".join(_toml_inline(v, f"{prefix}{k}.") for k, v in body.items())
    return f"{prefix.rstrip('.')} = {body!r}"


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness import run

    blocked = _blocked(args.block)
    _limits(args)  # bad --max-cells / --max-trials fail before anything loads
    if args.results.exists() and not args.results.is_dir():
        raise InputError(f"--results {args.results}: is a file; give a folder for the results")
    run.check_options(
        executor=args.executor, workers=args.workers, scheduler=args.scheduler, timeout=args.timeout
    )
    paths = run.suite_files(args.suite)
    if not args.suite.is_dir():
        return _run_one(args, paths[0], args.profile, blocked, out, err)
    plan = _plan_folder(args, paths, blocked, out)
    codes = []
    for path, profile in plan:
        out.print(f"[bold]== {escape(str(path))}[/bold] (profile {profile or '- (none)'})")
        codes.append(_run_one(args, path, profile, blocked, out, err))
    failed = [str(p) for (p, _), c in zip(plan, codes) if c]
    out.print(
        f"ran {len(plan)} suites of {args.suite}: "
        + (f"{len(failed)} not ok ({', '.join(failed)})" if failed else "all ok"),
        highlight=False,
    )
    return max(codes)


def _plan_folder(
    args: argparse.Namespace, paths: list[Path], blocked: list[str], out: Console
) -> list[tuple[Path, str | None]]:
    """Every suite of a folder checked before the first one runs: (file, profile) to run.

    A suite without ``--profile NAME`` runs as written (``quickstart`` has no ``full``),
    and one that ``--only`` selects nothing of is skipped; each is said. A profile or
    an ``--only`` that fits no suite of the folder is bad input.
    """
    from harness import run
    from harness.selection import Selection
    from harness.suite import read_toml

    selection = Selection.parse(args.only)
    plan: list[tuple[Path, str | None]] = []
    notes, only_errors, profiles_seen = [], [], set()
    for path in paths:
        profiles = read_toml(path).get("profiles", {})
        profiles_seen |= set(profiles) if isinstance(profiles, dict) else set()
        profile = args.profile if args.profile in profiles else None
        if args.profile and profile is None:
            notes.append(f"{path.name}: no [profiles.{args.profile}], runs as written")
        _, _, cells, _ = run.prepare(
            path,
            profile=profile,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
            limits=_limits(args),
        )
        try:
            selection.cells(cells, where=path.name)
        except InputError as exc:
            only_errors.append(str(exc))
            notes.append(f"{path.name}: skipped, --only selects none of its cells")
            continue
        plan.append((path, profile))
    if args.profile and args.profile not in profiles_seen:
        raise InputError(
            f"--profile {args.profile}: no suite of {args.suite} has it"
            f"{did_you_mean(args.profile, profiles_seen)}; "
            f"profiles: {', '.join(sorted(profiles_seen)) or 'none'}"
        )
    if not plan:
        raise InputError(f"{args.suite}: --only selects no suite's cells: {only_errors[0]}")
    for note in notes:
        out.print(note, highlight=False, markup=False)
    return plan


def _run_one(
    args: argparse.Namespace,
    path: Path,
    profile: str | None,
    blocked: list[str],
    out: Console,
    err: Console,
) -> int:
    from harness import run

    if args.dry_run:
        registry, suite, cells, dropped = run.prepare(
            path,
            profile=profile,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
            only=args.only,
            limits=_limits(args),
        )
        reported = run.reported_count(registry, suite, cells, args.only) if suite.tuned else None
        return _print_dry_run(out, suite, cells, dropped, args.results, reported)

    progress = None
    task = None
    if not args.no_progress and err.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        progress.start()
    last = [0.0]

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        if progress is not None:
            if task is None:
                task = progress.add_task("run", total=total)
            progress.update(task, completed=done)
        elif not args.no_progress and (time.time() - last[0] > 5 or done == total) and total:
            last[0] = time.time()
            err.print(f"trials {done}/{total}", highlight=False)

    try:
        report = _execute_interruptible(run, args, path, profile, blocked, on_progress, err)
    finally:
        if progress is not None:
            progress.stop()
    if report is None:
        return EXIT_INTERRUPTED
    _print_summary(out, report)
    _print_rows_used(out, report, args.only)
    _print_errors(out, report)
    _print_where(out, report)
    return report.exit_code


def _execute_interruptible(run, args, path, profile, blocked, on_progress, err: Console):
    """``run.execute``, or None after Ctrl-C: then say what was kept and how to resume.

    The run loop writes every finished unit on its way out (``PartWriter.flush``), so the
    rows counted here are on disk; rerunning the same command skips them.
    """
    progress = [0, 0]

    def counting(done: int, total: int) -> None:
        progress[:] = [done, total]
        on_progress(done, total)

    try:
        return run.execute(
            path,
            profile=profile,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            results=args.results,
            force=args.force,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
            timeout=args.timeout,
            on_progress=counting,
            only=args.only,
            limits=_limits(args),
        )
    except KeyboardInterrupt:
        pass
    done, total = progress
    where = ""
    try:
        from harness.store import Store

        _, suite, cells, _ = run.prepare(
            path,
            profile=profile,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
            only=args.only,
        )
        folder = run.results_root(args.results, suite)
        wanted = {(c.cell_id, t) for c in cells for t in range(c.trials)}
        stored = len(wanted & Store(folder).completed()) if folder.exists() else 0
        where = f"; {stored} of {len(wanted)} trials of the suite are stored ok in {folder}"
    except (InputError, OSError, KeyboardInterrupt):
        pass
    err.print(
        f"interrupted: kept the {done} trials this run finished (of {total} to run){where}.\n"
        f"Resume with the same command (stored trials are not run again):\n"
        f"  relubench {shlex.join(sys.argv[1:] if args.argv is None else args.argv)}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return None


def _limits(args: argparse.Namespace) -> Limits:
    for flag, value in (("--max-cells", args.max_cells), ("--max-trials", args.max_trials)):
        if value < 1:
            raise InputError(f"{flag} {value}: must be >= 1")
    return Limits(max_cells=args.max_cells, max_trials=args.max_trials)


DRY_RUN_ROWS = 50
"""A dry run lists every cell up to this many; beyond, counts and the first and last few."""
DRY_RUN_ENDS = 5


def _print_dry_run(
    out: Console, suite, cells, dropped, results: Path, reported: int | None = None
) -> int:
    """The cells a run would run. A tuned suite (``reported`` given) shows its two phases:
    ``cells`` are the tuning cells, then the count of reported cells tuning will choose."""
    from collections import Counter

    from harness.run import results_root
    from harness.store import Store

    folder = results_root(results, suite)
    done = Store(folder).completed() if folder.exists() else set()
    # Counted from what is stored, never by looping over a cell's trials (10**18 of them).
    trials_of = {c.cell_id: c.trials for c in cells}
    stored = Counter(cid for cid, t in done if t < trials_of.get(cid, 0))
    out.print(
        f"suite {suite.name} ({suite.path}), profile {suite.profile or '-'}: "
        f"{len(cells)} cells x {suite.trials} trials = {len(cells) * suite.trials} trials"
        if reported is None
        else f"suite {suite.name} ({suite.path}), profile {suite.profile or '-'}: two phases"
    )
    if reported is not None:
        t = suite.tuning
        out.print(
            f"tuning cells (split = tune): {len(cells)} cells x {t.trials} tuning trials = "
            f"{len(cells) * t.trials} trials, selecting by {t.goal} mean {t.metric}",
            highlight=False,
        )
    summarize = len(cells) > DRY_RUN_ROWS
    if summarize:
        for kind in ("problem", "initializer", "solver"):
            per_name = Counter(getattr(c, kind).name for c in cells)
            counts = ", ".join(f"{name} {n}" for name, n in sorted(per_name.items()))
            out.print(f"cells per {kind}: {counts}", highlight=False)
    table = Table(show_edge=False)
    for col in ("cell", "cell_id", "trials", "stored"):
        table.add_column(col)
    shown = [*cells[:DRY_RUN_ENDS], None, *cells[-DRY_RUN_ENDS:]] if summarize else list(cells)
    for c in shown:
        if c is None:
            hidden = len(cells) - 2 * DRY_RUN_ENDS
            table.add_row(f"... {hidden} more cells ...", "", "", "")
            continue
        table.add_row(escape(c.label), c.cell_id, str(c.trials), str(stored[c.cell_id]))
    out.print(table)
    if dropped:
        out.print(f"dropped {len(dropped)} incompatible combinations:")
        if len(dropped) > DRY_RUN_ROWS:  # by reason, not one line per combination
            for reason, n in Counter(d.reason for d in dropped).most_common():
                out.print(f"  {n} x {reason}", highlight=False)
        else:
            for d in dropped:
                text = f"  {d.solver} x {d.initializer} on {d.problem}: {d.reason}"
                out.print(text, highlight=False)
    else:
        out.print("dropped 0 combinations")
    if reported is not None:
        out.print(
            f"reported cells: chosen after tuning, {reported} cells x {suite.trials} trials = "
            f"{reported * suite.trials} trials (split = test; claims are judged on these)",
            highlight=False,
        )
    out.print(f"results would go to {folder} (dry run: nothing written)")
    return 0


SUMMARY_ROWS = 200
"""Cells shown in the summary ``relubench run`` prints (drawing 10,000 rows takes seconds)."""


def _print_summary(out: Console, report) -> None:
    from harness.declarations import read_declarations
    from harness.summary import summary_frame

    frame = summary_frame(report.runs, report.cells, read_declarations(report.results_dir))
    table = Table(title=escape(f"{report.suite.name}: {report.suite.title}"), show_edge=False)
    for col in frame.columns:
        text = col in ("solver", "problem", "initializer")
        table.add_column(str(col), justify="left" if text else "right", no_wrap=text)
    for row in frame.head(SUMMARY_ROWS).itertuples(index=False):
        table.add_row(*[escape(_cell_text(v)) for v in row])
    out.print(table)
    if len(frame) > SUMMARY_ROWS:
        out.print(f"... and {len(frame) - SUMMARY_ROWS} more cells (relubench report has them all)")
    for o in report.outcomes:
        out.print(o.describe(), highlight=False, markup=False)
    out.print(
        f"ran {report.trials_run} trials in {report.units_run} units "
        f"({report.trials_skipped} already stored), {report.failed_trials} not ok, "
        f"{report.wall_s:.1f} s"
    )
    if report.tuning:  # the tuning protocol: what was tuned, over which grid, what was chosen
        from harness.run import tuning_lines

        out.print(f"tuning: {report.tuning_trials_run} tuning trials run (split = tune)")
        for line in tuning_lines(report.tuning):
            out.print(escape(line))
    if report.trials_waited:
        out.print(f"{report.trials_waited} trials were computed by another run on this folder")
    for line in report.missing:
        out.print(f"rows lost: {line}", highlight=False, markup=False)
    if report.dropped:
        out.print(f"dropped {len(report.dropped)} incompatible combinations (see --dry-run)")


def _print_where(out: Console, report) -> None:
    """The last lines of a run: where the results are and how to draw them."""
    out.print(f"results: {report.results_dir}")
    out.print(f"figures: relubench report {shlex.quote(str(report.results_dir))}", highlight=False)


def _print_rows_used(out: Console, report, only: Sequence[str]) -> None:
    """Which rows the summary and the claims used: this run's profile, and what else
    the folder holds (another profile's rows are never mixed in silently)."""
    from harness.profiles import label, other_profiles

    runs = report.runs
    cells = runs["cell_id"].nunique() if runs is not None and not runs.empty else 0
    text = (
        f"rows: profile {label(report.suite.profile)}, {cells} cells x "
        f"{report.suite.trials} trials ({0 if runs is None else len(runs)} rows)"
    )
    if only:
        text += f", --only {' --only '.join(only)}"
    others = other_profiles(report.results_dir, runs) if runs is not None else {}
    if others:
        text += "; not used: " + ", ".join(
            f"{n} rows of profile {p}" for p, n in sorted(others.items())
        )
    out.print(text, highlight=False, markup=False)


def _print_errors(out: Console, report) -> None:
    """The distinct messages of the trials that are not ok, and where to read them all."""
    from harness.summary import error_groups, read_errors_hint

    groups = error_groups(report.runs, report.cells) if report.runs is not None else []
    if not groups:
        return
    total = sum(g.count for g in groups)
    out.print(
        f"not ok: {total} trials, {len(groups)} distinct message{'s' * (len(groups) > 1)}:",
        highlight=False,
    )
    for g in groups[:10]:
        out.print(f"  {g.count} x {g.status}: {g.message}", highlight=False, markup=False)
        out.print(f"      e.g. {g.example}", highlight=False, markup=False)
    if len(groups) > 10:
        out.print(f"  ... {len(groups) - 10} more messages")
    out.print(
        f"every message in full (column 'error' of {report.results_dir / 'runs'}):",
        highlight=False,
    )
    out.print(f"  {read_errors_hint(report.results_dir)}", highlight=False, markup=False)


def _cell_text(v: object) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:.3g}"
    return str(v)


def cmd_report(args: argparse.Namespace, out: Console) -> int:
    if not (args.results_dir / "runs").is_dir():
        raise InputError(f"{args.results_dir}: not a results folder (no runs/ inside)")
    from harness.report import build_report
    from harness.report.data import select_rows

    rows = select_rows(args.results_dir, args.profile, args.only)
    out.print(rows.note, highlight=False, markup=False)
    folder = build_report(args.results_dir, args.out, rows=rows)
    out.print(f"report: {folder / 'index.html'}")
    return 0


def cmd_export(args: argparse.Namespace, out: Console) -> int:
    from harness.store import export

    paths = export(args.results_dir, args.fmt, args.out, sql_names=args.sql_names)
    for path in paths:
        out.print(f"{path.stem}: {path}", highlight=False)
    return 0


def console(*, stderr: bool = False) -> Console:
    """A rich console that wraps nothing it need not: in a log, a pipe or CI (not a
    terminal, no ``COLUMNS`` wider) tables keep their natural width."""
    c = Console(soft_wrap=True, stderr=stderr)
    if not c.is_terminal:
        columns = os.environ.get("COLUMNS", "")
        c.width = max(int(columns) if columns.isdigit() else 0, OFF_TERMINAL_WIDTH)
    return c


def cmd_check(args: argparse.Namespace, out: Console) -> int:
    from harness.testing import CHECKS, format_results, resolve, run_checks

    unknown = sorted(set(args.only) - set(CHECKS))
    if unknown:
        raise InputError(f"--only {unknown[0]}: no such check; checks: {', '.join(CHECKS)}")
    registry, classes = resolve(args.target, args.plugin, _blocked(args.block))
    import torch

    torch.set_num_threads(1)  # tiny instances: more threads only fight over the cores
    results = [r for cls in classes for r in run_checks(cls, registry, args.only or None)]
    out.print(format_results(results), markup=False, highlight=False)
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "waived")}
    out.print(
        f"{len(classes)} component(s), {len(results)} checks: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f", {len(results) - sum(counts.values())} skipped",
        highlight=False,
    )
    return 1 if counts["failed"] else 0


def cmd_new(args: argparse.Namespace, out: Console) -> int:
    from harness.template import new_plugin

    root = new_plugin(args.kind, args.name, args.dir)
    out.print(f"created {root}", highlight=False)
    out.print(f"  cd {root} && pip install -e . && python -m pytest tests", highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    """Exit 1 only when OTHER is given and a ``--fail-on`` spec finds a regression."""
    from harness.analysis import analyze_folder, analyze_runs, parse_fail_on
    from harness.analysis.render import render_folder, render_runs

    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha {args.alpha}: expected a number between 0 and 1")
    directions = dict(d.partition("=")[::2] for d in args.direction)
    options = {"metrics": args.metric or None, "alpha": args.alpha, "directions": directions}
    if args.other is None:
        if args.fail_on:
            raise InputError("--fail-on needs two results folders: RESULTS OTHER")
        analysis = analyze_folder(
            args.results, baseline=args.baseline, budget=args.budget, figures=args.figures,
            **options,
        )  # fmt: skip
        text, code = render_folder(analysis, args.format), 0
    else:
        report, infos = analyze_runs(args.results, args.other, **options)
        regressions = report.regressions(parse_fail_on(args.fail_on, infos))
        text, code = render_runs(report, regressions, args.format), 1 if regressions else 0
    out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    out = console()
    err = console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _dispatch(args, out, err)


def _dispatch(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        if args.command == "list":
            return cmd_list(args, out)
        if args.command == "show":
            return cmd_show(args, out)
        if args.command == "run":
            return cmd_run(args, out, err)
        if args.command == "report":
            return cmd_report(args, out)
        if args.command == "export":
            return cmd_export(args, out)
        if args.command == "check":
            return cmd_check(args, out)
        if args.command == "new":
            return cmd_new(args, out)
        if args.command == "compare":
            return cmd_compare(args, out)
    except InputError as exc:
        err.print(f"relubench: error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except OSError as exc:  # the system refused: read-only, disk full, no scheduler
        err.print(f"relubench: error: {_os_error(exc)}", markup=False, highlight=False)
        return EXIT_SYSTEM
    except KeyboardInterrupt:
        err.print("relubench: interrupted", markup=False, highlight=False)
        return EXIT_INTERRUPTED
    return 2


EXIT_SYSTEM = 3
"""Exit code when the system refused: a results folder that cannot be written (read-only,
disk full), a scheduler that does not answer."""
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT, as shells report it)."""


def _os_error(exc: OSError) -> str:
    """``PATH: cause`` of an ``OSError`` on one line."""
    cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{exc.filename}: {cause}" if exc.filename else cause


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings of relubench as one line (``relubench: warning: ...``), no source line."""
    print(f"relubench: warning: {message}", file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
