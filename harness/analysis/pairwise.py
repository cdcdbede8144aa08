"""Paired comparisons of two methods cell by cell, Holm-corrected across the cells.

A *cell* here is one place where A and B were both run on the same trials: a
problem point (solver comparisons inside one results folder) or a point and a
method (two runs of one suite). Trials are paired by ``seed``: the seed fixes
the data and the initial weights of a trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from harness.analysis.data import MetricInfo, scored
from harness.analysis.paired import (
    BOOTSTRAP_RESAMPLES,
    PairedTest,
    holm,
    paired_test,
    single_measurement,
    wilcoxon_paired,
)
from harness.errors import InputError

PAIR_KEY = "seed"


@dataclass(frozen=True)
class CellComparison:
    """B against A in one cell for one metric, with the test behind the verdict.

    ``verdict`` is ``better``/``worse`` (for B) when the Holm-adjusted p-value
    ``p_holm`` is below alpha, else ``same`` (no significant difference, which
    is not a proof of equality). ``a_not_ok``/``b_not_ok`` count paired trials
    that failed (scored as failures, not dropped); ``unpaired`` counts trials
    with no partner on the other side; ``missing`` counts pairs left out because
    the metric does not apply to an ``ok`` trial. ``a_center``/``b_center``
    are each side's success rate (binary) or median over the paired trials.
    """

    cell: str
    metric: str
    a: str
    b: str
    test: PairedTest
    p_holm: float
    verdict: str
    a_not_ok: int
    b_not_ok: int
    unpaired: int
    missing: int
    a_center: float
    b_center: float


@dataclass
class PairSummary:
    """B against A for one metric over every cell both ran: counts of per-cell verdicts
    and trial wins/ties/losses, and ``overall``, the test over cells (:func:`across_cells`)."""

    metric: str
    a: str
    b: str
    better: int = 0
    worse: int = 0
    same: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    not_ok: dict[str, int] = field(default_factory=dict)
    cells: list[CellComparison] = field(default_factory=list)
    overall: CellComparison | None = None


def _shared_time(rows: pd.DataFrame, info: MetricInfo) -> bool:
    """Whether this metric is a batched cell's time: one measurement shared by its trials."""
    return (
        info.kind == "ratio"
        and "time_mode" in rows
        and bool((rows["time_mode"] == "batched").any())
    )


def _verdict(test: PairedTest, p_adj: float, alpha: float) -> str:
    if p_adj < alpha and test.favours:
        return "better" if test.favours > 0 else "worse"
    return "same"


