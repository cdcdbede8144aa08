"""The expectation language: correct values on a small table, hostile input rejected at load."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness import InputError
from harness.expect import evaluate_all, parse_expectations


@pytest.fixture
def runs() -> pd.DataFrame:
    # 8 trials: two solvers x two d, two trials each; one errored trial with NaN metrics
    return pd.DataFrame(
        {
            "suite": ["s"] * 8,
            "solver": ["altmin"] * 4 + ["gd"] * 4,
            "problem": ["single_neuron"] * 8,
            "problem.d": [10, 10, 20, 20, 10, 10, 20, 20],
            "problem.n": [30, 60, 40, 80, 30, 60, 40, 80],
            "status": ["ok"] * 7 + ["error"],
            "iterations": [4, 6, 8, 10, 40, 60, 80, 100],
            "metric.success": [True, True, False, True, False, True, False, np.nan],
            "metric.param_error": [0.001, 0.002, 0.5, 0.004, 0.3, 0.01, 0.7, np.nan],
        }
    )


def one(entry: dict, runs: pd.DataFrame):
    (expectation,) = parse_expectations([entry], "suite.toml")
    return expectation.evaluate(runs)


# (check, where, expected value of the measured side, held) -- values computed by hand
CASES = [
    ("count() == 8", None, 8, True),
    ("count(success) == 4", "status == 'ok'", 4, True),
    ("mean(success) >= 0.75", "solver == 'altmin'", 0.75, True),
    ("mean(success) > 0.75", "solver == 'altmin'", 0.75, False),
    ("median(iterations) == 7", "solver == 'altmin'", 7.0, True),
    ("min(iterations) >= 40", "solver == 'gd'", 40.0, True),
    ("max(iterations) < 100", None, 100.0, False),
    ("quantile(iterations, 0.25) == 5.5", "solver == 'altmin'", 5.5, True),  # linear interp.
    ("0.4749 < mean(iterations / problem.d) < 0.4751", "solver == 'altmin'", 0.475, True),
    ("mean(problem.n >= 3 * problem.d) == 0.75", None, 0.75, True),  # n = 3d, 6d, 2d, 4d
    ("0.5 < mean(success) <= 1", "solver == 'altmin' and problem.d == 10", 1.0, True),
    ("mean(success) < 0.5", "solver in ['gd'] and status == 'ok'", 1 / 3, True),
    ("count() == 2", "solver not in ['gd'] and not (problem.n > 50)", 2, True),
    ("count() == 7", "problem.d == 20 or problem.n < 40 or iterations == 60", 7, True),
    ("mean(-iterations) == -7", "solver == 'altmin'", -7.0, True),
    ("max(iterations % 7) == 6", "solver == 'altmin'", 6.0, True),  # 4,6,1,3
    ("max(2 ** problem.d) == 2 ** 20", None, 2.0**20, True),
    ("mean(success) >= 0.5 and median(iterations) < 10", "solver == 'altmin'", None, True),
    ("mean(success) == 1 or count() > 100", "solver == 'altmin'", None, False),
]


@pytest.mark.parametrize(("check", "where", "value", "held"), CASES)
def test_expression_table(runs, check, where, value, held):
    entry = {"check": check} if where is None else {"check": check, "where": where}
    (outcome,) = one(entry, runs)
    assert outcome.held is held, outcome.describe()
    assert outcome.message is None
    if value is not None:
        assert outcome.value == pytest.approx(value)
    else:  # a boolean combination reports every aggregate it computed
        assert isinstance(outcome.value, dict) and len(outcome.value) == 2


def test_by_gives_one_outcome_per_group_and_reads_group_constants(runs):
    outcomes = one(
        {
            "where": "status == 'ok'",
            "check": "median(iterations) <= 5 * problem.d",
            "by": ["solver", "problem.d"],
        },
        runs,
    )
    groups = [tuple(o.group.values()) for o in outcomes]
    assert groups == [("altmin", 10), ("altmin", 20), ("gd", 10), ("gd", 20)]
    assert [o.value for o in outcomes] == [5.0, 9.0, 50.0, 80.0]
    assert [o.held for o in outcomes] == [True, True, True, True] != [False] * 4
    assert [len(o.rows) for o in outcomes] == [2, 2, 2, 1]
    tight = one({"check": "median(iterations) <= problem.d", "by": "problem.d"}, runs)
    assert [o.held for o in tight] == [False, False]  # medians 22.5, 44 > d


def test_describe_line_has_verdict_group_value_and_count(runs):
    (outcome, _) = one(
        {"check": "mean(success) >= 0.95", "by": ["problem.d"], "where": "solver == 'altmin'"}, runs
    )
    assert (
        outcome.describe() == "held   mean(success) >= 0.95  [problem.d=10]  measured 1 (n=2 rows)"
    )
    (failed,) = one(
        {"check": "mean(param_error) <= 0.01", "where": "solver == 'gd' and status == 'ok'"}, runs
    )
    assert failed.describe().startswith(
        "failed mean(param_error) <= 0.01  measured 0.3367 (n=3 rows)"
    )
    assert "0.3" in failed.table() and "gd" in failed.table()


def test_bare_name_prefers_exact_column_then_metric(runs):
    frame = runs.assign(success=0.0)  # an exact column named "success" wins over metric.success
    (exact,) = one({"check": "mean(success) == 0"}, frame)
    assert exact.held
    (metric,) = one({"check": "mean(success) > 0", "where": "solver == 'altmin'"}, runs)
    assert metric.value == pytest.approx(0.75)


def test_nan_is_never_skipped(runs):
    (outcome,) = one({"check": "mean(success) >= 0"}, runs)
    assert not outcome.held and math.isnan(outcome.value)
    assert "1 missing" in outcome.message
    (ok,) = one({"check": "mean(success) >= 0", "where": "status == 'ok'"}, runs)
    assert ok.held and ok.value == pytest.approx(4 / 7)


def test_zero_rows_is_a_failure_with_a_message(runs):
    (outcome,) = one({"check": "count() >= 0", "where": "solver == 'nobody'"}, runs)
    assert not outcome.held and "matches none of 8 rows" in outcome.message
    (empty,) = one({"check": "mean(success) > 0"}, runs.iloc[0:0])
    assert not empty.held and "empty" in empty.message


def test_evaluation_problems_fail_the_outcome_with_a_message(runs):
    (missing,) = one({"check": "mean(nonesuch) > 0"}, runs)
    assert not missing.held and "nonesuch" in missing.message
    (varies,) = one({"check": "mean(success) > problem.d"}, runs)
    assert not varies.held and "add it to `by`" in varies.message
    (text,) = one({"check": "max(solver * 1000000000) > 0"}, runs)
    assert not text.held and "arithmetic on text" in text.message
    (bad_by,) = one({"check": "count() > 0", "by": ["problem.zz"]}, runs)
    assert not bad_by.held and "problem.zz" in bad_by.message


def test_profiles_restrict_where_a_claim_applies(runs):
    exps = parse_expectations(
        [{"check": "count() == 8"}, {"check": "count() == 0", "profiles": ["full"]}], "s.toml"
    )
    assert [o.held for o in evaluate_all(exps, runs, profile="smoke")] == [True]
    assert [o.held for o in evaluate_all(exps, runs, profile="full")] == [True, False]


HOSTILE = [
    ("__import__('os').system('echo pwned')", "__import__"),
    ("os.system('ls')", "os.system"),
    ("eval('1')", "eval"),
    ("open('/etc/passwd')", "open"),
    ("mean(success).real > 0", "attribute access on a value"),
    ("'abc'.upper() == 'ABC'", "calls to"),
    ("(1).__class__ == 1", "attribute access"),
    ("problem.__class__ == 1", "dunder"),
    ("__builtins__ == 1", "dunder"),
    ("success[0] > 1", "subscripts"),
    ("(lambda: 1)() == 1", "calls to"),
    ("(lambda x: x) == 1", "lambda"),
    ("mean([x for x in success]) > 0", "comprehensions"),
    ("mean({x for x in success}) > 0", "comprehensions"),
    ("mean(x for x in success) > 0", "comprehensions"),
    ("(y := 1) == 1", "assignment"),
    ("f'{success}' == 'x'", "f-strings"),
    ("mean(success) if 1 else 0", "conditional"),
    ("mean(mean(success)) > 0", "nested"),
    ("mean(success, 2) > 0", "number of arguments"),
    ("mean(x=success) > 0", "keyword"),
    ("mean(*success) > 0", "*arguments"),
    ("quantile(success, 1.5) > 0", "0 <= q <= 1"),
    ("quantile(success, problem.n) > 0", "0 <= q <= 1"),
    ("'a' * 1000000000 == 'a'", "arithmetic on strings"),
    ("success in success", "literal list"),
    ("success is None", "comparison Is"),
    ("b'x' == success", "constant"),
    ("success & 1 == 1", "BitAnd"),
    ("mean(success) > 0; import os", "not a valid expression"),
    ("mean(success)", "must be a condition"),
    ("mean + 1 > 0", "aggregate"),
    ("1 and 2", "and/or needs conditions"),
    ("(" * 300 + "1" + ")" * 300 + " > 0", "not a valid expression"),
    ("-" * 1990 + "1 > 0", "nested"),
    ("1" * 3000 + " > 0", "longer than"),
]


@pytest.mark.parametrize(("check", "why"), HOSTILE)
def test_hostile_expressions_are_rejected_at_load(check, why):
    entries = [{"check": "count() > 0"}, {"check": check}]
    with pytest.raises(InputError) as info:
        parse_expectations(entries, "suites/x.toml")
    message = str(info.value)
    assert message.startswith("suites/x.toml: expect[1].check: ")
    assert why in message
    assert info.value.exit_code == 2


def test_where_may_not_aggregate_and_error_names_key():
    with pytest.raises(InputError, match=r"expect\[0\]\.where: .*aggregate in `check`"):
        parse_expectations([{"check": "count() > 0", "where": "mean(success) > 0"}], "s.toml")
    with pytest.raises(InputError, match=r"expect\[0\]\.where: .*__import__"):
        parse_expectations([{"check": "count() > 0", "where": "__import__('os')"}], "s.toml")


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"check": "count() > 0", "by_": ["x"]}, r"expect\[0\]\.by_: unknown key"),
        ({"where": "solver == 'a'"}, r"expect\[0\]\.check: missing"),
        ({"check": 3}, r"expect\[0\]\.check: must be a string"),
        ({"check": "count() > 0", "by": [1]}, r"expect\[0\]\.by: must be a list"),
        ({"check": "count() > 0", "by": ["__class__"]}, r"expect\[0\]\.by: dunder"),
        ({"check": "   "}, r"expect\[0\]\.check: empty"),
    ],
)
def test_malformed_entries_name_the_key(entry, match):
    with pytest.raises(InputError, match=match):
        parse_expectations([entry], "s.toml")


def test_expectation_metadata():
    (e,) = parse_expectations(
        [{"check": " mean(success) >= 0.9 ", "where": "solver == 'altmin'", "by": ["problem.d"]}],
        "s.toml",
    )
    assert e.key == "expect[0]" and e.check == "mean(success) >= 0.9"
    assert e.columns == {"success", "solver", "problem.d"}
    assert e.label == "mean(success) >= 0.9 where solver == 'altmin' by problem.d"


SUITE_WITH_CLAIMS = """
[suite]
name = "claims"
trials = 1

