"""Performance profiles (Dolan and More 2002) of time and of iterations to success.

Each problem is one paired trial: a point and a trial seed, which every method
ran on the same data and initial weights. The cost of method s on problem p
is its time (or iteration count) if the trial succeeded, else infinite. With
r_ps = t_ps / min_s t_ps, the profile of s is rho_s(tau) = share of problems
with r_ps <= tau: rho_s(1) is how often s is fastest, rho_s(tau -> inf) how
often it succeeds at all. Problems no method solves stay in the denominator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COSTS = ("time_s", "iterations")


@dataclass(frozen=True)
class Profile:
    """rho_s(tau) on a grid of ``taus`` per method, and the share each method solves."""

    cost: str
    success: str
    problems: int
    taus: list[float]
    rho: dict[str, list[float]]
    solved: dict[str, float]

    def at(self, method: str, tau: float) -> float:
        """rho of ``method`` at ``tau`` (the largest grid value not above ``tau``)."""
        i = int(np.searchsorted(self.taus, tau, side="right")) - 1
        return self.rho[method][max(i, 0)]


def solved(runs: pd.DataFrame, success: str | None) -> pd.Series:
    """Which trials succeeded: ``ok`` and, if ``success`` names a metric, that metric is 1."""
    ok = runs["status"] == "ok"
    if success is None:
        return ok
    return ok & (runs[f"metric.{success}"].fillna(0) > 0.5)


def cost_ratios(runs: pd.DataFrame, cost: str, success: str | None) -> pd.DataFrame:
    """Problems x methods of r_ps (inf where the trial failed); problems all methods ran."""
    c = runs[cost].astype(float).where(solved(runs, success), np.inf)
    table = runs.assign(_c=c).pivot_table(
        index=["point_key", "seed"], columns="method", values="_c", aggfunc="first", sort=False
    )
    table = table.reindex(columns=list(dict.fromkeys(runs["method"]))).dropna()
    t = table.to_numpy(dtype=float)
    best = t.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(best > 0, t / best, np.where(t == best, 1.0, np.inf))
    r = np.where(np.isinf(best), np.inf, r)  # nobody solved it
    return pd.DataFrame(r, index=table.index, columns=table.columns)


def performance_profile(
    runs: pd.DataFrame, cost: str = "time_s", success: str | None = "success", points: int = 200
) -> Profile:
    """The profile of every method for ``cost`` (``time_s`` or ``iterations``) on a log grid.

    ``success`` names the binary metric a trial must reach (None, or a metric the
    rows lack: status ``ok`` is success).
    """
    if success is not None and runs.get(f"metric.{success}", pd.Series()).notna().sum() == 0:
        success = None
    ratios = cost_ratios(runs, cost, success)
    r = ratios.to_numpy()
    finite = r[np.isfinite(r)]
    top = max(float(finite.max()) if finite.size else 1.0, 2.0) * 1.05  # show tau up to 2 at least
    taus = np.unique(np.concatenate([[1.0], np.geomspace(1.0, top, points), finite]))
    n = max(len(r), 1)
    rho = {m: [float(np.sum(r[:, j] <= tau) / n) for tau in taus] for j, m in enumerate(ratios)}
    share = {m: float(np.sum(np.isfinite(r[:, j])) / n) for j, m in enumerate(ratios)}
    label = success or "status ok"
    return Profile(cost, label, len(r), [float(t) for t in taus], rho, share)


def plot_profiles(profiles: list[Profile], path: str | Path, *, svg: bool = False) -> Path:
    """Step plots of rho_s(tau) against log2 tau, one panel per cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(profiles), figsize=(5.0 * len(profiles), 3.6), squeeze=False)
    for ax, prof in zip(axes[0], profiles):
        for m, rho in prof.rho.items():
            ax.step(prof.taus, rho, where="post", label=m)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"tau: {prof.cost} within a factor tau of the best")
        ax.set_ylabel(f"share of {prof.problems} trials")
        ax.set_title(f"performance profile: {prof.cost} to {prof.success}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    if svg:
        fig.savefig(Path(path).with_suffix(".svg"), bbox_inches="tight")
    plt.close(fig)
    return path
