"""Phase-transition boundaries: where a success curve crosses 1/2, and how that point scales.

``fit_n50`` fits a logistic curve ``P(success | n) = sigmoid(a + b x)`` with
``x = log n`` (default) or ``x = n`` to binomial counts by maximum likelihood
and reports ``n50``, the n where the fitted curve crosses 0.5, with a
bootstrap percentile interval that resamples the trials within each n.
``fit_exponent`` regresses ``log n50`` on ``log d`` (or ``log k``): the slope is
the exponent behind a claim such as "the samples needed grow linearly in d"
(slope 1), and its interval propagates the bootstrap replicates of every n50.

Both are plain numpy so any plugin, notebook or test can call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

# Weak Gaussian priors on the standardized logistic coefficients. They only
# matter when the MLE does not exist (perfect separation: every trial fails
# below some n and succeeds above it; or a curve that never crosses 1/2), where
# they keep the estimate finite: n50 then lands between the last failing and
# the first succeeding n. With tens of trials per point the Fisher information
# is ~1e1..1e3, so these do not move a well-determined fit.
_PRIOR_INTERCEPT = 1e-3
_PRIOR_SLOPE = 1e-3
_NEWTON_STEPS = 60
# How far outside the observed n range (in multiples of that range, on the
# fitted scale) an extrapolated n50 may go before it is clipped.
_EXTRAPOLATION_LIMIT = 5.0


@dataclass(frozen=True)
class N50Fit:
    """Logistic fit of a success curve and the n where it crosses 1/2.

    ``status`` is ``"ok"`` when n50 lies inside the observed n range,
    ``"below_range"``/``"above_range"`` when the curve is above/below 1/2 at
    every observed n (n50 is then an extrapolation, clipped, and should be
    read as "< min n" or "> max n"), ``"insufficient"`` with fewer than two
    distinct n (every number is NaN). ``low``/``high`` is the bootstrap
    percentile interval at ``level``; ``boot`` holds the replicates.
    """

    n50: float
    low: float
    high: float
    intercept: float
    slope: float
    log: bool
    status: str
    level: float
    n_min: float
    n_max: float
    trials: int
    boot: np.ndarray = field(repr=False, compare=False)

    def predict(self, n: ArrayLike) -> np.ndarray:
        """Fitted success probability at ``n``."""
        x = np.asarray(n, dtype=float)
        if self.log:
            x = np.log(x)
        return 1.0 / (1.0 + np.exp(-(self.intercept + self.slope * x)))

    @property
    def in_range(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ExponentFit:
    """Log-log slope of n50 against a size (d or k): ``n50 ~ C * size**slope``.

    ``low``/``high`` is a percentile interval over bootstrap replicates (each
    replicate refits the slope to one bootstrap draw of every n50), or a
    t-interval from the regression residuals when no replicates are available.
    ``sizes``/``n50`` are the points used (fits whose n50 was inside the
    observed range); ``dropped`` counts the others.
    """

    slope: float
    low: float
    high: float
    intercept: float
    sizes: np.ndarray
    n50: np.ndarray
    dropped: int
    level: float


def _logistic_mle(z: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Penalized logistic MLE, batched: z (m,), s (R, m), t (m,) -> (R, 2) [a, b]."""
    R = s.shape[0]
    theta = np.zeros((R, 2))
    lam = np.array([_PRIOR_INTERCEPT, _PRIOR_SLOPE])
    for _ in range(_NEWTON_STEPS):
        eta = theta[:, :1] + theta[:, 1:] * z  # (R, m)
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # sigmoid without overflow
        r = s - t * p  # (R, m) score residuals
        g = np.stack([r.sum(1), (r * z).sum(1)], axis=1) - lam * theta  # (R, 2)
        w = t * p * (1.0 - p)
        h00 = w.sum(1) + lam[0]
        h01 = (w * z).sum(1)
        h11 = (w * z * z).sum(1) + lam[1]
        det = h00 * h11 - h01 * h01
        step = np.stack([(h11 * g[:, 0] - h01 * g[:, 1]), (h00 * g[:, 1] - h01 * g[:, 0])], 1)
        step /= det[:, None]
        # The objective is strictly concave, so Newton converges; capping the
        # step only guards the first iterations of separated data.
        norm = np.linalg.norm(step, axis=1, keepdims=True)
        step *= np.minimum(1.0, 5.0 / np.maximum(norm, 1e-300))
        theta += step
        if np.all(np.abs(step) < 1e-10):
            break
    return theta


