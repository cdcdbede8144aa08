"""Paired tests: A and B measured on the same trials (same data, same initial weights).

Every function takes two arrays ``a`` and ``b`` whose ``i``-th entries come
from the same trial, and reports B relative to A (``b - a``, or ``b / a``).
See docs/statistics.md for the methods and their references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from harness.analysis.data import MetricInfo

BOOTSTRAP_RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class PairedTest:
    """The outcome of one paired comparison of B against A.

    ``estimate`` is B relative to A: the difference of success rates (binary),
    the median paired difference ``b - a``, or the median paired ratio
    ``b / a`` (``effect == "ratio"``); ``low``/``high`` its paired bootstrap
    interval. ``wins``/``ties``/``losses`` count trials where B is
    better/equal/worse. ``favours`` is +1 when the test's statistic leans to B,
    -1 to A, 0 for neither. ``statistic`` is the McNemar count of discordant
    pairs won by B, or the Wilcoxon signed-rank statistic (scipy's, the smaller
    rank sum).
    """

    test: str
    n: int
    statistic: float
    p: float
    estimate: float
    low: float
    high: float
    effect: str
    wins: int
    ties: int
    losses: int
    favours: int


def holm(p: ArrayLike) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values (family-wise error control).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    reject where the adjusted value is below alpha. NaNs stay NaN and do not
    count in ``m``.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)[np.argsort(p[ok], kind="mergesort")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[idx]))
    out[idx] = adjusted
    return out


def win_tie_loss(a: ArrayLike, b: ArrayLike, direction: str) -> tuple[int, int, int]:
    """Trials where B is better than, equal to, worse than A (two failures are a tie)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sign = 1.0 if direction == "max" else -1.0
    equal = a == b  # also two failures (the same infinity)
    with np.errstate(invalid="ignore"):
        better = sign * (b - a)
    wins = int(np.sum((better > 0) & ~equal))
    losses = int(np.sum((better < 0) & ~equal))
    return wins, int(np.sum(equal)), losses


def mcnemar_exact(
    a: ArrayLike,
    b: ArrayLike,
    *,
    alternative: str = "two-sided",
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedTest:
    """Exact McNemar (1947) test of paired successes: a binomial test on the discordant
    pairs (A succeeded and B failed, or the reverse), p = 1/2 under the null.

    ``alternative``: ``two-sided``, ``greater`` (B succeeds more often) or ``less``.
    The estimate is the difference of success rates, with a paired bootstrap interval."""
    a, b = np.asarray(a, dtype=float) > 0.5, np.asarray(b, dtype=float) > 0.5
    b_only = int(np.sum(b & ~a))
    a_only = int(np.sum(a & ~b))
    discordant = a_only + b_only
    p = stats.binomtest(b_only, discordant, 0.5, alternative).pvalue if discordant else 1.0
    d = b.astype(float) - a.astype(float)
    low, high = _bootstrap(d, np.mean, seed, resamples)
    return PairedTest(
        "mcnemar",
        len(d),
        float(b_only),
        float(p),
        float(d.mean()) if len(d) else math.nan,
        low,
        high,
        "difference",
        b_only,
        len(d) - discordant,
        a_only,
        int(np.sign(b_only - a_only)),
    )


def wilcoxon_paired(
    a: ArrayLike,
    b: ArrayLike,
    direction: str,
    *,
    ratio: bool = False,
    alternative: str = "two-sided",
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedTest:
    """Wilcoxon (1945) signed-rank test of paired values, two-sided, zero differences dropped
    (Wilcoxon's own convention); exact distribution for small samples (scipy ``auto``).

    ``ratio``: test and report ``log(b / a)`` (times: a change is a factor); the
    estimate is then the median paired ratio ``b / a``. ``alternative`` is scipy's, on
    ``b - a``: ``greater`` means B's values are larger. Infinite values (failed
    trials scored worst) rank beyond every finite difference; two failures are a
    zero difference.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if ratio and (np.any(a <= 0) or np.any(b <= 0)):
        ratio = False  # a log ratio needs positive values
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.log(b) - np.log(a) if ratio else b - a
    d = np.where(np.isnan(d), 0.0, d)  # inf - inf: both failed
    wins, ties, losses = win_tie_loss(a, b, direction)
    statistic, p, favours = math.nan, 1.0, 0
    nonzero = d[d != 0]
    if len(nonzero):
        finite = np.abs(nonzero[np.isfinite(nonzero)])
        big = 2.0 * (finite.max() if len(finite) else 1.0) + 1.0
        ranked = np.clip(nonzero, -big, big)  # same ranks as with the infinities
        res = stats.wilcoxon(ranked, zero_method="wilcox", alternative=alternative)
        statistic, p = float(res.statistic), float(res.pvalue)
        r = stats.rankdata(np.abs(ranked))
        r_up, r_down = r[ranked > 0].sum(), r[ranked < 0].sum()
        sign = 1 if direction == "max" else -1
        favours = int(np.sign(r_up - r_down)) * sign
    low, high = _bootstrap(d, np.median, seed, resamples)
    with np.errstate(invalid="ignore"):  # a median between +inf and -inf is undefined (NaN)
        estimate = float(np.median(d)) if len(d) else math.nan
    if ratio:
        estimate, low, high = math.exp(estimate), math.exp(low), math.exp(high)
    return PairedTest(
        "wilcoxon",
        len(d),
        statistic,
        p,
        estimate,
        low,
        high,
        "ratio" if ratio else "difference",
        wins,
        ties,
        losses,
        favours,
    )


def paired_test(
    a: ArrayLike,
    b: ArrayLike,
    info: MetricInfo,
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedTest:
    """The test for this metric: McNemar for a binary metric, else Wilcoxon (ratio for times).

    ``seed`` and ``resamples`` drive the bootstrap interval (0 resamples: no interval).
    """
    if info.kind == "binary":
        return mcnemar_exact(a, b, seed=seed, resamples=resamples)
    kind = info.kind == "ratio"
    return wilcoxon_paired(a, b, info.direction, ratio=kind, seed=seed, resamples=resamples)


def single_measurement(a: float, b: float, info: MetricInfo, *, n: int) -> PairedTest:
    """No test: one value per side (a batched cell's time, shared by its ``n`` trials).

    The estimate is ``b / a`` (ratio metrics) or ``b - a``; p is NaN, so the
    verdict is always "same" and the Holm correction skips it.
    """
    ratio = info.kind == "ratio" and a > 0 and b > 0
    estimate = b / a if ratio else b - a
    wins, ties, losses = win_tie_loss([a], [b], info.direction)
    favours = wins - losses
    return PairedTest(
        "single",
        n,
        math.nan,
        math.nan,
        float(estimate),
        math.nan,
        math.nan,
        "ratio" if ratio else "difference",
        wins,
        ties,
        losses,
        favours,
    )


def _bootstrap(d: np.ndarray, statistic, seed: int, resamples: int) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resampled pairs (Efron 1979)."""
    if len(d) < 2 or resamples < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    with np.errstate(invalid="ignore"):
        values = statistic(d[idx], axis=1)
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    # no interpolation: between two infinite resample values it would give NaN
    low, high = np.percentile(values, [tail, 100.0 - tail], method="inverted_cdf")
    return float(low), float(high)
