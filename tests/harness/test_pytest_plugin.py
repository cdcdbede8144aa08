"""Suites as pytest tests (harness.pytest_plugin), driven through pytest's own ``pytester``.

Every inner session runs a tiny suite of a self-contained toy plugin (least
squares on a linear teacher: exact recovery iff n >= d), with the built-in
plugins blocked so the tests depend on nothing but the core.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest

# Import the component base classes before pytester snapshots sys.modules: a module first
# imported inside an in-process run is dropped when the snapshot is restored, and the next
# run would define a second `Problem` class that the toy plugin does not subclass.
import harness.components  # noqa: E402, F401
from harness.store import load_results, part_files

pytest_plugins = ["pytester"]

TOY_PLUGIN = (Path(__file__).parents[1] / "fixture_plugins" / "toy.py").read_text()

SUITE = """
[suite]
name = "toy"
trials = 3
seed = 1

[[problems]]
name = "toy_line"
d = 4
n = [2, 8, 16]

[[initializers]]
name = "toy_zero"

[[solvers]]
name = "toy_lsq"

[[solvers]]
name = "toy_stay"

[metrics]
names = ["toy_error"]

[profiles.smoke]
problems.n = [2, 8]

# true: least squares recovers w* exactly once n >= d
[[expect]]
where = "solver == 'toy_lsq' and problem.n >= problem.d"
check = "max(toy_error) < 1e-8"
"""

FALSE_CLAIM = """
# false: below n = d the minimum-norm solution misses w*
[[expect]]
where = "solver == 'toy_lsq' and problem.n < problem.d"
check = "mean(toy_error) < 1e-3"
"""

PER_CELL = """
# one group per cell (solver and n single out cells): checked inside the cell items;
# cells outside `where` (n < d) are not judged by it
[[expect]]
where = "solver == 'toy_lsq' and problem.n >= problem.d"
check = "max(toy_error) < 1e-8"
by = ["solver", "problem.n"]
"""

# Volatile columns: who computed a row and when, not what it is.
VOLATILE = ["run_id", "created_at", "host", "time_s", "time_mode"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A folder with the toy plugin and an ini that loads it and blocks every built-in plugin."""
    plugin = pytester.makepyfile(toy_plugin=TOY_PLUGIN)
    # In-process pytester sessions restore sys.modules after each run, which would drop the
    # module `--plugin` imports; a component's source version (part of the cell id) is read
    # through sys.modules, so keep the module there as a real process would.
    spec = importlib.util.spec_from_file_location("relubench_plugin_toy_plugin", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "relubench_plugin_toy_plugin", module)
    blocked = sorted(ep.name for ep in entry_points(group="relubench"))
    pytester.makeini(
        "[pytest]\n"
        f"relubench_plugins = {plugin}\n"
        "relubench_block =\n" + "".join(f"    {name}\n" for name in blocked)
    )
    pytester.makefile(".toml", other="[tool.something]\nx = 1\n")  # not a suite: ignored
    return pytester


def write_suite(pytester: pytest.Pytester, *extra: str) -> Path:
    return pytester.makefile(".toml", toy=textwrap.dedent(SUITE + "".join(extra)))


def stored(pytester: pytest.Pytester, results: str = "results") -> pd.DataFrame:
    return load_results(pytester.path / results / "toy")


def comparable(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns=VOLATILE).sort_values(["cell_id", "trial"]).reset_index(drop=True)


def test_collection_ids_counts_and_selection(project):
    write_suite(project, FALSE_CLAIM, PER_CELL)
    result = project.runpytest("--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "toy.toml::toy::toy_lsq[toy_line n=2, toy_zero]",
        "toy.toml::toy::toy_stay[toy_line n=2, toy_zero]",
        "toy.toml::toy::toy_lsq[toy_line n=8, toy_zero]",
        "toy.toml::toy::toy_stay[toy_line n=8, toy_zero]",
        "toy.toml::toy::expect[0]",
        "toy.toml::toy::expect[1]",
        # expect[2] groups by (solver, problem.n): it is judged inside the cell items
    ]
    # -k on solver names, -m on the marker; other.toml (no [suite]) is never collected
    result = project.runpytest("--collect-only", "-q", "-k", "toy_stay")
    assert [line for line in result.outlines if "::" in line] == [ids[1], ids[3]]
    result = project.runpytest("--collect-only", "-q", "-m", "relubench and not slow")
    assert [line for line in result.outlines if "::" in line] == ids
    assert (project.path / "results").exists() is False  # collecting runs nothing


