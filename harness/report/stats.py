"""Small statistics the report needs: binomial confidence intervals and quartiles."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    With p = successes / trials, z the two-sided normal quantile of ``level``
    and t = trials, the bounds are
    ``(p + z^2/(2t) -+ z sqrt(p(1-p)/t + z^2/(4t^2))) / (1 + z^2/t)``.
    Unlike the normal (Wald) interval it stays inside [0, 1] and does not
    collapse to a point when p is 0 or 1, which is exactly where phase
    transition curves live. ``successes`` may be fractional (a mean of
    per-trial scores times the trial count). Entries with no trials give NaN.
    Returns ``(low, high)`` arrays broadcast from the inputs.
    """
    s = np.asarray(successes, dtype=float)
    t = np.asarray(trials, dtype=float)
    z = float(norm.ppf(0.5 + level / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / t
        denom = 1.0 + z * z / t
        center = (p + z * z / (2.0 * t)) / denom
        half = z * np.sqrt(p * (1.0 - p) / t + z * z / (4.0 * t * t)) / denom
    low = np.where(t > 0, np.clip(center - half, 0.0, 1.0), np.nan)
    high = np.where(t > 0, np.clip(center + half, 0.0, 1.0), np.nan)
    return low, high
