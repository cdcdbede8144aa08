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
    a_name = resolve_method(rows, worse, "paired claim: method")
    b_name = resolve_method(rows, better, "paired claim: method")
    key = ["point_key", "seed"]
    a = rows[rows["method"] == a_name].assign(_v=lambda f: scored(f, info))
    b = rows[rows["method"] == b_name].assign(_v=lambda f: scored(f, info))
    pairs = a[[*key, "_v"]].merge(b[[*key, "_v"]], on=key, suffixes=("_a", "_b")).dropna()
    va, vb = pairs["_v_a"].to_numpy(dtype=float), pairs["_v_b"].to_numpy(dtype=float)
    if info.kind == "binary":
        return mcnemar_exact(va, vb, alternative="greater")
    alternative = "less" if info.direction == "min" else "greater"
    ratio = info.kind == "ratio"
    return wilcoxon_paired(va, vb, info.direction, ratio=ratio, alternative=alternative)
