"""harness.analysis and `relubench compare`: statistics checked against scipy and closed forms,
calibration under the null, planted differences found, and regressions of two real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis.anytime import ert, hitting_budgets
from harness.analysis.claims import paired_claim
from harness.analysis.data import annotate, metric_info
from harness.analysis.paired import holm, mcnemar_exact, wilcoxon_paired
from harness.analysis.pairwise import compare_cells
from harness.analysis.profiles import performance_profile
from harness.analysis.ranking import cliques, friedman, nemenyi_cd
from harness.analysis.regression import compare_runs, parse_fail_on
from harness.cli import main
from harness.declarations import Declarations
from harness.errors import InputError

FIXTURES = Path(__file__).parents[1] / "fixture_plugins"
PLUGIN, TOY = FIXTURES / "versioned.py", FIXTURES / "toy.py"
# What the runs' metadata declares for the metrics these tests compare (the core knows no
# metric by name: an undeclared metric is minimised and compared as a difference).
DECLARED = Declarations(
    {"success": {"role": "success", "direction": "higher"}, "param_error": {"role": "error"}}
)
INFO = metric_info(["success", "param_error", "time_s"], declarations=DECLARED)
ALPHA = 0.05

SUITE = """
[suite]
name = "versioned"
title = "Versioned GD on the toy linear teacher"
source = "tests/harness/test_analysis.py"
trials = 8
seed = 0

[[problems]]
name = "toy_line"
d = 5
n = [40, 60]

[[initializers]]
name = "toy_zero"

[[solvers]]
name = "versioned_gd"
step_size = [0.5, 0.05]

[metrics]
names = ["param_error", "success", "train_loss"]
trace = ["train_loss"]
"""


# --- single tests against scipy and closed forms -------------------------------------------


def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs():
    a = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    b = np.array([1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0])  # B alone: 7, A alone: 2
    t = mcnemar_exact(a, b)
    assert (t.wins, t.losses, t.ties) == (7, 2, 3)
    assert t.p == pytest.approx(stats.binomtest(7, 9, 0.5).pvalue, rel=1e-12)
    assert t.p == pytest.approx(2 * sum(math.comb(9, i) for i in range(3)) / 2**9, rel=1e-12)
    assert t.estimate == pytest.approx(5 / 12)
    assert t.favours == 1
    assert mcnemar_exact(a, a).p == 1.0  # no discordant pair


def test_wilcoxon_matches_scipy_and_ranks_failures_worst():
    rng = np.random.default_rng(3)
    a = rng.normal(size=14)
    b = a + rng.normal(0.4, 1.0, size=14)
    t = wilcoxon_paired(a, b, "min")
    ref = stats.wilcoxon(b - a)
    assert t.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert t.statistic == pytest.approx(ref.statistic)
    assert t.estimate == pytest.approx(np.median(b - a))
    assert t.low <= t.estimate <= t.high
    # B failed twice (scored +inf for a metric to minimise): two tied differences ranked above
    # every finite one, as a huge equal value would be
    b_fail = b.copy()
    b_fail[[0, 5]] = np.inf
    d = b - a
    d[[0, 5]] = 1e6
    assert wilcoxon_paired(a, b_fail, "min").p == pytest.approx(stats.wilcoxon(d).pvalue)
    assert wilcoxon_paired(a, b_fail, "min").losses >= 2


def test_one_sided_tests_match_scipy():
    a = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1])
    b = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 0])
    p = mcnemar_exact(a, b, alternative="greater").p
    assert p == pytest.approx(stats.binomtest(5, 6, 0.5, alternative="greater").pvalue)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=12), rng.normal(size=12) - 0.5
    assert wilcoxon_paired(x, y, "min", alternative="less").p == pytest.approx(
        stats.wilcoxon(y - x, alternative="less").pvalue
    )


def test_ratio_of_times_is_tested_on_log_ratios():
    a = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.8, 2.2, 1.1])
    t = wilcoxon_paired(a, 2.0 * a, "min", ratio=True)
    assert t.effect == "ratio"
    assert (t.estimate, t.low, t.high) == pytest.approx((2.0, 2.0, 2.0))
    assert t.favours == -1 and t.losses == 8
    assert t.p == pytest.approx(stats.wilcoxon(np.full(8, math.log(2.0))).pvalue)


def test_holm_step_down_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([0.2, np.nan])[1]) and holm([0.2, np.nan])[0] == pytest.approx(0.2)


def test_friedman_matches_scipy_with_ties():
    table = pd.DataFrame(
        [[1.0, 2.0, 3.0, 3.0], [2.0, 1.0, 4.0, 3.0], [1.0, 1.0, 2.0, 5.0], [0.5, 3.0, 2.0, 4.0],
         [1.0, 2.5, 2.5, 3.0], [2.0, 3.0, 1.0, 4.0]],
        columns=list("abcd"),
    )  # fmt: skip
    f = friedman(table, "min")
    ref = stats.friedmanchisquare(*(table[c] for c in table))
    assert f.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert f.p == pytest.approx(ref.pvalue, rel=1e-12)
    n, k = table.shape
    assert f.f_statistic == pytest.approx((n - 1) * f.statistic / (n * (k - 1) - f.statistic))
    # maximising reverses every rank: the same statistic
    assert friedman(-table, "max").statistic == pytest.approx(f.statistic)


def test_nemenyi_critical_values_are_demsars_table():
    # Demsar (2006), Table 5(a): q_0.05 for k = 2..10
    q = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    for k, qk in zip(range(2, 11), q):
        assert nemenyi_cd(k, 1) / math.sqrt(k * (k + 1) / 6) == pytest.approx(qk, abs=1e-3)
    assert cliques({"a": 1.0, "b": 1.5, "c": 3.0}, 1.0) == [["a", "b"]]


def test_directions_come_from_declarations_then_options():
    declared = Declarations(
        {"accuracy": {"role": "score", "direction": "higher"}, "hit": {"role": "success"}}
    )
    info = metric_info(["accuracy", "hit", "loss"], declarations=declared)
    assert info["accuracy"].direction == "max" and info["accuracy"].kind == "difference"
    assert info["hit"].direction == "max" and info["hit"].kind == "binary"
    assert info["loss"].direction == "min"  # undeclared: the documented default
    flipped = metric_info(["accuracy"], {"accuracy": "min"}, declarations=declared)
    assert flipped["accuracy"].direction == "min"


# --- the null and planted differences --------------------------------------------------------


def _rejections(pvalues) -> float:
    return float(np.mean(np.asarray(pvalues) < ALPHA))


def _upper(n: int) -> float:
    """alpha plus three binomial standard errors of a rejection rate over n comparisons."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n)