def compare_cells(
    groups: Sequence[tuple[str, pd.DataFrame, pd.DataFrame]],
    info: MetricInfo,
    alpha: float,
    a_label: str,
    b_label: str,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[CellComparison]:
    """Test B against A in each ``(cell label, rows of A, rows of B)`` group; Holm across groups.

    A batched cell's time is one measurement divided among its trials, not B
    measurements: it gets no per-cell test (``test == "single"``, p NaN, the
    ratio of the two measurements as estimate); :func:`across_cells` tests it.
    """
    raw = []
    for i, (cell, rows_a, rows_b) in enumerate(groups):
        seeds_a, seeds_b = rows_a[PAIR_KEY].to_numpy(), rows_b[PAIR_KEY].to_numpy()
        _, ia, ib = np.intersect1d(seeds_a, seeds_b, return_indices=True)
        unpaired = len(seeds_a) + len(seeds_b) - 2 * len(ia)
        va, vb = scored(rows_a, info)[ia], scored(rows_b, info)[ib]
        ok_a = rows_a["status"].to_numpy()[ia] == "ok"
        ok_b = rows_b["status"].to_numpy()[ib] == "ok"
        present = ~np.isnan(va) & ~np.isnan(vb)
        va, vb, ok_a, ok_b = va[present], vb[present], ok_a[present], ok_b[present]
        center = np.mean if info.kind == "binary" else np.median
        ca = float(center(va)) if len(va) else np.nan
        cb = float(center(vb)) if len(vb) else np.nan
        if len(va) and (_shared_time(rows_a, info) or _shared_time(rows_b, info)):
            test = single_measurement(ca, cb, info, n=len(va))
        else:
            test = paired_test(va, vb, info, seed=i, resamples=resamples)
        counts = (int((~ok_a).sum()), int((~ok_b).sum()), unpaired, int((~present).sum()))
        raw.append((cell, test, *counts, ca, cb))
    adjusted = holm([t.p if t.n else np.nan for _, t, *_ in raw])
    out = []
    for (cell, test, a_bad, b_bad, unpaired, missing, ca, cb), p_adj in zip(raw, adjusted):
        verdict = _verdict(test, p_adj, alpha)
        out.append(
            CellComparison(
                cell, info.name, a_label, b_label, test, float(p_adj), verdict,
                a_bad, b_bad, unpaired, missing, ca, cb,
            )
        )  # fmt: skip
    return out


def across_cells(
    cells: Sequence[CellComparison], info: MetricInfo, alpha: float, label: str = "all cells"
) -> CellComparison | None:
    """B against A over cells: one pair per cell (the two sides' success rates or medians),
    Wilcoxon signed-rank over cells (log ratios for times), as Demsar (2006) pairs two
    methods over several data sets. None with fewer than two cells."""
    used = [c for c in cells if c.test.n]
    if len(used) < 2:
        return None
    a = np.array([c.a_center for c in used])
    b = np.array([c.b_center for c in used])
    test = wilcoxon_paired(a, b, info.direction, ratio=info.kind == "ratio")
    center = np.median
    return CellComparison(
        label, info.name, used[0].a, used[0].b, test, test.p, _verdict(test, test.p, alpha),
        sum(c.a_not_ok for c in used), sum(c.b_not_ok for c in used),
        sum(c.unpaired for c in used), sum(c.missing for c in used),
        float(center(a)), float(center(b)),
    )  # fmt: skip


def resolve_method(runs: pd.DataFrame, name: str, option: str = "--baseline") -> str:
    """The method label ``name`` refers to: a label, or a solver name with one configuration."""
    labels = list(dict.fromkeys(runs["method"]))
    if name in labels:
        return name
    matches = [m for m, s in dict(zip(runs["method"], runs["solver"])).items() if s == name]
    if len(matches) == 1:
        return matches[0]
    hint = f"; {name} is several: {', '.join(matches)}" if matches else ""
    raise InputError(f"{option} {name}: no such method (methods: {', '.join(labels)}){hint}")


def compare_methods(
    runs: pd.DataFrame,
    infos: Sequence[MetricInfo],
    *,
    alpha: float = 0.05,
    baseline: str | None = None,
) -> list[PairSummary]:
    """Every pair of methods (or each method against ``baseline``) at the points both ran.

    ``runs`` comes from :func:`harness.analysis.data.annotate`. Cells are the
    problem points; each metric is its own family for the Holm correction.
    """
    methods = list(dict.fromkeys(runs["method"]))
    if baseline is not None:
        base = resolve_method(runs, baseline)
        pairs = [(base, m) for m in methods if m != base]
    else:
        pairs = list(combinations(methods, 2))
    by_method = {m: g for m, g in runs.groupby("method", sort=False)}
    out = []
    for a, b in pairs:
        pa = dict(tuple(by_method[a].groupby("point_key", sort=False)))
        pb = dict(tuple(by_method[b].groupby("point_key", sort=False)))
        groups = [(pa[k]["point"].iloc[0], pa[k], pb[k]) for k in pa if k in pb]
        for info in infos:
            cells = compare_cells(groups, info, alpha, a, b)
            if not any(c.test.n for c in cells):
                continue  # the metric applies to neither method (e.g. a solver's own number)
            s = PairSummary(info.name, a, b, cells=cells)
            for c in cells:
                setattr(s, c.verdict, getattr(s, c.verdict) + 1)
                s.wins += c.test.wins
                s.ties += c.test.ties
                s.losses += c.test.losses
            s.not_ok = {a: sum(c.a_not_ok for c in cells), b: sum(c.b_not_ok for c in cells)}
            s.overall = across_cells(cells, info, alpha, "all points")
            out.append(s)
    return out
