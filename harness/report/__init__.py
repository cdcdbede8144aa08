"""Figures and tables from stored results: ``relubench report RESULTS_DIR [--out DIR]``.

``build_report(results_dir, out_dir)`` reads a suite's results folder
(``runs/`` and, if present, ``traces/``) and writes into ``out_dir``
(default ``RESULTS_DIR/report``):

* ``figures/*.png`` and ``figures/*.svg``;
* ``summary.md``: overview, trial status, the suite's ``[[expect]]`` claims
  judged on the stored rows (when the suite file the store recorded is
  found), phase-transition boundaries, the figures, final metrics,
  environment;
* ``index.html``: the same, self-contained (PNGs embedded as data URIs, CSS
  inline, no remote URL), so it opens offline;
* ``success.csv``, ``boundaries.csv``, ``exponents.csv``: the tables behind it.

What is drawn follows from the columns present and from what the components
declared (:mod:`harness.declarations`, read from the Parquet metadata), never
from component names (:mod:`harness.report.data`): ``problem.n`` (or
``problem.n_train``) is the sample size; ``problem.d`` and ``problem.k`` are
the sizes a boundary is measured against; any other problem parameter that
varies at a fixed (problem, n, d, k) splits the results into facets (a noise
level, a dataset); solver and initializer parameters that vary name the series
(``<solver>[step_size=0.5] / <initializer>``).

* with a metric of role ``success`` and an n sweep: heatmaps of mean success over
  (n, d), (n, k) or (n/d, d), whichever grid is fuller, one per series, with
  the fitted n50 drawn on each row; success against n and against n/d (or
  n/k) with Wilson 95% intervals and the logistic fits; n50 per curve and
  the log-log slope of n50 against d and k in ``summary.md``;
* every other final metric against n (or n/d): mean and interquartile band;
* traces: median and interquartile band over trials of each traced series,
  against iteration, solver time and every other budget axis the solver
  declares (``Solver.budget_axes``, e.g. weights updated); log y when the
  values are positive;
* without an n sweep (a table such as datasets x solvers): grouped bars of
  every final metric (mean and standard deviation).

Success curves count ``ok``, ``diverged`` and ``timeout`` trials (the last two
as failures) and leave ``error`` trials out; the status table lists them.

The statistics are public so other code can call them: :func:`fit_n50`
(logistic fit in log n, bootstrap interval resampling trials within each n),
:func:`fit_exponent` (log-log slope of n50 with an interval propagated from
the bootstrap replicates) and :func:`wilson_interval`.
"""

from __future__ import annotations

from harness.report.boundary import ExponentFit, N50Fit, fit_exponent, fit_n50
from harness.report.build import build_report
from harness.report.stats import wilson_interval

__all__ = [
    "ExponentFit",
    "N50Fit",
    "build_report",
    "fit_exponent",
    "fit_n50",
    "wilson_interval",
]