def test_profile_option_switches_the_grid_and_marks_slow(project):
    write_suite(project)

    def collected(*args: str) -> list[str]:
        result = project.runpytest("--collect-only", "-q", *args)
        return [line for line in result.outlines if "::" in line]

    assert len(collected()) == 2 * 2 + 1  # smoke by default: n in [2, 8]
    full = collected("--relubench-profile", "none")
    assert len(full) == 2 * 3 + 1 and "toy.toml::toy::toy_lsq[toy_line n=16, toy_zero]" in full
    # a suite without the requested profile runs as written and is marked slow
    assert collected("--relubench-profile", "paper") == full
    assert collected("--relubench-profile", "paper", "-m", "not slow") == []
    # the ini option sets the default profile
    project.makeini((project.path / "tox.ini").read_text() + "\nrelubench_profile = none\n")
    assert collected() == full


def test_passing_and_failing_expectations_report_the_measured_value(project):
    write_suite(project, FALSE_CLAIM, PER_CELL)
    result = project.runpytest("-rA")
    result.assert_outcomes(passed=5, failed=1)
    runs = stored(project)
    lsq_small = runs[(runs["solver"] == "toy_lsq") & (runs["problem.n"] == 2)]
    measured = lsq_small["metric.toy_error"].mean()
    assert measured > 0.1  # the claim is false, by a wide margin
    text = result.stdout.str()
    line = f"failed mean(toy_error) < 1e-3  measured {measured:.4g} (n=3 rows)"
    assert line in text
    # the report shows the rows and how to rerun a cell alone
    assert "metric.toy_error" in text and "toy_lsq toy_line" in text
    assert "pytest 'toy.toml::toy::toy_lsq[toy_line n=2, toy_zero]'" in text
    assert "FAILED toy.toml::toy::expect[1]" in text
    # the true claim held with its measured maximum error printed
    best = runs[(runs["solver"] == "toy_lsq") & (runs["problem.n"] == 8)]["metric.toy_error"].max()
    assert best < 1e-8
    assert f"held   max(toy_error) < 1e-8  measured {best:.4g} (n=3 rows)" in text


def test_failed_trial_fails_its_cell_only_and_names_the_rerun_command(project):
    write_suite(project)
    result = project.runpytest("--relubench-profile", "none", "-k", "toy_lsq")
    result.assert_outcomes(passed=3, deselected=4)
    (project.path / "toy.toml").write_text(
        textwrap.dedent(SUITE).replace('name = "toy_lsq"', 'name = "toy_lsq"\ndiverge = true')
    )
    result = project.runpytest("--relubench-profile", "none")
    # every toy_lsq trial now diverges (new parameters: new cells, computed afresh); the
    # toy_stay cells pass; the claim on toy_lsq fails on NaN errors
    result.assert_outcomes(failed=3 + 1, passed=3)
    text = result.stdout.str()
    assert "max(toy_error) has 6 missing (NaN) of 6 values" in text
    # the expectation item did not run the failed cells again in the same session
    runs = load_results(project.path / "results" / "toy", dedupe=False)
    diverging = runs[runs["solver.diverge"].astype(bool)]
    assert len(diverging) == 3 * 3 and set(diverging["status"]) == {"diverged"}
    assert "3 of 3 trials not ok: toy::toy_lsq[toy_line n=2, toy_zero]" in text
    assert "diverged" in text and "non-finite weights or loss" in text
    rerun = "pytest 'toy.toml::toy::toy_lsq[toy_line n=8, toy_zero]' --relubench-profile none"
    assert rerun in text
    alone = project.runpytest(
        "toy.toml::toy::toy_lsq[toy_line n=8, toy_zero]", "--relubench-profile", "none"
    )
    alone.assert_outcomes(failed=1)
    # a new session retries the cell's failed trials (resume keeps only ok trials)
    runs = load_results(project.path / "results" / "toy", dedupe=False)
    assert len(runs[runs["solver.diverge"].astype(bool)]) == 3 * 3 + 3


def test_rerun_executes_no_cell_and_force_recomputes(project):
    write_suite(project)
    project.runpytest().assert_outcomes(passed=5)
    runs_dir = project.path / "results" / "toy" / "runs"
    first = part_files(runs_dir)
    assert len(first) == 4  # one part file per cell, written once
    before = load_results(runs_dir, dedupe=False)
    assert len(before) == 4 * 3

    project.runpytest().assert_outcomes(passed=5)
    assert part_files(runs_dir) == first  # nothing ran again

    project.runpytest("--relubench-force", "-k", "toy_stay").assert_outcomes(passed=2, deselected=3)
    assert len(part_files(runs_dir)) == 4 + 2
    # recomputed trials are the same numbers; readers still see one row per trial
    assert comparable(stored(project)).equals(comparable(before))