[[problems]]
name = "single_neuron"
d = 3
n = 10

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = 2

[metrics]
names = ["param_error"]

[profiles.smoke]
trials = 1

[profiles.full]
trials = 1

[[expect]]
check = "count() == 8"

[[expect]]
name = "full-scale claim"
check = "count() == 0"
profiles = ["full"]
"""


def test_a_loaded_suite_carries_its_parsed_expectations(write_suite, runs):
    from harness.plugins import get_registry
    from harness.suite import load_suite

    path = write_suite(SUITE_WITH_CLAIMS)
    registry = get_registry()
    suite = load_suite(path, registry)
    assert [e.key for e in suite.expectations] == ["expect[0]", "expect[1]"]
    assert all(e.source == str(path) for e in suite.expectations)
    # Parsed and ready to judge: no second parse by the caller.
    assert [o.held for e in suite.expectations for o in e.evaluate(runs)] == [True, False]
    # `profiles = [...]` restricts a claim to those profiles; without the key it always applies.
    assert [e.label for e in suite.active_expectations] == ["count() == 8"]
    smoke = load_suite(path, registry, profile="smoke")
    assert [e.key for e in smoke.active_expectations] == ["expect[0]"]
    full = load_suite(path, registry, profile="full")
    assert [e.key for e in full.active_expectations] == ["expect[0]", "expect[1]"]


# --------------------------------------------------------------------- trace values


@pytest.fixture
def traced() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two trials of two cells; loss curves traced at iterations 0, 10, 20, 40 and a
    budget axis (weights updated = 100 per iteration) for cell b."""
    runs = pd.DataFrame(
        {
            "cell_id": ["a", "a", "b", "b"],
            "trial": [0, 1, 0, 1],
            "solver": ["fast", "fast", "slow", "slow"],
            "status": ["ok"] * 4,
        }
    )
    its = [0, 10, 20, 40]
    curves = {
        ("a", 0): [1.0, 0.1, 0.01, 0.001],
        ("a", 1): [1.0, 0.2, 0.02, 0.002],
        ("b", 0): [1.0, 0.5, 0.4, 0.3],
        ("b", 1): [2.0, 0.6, 0.5, 0.45],
    }
    rows = []
    for (cell, trial), values in curves.items():
        for it, v in zip(its, values):
            rows.append((cell, trial, it, it * 0.5, "train_loss", v))
            if cell == "b":
                rows.append((cell, trial, it, it * 0.5, "weights_updated", 100.0 * it))
    traces = pd.DataFrame(
        rows, columns=["cell_id", "trial", "iteration", "time_s", "metric", "value"]
    )
    return runs, traces