def fit_n50(
    n: ArrayLike,
    successes: ArrayLike,
    trials: ArrayLike,
    *,
    log: bool = True,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> N50Fit:
    """Fit ``P(success) = sigmoid(a + b x)``, x = log n (or n), and find where it crosses 1/2.

    ``n``, ``successes`` and ``trials`` are one entry per sample size (repeated
    n are pooled). ``successes`` may be fractional (mean score times trials).
    The interval resamples the trials within each n ``n_boot`` times
    (binomial draws at the observed rate, which is the nonparametric bootstrap
    of 0/1 outcomes) and refits; ``seed`` makes it reproducible.
    """
    n_arr = np.asarray(n, dtype=float).ravel()
    s_arr = np.asarray(successes, dtype=float).ravel()
    t_arr = np.asarray(trials, dtype=float).ravel()
    if not (n_arr.shape == s_arr.shape == t_arr.shape):
        raise ValueError("n, successes and trials must have the same length")
    keep = (t_arr > 0) & np.isfinite(n_arr) & np.isfinite(s_arr)
    if log:
        keep &= n_arr > 0
    n_arr, s_arr, t_arr = n_arr[keep], s_arr[keep], t_arr[keep]
    if np.any(s_arr < 0) or np.any(s_arr > t_arr):
        raise ValueError("successes must lie between 0 and trials")
    # Pool repeated n so the bootstrap resamples each n's trials together.
    values, inverse = np.unique(n_arr, return_inverse=True)
    s_pool = np.bincount(inverse, weights=s_arr, minlength=len(values))
    t_pool = np.bincount(inverse, weights=t_arr, minlength=len(values))
    total = int(round(t_pool.sum()))
    nan = float("nan")
    if len(values) < 2:
        return N50Fit(
            nan, nan, nan, nan, nan, log, "insufficient", level,
            float(values.min()) if len(values) else nan,
            float(values.max()) if len(values) else nan,
            total, np.empty(0),
        )  # fmt: skip

    x = np.log(values) if log else values
    mu, sd = x.mean(), x.std()
    z = (x - mu) / sd
    z_lo = z.min() - _EXTRAPOLATION_LIMIT * (z.max() - z.min())
    z_hi = z.max() + _EXTRAPOLATION_LIMIT * (z.max() - z.min())

    def crossing(theta: np.ndarray) -> np.ndarray:
        a, b = theta[:, 0], theta[:, 1]
        # Success is taken to rise with n. A flat or falling fit has no
        # crossing to find: the curve sits on one side of 1/2 everywhere, and
        # the intercept says which, so n50 goes to that end of the clip range.
        rising = b > 1e-6
        with np.errstate(divide="ignore", invalid="ignore"):
            z50 = np.where(rising, -a / np.where(rising, b, 1.0), np.where(a > 0, z_lo, z_hi))
        z50 = np.clip(z50, z_lo, z_hi)
        x50 = mu + sd * z50
        return np.exp(x50) if log else x50

    theta = _logistic_mle(z, s_pool[None, :], t_pool)
    n50 = float(crossing(theta)[0])
    a, b = theta[0]
    slope = b / sd
    intercept = a - b * mu / sd

    if n_boot > 0:
        rng = np.random.default_rng(seed)
        t_int = np.rint(t_pool).astype(np.int64)
        rate = np.clip(s_pool / t_pool, 0.0, 1.0)
        s_boot = rng.binomial(t_int, rate, size=(n_boot, len(values))).astype(float)
        boot = crossing(_logistic_mle(z, s_boot, t_int.astype(float)))
        alpha = (1.0 - level) / 2.0
        low, high = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    else:
        boot = np.empty(0)
        low = high = nan

    # Between two grid points where every trial failed and every trial
    # succeeded the data cannot place n50 (the MLE does not exist and every
    # bootstrap draw repeats the same counts), so the interval is widened to
    # that bracket: it is all the data can say. The replicates are spread
    # uniformly over it (on the fitted scale) so that fit_exponent, which
    # refits slopes to them, inherits the same ignorance.
    rate = s_pool / t_pool
    j = int(np.searchsorted(values, n50)) if np.isfinite(n50) else 0
    if 0 < j < len(values) and rate[j - 1] == 0.0 and rate[j] == 1.0:
        low = float(np.nanmin([low, values[j - 1]]))
        high = float(np.nanmax([high, values[j]]))
        if n_boot > 0:
            rng = np.random.default_rng([seed, 1])
            u = rng.uniform(x[j - 1], x[j], size=n_boot)
            boot = np.exp(u) if log else u

    if n50 < values.min():
        status = "below_range"
    elif n50 > values.max():
        status = "above_range"
    else:
        status = "ok"
    return N50Fit(
        n50, low, high, float(intercept), float(slope), log, status, level,
        float(values.min()), float(values.max()), total, boot,
    )  # fmt: skip


def fit_exponent(sizes: ArrayLike, fits: Sequence[N50Fit], *, level: float = 0.95) -> ExponentFit:
    """Fit ``log n50 = c + slope * log size`` over the fits whose n50 is in range.

    ``sizes[i]`` is the d (or k) of ``fits[i]``. Returns NaN numbers when fewer
    than two distinct sizes have an in-range n50.
    """
    size_arr = np.asarray(sizes, dtype=float).ravel()
    if len(size_arr) != len(fits):
        raise ValueError("one size per fit")
    use = [i for i, f in enumerate(fits) if f.in_range and size_arr[i] > 0]
    dropped = len(fits) - len(use)
    lx = np.log(size_arr[use])
    ly = np.log(np.array([fits[i].n50 for i in use]))
    nan = float("nan")
    if len(np.unique(lx)) < 2:
        return ExponentFit(nan, nan, nan, nan, np.exp(lx), np.exp(ly), dropped, level)
    xc = lx - lx.mean()
    sxx = float((xc * xc).sum())
    slope = float((xc * (ly - ly.mean())).sum() / sxx)
    intercept = float(ly.mean() - slope * lx.mean())
    alpha = (1.0 - level) / 2.0
    n_boot = min((len(fits[i].boot) for i in use), default=0)
    if n_boot > 0:
        boot = np.log(np.stack([fits[i].boot[:n_boot] for i in use], axis=1))  # (R, m)
        slopes = ((boot - boot.mean(1, keepdims=True)) * xc).sum(1) / sxx
        low, high = (float(v) for v in np.quantile(slopes, [alpha, 1.0 - alpha]))
    elif len(use) > 2:
        from scipy.stats import t as student_t

        resid = ly - (intercept + slope * lx)
        se = float(np.sqrt((resid @ resid) / (len(use) - 2) / sxx))
        q = float(student_t.ppf(1.0 - alpha, len(use) - 2))
        low, high = slope - q * se, slope + q * se
    else:
        low = high = nan
    return ExponentFit(slope, low, high, intercept, np.exp(lx), np.exp(ly), dropped, level)
