"""Tests of harness.report: the n50 estimator, Wilson intervals, and the report files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.report import build_report, fit_exponent, fit_n50, wilson_interval
from harness.report.data import build_layout

# -- synthetic results folder ------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# What the store records for the synthetic solvers: both trace weights_updated
# as a budget axis (the real altmin and gd do not).
SYNTHETIC_DECLARATIONS = {
    "metrics": {
        "success": {"role": "success", "direction": "higher"},
        "param_error": {"role": "error", "direction": "lower"},
    },
    "solvers": {
        name: {"budget_axes": ["iteration", "time_s", "weights_updated"]}
        for name in ("altmin", "gd")
    },
}


def write_results(
    root: Path,
    *,
    ds: tuple[int, ...] = (20, 40, 80),
    ns: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640),
    trials: int = 30,
    n50_per_d: float = 2.0,
    seed: int = 0,
    traces: bool = True,
    declarations: dict | None = SYNTHETIC_DECLARATIONS,
) -> Path:
    """A results folder as the store writes it: runs/ and traces/ Parquet parts.

    Two solvers x one initializer on a problem swept over (n, d). The true
    success probability is sigmoid(4 (log n - log(n50_per_d * d))), so the
    true n50 is n50_per_d * d and its exponent in d is 1. ``declarations`` go
    into the runs part's metadata as the store records them (None: none, as in
    a folder written before they were recorded).
    """
    rng = np.random.default_rng(seed)
    rows, trace_rows = [], []
    cell = 0
    for solver, step, shift in (("altmin", None, 1.0), ("gd", 0.5, 2.0)):
        for d in ds:
            for n in ns:
                cell += 1
                cell_id = f"c{cell:04d}"
                p = _sigmoid(4.0 * (np.log(n) - np.log(shift * n50_per_d * d)))
                for t in range(trials):
                    ok = rng.random() < p
                    status = "ok"
                    if rng.random() < 0.02:
                        status = "diverged"
                    err = float(10 ** rng.uniform(-6, -4) if ok else 10 ** rng.uniform(-1, 0))
                    rows.append(
                        {
                            "suite": "synthetic",
                            "run_id": "r1",
                            "cell_id": cell_id,
                            "trial": t,
                            "seed": int(rng.integers(1 << 31)),
                            "problem": "one_hidden",
                            "initializer": "gaussian",
                            "solver": solver,
                            "problem.d": d,
                            "problem.k": 3,
                            "problem.n": n,
                            "problem.n_test": n,  # a function of n: must not become a facet
                            "problem.input_scale": "inv_sqrt_n",
                            "initializer.scale": 1e-4,
                            "solver.max_iter": 100,
                            "solver.step_size": step,
                            "status": status,
                            "error": None if status == "ok" else "loss became nan",
                            "iterations": int(rng.integers(5, 100)),
                            "time_s": float(rng.uniform(0.001, 0.01)),
                            "time_mode": "batched",
                            "metric.success": float(ok) if status == "ok" else np.nan,
                            "metric.param_error": err if status == "ok" else np.nan,
                            "created_at": pd.Timestamp("2026-11-23T12:00:00Z"),
                            "host": "testhost",
                            "harness_version": "0.1.0",
                        }
                    )
                    if traces and d == ds[0] and n == ns[-1]:
                        rate = 0.3 if solver == "altmin" else 0.05
                        for it in range(0, 40 - (t % 5)):  # trials stop at different times
                            for metric, value in (
                                ("train_loss", np.exp(-rate * it) * (1 + 0.1 * rng.random())),
                                ("weights_updated", (it + 1) * d * 3),
                            ):
                                trace_rows.append(
                                    {
                                        "cell_id": cell_id,
                                        "trial": t,
                                        "iteration": it,
                                        "time_s": 1e-3 * it,
                                        "metric": metric,
                                        "value": float(value),
                                    }
                                )
    (root / "runs").mkdir(parents=True)
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    if declarations is not None:
        meta = {b"relubench": json.dumps({"declarations": declarations}).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    pq.write_table(table, root / "runs" / "part-0000.parquet")
    if trace_rows:
        (root / "traces").mkdir()
        pd.DataFrame(trace_rows).to_parquet(root / "traces" / "part-0000.parquet", index=False)
    return root


# -- Wilson interval -----------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "t", "low", "high"),
    [
        # Closed form worked separately (z = 1.959964); with no successes the upper
        # bound is z^2 / (t + z^2), with p = 1/2 the interval is symmetric.
        (0, 10, 0.0, 0.27753),
        (10, 10, 0.72247, 1.0),
        (5, 10, 0.23659, 0.76341),
        (81, 263, 0.25529, 0.36621),
    ],
)
def test_wilson_interval_matches_closed_form(s: int, t: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(s, t)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_formula_vectorised_and_empty() -> None:
    s = np.array([0, 3, 7, 20, 0])
    t = np.array([20, 20, 20, 20, 0])
    lo, hi = wilson_interval(s, t, level=0.9)
    z = 1.6448536269514722
    p = s[:4] / t[:4]
    center = (p + z**2 / (2 * t[:4])) / (1 + z**2 / t[:4])
    half = z * np.sqrt(p * (1 - p) / t[:4] + z**2 / (4 * t[:4] ** 2)) / (1 + z**2 / t[:4])
    np.testing.assert_allclose(lo[:4], np.clip(center - half, 0, 1), atol=1e-12)
    np.testing.assert_allclose(hi[:4], np.clip(center + half, 0, 1), atol=1e-12)
    assert np.isnan(lo[4]) and np.isnan(hi[4])


def test_wilson_interval_covers_at_nominal_rate() -> None:
    # 2000 binomial experiments at p = 0.3, t = 40: coverage should be ~95%;
    # the binomial standard error of the coverage estimate is ~0.005.
    rng = np.random.default_rng(3)
    s = rng.binomial(40, 0.3, size=2000)
    lo, hi = wilson_interval(s, np.full(2000, 40))
    coverage = np.mean((lo <= 0.3) & (hi >= 0.3))
    assert 0.925 <= coverage <= 0.975


# -- n50 estimator ---------------------------------------------------------------


@pytest.mark.parametrize("true_n50", [130.0, 275.0, 420.0])
def test_fit_n50_recovers_known_threshold(true_n50: float) -> None:
    rng = np.random.default_rng(int(true_n50))
    n = np.arange(50, 551, 50)
    trials = np.full(len(n), 60)
    p = _sigmoid(5.0 * (np.log(n) - np.log(true_n50)))
    fit = fit_n50(n, rng.binomial(trials, p), trials, n_boot=300, seed=1)
    assert fit.status == "ok"
    assert fit.low <= true_n50 <= fit.high
    assert fit.low < fit.n50 < fit.high
    assert abs(fit.n50 - true_n50) / true_n50 < 0.1
    # The fitted curve crosses 1/2 at n50.
    assert fit.predict(fit.n50) == pytest.approx(0.5, abs=1e-9)


def test_fit_n50_interval_coverage() -> None:
    # Over 40 independent synthetic curves the 95% interval should contain
    # the truth most of the time (binomial(40, 0.95) is >= 34 with prob. 0.99).
    n = np.array([40, 60, 90, 135, 200, 300, 450])
    trials = np.full(len(n), 25)
    p = _sigmoid(4.0 * (np.log(n) - np.log(120.0)))
    rng = np.random.default_rng(11)
    hits = 0
    for i in range(40):
        fit = fit_n50(n, rng.binomial(trials, p), trials, n_boot=200, seed=i)
        hits += fit.low <= 120.0 <= fit.high
    assert hits >= 34


def test_fit_n50_linear_scale_and_separated_data() -> None:
    # Perfect separation: the data only say n50 lies between 200 and 300.
    fit = fit_n50([100, 200, 300, 400], [0, 0, 20, 20], [20] * 4, n_boot=100)
    assert fit.status == "ok"
    assert 200 <= fit.n50 <= 300
    assert fit.low <= 200 and fit.high >= 300
    lin = fit_n50([100, 200, 300, 400], [1, 4, 16, 19], [20] * 4, log=False, n_boot=100)
    assert not lin.log
    assert 200 < lin.n50 < 300


def test_fit_n50_flags_curves_that_do_not_cross() -> None:
    always = fit_n50([100, 200, 300], [20, 20, 19], [20] * 3, n_boot=50)
    never = fit_n50([100, 200, 300], [0, 1, 0], [20] * 3, n_boot=50)
    assert always.status == "below_range" and always.n50 < 100
    assert never.status == "above_range" and never.n50 > 300
    single = fit_n50([100, 100], [3, 4], [10, 10])
    assert single.status == "insufficient" and np.isnan(single.n50)


def test_fit_n50_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="between 0 and trials"):
        fit_n50([1, 2], [3, 1], [2, 2])


def _exponent_fit(rng: np.random.Generator, power: float, seed: int) -> object:
    ds = np.array([20, 40, 80, 160])
    fits = []
    for d in ds:
        true = 0.05 * d**power
        n = true * np.geomspace(0.25, 4.0, 9)
        p = _sigmoid(4.0 * (np.log(n) - np.log(true)))
        fits.append(fit_n50(n, rng.binomial(40, p), np.full(9, 40), n_boot=200, seed=seed + d))
    return fit_exponent(ds, fits)


def test_fit_exponent_recovers_linear_and_quadratic_scaling() -> None:
    rng = np.random.default_rng(5)
    for power in (1.0, 2.0):
        ef = _exponent_fit(rng, power, seed=0)
        assert abs(ef.slope - power) < 0.15  # sampling sd of the slope is ~0.04 here
        assert ef.low < ef.slope < ef.high
        assert ef.high - ef.low < 0.4
        assert ef.dropped == 0


def test_fit_exponent_interval_coverage() -> None:
    # 40 independent synthetic sweeps; a 95% interval should cover the true
    # exponent in ~38. Intervals far too narrow (replicates not propagated)
    # would cover about half.
    rng = np.random.default_rng(8)
    hits = 0
    for i in range(40):
        ef = _exponent_fit(rng, 1.0, seed=10 * i)
        hits += ef.low <= 1.0 <= ef.high
    assert hits >= 33


def test_fit_exponent_separated_curves_keep_their_uncertainty() -> None:
    # Each curve jumps from 0 to 1 between two grid points: n50 is only known
    # to lie in that bracket, and the exponent's interval must say so.
    fits = [
        fit_n50([10, 20, 40, 80], [0, 0, 10, 10], [10] * 4, n_boot=400, seed=1),
        fit_n50([20, 40, 80, 160], [0, 0, 10, 10], [10] * 4, n_boot=400, seed=2),
    ]
    ef = fit_exponent([10, 20], fits)
    # n50 in [20, 40] and [40, 80]: slopes from log2(40/40)=0 to log2(80/20)=2.
    assert ef.low < 0.5 and ef.high > 1.5
    assert ef.low >= 0.0 and ef.high <= 2.0


# -- the report itself ----------------------------------------------------------


def test_layout_roles_from_columns(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "res", traces=False, trials=3)
    layout = build_layout(pd.read_parquet(folder / "runs"))
    assert layout.has_n and layout.sizes == ["d"]  # k is constant
    assert layout.facets == []  # n_test follows n; input_scale is constant
    labels = set(layout.runs["_series"])
    assert labels == {"altmin / gaussian", "gd / gaussian"}


def test_build_report_files_and_boundaries(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "synthetic")
    out = build_report(folder, n_boot=200)
    assert out == folder / "report"
    summary = (out / "summary.md").read_text()
    html = (out / "index.html").read_text()
    figs = sorted(p.name for p in (out / "figures").iterdir())
    pngs = [f for f in figs if f.endswith(".png")]
    assert len(pngs) == len([f for f in figs if f.endswith(".svg")])
    kinds = {
        "heatmap",
        "success-vs-n",
        "success-vs-n-over-d",
        "param-error-vs-n-over-d",
        "convergence",
    }
    for kind in kinds:
        assert any(f.startswith(kind) for f in pngs), (kind, pngs)
    # x-axes of the convergence curves: iteration, time and weights updated.
    for axis in ("iteration", "time-s", "weights-updated"):
        assert f"convergence-train-loss-vs-{axis}.png" in pngs
    for png in pngs:
        assert (out / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{png}" in summary

    # Boundaries: the true n50 is 2d (altmin) and 4d (gd); slope in d is 1.
    b = pd.read_csv(out / "boundaries.csv")
    assert len(b) == 6 and (b["status"] == "ok").all()
    truth = np.where(b["series"].str.startswith("altmin"), 2.0, 4.0) * b["d"]
    assert (np.abs(b["n50"] - truth) / truth < 0.3).all()
    e = pd.read_csv(out / "exponents.csv")
    assert set(e["series"]) == {"altmin / gaussian", "gd / gaussian"}
    # The slope's sampling sd here is ~0.09 (measured over 30 synthetic folders).
    assert (np.abs(e["slope"] - 1.0) < 0.3).all()
    assert ((e["low"] < e["slope"]) & (e["slope"] < e["high"])).all()
    assert "Phase-transition boundary" in summary and "Scaling of n50" in summary

    # Success table: the rate and Wilson bounds per point agree with the rows.
    s = pd.read_csv(out / "success.csv")
    runs = pd.read_parquet(folder / "runs")
    one = runs[(runs["solver"] == "gd") & (runs["problem.d"] == 40) & (runs["problem.n"] == 160)]
    row = s[(s["series"] == "gd / gaussian") & (s["d"] == 40) & (s["n"] == 160)].iloc[0]
    assert row["trials"] == len(one)  # diverged trials count, as failures
    assert row["successes"] == one["metric.success"].fillna(0).sum()
    lo, hi = wilson_interval(row["successes"], row["trials"])
    assert row["low"] == pytest.approx(float(lo)) and row["high"] == pytest.approx(float(hi))

    # Offline: every src/href is embedded data or a relative path.
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert refs and not any(re.match(r"(?i)(https?:)?//", r) for r in refs)
    assert "http://" not in html and "https://" not in html
    compared = sorted(p.name for p in (out / "figures" / "compare").glob("*.png"))
    assert html.count("data:image/png;base64,") == len(pngs) + len(compared)
    for ref in refs:
        if not ref.startswith("data:"):
            assert (out / ref).is_file()


def test_report_of_a_table_suite_draws_bars_not_curves(tmp_path: Path) -> None:
    # A DANTE-like table: datasets x solvers, no n sweep, no success metric.
    rng = np.random.default_rng(2)
    rows = []
    for dataset in ("digits", "mnist5k"):
        for solver, loss in (("dante", 0.03), ("backprop", 0.031)):
            for t in range(4):
                rows.append(
                    {
                        "suite": "table", "run_id": "r1", "cell_id": f"{dataset}-{solver}",
                        "trial": t, "seed": t, "created_at": "2026-11-23T12:00:00+00:00",
                        "host": "h", "harness_version": "0.1.0", "error": None,
                        "time_mode": "batched",
                        "problem": dataset, "initializer": "glorot", "solver": solver,
                        "problem.hidden": [100], "status": "ok",
                        "metric.test_loss": loss + 0.001 * rng.standard_normal(),
                        "metric.test_accuracy": 0.9 + 0.01 * rng.standard_normal(),
                        "iterations": 10, "time_s": 0.5,
                    }
                )  # fmt: skip
    # The store records the suite file in the Parquet metadata; the report
    # judges that file's [[expect]] claims on the stored rows.
    suite = tmp_path / "table.toml"
    suite.write_text(
        "[[expect]]\nname = 'dante-accurate'\nwhere = \"solver == 'dante'\"\n"
        "check = 'mean(test_accuracy) >= 0.5'\nby = ['problem']\n"
        "[[expect]]\nname = 'impossible'\ncheck = 'min(test_loss) > 1'\n"
    )
    table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    meta = {**table.schema.metadata, b"relubench": json.dumps({"suite_file": str(suite)}).encode()}
    (tmp_path / "runs").mkdir()
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "runs" / "p.parquet")
    out = build_report(tmp_path, tmp_path / "out", n_boot=10)
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["bars-test-accuracy.png", "bars-test-loss.png"]
    summary = (out / "summary.md").read_text()
    assert "Phase-transition boundary" not in summary
    assert "2 of 3 held" in summary
    assert "| held | dante-accurate | problem=digits |" in summary
    min_loss = min(r["metric.test_loss"] for r in rows)
    assert f"| FAILED | impossible |  | {min_loss:.4g} | 16 |" in summary
    # The final-metrics table reports each cell's mean over its 4 trials.
    df = pd.DataFrame(rows)
    mean = df[(df["problem"] == "digits") & (df["solver"] == "dante")]["metric.test_loss"].mean()
    assert f"{mean:.4g} ±" in summary
    # Reproducible to the byte (no dates, fixed SVG ids): reports can be committed and diffed.
    again = build_report(tmp_path, tmp_path / "again", n_boot=10)
    for name in ["summary.md", "index.html", *(f"figures/{p}" for p in pngs)]:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    svg = "figures/bars-test-loss.svg"
    assert (out / svg).read_bytes() == (again / svg).read_bytes()


def test_report_errors_speak_to_the_user(tmp_path: Path) -> None:
    from harness.errors import InputError

    with pytest.raises(InputError, match="no 'runs' folder"):
        build_report(tmp_path)


def test_layout_facets_and_series_labels() -> None:
    # A noise level that varies at every (n, d) is a facet; a solver parameter
    # that varies names the series; a parameter set only for one solver stays
    # out of the other's label.
    rows = []
    for sigma in (1.0, 5.0):
        for step in (0.1, 0.5):
            for n in (50, 100, 200):
                rows.append(
                    {"problem": "additive", "initializer": "zero", "solver": "centered_pgd",
                     "problem.sigma": sigma, "problem.d": 50, "problem.n": n,
                     "solver.step_size": step, "solver.max_iter": 10, "status": "ok",
                     "metric.success": 1.0}
                )  # fmt: skip
            rows.append(
                {"problem": "additive", "initializer": "zero", "solver": "altmin",
                 "problem.sigma": sigma, "problem.d": 50, "problem.n": 100,
                 "solver.step_size": None, "solver.max_iter": 10, "status": "error",
                 "metric.success": None}
            )  # fmt: skip
    layout = build_layout(pd.DataFrame(rows))
    assert layout.facets == ["problem.sigma"]
    assert set(layout.runs["_facet"]) == {"sigma=1", "sigma=5"}
    assert set(layout.runs["_series"]) == {
        "centered_pgd[step_size=0.1] / zero",
        "centered_pgd[step_size=0.5] / zero",
        "altmin / zero",
    }
    # error rows are not trials of a success curve; ok rows are.
    counted = layout.runs.groupby("_series")["_counted"].sum()
    assert counted["altmin / zero"] == 0 and counted["centered_pgd[step_size=0.1] / zero"] == 6


def test_report_when_every_trial_failed(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", ds=(20,), ns=(10, 20), trials=2, traces=False)
    runs = pd.read_parquet(folder / "runs")
    runs["status"] = "error"
    runs["error"] = "Traceback: boom in solver"
    runs["metric.success"] = np.nan
    runs["metric.param_error"] = np.nan
    runs.to_parquet(folder / "runs" / "part-0000.parquet", index=False)
    out = build_report(folder, n_boot=10)
    summary = (out / "summary.md").read_text()
    assert "| altmin / gaussian | 4 | Traceback: boom in solver |" in summary
    assert "Phase-transition boundary" not in summary and "Figures" not in summary
    assert not list((out / "figures").glob("*.png"))
    # the comparison still counts the failures (all tie: every trial scored worst)
    assert "| altmin | error | 4 |" in summary
    assert "trials not ok count as failures" in summary


def test_trial_quantiles_hold_the_last_value_of_stopped_trials() -> None:
    from harness.report.figures import trial_quantiles

    # Trial 0 stops at iteration 2 with value 1; trials 1 and 2 run to
    # iteration 4. At iteration 4 the median over the three trials must use
    # trial 0's last value, not only the two trials still running.
    frame = pd.DataFrame(
        {
            "trial": [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2],
            "iteration": [0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4],
            "value": [9.0, 5.0, 1.0, 9.0, 8.0, 7.0, 6.0, 5.0, 9.0, 8.5, 8.0, 7.5, 7.0],
        }
    )
    q = trial_quantiles(frame, "value")
    assert list(q.index) == [0, 1, 2, 3, 4]
    assert q.loc[4, "median"] == 5.0  # median of {1, 5, 7}; without holding it would be 6
    assert q.loc[4, "q1"] == 3.0 and q.loc[4, "q3"] == 6.0  # linear quartiles of {1, 5, 7}
    assert q.loc[1, "median"] == 8.0


def test_heatmap_axis_follows_the_swept_grid() -> None:
    from harness.report.figures import ratio_axis

    d = np.repeat([20, 50, 100], 4)
    per_d = np.tile([5, 10, 20, 30], 3)
    assert ratio_axis(per_d * d, d)  # Zhang et al. Fig. 2b: n = ratio x d
    n = np.tile([50, 100, 150, 200], 3)
    assert not ratio_axis(n, d)  # Jagatap & Hegde Fig. 1: one n list for every d


# -- what the report knows comes from declarations, not names ---------------------


def _renamed(folder: Path, old: str, new: str) -> None:
    """Rename a metric column of the runs part, keeping the file's metadata."""
    path = folder / "runs" / "part-0000.parquet"
    table = pq.read_table(path)
    names = [new if c == old else c for c in table.column_names]
    pq.write_table(table.rename_columns(names).replace_schema_metadata(table.schema.metadata), path)


