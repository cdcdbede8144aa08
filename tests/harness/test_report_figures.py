"""What the report's figures draw: the median inside its own band, a legend for one
series, one axis scale per figure, whole-number ticks where counts are plotted, series
that stay visible when they coincide, and a 0/1 success as a proportion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.declarations import Declarations
from harness.report import build_report, wilson_interval
from harness.report.build import success_table
from harness.report.data import build_layout
from harness.report.figures import bars, convergence, metric_curves, success_curves

DECLARED = Declarations(
    metrics={
        "success": {"role": "success", "direction": "higher"},
        "param_error": {"role": "error", "direction": "lower"},
    }
)


def _runs(
    *,
    solvers: tuple[str, ...] = ("altmin", "gd"),
    ns: tuple[int, ...] = (20, 40, 80),
    noises: tuple[float, ...] = (0.0,),
    trials: int = 5,
    error=None,
    success=None,
) -> pd.DataFrame:
    """Rows of a sweep: solver x noise level (a facet) x n, ``trials`` each."""
    rows = []
    for s_i, solver in enumerate(solvers):
        for noise in noises:
            for n in ns:
                cell_id = f"{solver}-{noise}-{n}"
                for t in range(trials):
                    rows.append(
                        {
                            "suite": "figs", "run_id": "r", "cell_id": cell_id, "trial": t,
                            "problem": "one_hidden", "initializer": "gaussian",
                            "solver": solver, "problem.d": 10, "problem.n": n,
                            "problem.noise_std": noise, "status": "ok",
                            "iterations": 10, "time_s": 0.01,
                            "metric.param_error": (
                                error(s_i, noise, n, t) if error else 0.1 * (t + 1)
                            ),
                            "metric.success": success(s_i, n, t) if success else float(t % 2),
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def _per_trial(layout):
    return layout.runs[layout.runs["_status"] == "ok"]


def test_error_curves_draw_the_median_inside_its_interquartile_band():
    # Four small errors and one huge one per n: the mean lies above the third quartile.
    runs = _runs(solvers=("gd",), error=lambda s, noise, n, t: 1e3 if t == 4 else 0.1 * (t + 1))
    layout = build_layout(runs, DECLARED)
    (plot,) = list(metric_curves(layout, _per_trial(layout)))
    ax = plot.figure.axes[0]
    (line,) = [line for line in ax.get_lines() if line.get_label() == "gd / gaussian"]
    values = runs.groupby("problem.n")["metric.param_error"]
    np.testing.assert_allclose(line.get_ydata(), values.median().to_numpy())
    assert (values.mean() > values.quantile(0.75)).all()  # what a mean line would have shown
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() <= line.get_ydata().min() and line.get_ydata().max() <= ys.max()
    assert "Median" in plot.caption and "Mean" not in plot.caption


def test_a_one_series_plot_has_a_legend():
    layout = build_layout(_runs(solvers=("gd",)), DECLARED)
    (plot,) = list(success_curves(layout, success_table(layout), {}))
    legend = plot.figure.axes[0].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["gd"]


def test_panels_of_one_figure_share_their_axis_scales():
    # noise 0: every error positive (log y alone); noise 1: most errors exactly 0 (linear).
    def error(s, noise, n, t):
        return 0.0 if noise == 1.0 and t < 3 else 10.0 ** -(t + n / 20)

    runs = _runs(noises=(0.0, 1.0), error=error)
    layout = build_layout(runs, DECLARED)
    assert set(layout.runs["_facet"]) == {"noise_std=0", "noise_std=1"}
    (plot,) = list(metric_curves(layout, _per_trial(layout)))
    axes = [ax for ax in plot.figure.axes if ax.get_visible()]
    assert len(axes) == 2
    assert {ax.get_yscale() for ax in axes} == {"linear"}
    assert len({ax.get_xscale() for ax in axes}) == 1


def _traces(layout, lengths: dict[str, int]) -> pd.DataFrame:
    rows = []
    for cell_id, solver in layout.runs.drop_duplicates("cell_id")[["cell_id", "solver"]].values:
        for t in range(3):
            for it in range(lengths[solver]):
                rows.append(
                    {"cell_id": cell_id, "trial": t, "iteration": it, "time_s": 1e-3 * it,
                     "metric": "train_loss", "value": float(np.exp(-0.3 * it) + 0.01 * t)}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_iteration_axes_have_whole_number_ticks():
    layout = build_layout(_runs(ns=(20,)), DECLARED)
    plots = list(convergence(layout, _traces(layout, {"altmin": 4, "gd": 4})))
    (plot,) = [p for p in plots if "iteration" in p.stem]
    ax = plot.figure.axes[0]
    assert ax.get_xscale() == "linear"
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_convergence_panels_share_the_log_x_axis_one_panel_needs():
    # Two panels (n=20, n=40): lengths differ 20-fold in both; the x-axis is log in both,
    # never linear in one and log in the other.
    layout = build_layout(_runs(ns=(20, 40)), DECLARED)
    traces = _traces(layout, {"altmin": 3, "gd": 60})
    traces = traces[~((traces["cell_id"] == "gd-0.0-20") & (traces["iteration"] > 5))]
    plots = list(convergence(layout, traces))
    (plot,) = [p for p in plots if "iteration" in p.stem]
    axes = [ax for ax in plot.figure.axes if ax.get_visible()]
    assert len(axes) == 2 and len({ax.get_xscale() for ax in axes}) == 1
    assert len({ax.get_yscale() for ax in axes}) == 1


def test_coinciding_success_curves_stay_distinguishable():
    # Both solvers succeed at exactly the same rate at every n.
    layout = build_layout(_runs(), DECLARED)
    plots = success_curves(layout, success_table(layout), {})
    (plot,) = [p for p in plots if "n over" not in p.stem]
    ax = plot.figure.axes[0]
    data_lines = [c.lines[0] for c in ax.containers]
    assert len(data_lines) == 2
    assert data_lines[0].get_marker() != data_lines[1].get_marker()
    assert data_lines[0].get_linestyle() != data_lines[1].get_linestyle()
    np.testing.assert_allclose(data_lines[0].get_ydata(), data_lines[1].get_ydata())
    shown = [ln.get_transform().transform(ln.get_xydata()) for ln in data_lines]
    assert np.all(np.abs(shown[0][:, 0] - shown[1][:, 0]) >= 2)  # pixels apart sideways


def _table_folder(root: Path) -> Path:
    """A table suite (no n sweep): 2 of 4 trials succeed; errors 1, 2, 3, 100."""
    runs = _runs(solvers=("gd",), ns=(50,), trials=4, success=lambda s, n, t: float(t < 2))
    runs["metric.param_error"] = [1.0, 2.0, 3.0, 100.0]
    runs = runs.drop(columns=["problem.n"])
    runs["created_at"] = pd.Timestamp("2026-11-23T12:00:00Z")
    (root / "runs").mkdir(parents=True)
    table = pa.Table.from_pandas(runs, preserve_index=False)
    meta = {b"relubench": json.dumps({"declarations": DECLARED.to_json()}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), root / "runs" / "part-0.parquet")
    return root


def test_success_is_a_proportion_with_a_wilson_interval(tmp_path):
    folder = _table_folder(tmp_path / "r")
    summary = (build_report(folder, n_boot=10) / "summary.md").read_text()
    low, high = wilson_interval(2, 4)
    assert f"2/4 = 0.5 [{float(low):.2g}, {float(high):.2g}]" in summary
    assert "0.5 ± 0.58" not in summary


def test_bars_show_medians_and_wilson_intervals(tmp_path):
    layout = build_layout(pd.read_parquet(_table_folder(tmp_path / "r") / "runs"), DECLARED)
    plots = {p.stem: p for p in bars(layout, _per_trial(layout))}
    error_ax = plots["bars-param-error"].figure.axes[0]
    (bar,) = error_ax.patches
    assert bar.get_height() == 2.5  # the median of 1, 2, 3, 100 (the mean is 26.5)
    success = plots["bars-success"]
    assert "Wilson" in success.caption
    (bar,) = success.figure.axes[0].patches
    assert bar.get_height() == 0.5
    (caps,) = [c for c in success.figure.axes[0].collections if len(c.get_segments())]
    (segment,) = caps.get_segments()
    np.testing.assert_allclose(sorted(segment[:, 1]), np.ravel(wilson_interval(2, 4)), atol=1e-9)