def test_null_calibration_of_single_tests():
    """One solver against itself on different seeds: at most alpha rejections, within error."""
    rng = np.random.default_rng(0)
    n = 1000
    draw = lambda: (rng.random(20) < 0.5, rng.random(20) < 0.5)
    mc = [mcnemar_exact(*draw(), resamples=0).p for _ in range(n)]
    normal = lambda: (rng.normal(size=15), rng.normal(size=15))
    wx = [wilcoxon_paired(*normal(), "min", resamples=0).p for _ in range(n)]
    assert _rejections(mc) <= _upper(n)
    assert _rejections(wx) <= _upper(n)
    assert _rejections(wx) >= ALPHA / 2  # not vacuously conservative


def _cell(rng, metric_a, metric_b, trials=12):
    seeds = np.arange(trials)
    rows = lambda values: pd.DataFrame(
        {"seed": seeds, "status": "ok", "metric.success": values, "metric.param_error": values}
    )
    return rows(metric_a(rng, trials)), rows(metric_b(rng, trials))


def test_null_calibration_of_holm_over_cells():
    """Family-wise: a comparison of 4 cells reports any difference in at most alpha of cases."""
    rng = np.random.default_rng(1)
    draw = lambda r, t: r.normal(size=t)
    info = INFO["param_error"]
    n = 200
    hits = 0
    for _ in range(n):
        groups = [(f"c{j}", *_cell(rng, draw, draw)) for j in range(4)]
        cells = compare_cells(groups, info, ALPHA, "a", "b", resamples=0)
        hits += any(c.verdict != "same" for c in cells)
    assert hits / n <= _upper(n)


def test_planted_differences_are_found():
    rng = np.random.default_rng(2)
    a, b = rng.random(40) < 0.2, rng.random(40) < 0.9
    assert mcnemar_exact(a, b).p < 1e-4 and mcnemar_exact(a, b).favours == 1
    x = rng.normal(size=30)
    t = wilcoxon_paired(x, x + 0.8 + 0.3 * rng.normal(size=30), "min")
    assert t.p < 1e-4 and t.favours == -1  # larger error is worse
    worse = lambda r, t: r.normal(size=t) + 2.0
    groups = [("c0", *_cell(rng, lambda r, t: r.normal(size=t), worse))]
    (c,) = compare_cells(groups, INFO["param_error"], ALPHA, "a", "b")
    assert c.verdict == "worse" and c.test.losses >= 10


