"""Paired comparisons, rankings, performance profiles, anytime performance, regressions.

Every trial of a cell sees the same data and initial weights whichever solver
runs it, so solver comparisons are paired by trial seed. Module by module:

- :mod:`~harness.analysis.data`: points, methods, metric directions, failures scored
- :mod:`~harness.analysis.paired`: exact McNemar, Wilcoxon signed-rank, bootstrap, Holm
- :mod:`~harness.analysis.pairwise`: two methods compared point by point
- :mod:`~harness.analysis.ranking`: average ranks, Friedman, Nemenyi CD diagram
- :mod:`~harness.analysis.profiles`: Dolan-More performance profiles
- :mod:`~harness.analysis.anytime`: runtime-to-target ECDF and ERT from traces
- :mod:`~harness.analysis.regression`: two runs of one suite, ``--fail-on``
- :mod:`~harness.analysis.claims`: one-sided paired claims ("A beats B") for expectations
- :mod:`~harness.analysis.compare`: the sections of ``relubench compare``
- :mod:`~harness.analysis.render`: text, Markdown and JSON output

See docs/statistics.md for the methods and what a reader may conclude.
"""

from harness.analysis.claims import paired_claim
from harness.analysis.compare import (
    FolderAnalysis,
    analyze_folder,
    analyze_rows,
    analyze_runs,
    write_figures,
)
from harness.analysis.data import default_directions, metric_info
from harness.analysis.paired import holm, mcnemar_exact, paired_test, wilcoxon_paired
from harness.analysis.regression import FailSpec, RegressionReport, compare_runs, parse_fail_on

__all__ = [
    "FailSpec",
    "FolderAnalysis",
    "RegressionReport",
    "analyze_folder",
    "analyze_rows",
    "analyze_runs",
    "compare_runs",
    "default_directions",
    "holm",
    "mcnemar_exact",
    "metric_info",
    "paired_claim",
    "paired_test",
    "parse_fail_on",
    "wilcoxon_paired",
    "write_figures",
]