TRACE_CASES = [
    # value at the last traced point with iteration <= x
    ("0.1499 < median(at(train_loss, 15)) < 0.1501", "solver == 'fast'", 0.15, True),
    ("max(at(train_loss, 40)) == 0.45", None, 0.45, True),
    # first iteration reaching a level; inf when never (so `max` shows it)
    ("max(first_below(train_loss, 0.05)) == 20", "solver == 'fast'", 20.0, True),
    ("min(first_below(train_loss, 0.05)) > 1000", "solver == 'slow'", math.inf, True),
    ("min(first_above(train_loss, 1.5)) > 0", "solver == 'slow'", 0.0, False),
    # area under the curve by trapezoids: (1 + 0.1) / 2 * 10 = 5.5; cut at 15 by interpolation
    ("min(auc(train_loss, 10)) == 5.5", "solver == 'fast'", 5.5, True),
    # another axis: weights updated
    ("max(at(train_loss, 1500, weights_updated)) == 0.6", "solver == 'slow'", 0.6, True),
    (
        "min(first_below(train_loss, 0.45, weights_updated)) == 2000",
        "solver == 'slow'",
        2000.0,
        True,
    ),
    # a trace value filters rows too
    ("count() == 2", "first_below(train_loss, 0.05) < 100", 2, True),
]


