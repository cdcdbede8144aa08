"""Core behaviour: expansion, seeds, resume, store, failures, executors, the CLI's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import load_results
from harness.cli import main
from harness.rows import runs_schema
from harness.run import batch_invariant, execute, plan_units, prepare
from harness.runner import run_unit
from harness.store import PartWriter, Store, part_files, part_stem

BASE = """
[suite]
name = "core-test"
trials = 3
seed = 7

[[problems]]
name = "one_hidden"
d = 6
k = 2
n = [30, 60]

[[initializers]]
name = "gaussian"
scale = 0.5

[[solvers]]
name = "probe"
tag = [1, 2]

[[solvers]]
name = "additive_only"

[metrics]
names = ["param_error"]
"""


def test_expansion_counts_and_dropped_combinations(write_suite, probe_plugin):
    _, suite, cells, dropped = prepare(write_suite(BASE), plugins=[str(probe_plugin)])
    # 2 values of n x 1 initializer x (2 probe tags + 1 incompatible solver)
    assert len(cells) == 4
    assert len(dropped) == 2
    assert all("additive_only" in d.solver and "some_other_family" in d.reason for d in dropped)
    assert len({c.cell_id for c in cells}) == 4
    assert {c.label for c in cells} == {
        f"probe[one_hidden n={n}, gaussian, tag={t}]" for n in (30, 60) for t in (1, 2)
    }


def test_cell_ids_are_stable_across_processes(write_suite, probe_plugin):
    path = write_suite(BASE)
    _, _, cells, _ = prepare(path, plugins=[str(probe_plugin)])
    code = (
        "import json, sys; from harness.run import prepare; "
        f"_, _, cells, _ = prepare({str(path)!r}, plugins=[{str(probe_plugin)!r}]); "
        "print(json.dumps([c.cell_id for c in cells]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [c.cell_id for c in cells]


def test_cell_id_changes_with_parameters_and_seed_but_not_trials(write_suite, probe_plugin):
    ids = lambda *o: [
        c.cell_id for c in prepare(write_suite(BASE), plugins=[str(probe_plugin)], overrides=o)[2]
    ]
    base = ids()
    assert ids("trials=10") == base
    assert set(ids("seed=8")).isdisjoint(base)
    assert set(ids("problems.k=3")).isdisjoint(base)


def test_solvers_see_identical_data_and_initial_weights(write_suite, probe_plugin, tmp_path):
    report = execute(
        write_suite(BASE), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    runs = load_results(report.results_dir)
    assert len(runs) == 4 * 3
    for _n, group in runs.groupby("problem.n"):
        by_tag = {t: g.sort_values("trial") for t, g in group.groupby("solver.tag")}
        a, b = by_tag[1], by_tag[2]
        for col in ("metric.x_sum", "metric.y_sum", "metric.w0_sum", "metric.rand", "seed"):
            assert a[col].tolist() == b[col].tolist(), col
        # ...while different trials see different data.
        assert a["metric.x_sum"].nunique() == 3
    # Different n: different problem key, different data.
    assert runs.groupby("problem.n")["metric.x_sum"].first().nunique() == 2


def test_trial_data_does_not_depend_on_chunking(write_suite, probe_plugin, tmp_path):
    whole = execute(
        write_suite(BASE), plugins=[str(probe_plugin)], results=tmp_path / "a", executor="serial"
    )
    chunked = execute(
        write_suite(BASE),
        plugins=[str(probe_plugin)],
        results=tmp_path / "b",
        executor="serial",
        overrides=["chunk_trials=1"],
    )
    cols = ["cell_id", "trial", "metric.x_sum", "metric.w0_sum", "metric.rand"]
    a = (
        load_results(whole.results_dir)[cols]
        .sort_values(["cell_id", "trial"])
        .reset_index(drop=True)
    )
    b = (
        load_results(chunked.results_dir)[cols]
        .sort_values(["cell_id", "trial"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(a, b)
    assert chunked.units_run == 12 and whole.units_run == 4


def test_resume_skips_and_force_reruns(write_suite, probe_plugin, tmp_path):
    path = write_suite(BASE)
    kw = dict(plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial")
    first = execute(path, **kw)
    assert first.trials_run == 12 and first.trials_skipped == 0
    second = execute(path, **kw)
    assert second.trials_run == 0 and second.trials_skipped == 12
    assert len(part_files(first.results_dir / "runs")) == 4
    more = execute(path, overrides=["trials=5"], **kw)  # extends the same cells
    assert more.trials_run == 8
    forced = execute(path, force=True, **kw)
    assert forced.trials_run == 12
    raw = load_results(first.results_dir, dedupe=False)
    assert len(raw) == 12 + 8 + 12
    deduped = load_results(first.results_dir)
    assert len(deduped) == 20
    assert not deduped.duplicated(["cell_id", "trial"]).any()


def test_half_written_part_file_is_ignored_by_readers(write_suite, probe_plugin, tmp_path):
    report = execute(
        write_suite(BASE), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    runs_dir = report.results_dir / "runs"
    (runs_dir / ".part-deadbeef-00000-x.parquet.tmp-123").write_bytes(b"PAR1 not really")
    assert len(load_results(report.results_dir)) == 12
    assert len(pd.read_parquet(runs_dir)) == 12


def test_a_cells_rows_are_found_in_coalesced_part_files(write_suite, probe_plugin, tmp_path):
    """A run of many small units writes several units per part file, named after the first;
    a reader of one cell (a pytest cell item) still finds that cell's rows, and only those."""
    plugins = [str(probe_plugin)]
    _, suite, cells, _ = prepare(write_suite(BASE), plugins=plugins)
    results = [run_unit(u) for u in plan_units(suite, cells, set(), run_id="r", plugins=plugins)]
    store = Store(tmp_path / "coalesced")
    writer = PartWriter(store, runs_schema(cells), {}, coalesce=True)
    writer.MAX_AGE_S = 1e9
    for r in results:
        writer.add(r.runs, r.traces, cell_id=r.unit.cell.cell_id, first_trial=0, run_id="r")
    assert store.part_files() == []  # still buffered
    writer.flush()
    (coalesced,) = store.part_files()
    assert f"part-{cells[0].cell_id}-00000-r-u4-" in coalesced
    single = Store(tmp_path / "single")
    for r in results:
        single.write(
            r.runs, [], runs_schema(cells), {}, stem=part_stem(r.unit.cell.cell_id, 0, "r")
        )
    for cell in cells:
        assert store.part_files(cell.cell_id) == [coalesced]
        assert len(single.part_files(cell.cell_id)) == 1
        for s in (store, single):
            rows = s.suite_rows([cell])
            assert list(rows["trial"]) == [0, 1, 2] and set(rows["cell_id"]) == {cell.cell_id}
            assert set(s.index(cell.cell_id)["cell_id"]) == {cell.cell_id}


