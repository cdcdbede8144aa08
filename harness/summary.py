"""The compact table ``relubench run`` prints: one line per cell."""

from __future__ import annotations

import pandas as pd

from harness.suite import Cell

ERROR_METRICS = ("param_error", "rel_error_sq", "test_error", "distance", "test_loss", "train_loss")


def summary_frame(runs: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    """Trials, ok count, success rate, median error and median time per cell, in suite order.

    ``runs`` holds this suite's rows only (:func:`harness.api.suite_rows`).
    The error column is the first of :data:`ERROR_METRICS` the suite measures.
    """
    metrics = [m.name for m in cells[0].metrics] if cells else []
    error_name = next((m for m in ERROR_METRICS if m in metrics), None)
    rows = []
    groups = dict(tuple(runs.groupby("cell_id"))) if not runs.empty else {}
    for cell in cells:
        g = groups.get(cell.cell_id)
        row = {"cell": cell.label, "trials": 0, "ok": 0}
        if g is not None:
            row["trials"] = len(g)
            row["ok"] = int((g["status"] == "ok").sum())
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