@pytest.mark.parametrize("check, where, value, held", TRACE_CASES)
def test_trace_values_are_read_from_the_traces_table(traced, check, where, value, held):
    runs, traces = traced
    entry = {"check": check} | ({"where": where} if where else {})
    (e,) = parse_expectations([entry], "suite.toml")
    assert e.needs_traces
    (outcome,) = e.evaluate(runs, traces)
    assert outcome.message is None, outcome.message
    assert outcome.held is held, outcome.describe()
    assert outcome.value == pytest.approx(value)


def test_auc_interpolates_at_the_cut_and_at_without_points_is_missing(traced):
    runs, traces = traced
    (e,) = parse_expectations([{"check": "min(auc(train_loss, 15)) > 0"}], "s.toml")
    # trial a/0: 5.5 over [0, 10], then (0.1 + 0.055) / 2 * 5 over [10, 15]
    (o,) = e.evaluate(runs[runs["cell_id"] == "a"].iloc[:1], traces)
    assert o.value == pytest.approx(5.5 + 0.3875)
    (e,) = parse_expectations([{"check": "max(at(train_loss, -1)) > 0"}], "s.toml")
    (o,) = e.evaluate(runs, traces)
    assert not o.held and "missing" in o.message


def test_trace_claims_without_traces_fail_with_a_message(traced):
    runs, _ = traced
    (e,) = parse_expectations([{"check": "max(at(train_loss, 10)) < 1"}], "s.toml")
    (o,) = e.evaluate(runs)
    assert not o.held and "traces" in o.message


