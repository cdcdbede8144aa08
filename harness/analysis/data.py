"""From stored rows to what the analyses compare: methods, problem points, metric values.

Every analysis in this package starts here, so that "which rows are the same
problem", "which rows are the same method" and "what value does a failed trial
get" have one answer:

- a **point** is a problem with all its parameters plus an initializer with all
  its parameters. Every solver's trial ``t`` at one point saw the same data and
  the same initial weights (the seed depends on the point and the trial only),
  so comparisons between solvers at a point are *paired* by trial;
- a **method** is a solver with its parameters; its label shows the solver
  name plus the parameters that vary between rows of that solver
  (``gd[step_size=0.1]``), as benchopt does;
- a trial whose ``status`` is not ``ok`` is a failure: 0 for a binary success
  metric, the worst value (+inf for a metric to minimise, -inf to maximise)
  for any other metric. It is never dropped; analyses count such trials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from harness.declarations import Declarations
from harness.errors import InputError

Direction = Literal["min", "max"]
OUTCOME_METRICS = ("time_s", "iterations")
"""Per-trial numbers every row has besides the ``metric.<name>`` columns."""
RATIO_METRICS = ("time_s",)
"""Metrics whose change is reported as a ratio (new / old) and tested on log ratios."""
POINT_KINDS = ("problem", "initializer")


@dataclass(frozen=True)
class MetricInfo:
    """How to compare one metric: which direction is better and how it is tested."""

    name: str
    direction: Direction
    kind: Literal["binary", "ratio", "difference"]


def default_directions(metrics: Iterable[str]) -> dict[str, Direction]:
    """The direction of a metric nobody declared (nor ``--direction``): minimised. The core
    knows no metric by name; what is better, and what is a success, metrics declare."""
    return dict.fromkeys(metrics, "min")


def metric_info(
    metrics: Iterable[str],
    directions: Mapping[str, str] | None = None,
    *,
    declarations: Declarations | None = None,
) -> dict[str, MetricInfo]:
    """:class:`MetricInfo` per metric: ``directions`` (metric -> ``min``/``max``) first, then
    what the metric declares (its ``direction``, and ``role == "success"`` for a binary
    metric; :mod:`harness.declarations`), then :func:`default_directions`."""
    metrics = list(metrics)
    resolved: dict[str, str] = default_directions(metrics)
    binary: set[str] = set()
    if declarations is not None:
        for m in metrics:
            d = declarations.direction(m)
            if d is not None:
                resolved[m] = "max" if d == "higher" else "min"
            if declarations.role(m) == "success":
                binary.add(m)
    resolved.update(directions or {})
    out = {}
    for m in metrics:
        d = resolved[m]
        if d not in ("min", "max"):
            raise InputError(f"direction of metric {m!r}: {d!r} (allowed: min, max)")
        kind = "binary" if m in binary else "ratio" if m in RATIO_METRICS else "difference"
        out[m] = MetricInfo(m, d, kind)  # type: ignore[arg-type]
    return out


def available_metrics(runs: pd.DataFrame) -> list[str]:
    """Metrics with at least one value: every ``metric.<name>`` column, then time and iterations."""
    names = [
        c.removeprefix("metric.")
        for c in runs.columns
        if c.startswith("metric.") and runs[c].notna().any()
    ]
    return names + [m for m in OUTCOME_METRICS if m in runs.columns and runs[m].notna().any()]


def check_metrics(runs: pd.DataFrame, metrics: Iterable[str], where: str) -> list[str]:
    """``metrics`` if every one has values in ``runs``; else an error naming what is there."""
    have = available_metrics(runs)
    metrics = list(metrics)
    for m in metrics:
        if m not in have:
            raise InputError(
                f"--metric {m}: no values in {where} (metrics there: {', '.join(have)})"
            )
    return metrics


def metric_column(metric: str) -> str:
    return metric if metric in OUTCOME_METRICS else f"metric.{metric}"


def scored(runs: pd.DataFrame, info: MetricInfo) -> np.ndarray:
    """The metric per row with failures scored: not-``ok`` is 0 (binary) or the worst value.

    A NaN left over belongs to an ``ok`` trial the metric does not apply to.
    """
    col = metric_column(info.name)
    values = runs[col].to_numpy(dtype=float) if col in runs else np.full(len(runs), np.nan)
    failed = runs["status"].to_numpy() != "ok"
    worst = 0.0 if info.kind == "binary" else math.inf if info.direction == "min" else -math.inf
    return np.where(failed, worst, values)


def _norm(value: object) -> object:
    """A parameter value as it compares across folders (1000.0 == 1000; NaN/None absent)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def tuning_rows(runs: pd.DataFrame) -> int:
    """How many rows belong to a tuning split (``split == "tune"``): :func:`annotate` leaves
    them out, and every analysis says how many it left out."""
    if "split" not in runs.columns:
        return 0
    return int((runs["split"].fillna("test") == "tune").sum())


