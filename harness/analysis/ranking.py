"""Several methods over a whole suite: average ranks, the Friedman test, Nemenyi's critical
difference and its diagram (Demsar 2006).

Each problem point is one block: a method's value there is its success rate
(binary metric) or its median over the trials, failures scored as failures.
Methods are ranked within each block (1 = best, ties share the mean rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from harness.analysis.data import MetricInfo, scored


@dataclass(frozen=True)
class Friedman:
    """Friedman (1937) chi-square over ``n`` blocks and ``k`` methods (tie-corrected), and
    Iman and Davenport's (1980) F form of it, which Demsar (2006) recommends (NaN when every
    block ranks the methods alike, where that form divides by zero)."""

    statistic: float
    p: float
    f_statistic: float
    f_p: float
    n: int
    k: int


@dataclass
class Ranking:
    """Average ranks of the methods on one metric, with the tests behind them.

    ``cliques`` are the maximal groups of methods whose average ranks differ by
    less than the critical difference ``cd`` (Nemenyi post-hoc test at
    ``alpha``): the bars of the diagram. ``dropped_blocks`` counts points where
    some method has no value (not run, or the metric does not apply there).
    """

    metric: str
    direction: str
    ranks: dict[str, float]
    n_blocks: int
    dropped_blocks: int
    alpha: float
    friedman: Friedman | None = None
    cd: float | None = None
    cliques: list[list[str]] = field(default_factory=list)


def block_table(runs: pd.DataFrame, info: MetricInfo) -> tuple[pd.DataFrame, int]:
    """Points x methods of per-point values; points where a method has none are dropped."""
    frame = runs.assign(_v=scored(runs, info))
    how = "mean" if info.kind == "binary" else "median"
    table = frame.pivot_table(
        index="point_key", columns="method", values="_v", aggfunc=how, sort=False, dropna=False
    )
    table = table.reindex(columns=list(dict.fromkeys(runs["method"])))
    table.index = table.index.map(dict(zip(runs["point_key"], runs["point"])))
    complete = table.dropna()
    return complete, len(table) - len(complete)


def rank_matrix(table: pd.DataFrame, direction: str) -> np.ndarray:
    """Rank of each method within each block, 1 = best, ties averaged."""
    values = table.to_numpy(dtype=float)
    return stats.rankdata(values if direction == "min" else -values, axis=1)


def friedman(table: pd.DataFrame, direction: str = "min") -> Friedman:
    """The Friedman test on a blocks x methods table (same statistic as
    ``scipy.stats.friedmanchisquare``, which needs three methods; this takes two)."""
    R = rank_matrix(table, direction)  # (n, k)
    n, k = R.shape
    ties = 0.0
    for row in R:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    c = 1.0 - ties / (n * k * (k * k - 1))
    if c <= 0:  # every block a complete tie
        return Friedman(0.0, 1.0, 0.0, 1.0, n, k)
    chi2 = (12.0 / (n * k * (k + 1)) * float(np.sum(R.sum(0) ** 2)) - 3.0 * n * (k + 1)) / c
    p = float(stats.chi2.sf(chi2, k - 1))
    denom = n * (k - 1) - chi2
    if denom > 0 and n > 1:
        f = (n - 1) * chi2 / denom
        f_p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # every block ranks the methods alike: the F form is undefined
        f, f_p = math.nan, math.nan
    return Friedman(float(chi2), p, float(f), f_p, n, k)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Critical difference of average ranks for ``k`` methods over ``n`` blocks:
    ``q_alpha sqrt(k (k + 1) / (6 n))``, q_alpha the studentized range quantile over sqrt 2."""
    q = stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))


def cliques(ranks: dict[str, float], cd: float) -> list[list[str]]:
    """Maximal runs of methods (sorted by rank) whose rank span is below ``cd``."""
    order = sorted(ranks, key=ranks.get)
    out: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and ranks[order[j + 1]] - ranks[order[i]] < cd:
            j += 1
        group = order[i : j + 1]
        if len(group) > 1 and not any(set(group) <= set(g) for g in out):
            out.append(group)
    return out


def rank_methods(runs: pd.DataFrame, info: MetricInfo, alpha: float = 0.05) -> Ranking:
    """Average ranks, Friedman test and Nemenyi critical difference for one metric."""
    table, dropped = block_table(runs, info)
    n, k = table.shape
    if n == 0 or k == 0:
        return Ranking(info.name, info.direction, {}, 0, dropped, alpha)
    R = rank_matrix(table, info.direction)
    ranks = dict(zip(table.columns, (float(r) for r in R.mean(0))))
    out = Ranking(info.name, info.direction, ranks, n, dropped, alpha)
    if k >= 2 and n >= 2:
        out.friedman = friedman(table, info.direction)
        out.cd = nemenyi_cd(k, n, alpha)
        out.cliques = cliques(ranks, out.cd)
    return out


def plot_cd_diagram(ranking: Ranking, path: str | Path, *, svg: bool = False) -> Path:
    """Demsar's critical-difference diagram as a PNG: methods on a rank axis, the best on
    the left, thick bars joining methods not significantly different, the CD on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(ranking.ranks, key=ranking.ranks.get)
    k = max(len(order), 2)
    half = (len(order) + 1) // 2
    height = 1.2 + 0.3 * half + 0.15 * len(ranking.cliques)
    fig, ax = plt.subplots(figsize=(7.0, height))
    ax.set_xlim(0.5 - 1.5, k + 0.5 + 1.5)
    ax.set_ylim(-(half + 1) * 0.3 - 0.15 * len(ranking.cliques) - 0.1, 0.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.06, color="black", lw=1)
        ax.text(r, 0.1, str(r), ha="center", va="bottom", fontsize=9)
    for i, m in enumerate(order):
        r = ranking.ranks[m]
        left = i < half
        level = -(i + 1 if left else len(order) - i) * 0.3
        x_text = 0.4 if left else k + 0.6
        ax.plot([r, r, x_text], [0, level, level], color="black", lw=0.8)
        ax.text(
            x_text + (-0.05 if left else 0.05),
            level,
            f"{m} ({r:.2f})",
            ha="right" if left else "left",
            va="center",
            fontsize=9,
        )
    for j, group in enumerate(ranking.cliques):
        lo, hi = ranking.ranks[group[0]], ranking.ranks[group[-1]]
        y = -0.12 - 0.1 * j
        ax.hlines(y, lo - 0.03, hi + 0.03, color="black", lw=3)
    if ranking.cd is not None:
        ax.hlines(0.45, 1, 1 + ranking.cd, color="black", lw=1)
        ax.text(1 + ranking.cd / 2, 0.5, f"CD = {ranking.cd:.2f}", ha="center", fontsize=9)
    title = f"average rank of {ranking.metric} over {ranking.n_blocks} points"
    if ranking.friedman is not None:
        title += f" (Friedman p = {ranking.friedman.p:.2g})"
    ax.set_title(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if svg:
        fig.savefig(Path(path).with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return path