def test_failed_trials_count_as_failures_and_are_reported():
    ok = pd.DataFrame({"seed": range(6), "status": "ok", "metric.success": 1.0})
    bad = ok.assign(status=["ok", "error", "timeout", "ok", "diverged", "ok"])
    bad.loc[bad["status"] != "ok", "metric.success"] = np.nan  # failed rows carry no metric
    (c,) = compare_cells([("cell", ok, bad)], INFO["success"], ALPHA, "a", "b")
    assert c.test.n == 6 and c.b_not_ok == 3 and c.test.losses == 3
    assert c.b_center == pytest.approx(0.5)


def test_identical_runs_report_no_change():
    rng = np.random.default_rng(4)
    runs = pd.DataFrame(
        {
            "suite": "s",
            "seed": np.tile(np.arange(10), 4),
            "trial": np.tile(np.arange(10), 4),
            "problem": "p",
            "problem.n": np.repeat([10, 20, 30, 40], 10),
            "initializer": "zero",
            "solver": "gd",
            "solver.step_size": 0.5,
            "status": "ok",
            "metric.success": (rng.random(40) < 0.5).astype(float),
            "metric.param_error": rng.random(40),
            "time_s": rng.random(40) + 0.1,
        }
    )
    report = compare_runs(runs, runs.copy(), list(INFO.values()))
    assert len(report.cells) == 4 * 3 and not report.only_old and not report.only_new
    assert report.changed() == []
    assert all(c.test.p == 1.0 for c in report.cells)


def test_unmatched_cells_and_batched_times_are_reported_not_tested():
    base = pd.DataFrame(
        {"suite": "s", "seed": np.arange(8), "trial": np.arange(8), "problem": "p",
         "problem.n": 10, "initializer": "zero", "solver": "gd", "status": "ok",
         "time_s": 0.5, "time_mode": "batched", "metric.success": 1.0}
    )  # fmt: skip
    extra = base.assign(**{"problem.n": 20})
    new = pd.concat([base.assign(time_s=2.0), extra.assign(solver="altmin")])
    report = compare_runs(pd.concat([base, extra]), new, [INFO["time_s"], INFO["success"]])
    assert report.only_old == ["gd @ n=20"] and report.only_new == ["altmin @ n=20"]
    (t,) = [c for c in report.cells if c.metric == "time_s"]
    # one measurement shared by 8 trials: a 4x ratio, but no test and no verdict
    assert t.test.test == "single" and t.test.estimate == pytest.approx(4.0)
    assert math.isnan(t.test.p) and t.verdict == "same"


# --- anytime, profiles ------------------------------------------------------------------------


def test_ert_counts_the_budget_of_failures():
    """COCO: two hits at 10 and 30 plus two misses that spent 100 each: ERT = 240 / 2."""
    runs = pd.DataFrame(
        {"cell_id": "c", "trial": range(4), "method": "m", "point": "p", "status": "ok",
         "iterations": 100, "time_s": 1.0}
    )  # fmt: skip
    curves = {0: [5.0, 0.5, 0.1], 1: [5.0, 0.5, 0.4], 2: [5.0, 4.0, 3.0], 3: [5.0, 5.0, 5.0]}
    traces = pd.DataFrame(
        [
            ("c", t, it, it / 100, "loss", v)
            for t, vals in curves.items()
            for it, v in zip((1, 10 if t == 0 else 30 if t == 1 else 50, 100), vals)
        ],
        columns=["cell_id", "trial", "iteration", "time_s", "metric", "value"],
    )
    hits = hitting_budgets(runs, traces, "loss", [1.0], budget="iteration")
    assert hits["hit"].tolist() == [True, True, False, False]
    assert hits["budget_hit"].iloc[:2].tolist() == [10.0, 30.0]
    (row,) = ert(hits).itertuples()
    assert row.ert == pytest.approx((10 + 30 + 100 + 100) / 2)
    assert ert(hitting_budgets(runs, traces, "loss", [1e-3])).ert.iloc[0] == math.inf


def test_performance_profile_by_hand():
    runs = annotate(
        pd.DataFrame(
            {
                "problem": "p",
                "initializer": "zero",
                "solver": ["a", "b"] * 3,
                "seed": [0, 0, 1, 1, 2, 2],
                "trial": [0, 0, 1, 1, 2, 2],
                "status": "ok",
                "metric.success": [1, 1, 1, 0, 0, 0],
                "time_s": [1.0, 2.0, 3.0, 1.0, 1.0, 1.0],
                "iterations": 1,
            }
        )  # fmt: skip
    )
    prof = performance_profile(runs, "time_s")
    assert prof.problems == 3
    # trial 0: a best, b at ratio 2; trial 1: only a solved; trial 2: nobody did
    assert prof.at("a", 1.0) == pytest.approx(2 / 3) and prof.at("b", 1.0) == 0.0
    assert prof.at("b", 2.0) == pytest.approx(1 / 3)
    assert prof.solved == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 3)}