@pytest.mark.parametrize(
    "check, why",
    [
        ("max(at(train_loss)) < 1", "wrong number of arguments"),
        ("max(at(train_loss, 1, iteration, 3)) < 1", "wrong number of arguments"),
        ("max(at('train_loss', 1)) < 1", "bare name"),
        ("max(at(metric.train_loss, 1)) < 1", "bare name"),
        ("max(at(train_loss, n)) < 1", "number literal"),
        ("max(at(train_loss, 1 + 1)) < 1", "number literal"),
        ("max(at(train_loss, 1, 'weights')) < 1", "axis is a bare name"),
        ("max(at(train_loss, 1, __class__)) < 1", "axis is a bare name"),
        ("max(at(train_loss, x=1)) < 1", "plain arguments"),
        ("max(at(__import__, 1)) < 1", "bare name"),
        ("max(since(train_loss, 1)) < 1", "not allowed"),
    ],
)
def test_bad_trace_calls_are_rejected_at_load(check, why):
    with pytest.raises(InputError, match="expect\\[0\\].check") as info:
        parse_expectations([{"check": check}], "suite.toml")
    assert why in str(info.value)


def test_origin_marks_our_additions():
    (paper, ours) = parse_expectations(
        [
            {"check": "count() > 0", "name": "a"},
            {"check": "count() > 0", "name": "b", "origin": "addition"},
        ],
        "s.toml",
    )
    assert paper.origin == "paper" and paper.label == "a"
    assert ours.origin == "addition" and ours.label == "b (addition)"
    with pytest.raises(InputError, match=r"expect\[0\].origin: 'ours'; allowed: paper, addition"):
        parse_expectations([{"check": "count() > 0", "origin": "ours"}], "s.toml")


# ---------------------------------------------------------------------- paired claims


@pytest.fixture
def paired_runs() -> pd.DataFrame:
    """Two solvers on the same 30 trials (2 points x 15 seeds): 'good' succeeds on every
    trial and reaches a smaller error; 'bad' fails on 12 trials (one of them errored)."""
    rng = np.random.default_rng(0)
    rows = []
    for d in (5, 10):
        for seed in range(15):
            base = float(rng.uniform(0.1, 1.0))
            for solver, success, error in (
                ("good", True, base * 0.01),
                ("bad", seed % 5 != 0 and seed != 3, base),
            ):
                rows.append(
                    {
                        "suite": "s",
                        "solver": solver,
                        "problem": "single_neuron",
                        "problem.d": d,
                        "initializer": "gaussian",
                        "seed": 1000 * d + seed,
                        "trial": seed,
                        "status": "ok",
                        "time_s": 0.1,
                        "metric.success": success,
                        "metric.param_error": error,
                    }
                )
    frame = pd.DataFrame(rows).astype({"metric.success": object})
    bad = (frame["solver"] == "bad") & (frame["seed"] == 5003)
    frame.loc[bad, "status"] = "error"  # counts as a failure, never dropped
    frame.loc[bad, ["metric.success", "metric.param_error"]] = np.nan
    return frame