def test_success_role_is_read_from_the_metadata(tmp_path: Path) -> None:
    # A success metric the installed plugins do not know: only its recorded
    # declaration makes it the success metric.
    hit = {"role": "success", "direction": "higher"}
    declared = {**SYNTHETIC_DECLARATIONS, "metrics": {"hit": hit}}
    folder = write_results(tmp_path / "declared", traces=False, trials=10, declarations=declared)
    _renamed(folder, "metric.success", "metric.hit")
    out = build_report(folder, n_boot=10)
    pngs = {p.name for p in (out / "figures").glob("*.png")}
    assert "success-vs-n.png" in pngs and not any(p.startswith("hit") for p in pngs)
    assert len(pd.read_csv(out / "boundaries.csv")) == 6
    assert "declarations" not in (out / "summary.md").read_text()  # not an environment row

    bare = write_results(tmp_path / "bare", traces=False, trials=10, declarations=None)
    _renamed(bare, "metric.success", "metric.hit")
    out = build_report(bare, n_boot=10)
    pngs = {p.name for p in (out / "figures").glob("*.png")}
    assert "hit-vs-n-over-d.png" in pngs  # an undeclared metric is an ordinary metric
    assert not (out / "boundaries.csv").exists()


def test_budget_axes_come_from_declarations(tmp_path: Path) -> None:
    # Without recorded declarations the installed altmin and gd are asked: they
    # declare no weights_updated axis, so that series is a curve of its own.
    folder = write_results(tmp_path / "old", trials=3, declarations=None)
    out = build_report(folder, n_boot=10)
    pngs = {p.name for p in (out / "figures").glob("*.png")}
    assert "convergence-weights-updated-vs-iteration.png" in pngs
    assert not any(p.endswith("-vs-weights-updated.png") for p in pngs)