# --- --fail-on ------------------------------------------------------------------------------------


def test_fail_on_parsing():
    specs = parse_fail_on(["success", "time_s>1.10x,param_error>0.01"], INFO)
    assert [(s.metric, s.op, s.threshold, s.relative) for s in specs] == [
        ("success", None, None, False),
        ("time_s", ">", 1.10, True),
        ("param_error", ">", 0.01, False),
    ]
    with pytest.raises(InputError, match="better when higher"):
        parse_fail_on(["success>0.1"], INFO)
    with pytest.raises(InputError, match="not compared"):
        parse_fail_on(["sucess"], INFO)
    with pytest.raises(InputError, match="expected METRIC"):
        parse_fail_on(["time_s>>2"], INFO)


def test_an_undeclared_metric_is_minimised_whatever_its_name():
    # no name is special: without a declaration, "success" is a number to minimise
    (info,) = metric_info(["success"]).values()
    assert (info.direction, info.kind) == ("min", "difference")
    assert INFO["success"].direction == "max" and INFO["success"].kind == "binary"


# --- real runs of a test plugin in two versions ----------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The suite run with the plugin (twice) and with a copy whose solver is version 2."""
    root = tmp_path_factory.mktemp("compare")
    suite = root / "versioned.toml"
    suite.write_text(SUITE)
    v2 = root / "versioned_v2.py"
    v2.write_text(PLUGIN.read_text().replace("VERSION = 1  #", "VERSION = 2  #"))
    out = {}
    for name, plugin in (("old", PLUGIN), ("same", PLUGIN), ("new", v2)):
        args = ["run", str(suite), "--results", str(root / name), "--executor", "serial"]
        plugins = ["--plugin", str(TOY), "--plugin", str(plugin)]
        assert main([*args, "--no-progress", *plugins]) == 0
        out[name] = root / name / "versioned"
    return out