def test_expectation_alone_runs_only_the_missing_cells(project):
    write_suite(project)
    project.runpytest("-k", "toy_lsq and not expect").assert_outcomes(passed=2, deselected=3)
    runs_dir = project.path / "results" / "toy" / "runs"
    assert len(part_files(runs_dir)) == 2
    project.runpytest("toy.toml::toy::expect[0]").assert_outcomes(passed=1)
    runs = load_results(runs_dir, dedupe=False)
    assert len(part_files(runs_dir)) == 4 and len(runs) == 4 * 3  # the 2 missing cells, once


def test_xdist_gives_the_table_serial_and_relubench_run_give(project):
    pytest.importorskip("xdist")
    from harness.run import execute

    write_suite(project)
    project.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=5)
    parallel = load_results(project.path / "results" / "toy", dedupe=False)
    # the per-cell lock computed every trial exactly once across workers
    assert len(parallel) == 4 * 3 and not parallel.duplicated(["cell_id", "trial"]).any()
    # one run id for the whole session, shared by its workers
    assert parallel["run_id"].nunique() == 1 and parallel["run_id"][0].startswith("pytest-")

    project.runpytest("-n", "0", "--relubench-results", "serial").assert_outcomes(passed=5)
    serial = stored(project, "serial")
    assert comparable(parallel).equals(comparable(serial))

    blocked = sorted(ep.name for ep in entry_points(group="relubench"))
    report = execute(
        project.path / "toy.toml",
        profile="smoke",
        executor="serial",
        results=project.path / "cli",
        plugins=[str(project.path / "toy_plugin.py")],
        blocked=blocked,
    )
    assert report.exit_code == 0
    cli = stored(project, "cli")
    assert comparable(cli).equals(comparable(serial))
    assert list(cli.columns) == list(serial.columns)
    lsq = cli[cli["solver"] == "toy_lsq"]
    assert (lsq[lsq["problem.n"] >= 4]["metric.toy_error"] < 1e-8).all()  # n >= d: exact
    assert (lsq[lsq["problem.n"] < 4]["metric.toy_error"] > 1e-3).all()  # n < d: not


def test_per_cell_claim_is_judged_inside_each_cell_item(project):
    write_suite(project, PER_CELL.replace(" and problem.n >= problem.d", ""))
    result = project.runpytest()
    # 4 cells + expect[0]; the per-cell claim fails only in the cell where n < d
    result.assert_outcomes(passed=4, failed=1)
    text = result.stdout.str()
    assert "FAILED toy.toml::toy::toy_lsq[toy_line n=2, toy_zero]" in text
    assert "failed max(toy_error) < 1e-8  [solver=toy_lsq problem.n=2]  measured" in text
    assert "expect[1]" not in text


FAULTY_PLUGIN = Path(__file__).parents[1] / "fixture_plugins" / "faulty.py"

MISBEHAVING = """
[suite]
name = "misbehaving"
trials = 2
seed = 3
timeout_s = 2.0

[[problems]]
name = "single_neuron"
d = 4
n = 16

[[initializers]]
name = "gaussian"

[[solvers]]
name = "faulty"
mode = ["hang", "sys_exit", "exit0", "bad_shape", "ok"]

[metrics]
names = ["param_error"]
"""


def test_pytest_honours_timeout_s_and_contains_exits_and_bad_results(pytester):
    # With timeout_s, a hanging cell is stopped (in the serial executor's child process).
    timed = MISBEHAVING.replace('"sys_exit", "exit0", "bad_shape", ', "")
    pytester.makefile(".toml", misbehaving=timed)
    # Without, cells run in the pytest process: exits and bad results must not end it.
    in_process = MISBEHAVING.replace("timeout_s = 2.0", "").replace('"hang", ', "")
    pytester.makefile(".toml", in_process=in_process.replace("misbehaving", "in_process"))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        f"--relubench-plugin={FAULTY_PLUGIN}",
        timeout=240,
    )
    # One passed cell (ok) per suite, every misbehaving cell a failed test: the session ends.
    result.assert_outcomes(passed=2, failed=1 + 3)
    hung = load_results(pytester.path / "results" / "misbehaving")
    assert set(hung[hung["solver.mode"] == "hang"]["status"]) == {"timeout"}
    assert set(hung[hung["solver.mode"] == "ok"]["status"]) == {"ok"}
    runs = load_results(pytester.path / "results" / "in_process")
    by_mode = {m: g for m, g in runs.groupby("solver.mode")}
    assert set(by_mode["ok"]["status"]) == {"ok"}
    for mode in ("sys_exit", "exit0", "bad_shape"):
        assert set(by_mode[mode]["status"]) == {"error"}, mode
    assert by_mode["sys_exit"]["error"].str.startswith("ExitCalled: sys.exit(3) was called").all()
    assert by_mode["exit0"]["error"].str.startswith("ExitCalled: os._exit(0) was called").all()
    assert by_mode["bad_shape"]["error"].str.contains(r"returned weights\['W'\] of shape").all()


