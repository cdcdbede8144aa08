"""The tuning protocol: `{ tune = [...] }` axes, the [tuning] table, disjoint tuning seeds,
selection per reported cell, the `split` column and what the run reports about it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import InputError, load_results
from harness.run import execute, prepare

SUITE = """
[suite]
name = "tuned"
trials = 3
seed = 0

[[problems]]
name = "single_neuron"
d = 5
n = [40, 60]

[[initializers]]
name = "zero"

[[solvers]]
name = "gd"
step_size = {{ tune = [1e-5, 0.5] }}
max_iter = 200

[[solvers]]
name = "altmin"
max_iter = 20

[tuning]
metric = "param_error"
goal = "{goal}"
trials = 2

[metrics]
names = ["param_error"]

[profiles.smoke]
tuning.trials = 1
solvers.gd.step_size = {{ tune = [1e-5, 0.3] }}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tuned.toml"
    path.write_text(text)
    return path


def test_tuning_selects_per_cell_on_disjoint_seeds_and_reports_the_choice(tmp_path):
    path = _write(tmp_path, SUITE.format(goal="min"))
    report = execute(path, executor="serial", results=tmp_path / "res")
    runs = load_results(report.results_dir)
    tune, test = runs[runs["split"] == "tune"], runs[runs["split"] == "test"]
    # tuning: every value of the gd axis, 2 trials per cell, only the tuned solver
    assert set(tune["solver"]) == {"gd"}
    assert sorted(tune["solver.step_size"].unique()) == [1e-5, 0.5]
    assert len(tune) == 2 * 2 * 2  # n values x step values x tuning trials
    # reported cells: the selected (better) step only, and the untuned solver as written
    assert set(test.loc[test["solver"] == "gd", "solver.step_size"]) == {0.5}
    assert len(test) == 2 * 2 * 3  # n values x solvers x trials
    # tuning trials never share data seeds with reported trials
    assert not set(tune["seed"]) & set(test["seed"])
    # the choice is reported: one per reported gd cell, with grid, scores and choice
    assert len(report.tuning) == 2
    choice = report.tuning[0]
    assert choice.chosen == {"step_size": 0.5} and choice.candidates[0] == {"step_size": 1e-5}
    assert choice.scores[1] < choice.scores[0]
    assert "step_size in {1e-05, 0.5} -> 0.5" in choice.describe()
    saved = json.loads((report.results_dir / "tuning.json").read_text())
    assert [c["chosen"] for c in saved] == [{"step_size": 0.5}] * 2
    # claims are judged on the reported rows only
    assert set(report.runs["split"]) == {"test"}
    # a rerun resumes both phases
    again = execute(path, executor="serial", results=tmp_path / "res")
    assert again.trials_run == 0 and again.tuning_trials_run == 0


def test_goal_max_selects_the_other_value_and_profiles_override_the_grid(tmp_path):
    path = _write(tmp_path, SUITE.format(goal="max"))
    report = execute(path, executor="serial", results=tmp_path / "res", profile="smoke")
    assert {c.chosen["step_size"] for c in report.tuning} == {1e-5}
    assert {c.trials for c in report.tuning} == {1}
    _, suite, cells, _ = prepare(path, profile="smoke")
    assert {c.split for c in cells} == {"tune"} and suite.tuning.trials == 1


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[tuning]", "[nottuning]", "unknown table"),
        ('metric = "param_error"\n', "", "tuning.metric' is required"),
        ('metric = "param_error"', 'metric = "success"', "not a metric of metrics.names"),
        ('goal = "min"', 'goal = "lowest"', "allowed: min, max"),
        ("trials = 2\n\n[metrics]", "trials = 0\n\n[metrics]", "must be >= 1"),
        ("d = 5", "d = { tune = [5, 6] }", "for solver parameters only"),
        ("{ tune = [1e-5, 0.5] }", "{ tune = [0.5] }", "at least two values"),
        ("{ tune = [1e-5, 0.5] }", "{ tune = [0.1, 0.5], x = 1 }", "alone"),
        ("max_iter = 20\n", "max_iter = { tune = [10, 20, 30] }\n", "same tuning budget"),
    ],
)
def test_bad_tuning_is_rejected_at_load_naming_the_key(tmp_path, old, new, message):
    text = SUITE.format(goal="min")
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(InputError, match=message):
        prepare(path)