def check(text: str, runs: pd.DataFrame, **entry):
    (e,) = parse_expectations([{"check": text, **entry}], "s.toml")
    return e.evaluate(runs)


def test_a_planted_paired_difference_holds_and_its_reverse_fails(paired_runs):
    from scipy import stats

    (o,) = check("paired_p(success, 'good', 'bad') < 0.01", paired_runs)
    # 8 discordant pairs ('bad' fails at seeds 0, 3, 5, 10 of each d; at d=5 seed 3 it
    # errored, which counts as a failure), all won by 'good'
    failures = int(
        ((paired_runs["solver"] == "bad") & ~paired_runs["metric.success"].eq(True)).sum()
    )
    assert failures == 8
    assert o.held and o.value == pytest.approx(stats.binomtest(8, 8, 0.5, "greater").pvalue)
    assert o.measured["wins/ties/losses of good vs bad (success)"] == "8/22/0"
    (rev,) = check("paired_p(success, 'bad', 'good') < 0.01", paired_runs)
    assert not rev.held and rev.value == pytest.approx(1.0)
    # a continuous metric: Wilcoxon, minimised by default; 30 wins of 30
    (o,) = check("paired_p(param_error, 'good', 'bad') < 1e-6", paired_runs)
    expected = stats.wilcoxon(
        paired_runs[paired_runs.solver == "good"]["metric.param_error"].to_numpy()
        - np.where(
            paired_runs[paired_runs.solver == "bad"]["status"] == "ok",
            paired_runs[paired_runs.solver == "bad"]["metric.param_error"],
            np.inf,
        ).clip(max=1e6),
        alternative="less",
    ).pvalue
    assert o.held and o.value == pytest.approx(expected)
    (rev,) = check("paired_p(param_error, 'bad', 'good') < 0.05", paired_runs)
    assert not rev.held and rev.value > 0.99
    (wins,) = check("paired_wins(param_error, 'good', 'bad') == 30", paired_runs)
    assert wins.held
    (losses,) = check("paired_losses(success, 'good', 'bad') == 0", paired_runs)
    assert losses.held
    (effect,) = check("paired_effect(success, 'good', 'bad') > 0.25", paired_runs)
    assert effect.held and effect.value == pytest.approx(8 / 30)


def test_paired_claims_group_by_and_filter(paired_runs):
    outcomes = check("paired_p(success, 'good', 'bad') < 0.05", paired_runs, by=["problem.d"])
    # 4 discordant pairs per d: p = 1/16 > 0.05 each, though pooled they hold
    assert [o.held for o in outcomes] == [False, False]
    assert [o.value for o in outcomes] == [pytest.approx(1 / 16)] * 2
    (o,) = check("paired_p(success, 'good', 'bad') < 0.01", paired_runs, where="status == 'ok'")
    assert o.held  # the errored trial's pair is left out: 7 discordant pairs
    assert o.value == pytest.approx(0.5**7)


def test_tuning_rows_are_left_out_of_paired_claims(paired_runs):
    tune = paired_runs.assign(split="tune", seed=paired_runs["seed"] + 1)
    tune["metric.success"] = tune["solver"] == "bad"  # a reversed tuning split
    both = pd.concat([paired_runs.assign(split="test"), tune], ignore_index=True)
    (o,) = check("paired_p(success, 'good', 'bad') < 0.01", both)
    assert o.held and o.measured["wins/ties/losses of good vs bad (success)"] == "8/22/0"


def test_a_paired_claim_on_a_solver_absent_from_the_rows_fails_with_a_reason(paired_runs):
    (o,) = check("paired_p(success, 'good', 'bad') < 0.01", paired_runs, where="solver == 'good'")
    assert not o.held and "no such method" in o.message