def test_report_shows_the_comparison_of_methods_and_leaves_out_tuning_rows(
    tmp_path: Path,
) -> None:
    folder = write_results(tmp_path / "r", ds=(20, 40), ns=(40, 160), trials=12)
    runs = pd.read_parquet(folder / "runs")
    runs["metric.train_loss"] = np.linspace(1e-3, 1.0, len(runs))  # a traced final value
    # both solvers see the same data on trial t of a point: the seed names (d, n, t)
    runs["seed"] = runs["problem.d"] * 10**6 + runs["problem.n"] * 100 + runs["trial"]
    # a tuning split in which gd always succeeds must not reach the comparison
    tune = runs.assign(split="tune", seed=runs["seed"] + 1, **{"metric.success": 1.0})
    tune["cell_id"] = "tune-" + tune["cell_id"]
    tune["status"] = "ok"
    both = pd.concat([runs.assign(split="test"), tune], ignore_index=True)
    both.to_parquet(folder / "runs" / "part-0000.parquet", index=False)
    out = build_report(folder, n_boot=10)
    summary = (out / "summary.md").read_text()
    html = (out / "index.html").read_text()
    for text in (
        "# Comparison of methods",
        "average rank of success",
        "paired tests per pair of methods",
        "performance profiles",
        "expected running time (ERT, iteration) to reach train_loss targets",
        f"{len(tune)} tuning trials (split = tune) are left out",
    ):
        assert text in summary, text
    assert "<h3>paired tests per pair of methods" in html
    compared = sorted(p.name for p in (out / "figures" / "compare").iterdir())
    for stem in ("cd-success", "performance-profiles", "ecdf-train_loss-iteration"):
        assert f"{stem}.png" in compared and f"{stem}.svg" in compared
        assert f"figures/compare/{stem}.png" in summary
    # the paired success test of the pair counts only the reported (test) trials
    from harness.analysis.compare import analyze_rows

    analysis = analyze_rows(runs, None, folder, metrics=["success"])
    (pair,) = analysis.pairs
    wtl = f"{pair.wins}/{pair.ties}/{pair.losses}"
    assert pair.wins + pair.ties + pair.losses == 48  # 4 points x 12 trials, tuning left out
    assert f"| {pair.a} | {pair.b} | success | 4 |" in summary and f"| {wtl} |" in summary