def test_a_tune_axis_needs_the_tuning_table(tmp_path):
    text = SUITE.format(goal="min")
    start = text.index("[tuning]")
    text = text[:start] + text[text.index("[metrics]") :]
    with pytest.raises(InputError, match="no \\[tuning\\] table"):
        prepare(_write(tmp_path, text.replace("tuning.trials = 1\n", "")))


def test_the_report_leaves_tuning_rows_out_and_states_the_choices(tmp_path):
    from harness.report import build_report

    path = _write(tmp_path, SUITE.format(goal="min"))
    report = execute(path, executor="serial", results=tmp_path / "res")
    out = build_report(report.results_dir, n_boot=20)
    summary = (out / "summary.md").read_text()
    assert "## Tuning" in summary
    assert "step_size in {1e-05, 0.5} -> 0.5" in summary
    assert "1e-05" not in summary.split("## Tuning")[0]  # no tuning cell in the tables


HOOKS_PLUGIN = Path(__file__).parents[1] / "fixture_plugins" / "tunable.py"


def test_run_start_comes_before_every_cell_of_both_phases(tmp_path, monkeypatch):
    log = tmp_path / "hooks.log"
    monkeypatch.setenv("RELUBENCH_HOOK_LOG", str(log))
    path = _write(tmp_path, SUITE.format(goal="min"))
    execute(path, executor="serial", results=tmp_path / "res", plugins=[str(HOOKS_PLUGIN)])
    lines = log.read_text().splitlines()
    # once, first, with the tuning cells (n values x step values); then 4 tuning units
    # and the 4 reported cells (n values x solvers)
    assert lines[0] == "start 4" and sum(x.startswith("start") for x in lines) == 1
    splits = [x.split()[1] for x in lines[1:]]
    assert splits == ["tune"] * 4 + ["test"] * 4


def test_dry_run_shows_the_tuning_cells_then_the_reported_count(tmp_path, capsys):
    from harness.cli import main

    path = _write(tmp_path, SUITE.format(goal="min"))
    assert main(["run", str(path), "--dry-run", "--results", str(tmp_path / "r")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "tuning cells (split = tune): 4 cells x 2 tuning trials = 8 trials" in text
    assert "selecting by min mean param_error" in text
    assert "reported cells: chosen after tuning, 4 cells x 3 trials = 12 trials" in text
    assert text.index("tuning cells") < text.index("step_size=1e-05") < text.index("reported")
    assert not (tmp_path / "r").exists()


def test_only_filters_both_phases_of_a_tuned_suite(tmp_path):
    path = _write(tmp_path, SUITE.format(goal="min"))
    # a solver without tuning axes exists only in the reported phase: --only may name it
    report = execute(path, executor="serial", results=tmp_path / "a", only=["solver=altmin"])
    runs = load_results(report.results_dir)
    assert set(runs["solver"]) == {"altmin"} and set(runs["split"]) == {"test"}
    assert len(runs) == 2 * 3  # n values x trials; no tuning cell ran
    # a problem term keeps the matching cells of both phases, untuned solvers included
    report = execute(path, executor="serial", results=tmp_path / "b", only=["problem.n=40"])
    runs = load_results(report.results_dir)
    assert set(runs["problem.n"]) == {40}
    assert set(runs.loc[runs["split"] == "test", "solver"]) == {"gd", "altmin"}
    assert len(runs[runs["split"] == "tune"]) == 2 * 2  # step values x tuning trials
    # a term matching neither phase is still refused, naming the values of both
    with pytest.raises(InputError, match="altmin, gd"):
        prepare(path, only=["solver=sgd"])