def annotate(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus the columns the analyses group by.

    ``point_key``/``method_key`` identify a point and a method by component
    names and every parameter value (stable across runs of changed code, unlike
    ``cell_id``); ``point``/``method`` are short labels with only the
    parameters that vary. Rows of a tuning split (``split == "tune"``) are
    left out: they were run to choose parameters, not to report.
    """
    if "split" in runs.columns:
        runs = runs[runs["split"].fillna("test") != "tune"]
    runs = runs.reset_index(drop=True)
    cols = {k: [c for c in runs.columns if c.startswith(f"{k}.")] for k in (*POINT_KINDS, "solver")}
    # Worked out once per distinct component (a few thousand), not once per row (millions):
    # each row gets its combination's number, and the labels are shared string objects.
    point_codes, points = _distinct(runs, [k for kind in POINT_KINDS for k in (kind, *cols[kind])])
    method_codes, methods = _distinct(runs, ["solver", *cols["solver"]])
    problems = _components(points, "problem", cols["problem"])
    inits = _components(points, "initializer", cols["initializer"])
    solvers = _components(methods, "solver", cols["solver"])
    out = runs.copy(deep=False)  # copy-on-write: the new columns only
    point_keys = [json.dumps([p, i], sort_keys=True, default=str) for p, i in zip(problems, inits)]
    out["point_key"] = _expand(point_keys, point_codes, out.index)
    method_keys = [json.dumps(s, sort_keys=True, default=str) for s in solvers]
    out["method_key"] = _expand(method_keys, method_codes, out.index)
    out["point"] = _expand(_labels(problems, inits), point_codes, out.index)
    out["method"] = _expand(_method_labels(solvers), method_codes, out.index)
    return out


def _distinct(runs: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[dict]]:
    """Each row's number among the distinct combinations of ``columns`` (missing values
    included) and those combinations as records, in that numbering (first seen first)."""
    if not len(runs):
        return np.zeros(0, dtype="int64"), []
    keys = [runs[c].map(_hashable) if runs[c].dtype == object else runs[c] for c in columns]
    codes = runs.groupby(keys, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    first = np.full(int(codes.max()) + 1, -1, dtype="int64")
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # first row of each combination
    return codes, runs[columns].iloc[first].to_dict("records")


def joined(runs: pd.DataFrame, left: str, sep: str, right: str) -> pd.Series:
    """``runs[left] + sep + runs[right]`` as an object column, each distinct text made once
    (millions of rows share a few thousand strings)."""
    codes, pairs = _distinct(runs, [left, right])
    return _expand([f"{p[left]}{sep}{p[right]}" for p in pairs], codes, runs.index)


def _hashable(value: object) -> object:
    """A list or array parameter value as a tuple (to group rows by it)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    return value


def _components(records: list[dict], kind: str, columns: list[str]) -> list[dict]:
    """A component's name and its parameters (missing ones left out), per record."""
    return [
        {
            "name": r[kind],
            **{c.split(".", 1)[1]: v for c in columns if (v := _norm(r[c])) is not None},
        }
        for r in records
    ]


def _expand(values: list[str], codes: np.ndarray, index: pd.Index) -> pd.Series:
    """``values[codes]`` as an object column: one pointer a row to a shared string."""
    return pd.Series(np.array(values, dtype=object)[codes], index=index, dtype=object)


def _varying(dicts: list[dict]) -> set[str]:
    keys = {k for d in dicts for k in d}
    return {k for k in keys if len({json.dumps(d.get(k), default=str) for d in dicts}) > 1}


def _short(d: dict, keys: set[str], with_name: bool) -> str:
    inner = ", ".join(f"{k}={d[k]}" for k in sorted(keys) if k != "name" and k in d)
    name = d["name"] if with_name else ""
    return f"{name}[{inner}]" if inner and name else inner or name


def _labels(problems: list[dict], inits: list[dict]) -> list[str]:
    vp, vi = _varying(problems), _varying(inits)
    out = []
    for p, i in zip(problems, inits):
        parts = [_short(p, vp, "name" in vp), _short(i, vi, "name" in vi)]
        out.append(" ".join(x for x in parts if x) or p["name"])
    return out


def _method_labels(solvers: list[dict]) -> list[str]:
    by_name: dict[str, list[dict]] = {}
    for s in solvers:
        by_name.setdefault(s["name"], []).append(s)
    vary = {n: _varying(ds) for n, ds in by_name.items()}
    return [_short(s, vary[s["name"]], True) for s in solvers]


def failure_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Trials per method and status: the not-ok trials every analysis counts as failures."""
    if runs.empty:
        return pd.DataFrame(columns=["method", "status", "trials"])
    return (
        runs.groupby(["method", "status"], sort=False)
        .size()
        .rename("trials")
        .reset_index()
        .sort_values(["method", "status"], kind="mergesort")
        .reset_index(drop=True)
    )


def suite_names(runs: pd.DataFrame) -> str:
    """The suite name(s) of these rows, for headings."""
    names = sorted(set(runs["suite"].dropna())) if "suite" in runs else []
    return ", ".join(names) or "-"