def test_report_of_a_single_solver_has_no_pairs(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "r", ds=(20,), ns=(40, 160), trials=4, traces=False)
    runs = pd.read_parquet(folder / "runs")
    runs[runs["solver"] == "altmin"].to_parquet(folder / "runs" / "part-0000.parquet")
    summary = (build_report(folder, n_boot=10) / "summary.md").read_text()
    assert "One method only (altmin): nothing to rank or pair" in summary
    assert "average rank" not in summary and "| altmin | ok |" in summary


TWO_PROFILES = """
[suite]
name = "dup"
trials = 3
seed = 0

[[problems]]
name = "toy_line"
d = 4
n = [2, 8]

[[initializers]]
name = "toy_zero"

[[solvers]]
name = "toy_lsq"
diverge = [false, true]

[metrics]
names = ["toy_error"]

[profiles.smoke]
problems.n = [8]
suite.trials = 2
"""


def test_report_rows_read_from_arrow_equal_the_pandas_rows(write_suite, tmp_path: Path) -> None:
    """The report's lean reader (dictionary-encoded Arrow, dedupe on the index) keeps the
    rows profile_rows keeps, in its order: duplicates of a forced rerun, trials not ok,
    two profiles, every --profile choice."""
    from harness.profiles import profile_rows, tagged_rows
    from harness.report.data import read_profile_rows
    from harness.run import execute
    from harness.store import STATUS_RANK

    toy = str(Path(__file__).parents[1] / "fixture_plugins" / "toy.py")
    path = write_suite(TWO_PROFILES)
    results = tmp_path / "res"
    for profile, force in ((None, False), (None, True), ("smoke", False), ("smoke", True)):
        execute(path, executor="serial", results=results, plugins=[toy], force=force,
                profile=profile, check=False)  # fmt: skip
    folder = results / "dup"
    # dedupe as it was first written (pandas sort of whole rows), the reference
    tagged = tagged_rows(folder)
    rank = tagged["status"].map(STATUS_RANK).fillna(9)
    keys = ["cell_id", "trial", "_rank", "created_at", "run_id"]
    order = tagged.assign(_rank=rank).sort_values(keys, kind="mergesort")
    expected = order.drop_duplicates(["cell_id", "trial"]).drop(columns=["_rank", "profile"])
    assert len(expected) < len(tagged)  # the forced reruns stored duplicates
    everything = read_profile_rows(folder, "all").runs
    pd.testing.assert_frame_equal(
        everything.astype(object), expected.reset_index(drop=True).astype(object)
    )
    for profile in (None, "default", "smoke", "all"):
        lean, full = read_profile_rows(folder, profile), profile_rows(folder, profile)
        assert (lean.profile, lean.chosen, lean.left_out) == (
            full.profile, full.chosen, full.left_out,
        )  # fmt: skip
        assert len(lean.runs) == len(full.runs) > 0
        pd.testing.assert_frame_equal(
            lean.runs.astype(object), full.runs.astype(object), check_dtype=False
        )
    assert (full.runs["status"] != "ok").any()  # the diverging solver's trials
