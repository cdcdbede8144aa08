"""What ``relubench run`` prints after a run: one line per cell, then the distinct
error messages of the trials that did not finish ``ok``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.declarations import Declarations, live
from harness.expand import Cell


def summary_frame(
    runs: pd.DataFrame, cells: list[Cell], declarations: Declarations | None = None
) -> pd.DataFrame:
    """Trials, ok count, success rate, median error and median time per cell, in suite order.

    One column per component kind and per parameter that varies in the suite
    (the grid point), so the table reads down a sweep. ``runs`` holds this
    suite's rows only (:meth:`harness.store.Store.suite_rows`). What the metrics are
    comes from their declarations (:mod:`harness.declarations`; default: the
    installed plugins'): the success column is the first metric of role
    ``success`` the suite names, the error column the first of role ``error``,
    else of role ``loss``.
    """
    decl = declarations if declarations is not None else live()
    metrics = [m.name for m in cells[0].metrics] if cells else []
    success_name = next(iter(decl.with_role("success", metrics)), None)
    error_name = next(
        iter(decl.with_role("error", metrics) + decl.with_role("loss", metrics)), None
    )
    varying = list(cells[0].varying) if cells else []
    short = {v: v.split(".", 1)[1] for v in varying}
    if len(set(short.values())) < len(short):  # the same name in two kinds: keep the prefix
        short = {v: v for v in varying}
    stats = _cell_stats(runs, success_name, error_name)
    several_inits = len({c.initializer.name for c in cells}) > 1
    rows = []
    for cell in cells:
        st = stats.get(cell.cell_id)
        row: dict[str, object] = {"solver": cell.solver.name, "problem": cell.problem.name}
        if several_inits:
            row["initializer"] = cell.initializer.name
        specs = {"problem": cell.problem, "initializer": cell.initializer, "solver": cell.solver}
        for key in varying:
            kind, name = key.split(".", 1)
            row[short[key]] = specs[kind].param_dict.get(name, "")
        row["trials"] = int(st["trials"]) if st is not None else 0
        row["ok"] = int(st["ok"]) if st is not None else 0
        for name, label in ((success_name, success_name), (error_name, f"median {error_name}")):
            if name is not None:
                row[label] = float(st[label]) if st is not None else float("nan")
        row["median time_s"] = float(st["median time_s"]) if st is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ErrorGroup:
    """Trials that ended with one status and one message (its first line)."""

    status: str
    message: str
    count: int
    example: str
    """One cell and trial it happened in, e.g. ``boom[one_hidden n=30, gaussian] trial 0``."""


def error_groups(runs: pd.DataFrame, cells: list[Cell]) -> list[ErrorGroup]:
    """The distinct (status, first message line) of the trials that are not ``ok``,
    most frequent first, each with one example cell."""
    if runs.empty or "status" not in runs.columns:
        return []
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return []
    labels = {c.cell_id: c.label for c in cells}
    order = {c.cell_id: i for i, c in enumerate(cells)}
    first = bad["error"].map(_first_line) if "error" in bad.columns else ""
    bad = bad.assign(_message=first, _order=bad["cell_id"].map(order).fillna(len(order)))
    out = []
    for (status, message), g in bad.groupby(["status", "_message"], sort=False):
        row = g.sort_values(["_order", "trial"]).iloc[0]  # the first in suite order
        where = labels.get(row["cell_id"], f"cell {row['cell_id']}")
        out.append(ErrorGroup(str(status), message, len(g), f"{where} trial {int(row['trial'])}"))
    return sorted(out, key=lambda e: (-e.count, e.status, e.message))


def _first_line(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        return "(no message)"
    return text.strip().splitlines()[0]


def read_errors_hint(results_dir: Path) -> str:
    """The one line that prints every not-ok trial with its full message."""
    return (
        f"python -c \"from harness import load_results; r = load_results('{results_dir}'); "
        "print(r[r.status != 'ok'][['cell_id', 'trial', 'status', 'error']].to_string())\""
    )


def _cell_stats(
    runs: pd.DataFrame, success_name: str | None, error_name: str | None
) -> dict[str, dict[str, float]]:
    """cell_id -> trials, ok, success rate, median error and median time: one groupby for
    every cell (a resume of 10,000 cells prints this table)."""
    if runs.empty:
        return {}
    nan = float("nan")
    cols = {
        "trials": runs["cell_id"],
        "ok": runs["status"] == "ok",
        "median time_s": runs["time_s"].astype(float),
    }
    if success_name is not None:
        col = f"metric.{success_name}"
        # a failed trial did not succeed
        cols[success_name] = runs[col].astype(float).fillna(0) if col in runs else nan
    if error_name is not None and error_name != success_name:
        col = f"metric.{error_name}"
        cols[f"median {error_name}"] = runs[col].astype(float) if col in runs else nan
    frame = pd.DataFrame(cols, index=runs.index)
    frame["cell_id"] = runs["cell_id"]
    agg = {"trials": "size", "ok": "sum", "median time_s": "median"}
    if success_name is not None:
        agg[success_name] = "mean"
    if error_name is not None and error_name != success_name:
        agg[f"median {error_name}"] = "median"
    out = frame.groupby("cell_id", sort=False).agg(agg)
    if error_name is not None and error_name == success_name:
        out[f"median {error_name}"] = out[success_name]
    return out.to_dict("index")