def test_compare_one_folder_prints_ranking_tests_profiles(runs, capsys, tmp_path):
    capsys.readouterr()
    assert main(["compare", str(runs["old"]), "--figures", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for section in ("average rank of success", "Friedman", "paired tests", "performance profiles",
                    "expected running time (ERT, iteration) to reach train_loss"):  # fmt: skip
        assert section in text
    # step 0.5 recovers w*, step 0.05 does not: McNemar finds it at both points
    assert text.count("mcnemar n=8") == 2
    assert {p.name for p in tmp_path.iterdir()} >= {"cd-success.png", "performance-profiles.png"}


def test_the_same_sections_in_markdown_and_html(runs):
    from harness.analysis import analyze_folder
    from harness.analysis.render import folder_tables, render

    tables = folder_tables(analyze_folder(runs["old"], metrics=["success"]))
    md, html = render(tables, "markdown"), render(tables, "html")
    for t in tables:
        assert f"### {t.title}" in md and t.title.replace("'", "&#x27;") in html
    assert md.count("| mcnemar n=8 |") == 2 and html.count("<td>mcnemar n=8</td>") == 2


def test_compare_two_runs_flags_the_regression_and_exits_1(runs, capsys):
    r_old, r_new = (pd.read_parquet(runs[k] / "runs") for k in ("old", "new"))
    assert not set(r_old["cell_id"]) & set(r_new["cell_id"])  # changed code: new cell ids
    capsys.readouterr()
    assert main(["compare", str(runs["old"]), str(runs["new"]), "--fail-on", "success"]) == 1
    text = capsys.readouterr().out
    assert "matched by parameters  4" in text
    regressions = text.split("regressions (--fail-on)")[1]
    assert regressions.count("worse") == 2  # success at both points of step 0.5
    assert main(["compare", str(runs["old"]), str(runs["new"])]) == 0  # no --fail-on: report only
    # param_error got worse by 0.6 to 0.8 (new - old) in every cell: sizes decide
    both = ["compare", str(runs["old"]), str(runs["new"]), "--fail-on"]
    assert main([*both, "param_error>5"]) == 0
    assert main([*both, "param_error>0.1"]) == 1
    assert main([*both, "param_error>1.5x"]) == 1
    assert main([*both, "success<-0.5"]) == 1 and main([*both, "success<-1.5"]) == 0


def test_compare_two_identical_runs_reports_nothing(runs, capsys):
    capsys.readouterr()
    args = ["compare", str(runs["old"]), str(runs["same"]), "--fail-on", "success,param_error"]
    assert main([*args, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regressions"] == []
    cells = out["report"]["cells"]
    assert cells and all(c["verdict"] == "same" for c in cells)
    deterministic = [c for c in cells if c["metric"] != "time_s"]
    assert all(c["test"]["p"] == 1.0 for c in deterministic)


def test_paired_claim_on_real_runs(runs):
    """'step 0.5 beats step 0.05 on success': 16 discordant pairs, all for step 0.5."""
    rows = pd.read_parquet(runs["old"] / "runs")
    big, small = "versioned_gd[step_size=0.5]", "versioned_gd[step_size=0.05]"
    claim = paired_claim(rows, "success", big, small)
    assert claim.test == "mcnemar" and claim.n == 16
    assert claim.p == pytest.approx(0.5**16)
    assert paired_claim(rows, "success", small, big).p == 1.0
    assert paired_claim(rows, "param_error", big, small).p == pytest.approx(0.5**16)
    with pytest.raises(InputError, match="paired claim: method nope"):
        paired_claim(rows, "success", "nope", big)


def test_compare_bad_input_exits_2(runs, tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert main(["compare", str(runs["old"]), "--fail-on", "success"]) == 2  # needs OTHER
    assert main(["compare", str(runs["old"]), str(runs["new"]), "--fail-on", "success>1"]) == 2
    assert main(["compare", str(runs["old"]), "--metric", "nope"]) == 2
    assert "--metric nope: no values" in capsys.readouterr().err


def test_compare_leaves_out_tuning_rows_and_says_so(runs, capsys, tmp_path):
    """A tuning split in which step 0.05 always wins changes nothing but the note."""
    rows = pd.read_parquet(runs["old"] / "runs")
    tune = rows.assign(split="tune", cell_id="tune-" + rows["cell_id"], seed=rows["seed"] + 7)
    tune["metric.success"] = tune["solver.step_size"] == 0.05
    folder = tmp_path / "versioned"
    (folder / "runs").mkdir(parents=True)
    pd.concat([rows.assign(split="test"), tune], ignore_index=True).to_parquet(
        folder / "runs" / "part-0000.parquet"
    )
    capsys.readouterr()
    assert main(["compare", str(folder), "--metric", "success"]) == 0
    with_tuning = capsys.readouterr().out
    assert f"{len(tune)} tuning trials (split = tune) left out" in with_tuning
    assert main(["compare", str(runs["old"]), "--metric", "success"]) == 0
    plain = capsys.readouterr().out
    assert "tuning" not in plain
    strip = lambda text: [line for line in text.splitlines() if "tuning" not in line][1:]
    assert strip(with_tuning) == strip(plain)  # the same tests, the same verdicts
    assert main(["compare", str(runs["old"]), str(folder), "--metric", "success"]) == 0
    two = capsys.readouterr().out
    assert f"{len(tune)} tuning trials (split = tune) left out" in two
    assert "no significant change" in two


def test_paired_claim_takes_a_tuned_solver_as_one_method(runs):
    """A tuned suite chose a value per point: the solver's name still names one method."""
    from harness.analysis.data import annotate

    rows = pd.read_parquet(runs["old"] / "runs")
    points = annotate(rows)["point_key"]
    first = points == points.iloc[0]
    assert 0 < first.sum() < len(rows)  # at least two points
    big, small = rows["solver.step_size"] == 0.5, rows["solver.step_size"] == 0.05
    # "tuned": step 0.5 at the first point, 0.05 elsewhere; the baseline: 0.05 everywhere
    tuned = rows[(big & first) | (small & ~first)].assign(solver="tuned_gd")
    base = rows[small].assign(solver="base_gd")
    both = pd.concat([tuned, base], ignore_index=True)
    claim = paired_claim(both, "success", "tuned_gd", "base_gd")
    alone = paired_claim(
        rows[first], "success", "versioned_gd[step_size=0.5]", "versioned_gd[step_size=0.05]"
    )
    # every trial pairs; the discordant pairs are the first point's, the rest are ties
    assert claim.n == len(base) and claim.wins == alone.wins > 0 and claim.losses == 0
    assert claim.p == pytest.approx(alone.p)
    # two configurations at the same point stay ambiguous
    with pytest.raises(InputError, match="is several"):
        paired_claim(rows, "success", "versioned_gd", "versioned_gd[step_size=0.05]")
