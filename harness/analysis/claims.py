"""Paired claims ("A beats B") over a selection of rows, for the expectation language.

A claim pools every trial the two methods share (same point, same seed) in the
rows it is given, and tests one-sidedly that ``better`` is better than
``worse``: exact McNemar for a binary metric, Wilcoxon signed-rank otherwise
(log ratios for times). Failures are scored as everywhere else (see
:mod:`harness.analysis.data`).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from harness.analysis.data import annotate, metric_info, scored
from harness.analysis.paired import PairedTest, mcnemar_exact, wilcoxon_paired
from harness.analysis.pairwise import resolve_method
from harness.declarations import Declarations, live


def paired_claim(
    runs: pd.DataFrame,
    metric: str,
    better: str,
    worse: str,
    *,
    directions: Mapping[str, str] | None = None,
    declarations: Declarations | None = None,
) -> PairedTest:
    """One-sided paired test of "``better`` beats ``worse`` on ``metric``" over ``runs``.

    ``runs`` are stored rows (e.g. the rows an expectation's ``where`` selects);
    ``better``/``worse`` are method labels or solver names. The returned test's
    ``p`` is small when the data support the claim; ``estimate`` is
    ``better`` relative to ``worse`` (B = better, A = worse). The metric's direction
    and kind come from ``directions`` (metric -> ``min``/``max``), else what it
    declares in ``declarations``, else the defaults (:func:`~harness.analysis.data.metric_info`).
    Rows of a tuning split are left out.
    """
    rows = annotate(runs)
    if declarations is None:  # what the installed plugins declare
        declarations = live()
    info = metric_info([metric], directions, declarations=declarations)[metric]
    key = ["point_key", "seed"]
    a = method_rows(rows, worse).assign(_v=lambda f: scored(f, info))
    b = method_rows(rows, better).assign(_v=lambda f: scored(f, info))
    pairs = a[[*key, "_v"]].merge(b[[*key, "_v"]], on=key, suffixes=("_a", "_b")).dropna()
    va, vb = pairs["_v_a"].to_numpy(dtype=float), pairs["_v_b"].to_numpy(dtype=float)
    if info.kind == "binary":
        return mcnemar_exact(va, vb, alternative="greater")
    alternative = "less" if info.direction == "min" else "greater"
    ratio = info.kind == "ratio"
    return wilcoxon_paired(va, vb, info.direction, ratio=ratio, alternative=alternative)


def method_rows(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """The annotated rows of method ``name``: a method label, or a solver name.

    A solver name with several configurations still names one method when every point has
    only one of them: a tuned suite chose that solver's values per cell (``dante[lr=0.1]``
    on one net, ``dante[lr=0.03]`` on another), and trials still pair point by point.
    Otherwise the name is ambiguous (:func:`~harness.analysis.pairwise.resolve_method`).
    """
    if name not in set(rows["method"]):
        mine = rows[rows["solver"] == name]
        if len(mine) and bool((mine.groupby("point_key")["method_key"].nunique() == 1).all()):
            return mine
    return rows[rows["method"] == resolve_method(rows, name, "paired claim: method")]
