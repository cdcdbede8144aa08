"""Comparison results as text tables, Markdown or JSON.

The sections become :class:`Table` objects once; ``table``, ``markdown`` and
``html`` (for a report page, Python only) render the same tables, ``json`` dumps
the full results (every cell, not only the significant ones).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis.compare import FolderAnalysis
from harness.analysis.pairwise import CellComparison
from harness.analysis.regression import FailSpec, RegressionReport

FORMATS = ("table", "markdown", "json")
PROFILE_TAUS = (1.0, 2.0, 10.0)


@dataclass
class Table:
    """A titled table with optional notes printed under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def num(v: object, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, ``inf``, ``-`` for missing."""
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "-"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f"{f:.{digits}g}"
    return str(v)


def _change(c: CellComparison) -> str:
    t = c.test
    unit = "x" if t.effect == "ratio" else ""
    sign = "" if t.effect == "ratio" or t.estimate < 0 else "+"
    return f"{sign}{num(t.estimate)}{unit} [{num(t.low)}, {num(t.high)}]"


def _cell_row(c: CellComparison) -> list[str]:
    return [
        c.cell,
        c.metric,
        num(c.a_center),
        num(c.b_center),
        _change(c),
        f"{c.test.test} n={c.test.n}",
        num(c.test.p, 2),
        num(c.p_holm, 2),
        f"{c.test.wins}/{c.test.ties}/{c.test.losses}",
        c.verdict,
    ]


def cell_columns(a: str = "A", b: str = "B", value: str = "{}") -> list[str]:
    """Columns of :func:`_cell_row`: the sides are named ``a`` and ``b``, their value
    columns ``value.format(a)`` and ``value.format(b)``."""
    return ["cell", "metric", value.format(a), value.format(b), f"{b} vs {a} [95% CI]", "test",
            "p", "p Holm", "W/T/L", f"{b} is"]  # fmt: skip


def folder_tables(a: FolderAnalysis) -> list[Table]:
    """The sections of a one-folder comparison."""
    tables = []
    t = Table(f"{a.suite}: trials per method and status", ["method", "status", "trials"])
    t.rows = [[r.method, r.status, num(r.trials)] for r in a.trials.itertuples()]
    if (a.trials["status"] != "ok").any():
        t.notes.append("trials not ok count as failures: success 0, other metrics worst value")
    if a.tuning_left_out:
        t.notes.append(_tuning_note(a.tuning_left_out))
    tables.append(t)
    for r in a.rankings:
        t = Table(
            f"average rank of {r.metric} ({'higher' if r.direction == 'max' else 'lower'} is "
            f"better; rank 1 = best)",
            ["rank", "method", "average rank"],
        )
        order = sorted(r.ranks, key=r.ranks.get)
        t.rows = [[str(i + 1), m, num(r.ranks[m])] for i, m in enumerate(order)]
        if r.friedman is not None:
            f = r.friedman
            t.notes.append(
                f"Friedman chi2 = {num(f.statistic)}, p = {num(f.p, 2)}; Iman-Davenport "
                f"F = {num(f.f_statistic)}, p = {num(f.f_p, 2)} ({f.n} points, {f.k} methods)"
            )
            groups = "; ".join(" = ".join(g) for g in r.cliques) or "none"
            t.notes.append(
                f"Nemenyi CD at alpha {r.alpha} = {num(r.cd)}; not significantly different: "
                f"{groups}"
            )
        if r.dropped_blocks:
            t.notes.append(f"{r.dropped_blocks} points left out: some method has no value there")
        tables.append(t)
    t = Table(
        f"paired tests per pair of methods (alpha {a.alpha}, Holm over points)",
        [
            "A",
            "B",
            "metric",
            "points",
            "B better",
            "B worse",
            "same",
            "W/T/L",
            "not ok A/B",
            "over points",
        ],
    )
    for s in a.pairs:
        t.rows.append(
            [
                s.a,
                s.b,
                s.metric,
                str(len(s.cells)),
                str(s.better),
                str(s.worse),
                str(s.same),
                f"{s.wins}/{s.ties}/{s.losses}",
                f"{s.not_ok.get(s.a, 0)}/{s.not_ok.get(s.b, 0)}",
                _overall(s.overall),
            ]
        )
    t.notes.append("W/T/L: trials where B is better / equal / worse than A on the same data")
    t.notes.append("over points: Wilcoxon over the points' success rates or medians, B is ...")
    t.notes.append(
        "a batched cell's time_s is one measurement shared by its trials: counted once in "
        "W/T/L and tested over points only"
    )
    tables.append(t)
    significant = [c for s in a.pairs for c in s.cells if c.verdict != "same"]
    t = Table(
        "significant differences (B against A at one point)",
        ["A", "B", *cell_columns(value="{} value")],
    )
    t.rows = [[c.a, c.b, *_cell_row(c)] for c in significant]
    if not significant:
        t.notes.append("none: no difference is significant after the Holm correction")
    tables.append(t)
    if a.profiles:
        cols = ["method", "cost", *(f"rho({num(x)})" for x in PROFILE_TAUS), "solved"]
        t = Table("performance profiles (share of paired trials within a factor tau)", cols)
        for p in a.profiles:
            if not p.problems:
                continue
            for m in p.rho:
                rho = [num(p.at(m, x)) for x in PROFILE_TAUS]
                t.rows.append([m, f"{p.cost} to {p.success}", *rho, num(p.solved[m])])
        problems = a.profiles[0].problems
        t.notes.append(
            f"{problems} paired trials run by every method"
            if problems
            else "no trial was run by every method: no profile"
        )
        tables.append(t)
    for any_ in a.anytime:
        targets = _three(any_.targets)
        t = Table(
            f"expected running time (ERT, {any_.budget}) to reach {any_.metric} targets",
            ["method", "point", *(f"ERT to {num(x)}" for x in targets), "hits"],
        )
        e = any_.ert.sort_values(["method", "point"], kind="mergesort")
        for (m, p), g in e.groupby(["method", "point"], sort=False):
            by_target = dict(zip(g["target"], g["ert"]))
            hits = f"{int(g['hits'].sum())}/{int(g['trials'].sum())}"
            t.rows.append([m, p, *(num(by_target.get(x)) for x in targets), hits])
        t.notes.append(
            f"{len(any_.targets)} targets from {num(any_.targets[0])} to "
            f"{num(any_.targets[-1])}; hits over all (trial, target) pairs"
            if any_.targets
            else "no targets"
        )
        if any_.trials_without_trace:
            t.notes.append(f"{any_.trials_without_trace} trials have no trace: counted as misses")
        tables.append(t)
    if a.figures:
        tables.append(Table("figures", ["file"], [[f] for f in a.figures]))
    return tables


def _tuning_note(rows: int) -> str:
    return (
        f"{rows} tuning trials (split = tune) left out: they chose parameters, "
        "they are not reported results"
    )


def _overall(c: CellComparison | None) -> str:
    if c is None:
        return "-"
    return f"{c.verdict} (p {num(c.test.p, 2)})"


def _three(values: Sequence[float]) -> list[float]:
    if len(values) <= 3:
        return list(values)
    return [values[0], values[len(values) // 2], values[-1]]


def regression_tables(
    r: RegressionReport, regressions: Sequence[tuple[FailSpec, CellComparison]]
) -> list[Table]:
    """The sections of a two-run comparison (A = old, B = new)."""
    matched = len({c.cell for c in r.cells})
    head = Table(f"old: {r.old_suite}  new: {r.new_suite}", ["cells", "count"])
    head.rows = [
        ["matched by parameters", str(matched)],
        ["only in old", str(len(r.only_old))],
        ["only in new", str(len(r.only_new))],
    ]
    head.notes += [f"only in old: {c}" for c in r.only_old]
    head.notes += [f"only in new: {c}" for c in r.only_new]
    unpaired = sum(c.unpaired for c in r.cells if c.metric == r.cells[0].metric) if r.cells else 0
    if r.tuning_left_out:
        head.notes.append(_tuning_note(r.tuning_left_out))
    if unpaired:
        head.notes.append(f"{unpaired} trials have no partner with the same seed in the other run")
    changed = r.changed()
    t = Table(
        "changes (new against old; Holm over cells per metric; 'all cells': Wilcoxon over cells)",
        cell_columns("old", "new"),
    )
    t.rows = [_cell_row(c) for c in changed]
    same = len(r.cells) + len(r.overall) - len(changed)
    t.notes.append(
        f"{same} cell x metric comparisons show no significant change"
        if changed
        else "no significant change"
    )
    tables = [head, t]
    if regressions:
        f = Table("regressions (--fail-on)", ["spec", *cell_columns("old", "new")])
        f.rows = [[s.text, *_cell_row(c)] for s, c in regressions]
        tables.append(f)
    return tables


def render_folder(analysis: FolderAnalysis, fmt: str) -> str:
    """A one-folder comparison in ``fmt`` (one of :data:`FORMATS`)."""
    return to_json(analysis) if fmt == "json" else render(folder_tables(analysis), fmt)


def render_runs(
    report: RegressionReport, regressions: Sequence[tuple[FailSpec, CellComparison]], fmt: str
) -> str:
    """A two-run comparison and its ``--fail-on`` regressions in ``fmt``."""
    if fmt == "json":
        return to_json({"report": report, "regressions": regressions})
    return render(regression_tables(report, regressions), fmt)


def render(tables: Sequence[Table], fmt: str) -> str:
    """``table`` (aligned plain text), ``markdown`` or ``html`` (a fragment for a report page)."""
    one = {"markdown": _markdown, "html": _html}.get(fmt, _text)
    return "\n".join(one(t) for t in tables)


def _text(t: Table) -> str:
    widths = [len(c) for c in t.columns]
    for row in t.rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    line = lambda cells: "  ".join(v.ljust(w) for v, w in zip(cells, widths)).rstrip()
    out = [t.title, line(t.columns), line(["-" * w for w in widths])]
    out += [line(r) for r in t.rows]
    out += [f"  {n}" for n in t.notes]
    return "\n".join(out) + "\n"


def _markdown(t: Table) -> str:
    esc = lambda v: v.replace("|", "\\|")
    out = [f"### {t.title}", ""]
    if t.rows:
        out.append("| " + " | ".join(t.columns) + " |")
        out.append("|" + "|".join(" --- " for _ in t.columns) + "|")
        out += ["| " + " | ".join(esc(v) for v in r) + " |" for r in t.rows]
        out.append("")
    out += [f"- {n}" for n in t.notes]
    return "\n".join(out) + "\n"


def _html(t: Table) -> str:
    from html import escape

    out = [f"<h3>{escape(t.title)}</h3>"]
    if t.rows:
        head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r) + "</tr>" for r in t.rows
        )
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if t.notes:
        out.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in t.notes) + "</ul>")
    return "\n".join(out) + "\n"


def to_json(obj: object) -> str:
    """Any analysis result as JSON (infinities as the strings ``inf``/``-inf``, NaN as null)."""
    return json.dumps(_plain(obj), indent=1)


def _plain(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, pd.DataFrame):
        frame = obj.reset_index() if obj.index.name else obj
        return [_plain(r) for r in frame.to_dict("records")]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) else ("inf" if f > 0 else "-inf") if math.isinf(f) else f
    return obj
