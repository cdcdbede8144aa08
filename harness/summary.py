"""The compact table ``relubench run`` prints: one line per cell."""

from __future__ import annotations

import pandas as pd

from harness.suite import Cell

ERROR_METRICS = ("param_error", "rel_error_sq", "test_error", "distance", "test_loss", "train_loss")


def summary_frame(runs: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    """Trials, ok count, success rate, median error and median time per cell, in suite order.

    One column per component kind and per parameter that varies in the suite
    (the grid point), so the table reads down a sweep. ``runs`` holds this
    suite's rows only (:func:`harness.api.suite_rows`). The error column is the
    first of :data:`ERROR_METRICS` the suite measures.
    """
    metrics = [m.name for m in cells[0].metrics] if cells else []
    error_name = next((m for m in ERROR_METRICS if m in metrics), None)
    varying = list(cells[0].varying) if cells else []
    short = {v: v.split(".", 1)[1] for v in varying}
    if len(set(short.values())) < len(short):  # the same name in two kinds: keep the prefix
        short = {v: v for v in varying}
    rows = []
    groups = dict(tuple(runs.groupby("cell_id"))) if not runs.empty else {}
    for cell in cells:
        g = groups.get(cell.cell_id)
        row: dict[str, object] = {"solver": cell.solver.name, "problem": cell.problem.name}
        if len({c.initializer.name for c in cells}) > 1:
            row["initializer"] = cell.initializer.name
        specs = {"problem": cell.problem, "initializer": cell.initializer, "solver": cell.solver}
        for key in varying:
            kind, name = key.split(".", 1)
            row[short[key]] = specs[kind].param_dict.get(name, "")
        row["trials"] = len(g) if g is not None else 0
        row["ok"] = int((g["status"] == "ok").sum()) if g is not None else 0
        if "success" in metrics:
            row["success"] = (
                float(g["metric.success"].fillna(0).mean()) if g is not None else float("nan")
            )
        if error_name:
            col = f"metric.{error_name}"
            row[f"median {error_name}"] = (
                float(g[col].median()) if g is not None and col in g else float("nan")
            )
        row["median time_s"] = float(g["time_s"].median()) if g is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