@pytest.mark.parametrize(
    "text, why",
    [
        ("paired_p(success, 'good') < 0.01", "wrong number of arguments"),
        ("paired_p('success', 'good', 'bad') < 0.01", "bare name"),
        ("paired_p(success, good, 'bad') < 0.01", "as strings"),
        ("paired_p(success, 'good', 'good') < 0.01", "with itself"),
        ("paired_p(success, 'good', 'bad', x=1) < 0.01", "plain arguments"),
        ("mean(paired_p(success, 'good', 'bad')) < 0.01", "not inside an aggregate"),
        ("paired_q(success, 'good', 'bad') < 0.01", "did you mean 'paired_p'"),
    ],
)
def test_bad_paired_calls_are_rejected_at_load(text, why):
    with pytest.raises(InputError, match="expect\\[0\\].check") as info:
        parse_expectations([{"check": text}], "suite.toml")
    assert why in str(info.value)


def test_paired_calls_are_not_allowed_in_where():
    with pytest.raises(InputError, match="expect\\[0\\].where.*belongs in `check`"):
        parse_expectations(
            [{"check": "count() > 0", "where": "paired_p(success, 'a', 'b') < 1"}], "s.toml"
        )


PAIRED_SUITE = (
    SUITE_WITH_CLAIMS.split("[profiles.smoke]")[0]
    + """
[[solvers]]
name = "gd"
max_iter = 2

[[expect]]
check = "paired_p(param_error, 'altmin', {other!r}) < 0.5"
"""
)


def test_a_misspelt_solver_in_a_paired_claim_fails_at_load_with_exit_2(write_suite):
    from harness.cli import main
    from harness.plugins import get_registry
    from harness.suite import load_suite

    good = write_suite(PAIRED_SUITE.format(other="gd"), "good.toml")
    (claim,) = load_suite(good, get_registry()).expectations
    assert claim.paired_calls[0].worse == "gd"
    typo = write_suite(PAIRED_SUITE.format(other="gdd"), "typo.toml")
    with pytest.raises(
        InputError,
        match=r"expect\[0\].check: paired_p\(\): no solver 'gdd'.*"
        r"did you mean 'gd'",
    ):
        load_suite(typo, get_registry())
    assert main(["show", "suite", str(typo)]) == 2
    metric = write_suite(PAIRED_SUITE.format(other="gd").replace("param_error,", "param_eror,"))
    with pytest.raises(InputError, match="no column 'param_eror'.*did you mean 'param_error'"):
        load_suite(metric, get_registry())


def test_a_paired_claim_on_a_trace_value(traced):
    """'fast' reaches 0.05 at iteration 20 in both trials, 'slow' never (inf): 2 wins of 2,
    Wilcoxon on first_below (fewer iterations is better); at(...) follows the metric."""
    runs, traces = traced
    runs = runs.assign(problem="p", initializer="i", seed=runs["trial"])
    (o,) = check("paired_wins(first_below(train_loss, 0.05), 'fast', 'slow') == 2", runs)
    assert not o.held and "traces" in o.message  # judged without the traces table
    (e,) = parse_expectations(
        [{"check": "paired_wins(first_below(train_loss, 0.05), 'fast', 'slow') == 2"}], "s"
    )
    assert e.needs_traces
    (o,) = e.evaluate(runs, traces)
    assert o.held
    (e,) = parse_expectations(
        [{"check": "paired_p(at(train_loss, 40), 'fast', 'slow') < 0.3"}], "s"
    )
    (o,) = e.evaluate(runs, traces)
    assert o.held and o.value == pytest.approx(0.25)  # exact Wilcoxon, n = 2, one-sided
    (e,) = parse_expectations(
        [{"check": "paired_p(at(train_loss, 40), 'slow', 'fast') < 0.3"}], "s"
    )
    assert not e.evaluate(runs, traces)[0].held
