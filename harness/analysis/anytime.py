"""Anytime performance from traces: runtime to a target, its ECDF, and COCO's ERT.

A trial *hits* a target when its traced metric first reaches it (at or below
for a metric to minimise, at or above to maximise); its runtime to the target
is the budget spent by then, on any budget axis the traces record:
``iteration``, ``time_s`` (solver time, evaluation excluded) or a series a
solver records itself (e.g. ``weights_updated``). The ECDF of a method is the
share of (trial, target) pairs hit within each budget (Hansen et al., COCO).
The expected running time (ERT) of a method at a point and a target is the
budget spent by all its trials there, failures counted in full, divided by the
number of trials that hit: a method that hits half the time at cost c and
fails at cost C has ERT c + C. A trial without a trace (it failed before
recording anything) is a failure whose spent budget is its row's
``iterations``/``time_s`` (0 on another axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import InputError

BUILTIN_AXES = ("iteration", "time_s")


def budget_axes(traces: pd.DataFrame) -> list[str]:
    """Budget axes these traces offer: iteration, time and every recorded series."""
    return [*BUILTIN_AXES, *sorted(set(traces["metric"]))] if len(traces) else list(BUILTIN_AXES)


def _with_budget(traces: pd.DataFrame, metric: str, budget: str) -> pd.DataFrame:
    """Rows of ``metric`` with a ``budget`` column from the chosen axis."""
    series = set(traces["metric"])
    if metric not in series:
        raise InputError(
            f"traced metric {metric!r}: not in the traces (traced: {', '.join(sorted(series))})"
        )
    rows = traces[traces["metric"] == metric]
    if budget in BUILTIN_AXES:
        return rows.assign(budget=rows[budget].astype(float))
    if budget not in series:
        raise InputError(
            f"budget axis {budget!r}: not in the traces (axes: {', '.join(budget_axes(traces))})"
        )
    axis = traces[traces["metric"] == budget][["cell_id", "trial", "iteration", "value"]]
    return rows.merge(
        axis.rename(columns={"value": "budget"}), on=["cell_id", "trial", "iteration"]
    )


def default_targets(
    traces: pd.DataFrame, metric: str, direction: str = "min", count: int = 10
) -> list[float]:
    """``count`` targets log-spaced (linear if values are not positive) from the median
    first value to the best value any trial reached."""
    rows = traces[traces["metric"] == metric].sort_values("iteration")
    if rows.empty:
        return []
    first = float(rows.groupby(["cell_id", "trial"])["value"].first().median())
    best = float(rows["value"].min() if direction == "min" else rows["value"].max())
    if first > 0 and best > 0:
        return [float(t) for t in np.geomspace(first, best, count)]
    return [float(t) for t in np.linspace(first, best, count)]


def hitting_budgets(
    runs: pd.DataFrame,
    traces: pd.DataFrame,
    metric: str,
    targets: Sequence[float],
    *,
    budget: str = "iteration",
    direction: str = "min",
) -> pd.DataFrame:
    """One row per (trial, target): ``hit``, ``budget_hit`` (NaN if missed), ``budget_spent``.

    ``runs`` comes from :func:`harness.analysis.data.annotate` (it supplies
    each trial's method and point, and the trials that left no trace).
    """
    rows = _with_budget(traces, metric, budget).sort_values(["cell_id", "trial", "budget"])
    trials = runs[["cell_id", "trial", "method", "point", "status", "iterations", "time_s"]]
    spent_trace = rows.groupby(["cell_id", "trial"])["budget"].max()
    out = []
    values = {k: g for k, g in rows.groupby(["cell_id", "trial"], sort=False)}
    for t in trials.itertuples(index=False):
        g = values.get((t.cell_id, t.trial))
        if g is None:
            spent = {"iteration": t.iterations, "time_s": t.time_s}.get(budget, 0.0)
            spent = 0.0 if pd.isna(spent) else float(spent)
        else:
            spent = float(spent_trace[(t.cell_id, t.trial)])
        v = g["value"].to_numpy() if g is not None else np.array([])
        b = g["budget"].to_numpy() if g is not None else np.array([])
        best = np.minimum.accumulate(v) if direction == "min" else np.maximum.accumulate(v)
        for target in targets:
            reached = best <= target if direction == "min" else best >= target
            hit = bool(reached.any()) and t.status == "ok"
            at = float(b[int(np.argmax(reached))]) if hit else np.nan
            out.append((t.method, t.point, t.cell_id, t.trial, t.status, target, hit, at, spent))
    return pd.DataFrame(
        out,
        columns=[
            "method",
            "point",
            "cell_id",
            "trial",
            "status",
            "target",
            "hit",
            "budget_hit",
            "budget_spent",
        ],
    )


def ert(hits: pd.DataFrame) -> pd.DataFrame:
    """COCO's expected running time per method, point and target (inf where nothing hit).

    ERT = (sum of budget_hit over hits + sum of budget_spent over misses) / hits.
    """
    cost = hits["budget_hit"].where(hits["hit"], hits["budget_spent"])
    g = hits.assign(_cost=cost).groupby(["method", "point", "target"], sort=False)
    out = g.agg(trials=("hit", "size"), hits=("hit", "sum"), total=("_cost", "sum")).reset_index()
    with np.errstate(divide="ignore"):
        out["ert"] = np.where(out["hits"] > 0, out["total"] / out["hits"].clip(lower=1), np.inf)
    return out.drop(columns="total")


def ecdf(hits: pd.DataFrame, budgets: Sequence[float] | None = None) -> pd.DataFrame:
    """Share of (trial, target) pairs each method hit within each budget (rows: budgets)."""
    if budgets is None:
        finite = hits["budget_hit"].dropna()
        top = float(finite.max()) * 1.05 if len(finite) and finite.max() > 0 else 1.0
        budgets = np.unique(np.concatenate([[0.0], np.sort(finite.unique()), [top]]))
    budgets = np.asarray(budgets, dtype=float)
    cols = {}
    for m, g in hits.groupby("method", sort=False):
        reached = g["budget_hit"].to_numpy()
        cols[m] = [float(np.sum(reached <= b) / len(g)) for b in budgets]
    return pd.DataFrame(cols, index=pd.Index(budgets, name="budget"))


@dataclass(frozen=True)
class Anytime:
    """The anytime section of a comparison: ECDF, ERT per target, and what went in."""

    metric: str
    budget: str
    targets: list[float]
    ecdf: pd.DataFrame
    ert: pd.DataFrame
    trials_without_trace: int


def anytime(
    runs: pd.DataFrame,
    traces: pd.DataFrame,
    metric: str,
    *,
    budget: str = "iteration",
    direction: str = "min",
    targets: Sequence[float] | None = None,
) -> Anytime:
    """Runtime-to-target ECDF and ERT of every method on one traced metric."""
    if targets is None:
        targets = default_targets(traces, metric, direction)
    hits = hitting_budgets(runs, traces, metric, targets, budget=budget, direction=direction)
    traced = set(zip(traces["cell_id"], traces["trial"]))
    missing = sum((c, t) not in traced for c, t in zip(runs["cell_id"], runs["trial"]))
    return Anytime(metric, budget, list(targets), ecdf(hits), ert(hits), missing)


def plot_ecdf(result: Anytime, path: str | Path, *, svg: bool = False) -> Path:
    """The runtime-to-target ECDF of each method as a PNG (log budget axis where positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = result.ecdf.index.to_numpy()
    for m in result.ecdf.columns:
        ax.step(x, result.ecdf[m], where="post", label=m)
    if (x > 0).sum() > 1:
        ax.set_xscale("symlog", linthresh=max(float(x[x > 0].min()), 1e-12))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"budget ({result.budget})")
    ax.set_ylabel(f"share of (trial, target) pairs, {len(result.targets)} targets")
    ax.set_title(f"runtime to target ECDF: {result.metric}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if svg:
        fig.savefig(Path(path).with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return path