def test_parquet_follows_the_contract(write_suite, probe_plugin, tmp_path):
    report = execute(
        write_suite(BASE), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    runs = pd.read_parquet(report.results_dir / "runs")
    for col in (
        "suite",
        "run_id",
        "cell_id",
        "trial",
        "seed",
        "problem",
        "initializer",
        "solver",
        "problem.d",
        "problem.k",
        "problem.n",
        "problem.kappa",
        "initializer.scale",
        "solver.tag",
        "status",
        "error",
        "iterations",
        "time_s",
        "time_mode",
        "metric.param_error",
        "created_at",
        "host",
        "harness_version",
    ):
        assert col in runs.columns, col
    assert set(runs["status"]) == {"ok"}
    assert runs["error"].isna().all()
    assert set(runs["time_mode"]) == {"batched"}
    from harness.store import read_metadata

    meta = read_metadata(part_files(report.results_dir / "runs")[0])
    assert {"torch", "numpy", "git_commit", "cpu", "torch_threads", "plugins"} <= set(meta)


def test_failing_solver_gives_error_rows_and_the_run_finishes(write_suite, probe_plugin, tmp_path):
    text = BASE.replace('name = "additive_only"', 'name = "boom"').replace(
        "tag = [1, 2]", "tag = 1"
    )
    report = execute(
        write_suite(text), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    runs = load_results(report.results_dir)
    boom = runs[runs["solver"] == "boom"]
    assert len(boom) == 6 and set(boom["status"]) == {"error"}
    assert boom["error"].str.contains("boom: this solver always fails").all()
    assert set(runs.loc[runs["solver"] == "probe", "status"]) == {"ok"}
    assert report.exit_code == 1


def test_non_finite_weights_are_diverged_for_that_trial_only(write_suite, probe_plugin, tmp_path):
    text = BASE.replace('name = "additive_only"', 'name = "nan_solver"')
    report = execute(
        write_suite(text),
        plugins=[str(probe_plugin)],
        results=tmp_path / "r",
        executor="serial",
        overrides=["solvers.probe.tag=1"],
    )
    runs = load_results(report.results_dir)
    nan = runs[runs["solver"] == "nan_solver"].sort_values(["problem.n", "trial"])
    assert nan["status"].tolist() == ["diverged", "ok", "ok"] * 2
    assert nan.loc[nan["status"] == "ok", "metric.param_error"].notna().all()


SMALL = """
[suite]
name = "small"
trials = 3

[[problems]]
name = "one_hidden"
d = 5
k = 2
n = [15, 60]

[[initializers]]
name = "gaussian"
scale = 0.3

[[solvers]]
name = "altmin"

[[solvers]]
name = "gd"
max_iter = 50

[metrics]
names = ["param_error", "train_loss"]
"""


def test_serial_and_processes_give_equal_metrics(write_suite, tmp_path):
    path = write_suite(SMALL)
    a = execute(path, executor="serial", results=tmp_path / "s")
    b = execute(path, executor="processes", workers=2, results=tmp_path / "p")
    cols = ["cell_id", "trial", "iterations", "metric.param_error", "metric.train_loss"]
    ra = load_results(a.results_dir)[cols].sort_values(["cell_id", "trial"]).reset_index(drop=True)
    rb = load_results(b.results_dir)[cols].sort_values(["cell_id", "trial"]).reset_index(drop=True)
    assert len(ra) == 12
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)


# --- the command line ------------------------------------------------------------


def test_cli_bad_parameter_exits_2_naming_the_key(write_suite, probe_plugin, tmp_path, capsys):
    path = write_suite(BASE.replace("n = [30, 60]", 'n = [30, "many"]'))
    code = main(["run", str(path), "--plugin", str(probe_plugin), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "problems[0].n" in err and "'many' is not an integer" in err and str(path) in err
    assert not (tmp_path / "r").exists()


def test_cli_unknown_solver_lists_what_exists(write_suite, tmp_path, capsys):
    path = write_suite(BASE.replace('name = "probe"', 'name = "nope"'))
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "solvers[0].name" in err and "unknown solver 'nope'" in err and "altmin" in err


def test_cli_plugin_file_adds_a_solver_and_dry_run_writes_nothing(
    write_suite, probe_plugin, tmp_path, capsys
):
    path = write_suite(BASE)
    code = main(
        [
            "run",
            str(path),
            "--plugin",
            str(probe_plugin),
            "--dry-run",
            "--results",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "4 cells x 3 trials" in out and "dropped 2" in out
    assert not (tmp_path / "r").exists()
    assert (
        main(
            [
                "run",
                str(path),
                "--plugin",
                str(probe_plugin),
                "--results",
                str(tmp_path / "r"),
                "--executor",
                "serial",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(load_results(tmp_path / "r" / "core-test")) == 12


def test_cli_blocking_a_plugin_removes_its_components(capsys):
    assert main(["list", "solvers", "-p", "no:jagatap_hegde"]) == 0
    out = capsys.readouterr().out
    assert "altmin" not in out and "gd" in out


def test_two_plugins_registering_one_name_is_an_error(tmp_path, capsys):
    clash = tmp_path / "clash.py"
    clash.write_text(
        "from harness import Solver, hookimpl\n"
        "class AltMin(Solver):\n    name = 'altmin'\n"
        "@hookimpl\ndef relubench_solvers():\n    return [AltMin]\n"
    )
    assert main(["list", "--plugin", str(clash)]) == 2
    err = capsys.readouterr().err
    assert "'altmin' is registered twice" in err and "jagatap_hegde" in err and "clash" in err


def test_set_override_with_unknown_key_is_an_input_error(
    write_suite, probe_plugin, tmp_path, capsys
):
    path = write_suite(BASE)
    code = main(
        [
            "run",
            str(path),
            "--plugin",
            str(probe_plugin),
            "--set",
            "problems.zzz=3",
            "--results",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "problems.zzz" in capsys.readouterr().err


def test_show_prints_doc_and_parameters(capsys):
    assert main(["show", "solver", "altmin"]) == 0
    out = capsys.readouterr().out
    assert "Algorithm 1" in out and "max_iter" in out and "100" in out


TRACED = """
[suite]
name = "traced"
trials = 2

[[problems]]
name = "one_hidden"
d = 5
k = 2
n = 80

[[initializers]]
name = "gaussian"
scale = 0.3

[[solvers]]
name = "gd"
max_iter = 40

[metrics]
names = ["param_error"]
trace = ["train_loss"]
trace_every = TRACE_EVERY
"""


@pytest.mark.parametrize("every", ['"all"', "7", '"log"'])
def test_traces_follow_the_schedule_and_end_at_the_final_value(write_suite, tmp_path, every):
    from harness.store import load_traces

    path = write_suite(TRACED.replace("TRACE_EVERY", every))
    report = execute(path, executor="serial", results=tmp_path)
    runs = load_results(report.results_dir).set_index("trial")
    traces = load_traces(report.results_dir)
    assert set(traces["metric"]) == {"train_loss"}
    for trial, curve in traces.groupby("trial"):
        its = curve["iteration"].tolist()
        assert its == sorted(set(its)), "one point per iteration, in order"
        final = runs.loc[trial]
        assert its[-1] == final["iterations"] == 40
        assert curve["value"].iloc[-1] == pytest.approx(final["metric.train_loss"], rel=1e-12)
        recorded = its[:-1]  # the last point is the final iterate the runner adds
        if every == '"all"':
            assert its == list(range(1, 41))
        elif every == "7":
            assert recorded == [7, 14, 21, 28, 35]
        else:
            assert its[:10] == list(range(1, 11)) and len(its) < 25
        # Training loss falls along the curve (the trace is of the iterates, not a constant).
        assert curve["value"].iloc[-1] < curve["value"].iloc[0]


def test_source_version_does_not_depend_on_sys_modules(probe_plugin, monkeypatch):
    """pytest's pytester drops modules it imported; a component's version (part of every
    cell id) must not change when its module leaves sys.modules."""
    from harness.components import _VERSIONS
    from harness.plugins import create_manager

    probe = create_manager([str(probe_plugin)]).get("solver", "probe")
    altmin = create_manager().get("solver", "altmin")
    before = {c: c.source_version() for c in (probe, altmin)}
    for cls in (probe, altmin):
        monkeypatch.delitem(sys.modules, cls.__module__)
        _VERSIONS.pop(cls)
    assert {c: c.source_version() for c in (probe, altmin)} == before
    assert before[probe] != before[altmin]


def test_source_version_follows_an_inherited_params_class(tmp_path):
    """Editing a parent ``Params`` dataclass (a field's default) changes the source version
    of a component whose ``Params`` inherits from it."""
    import importlib.util

    from harness.components import Component

    def version(default: int) -> str:
        path = tmp_path / f"inherit_{default}.py"
        path.write_text(
            "from dataclasses import dataclass\n"
            "from harness import Solver, param\n\n\n"
            "@dataclass(frozen=True)\n"
            "class BaseParams:\n"
            f"    steps: int = param({default}, 'steps')\n\n\n"
            "@dataclass(frozen=True)\n"
            "class ChildParams(BaseParams):\n"
            "    extra: int = param(1, 'extra')\n\n\n"
            "class Child(Solver):\n"
            "    name = 'child'\n"
            "    Params = ChildParams\n\n"
            "    def solve(self, instance, weights, ctx):\n"
            "        raise AssertionError\n"
        )
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = module.Child
        assert issubclass(cls, Component)
        return cls.source_version()

    assert version(5) != version(6)


WHERE_PLUGIN = str(Path(__file__).parents[1] / "fixture_plugins" / "where.py")
WHERE = """
[suite]
name = "where-test"
trials = 10
seed = 3

[[problems]]
name = "one_hidden"
d = 4
k = 2
n = {n}

[[initializers]]
name = "gaussian"

[[solvers]]
name = "where"
invariant = {invariant}

[metrics]
names = ["param_error"]
"""


def _where_rows(report):
    runs = report.runs.sort_values(["cell_id", "trial"]).reset_index(drop=True)
    return runs, runs.drop(columns=["run_id", "created_at", "time_s", "metric.pid"])


def test_one_unit_runs_in_the_driver_process(write_suite, tmp_path):
    plugin = WHERE_PLUGIN
    suite = write_suite(WHERE.format(n=20, invariant="false"))
    report = execute(suite, results=tmp_path / "r", workers=2, plugins=[plugin])
    runs, _ = _where_rows(report)
    assert report.units_run == 1
    assert set(runs["metric.pid"]) == {float(os.getpid())}  # no pool for one unit


def test_a_batch_invariant_cell_is_split_across_idle_workers_with_identical_results(
    write_suite, tmp_path
):
    plugin = WHERE_PLUGIN
    suite = write_suite(WHERE.format(n=20, invariant="true"))
    split = execute(suite, results=tmp_path / "split", workers=3, plugins=[plugin])
    whole = execute(suite, results=tmp_path / "whole", executor="serial", plugins=[plugin])
    assert (split.units_run, whole.units_run) == (3, 1)  # 10 trials as 4 + 4 + 2
    runs, split_rows = _where_rows(split)
    assert float(os.getpid()) not in set(runs["metric.pid"])
    pd.testing.assert_frame_equal(split_rows, _where_rows(whole)[1])


@pytest.mark.parametrize(
    ("invariant", "n", "workers", "units"),
    [
        ("false", 20, 4, 1),  # not declared: the cell stays whole
        ("true", 20, 1, 1),  # one worker: nothing to gain
        ("true", "[20, 30]", 4, 4),  # 2 cells, 4 workers: 2 chunks each
        ("true", "[20, 30, 40, 50]", 4, 4),  # as many cells as workers: whole cells
    ],
)
def test_cells_are_split_only_when_declared_invariant_and_fewer_than_workers(
    write_suite, invariant, n, workers, units
):
    plugin = WHERE_PLUGIN
    registry, suite, cells, _ = prepare(
        write_suite(WHERE.format(n=n, invariant=invariant)), plugins=[plugin]
    )
    planned = plan_units(
        suite,
        cells,
        set(),
        run_id="r",
        workers=workers,
        splittable=lambda cell: batch_invariant(registry, suite, cell),
    )
    assert len(planned) == units
    assert sorted(t for u in planned for t in u.trials) == sorted(
        t for c in cells for t in range(c.trials)
    )


def test_expansion_cell_ids_equal_the_reference_formula(write_suite, probe_plugin):
    from harness.expand import _cell_id

    _, suite, cells, _ = prepare(write_suite(BASE), plugins=[str(probe_plugin)])
    for cell in cells:
        assert cell.cell_id == _cell_id(suite, cell.problem, cell.initializer, cell.solver)
