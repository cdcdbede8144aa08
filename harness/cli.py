"""The ``relubench`` command: list, show, run, report.

Exit codes: 0 success; 1 the run finished but some trials failed or an
expectation failed; 2 bad input (suite file, arguments, unknown component).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import InputError

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

    p = sub.add_parser("show", help="documentation and parameters of a component")
    p.add_argument("kind", choices=sorted({*KIND_ALIASES, *KIND_ALIASES.values()}))
    p.add_argument("name")
    _plugin_args(p)

    p = sub.add_parser("run", help="run a suite (resumes by default)")
    p.add_argument("suite", type=Path)
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _plugin_args(p)

    p = sub.add_parser("report", help="figures and a summary from a results folder")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, help="output folder (default RESULTS_DIR/report)")
    return parser


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


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    from harness.plugins import get_registry

    registry = get_registry(tuple(args.plugin), tuple(_blocked(args.block)))
    kinds = [KIND_ALIASES[args.kind]] if args.kind else list(KIND_ALIASES.values())
    for kind in kinds:
        table = Table(title=f"{kind}s", title_justify="left", show_edge=False)
        table.add_column("name")
        table.add_column("plugin")
        table.add_column("families")
        table.add_column("description")
        for name, cls in sorted(registry.components[kind].items()):
            table.add_row(
                name, registry.plugin_of(kind, name), ", ".join(cls.families), _first_line(cls)
            )
        out.print(table)
    return 0


def cmd_show(args: argparse.Namespace, out: Console) -> int:
    from harness.plugins import get_registry

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


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness import run

    blocked = _blocked(args.block)
    if args.dry_run:
        registry, suite, cells, dropped = run.prepare(
            args.suite,
            profile=args.profile,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
        )
        return _print_dry_run(out, suite, cells, dropped, args.results)

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
        report = run.execute(
            args.suite,
            profile=args.profile,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            results=args.results,
            force=args.force,
            overrides=args.overrides,
            plugins=args.plugin,
            blocked=blocked,
            timeout=args.timeout,
            on_progress=on_progress,
        )
    finally:
        if progress is not None:
            progress.stop()
    _print_summary(out, report)
    return report.exit_code


def _print_dry_run(out: Console, suite, cells, dropped, results: Path) -> int:
    from harness.run import results_root
    from harness.store import Store

    folder = results_root(results, suite)
    done = Store(folder).completed() if folder.exists() else set()
    out.print(
        f"suite {suite.name} ({suite.path}), profile {suite.profile or '-'}: "
        f"{len(cells)} cells x {suite.trials} trials = {len(cells) * suite.trials} trials"
    )
    table = Table(show_edge=False)
    for col in ("cell", "cell_id", "trials", "stored"):
        table.add_column(col)
    for c in cells:
        stored = sum((c.cell_id, t) in done for t in range(c.trials))
        table.add_row(escape(c.label), c.cell_id, str(c.trials), str(stored))
    out.print(table)
    if dropped:
        out.print(f"dropped {len(dropped)} incompatible combinations:")
        for d in dropped:
            out.print(f"  {d.solver} x {d.initializer} on {d.problem}: {d.reason}", highlight=False)
    else:
        out.print("dropped 0 combinations")
    out.print(f"results would go to {folder} (dry run: nothing written)")
    return 0


def _print_summary(out: Console, report) -> None:
    from harness.declarations import read_declarations
    from harness.summary import summary_frame

    frame = summary_frame(report.runs, report.cells, read_declarations(report.results_dir))
    table = Table(title=escape(f"{report.suite.name}: {report.suite.title}"), show_edge=False)
    for col in frame.columns:
        text = col in ("solver", "problem", "initializer")
        table.add_column(str(col), justify="left" if text else "right", no_wrap=text)
    for _, row in frame.iterrows():
        table.add_row(*[escape(_cell_text(v)) for v in row])
    out.print(table)
    for o in report.outcomes:
        out.print(o.describe(), highlight=False, markup=False)
    out.print(
        f"ran {report.trials_run} trials in {report.units_run} units "
        f"({report.trials_skipped} already stored), {report.failed_trials} not ok, "
        f"{report.wall_s:.1f} s"
    )
    if report.trials_waited:
        out.print(f"{report.trials_waited} trials were computed by another run on this folder")
    for line in report.missing:
        out.print(f"rows lost: {line}", highlight=False, markup=False)
    if report.dropped:
        out.print(f"dropped {len(report.dropped)} incompatible combinations (see --dry-run)")
    out.print(f"results: {report.results_dir}")


def _cell_text(v: object) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:.3g}"
    return str(v)


def cmd_report(args: argparse.Namespace, out: Console) -> int:
    if not (args.results_dir / "runs").is_dir():
        raise InputError(f"{args.results_dir}: not a results folder (no runs/ inside)")
    from harness.report import build_report

    folder = build_report(args.results_dir, args.out)
    out.print(f"report: {folder / 'index.html'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args, out)
        if args.command == "show":
            return cmd_show(args, out)
        if args.command == "run":
            return cmd_run(args, out, err)
        if args.command == "report":
            return cmd_report(args, out)
    except InputError as exc:
        err.print(f"relubench: error: {exc}", markup=False, highlight=False)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
