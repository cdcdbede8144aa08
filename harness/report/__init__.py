"""Figures and tables from stored results: ``relubench report RESULTS_DIR``.

``build_report(results_dir, out_dir)`` reads a suite's results folder and
writes PNG and SVG figures, ``summary.md``, CSV tables and a self-contained
``index.html``. What it draws follows from the columns present (see
:mod:`harness.report.data`), never from paper names. The statistics are public
so other code can use them: :func:`fit_n50`, :func:`fit_exponent`,
:func:`wilson_interval`.
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