TUNABLE_PLUGIN = (Path(__file__).parents[1] / "fixture_plugins" / "tunable.py").read_text()


@pytest.fixture
def tunable(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tunable fixture plugin next to the toy one: the options that load it."""
    plugin = project.makepyfile(tunable_plugin=TUNABLE_PLUGIN)
    spec = importlib.util.spec_from_file_location("relubench_plugin_tunable_plugin", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "relubench_plugin_tunable_plugin", module)
    return ["--relubench-plugin", plugin.name]


TUNED_SUITE = """
[suite]
name = "toy"
trials = 2
seed = 1

[[problems]]
name = "toy_line"
d = 4
n = [8, 16]

[[initializers]]
name = "toy_zero"

[[solvers]]
name = "toy_scaled"
scale = { tune = [0.5, 1.0, 2.0] }

[[solvers]]
name = "toy_stay"

[tuning]
metric = "toy_error"
goal = "min"
trials = 2

[metrics]
names = ["toy_error"]

# holds only with the chosen scale 1.0: the tuning rows (0.5, 2.0) would fail it
[[expect]]
where = "solver == 'toy_scaled'"
check = "max(toy_error) < 1e-8"
"""


def test_tuned_suite_tunes_first_and_judges_claims_on_reported_rows(project, tunable, monkeypatch):
    log = project.path / "hooks.log"
    monkeypatch.setenv("RELUBENCH_HOOK_LOG", str(log))
    project.makefile(".toml", toy=TUNED_SUITE)
    plugin = tunable
    result = project.runpytest("-v", *plugin)
    # items: the reported cells (the chosen scale only) and the claim
    result.assert_outcomes(passed=5)
    ids = [line.split(" PASSED")[0] for line in result.outlines if " PASSED" in line]
    assert ids == [  # the chosen value is in the id
        "toy.toml::toy::toy_scaled[toy_line n=8, toy_zero, scale=1]",
        "toy.toml::toy::toy_stay[toy_line n=8, toy_zero]",
        "toy.toml::toy::toy_scaled[toy_line n=16, toy_zero, scale=1]",
        "toy.toml::toy::toy_stay[toy_line n=16, toy_zero]",
        "toy.toml::toy::expect[0]",
    ]
    runs = stored(project)
    tune, test = runs[runs["split"] == "tune"], runs[runs["split"] == "test"]
    assert sorted(tune["solver.scale"].unique()) == [0.5, 1.0, 2.0]
    assert len(tune) == 2 * 3 * 2  # n values x scale values x tuning trials
    assert set(test.loc[test["solver"] == "toy_scaled", "solver.scale"]) == {1.0}
    assert len(test) == 2 * 2 * 2  # n values x solvers x trials
    assert (project.path / "results" / "toy" / "tuning.json").exists()
    # the run started (once) before any cell of either phase ran
    lines = log.read_text().splitlines()
    assert lines[0].startswith("start") and sum(x.startswith("start") for x in lines) == 1
    assert [x.split()[1] for x in lines[1:]] == ["tune"] * 6 + ["test"] * 4
    # a second session resumes both phases: nothing runs again
    log.unlink()
    project.runpytest(*plugin).assert_outcomes(passed=5)
    assert log.read_text().splitlines() == ["start 6"]
    assert len(stored(project)) == len(runs)


def test_tuned_claim_fails_when_the_reported_value_misses_it(project, tunable):
    # goal max chooses scale 2.0: the claim, judged on the reported rows, fails
    project.makefile(".toml", toy=TUNED_SUITE.replace('goal = "min"', 'goal = "max"'))
    result = project.runpytest(*tunable)
    result.assert_outcomes(passed=4, failed=1)
    assert "FAILED toy.toml::toy::expect[0]" in result.stdout.str()
    runs = stored(project)
    assert set(runs.loc[runs["split"] == "test", "solver.scale"].dropna()) == {2.0}
