"""The bad-input corpus: every malformed suite (tests/bad_suites/) and bad argument is exit 2,
with a message naming the key, and nothing is written.

Each corpus file has an entry in CORPUS with the fragments its message must contain; a
file without an entry fails the test, so the corpus and its expectations stay together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main

HERE = Path(__file__).parent / "bad_suites"

# file stem -> (extra arguments, fragments the error message must contain)
CORPUS: dict[str, tuple[list[str], list[str]]] = {
    "unknown_problem": ([], ["problems[0].name", "unknown problem 'single_neurone'"]),
    "unknown_initializer": ([], ["initializers[0].name", "unknown initializer 'zeros'"]),
    "unknown_solver": ([], ["solvers[0].name", "unknown solver 'alt_min'", "altmin"]),
    "unknown_metric": ([], ["metrics.names", "unknown metric 'param_eror'"]),
    "unknown_parameter": ([], ["solvers[0].max_iters", "allowed: max_iter"]),
    "unknown_suite_key": ([], ["'suite.output'", "allowed:"]),
    "unknown_table": ([], ["unknown table 'solver'"]),
    "wrong_type_parameter": ([], ["problems[0].d", "'three' is not an integer"]),
    "wrong_type_trials": ([], ["suite.trials", "is not an int"]),
    "float_for_integer": ([], ["problems[0].n", "10.5 is not an integer"]),
    "bool_for_integer": ([], ["problems[0].d", "True is not an integer"]),
    "zero_samples": ([], ["problems[0].n", "0 must be >= 1"]),
    "negative_dimension": ([], ["problems[0].d", "-3 must be >= 1"]),
    "zero_hidden_units": ([], ["problems[0].k", "0 must be >= 1"]),
    "zero_trials": ([], ["suite.trials", "must be >= 1"]),
    "negative_trials": ([], ["suite.trials", "-5 must be >= 1"]),
    "empty_grid": ([], ["problems[0].n", "empty grid"]),
    "inverted_range": ([], ["problems[0].n", "inverted range"]),
    "zero_step_range": ([], ["problems[0].n", "step 0 must be > 0"]),
    "repeated_axis_value": ([], ["problems[0].d", "repeats a value"]),
    # TOML itself forbids a key twice in a table: the parser's message, with the line.
    "duplicate_axis": ([], ["TOML syntax error", "line 10"]),
    "no_solvers": ([], ["[[solvers]]"]),
    "missing_suite_name": ([], ["suite.name", "required"]),
    "bad_metric_parameter": ([], ["metrics.success.threshold", "-0.5 must be > 0"]),
    "unknown_metric_parameter": ([], ["metrics.success.thresh", "allowed: threshold"]),
    "metric_parameters_not_listed": ([], ["metrics.success", "not a metric listed"]),
    "toml_syntax_error": ([], ["TOML syntax error", "line 18"]),
    "bad_dtype": ([], ["suite.dtype", "float16"]),
    "negative_timeout": ([], ["suite.timeout_s", "must be > 0"]),
    "bad_trace_every": ([], ["metrics.trace_every", "positive integer"]),
    "name_with_slash": ([], ["suite.name", "'a/b' is not allowed"]),
    "name_dotdot": ([], ["suite.name", "'..' is not allowed"]),
    "name_traversal": ([], ["suite.name", "'../../etc' is not allowed"]),
    # There is no key to send results elsewhere: the folder is --results/<suite name>.
    "results_outside": ([], ["'suite.results'", "unknown key"]),
    "unknown_profile_key": ([], ["[profiles.smoke]", "problems.dd"]),
    "bad_profile_value": ([], ["suite.trials", "[profiles.smoke]"]),
    "expect_import": ([], ["expect[0].check", "are not allowed"]),
    "expect_dunder_attribute": ([], ["expect[0].check", "are not allowed"]),
    "expect_lambda": ([], ["expect[0].check", "are not allowed"]),
    "expect_comprehension": ([], ["expect[0].where", "not allowed"]),
    "expect_unknown_function": ([], ["expect[0].check", "calls to 'eval' are not allowed"]),
    "expect_statement": ([], ["expect[0].check", "not a valid expression"]),
    "expect_too_long": ([], ["expect[0].check", "longer than 2000 characters"]),
    "expect_unknown_key": ([], ["expect[0].chek", "unknown key"]),
    "expect_aggregate_in_where": ([], ["expect[0].where", "aggregates"]),
    "expect_not_a_table": ([], ["expect: must be an array of tables", "[[expect]]"]),
    # Values validation let through (issue 14, item 8): refused at load, naming the key.
    "nan_kappa": ([], ["problems[0].kappa", "nan is not a finite number"]),
    "inf_noise_std": ([], ["problems[0].noise_std", "inf is not a finite number"]),
    "nan_step_size": ([], ["solvers[0].step_size", "nan is not a finite number"]),
    "inf_scale": ([], ["initializers[0].scale", "inf is not a finite number"]),
    "nan_timeout": ([], ["suite.timeout_s", "nan must be > 0 and finite"]),
    "inf_timeout": ([], ["suite.timeout_s", "inf must be > 0 and finite"]),
    "negative_seed": ([], ["suite.seed", "-1 must be >= 0"]),
    "huge_integer": ([], ["problems[0].n", "out of range", "64-bit"]),
    "float_for_integer_exact": ([], ["problems[0].n", "10.0 is not an integer", "write 10"]),
    "long_name": ([], ["suite.name", "300 characters", "at most 100"]),
    "nan_range": ([], ["problems[0].n", "finite numbers"]),
    # Sizes counted before expanding (issue 14, item 4); the limit and how to raise it.
    "huge_grid": ([], ["1,000,000,000 cells", "limit of 10,000", "--max-cells 1000000000"]),
    "huge_trials": ([], ["1,000,000,000,000,000,000 trials", "--max-trials"]),
    "ten_million_trials": ([], ["10,000,000 trials", "limit of 1,000,000", "--max-trials"]),
}

VALID = """
[suite]
name = "good"
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
"""

# Bad arguments on a valid suite: (arguments, fragments).
ARGUMENTS: dict[str, tuple[list[str], list[str]]] = {
    "unknown_profile": (["--profile", "nope"], ["unknown profile 'nope'", "smoke"]),
    "missing_plugin_file": (["--plugin", "{here}/does_not_exist.py"], ["--plugin", "no such file"]),
    "plugin_import_error": (
        ["--plugin", "{here}/broken_import_plugin.py"],
        ["import failed", "ModuleNotFoundError", "relubench_this_module_does_not_exist"],
    ),
    "plugin_unknown_module": (
        ["--plugin", "relubench_no_such_plugin_module"],
        ["import failed", "No module named 'relubench_no_such_plugin_module'"],
    ),
    "plugin_unknown_hook": (["--plugin", "{here}/bad_hook_plugin.py"], ["relubench_solverz"]),
    "bad_set_key": (["--set", "problems.dd=3"], ["problems.dd"]),
    "bad_set_value": (["--set", "trials=0"], ["suite.trials", "must be >= 1"]),
    "zero_workers": (["--workers", "0"], ["--workers 0"]),
    "negative_timeout": (["--timeout", "-1"], ["--timeout", "positive"]),
    "unknown_executor": (["--executor", "threads"], ["--executor 'threads'", "processes"]),
    "zero_max_cells": (["--max-cells", "0"], ["--max-cells 0", "must be >= 1"]),
    "results_is_a_file": (["--results", "{tmp}/a-file"], ["--results", "is a file"]),
    "scheduler_without_dask": (
        ["--scheduler", "tcp://127.0.0.1:1"],
        ["--scheduler", "only used with --executor dask"],
    ),
}


def corpus_files() -> list[Path]:
    return sorted(HERE.glob("*.toml"))


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["run", *args, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.err


def test_the_corpus_is_large_and_every_file_has_an_expectation():
    names = {p.stem for p in corpus_files()}
    assert len(names) >= 25
    assert names == set(CORPUS), names ^ set(CORPUS)


@pytest.mark.parametrize("stem", sorted(CORPUS))
def test_malformed_suite_is_exit_2_naming_the_key_and_writes_nothing(
    stem, tmp_path, capsys, monkeypatch
):
    # Hostile expectations try to create a file in the working directory: it must not appear.
    monkeypatch.chdir(tmp_path)
    args, fragments = CORPUS[stem]
    suite = HERE / f"{stem}.toml"
    results = tmp_path / "results"
    code, err = run_cli(
        [str(suite), "--results", str(results), "--executor", "serial", *args], capsys
    )
    assert code == 2, err
    assert err.startswith("relubench: error: ")
    # The message names the file (a TOML error and a key error alike) and the key.
    assert str(suite) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not results.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", sorted(ARGUMENTS))
def test_bad_argument_is_exit_2_with_the_reason_and_writes_nothing(case, tmp_path, capsys):
    args, fragments = ARGUMENTS[case]
    args = [a.replace("{here}", str(HERE)).replace("{tmp}", str(tmp_path)) for a in args]
    suite = tmp_path / "good.toml"
    suite.write_text(VALID)
    (tmp_path / "a-file").write_text("not a folder")
    results = tmp_path / "results"
    code, err = run_cli([str(suite), "--results", str(results), *args], capsys)
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not results.exists()


def test_the_valid_suite_itself_runs(tmp_path, capsys):
    # Guard for the argument cases above: they fail because of the argument alone.
    suite = tmp_path / "good.toml"
    suite.write_text(VALID)
    code, err = run_cli(
        [str(suite), "--results", str(tmp_path / "r"), "--executor", "serial"], capsys
    )
    assert code == 0, err
    assert (tmp_path / "r" / "good" / "runs").is_dir()
