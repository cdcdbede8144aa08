"""The ``relubench`` command as a user meets it: messages, selections, profiles, folders."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import harness
from harness import load_results
from harness.cli import main
from harness.report.data import select_rows

ROOT = Path(__file__).resolve().parents[2]

SUITE = """
[suite]
name = "cli-test"
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

[metrics]
names = ["param_error"]
"""

SMOKE = """
[profiles.smoke]
trials = 2
problems.n = [20]
"""


def run(args: list[str], probe: Path, results: Path) -> int:
    return main([*args, "--plugin", str(probe), "--results", str(results), "--executor", "serial"])


# ------------------------------------------------------------------ item 2: errors


def test_run_prints_each_distinct_error_and_where_to_read_the_rest(
    write_suite, probe_plugin, tmp_path, capsys
):
    path = write_suite(SUITE.replace("tag = [1, 2]", "tag = 1") + '[[solvers]]\nname = "boom"\n')
    assert run(["run", str(path)], probe_plugin, tmp_path / "r") == 1
    out = capsys.readouterr().out
    assert "not ok: 6 trials, 1 distinct message" in out
    assert "6 x error: RuntimeError: boom: this solver always fails" in out
    assert "e.g. boom[one_hidden n=30, gaussian] trial 0" in out  # the first in suite order
    folder = tmp_path / "r" / "cli-test"
    assert f"load_results('{folder}')" in out and str(folder / "runs") in out


# ------------------------------------------------------------ item 3: expectations


@pytest.mark.parametrize(
    ("expect", "key", "suggestion"),
    [
        ('check = "mean(sucess) >= 0.9"', "expect[0].check", "did you mean 'success'?"),
        (
            'where = "solvr == \'probe\'"\ncheck = "count() > 0"',
            "expect[0].where",
            "did you mean 'solver'?",
        ),
        ('check = "count() > 0"\nby = ["problem.dd"]', "expect[0].by", "did you mean 'problem.d'?"),
        ('check = "men(param_error) < 1"', "expect[0].check", "did you mean 'mean'?"),
    ],
)
def test_expectation_typos_fail_when_the_suite_loads(
    write_suite, probe_plugin, tmp_path, capsys, expect, key, suggestion
):
    text = SUITE.replace('"param_error"]', '"param_error", "success"]')
    path = write_suite(text + "\n[[expect]]\n" + expect + "\n")
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert key in err and suggestion in err
    assert "profiles." not in err  # no profile was involved


def test_expectations_may_name_any_parameter_metric_and_standard_column(
    write_suite, probe_plugin, tmp_path
):
    claims = """
    [[expect]]
    where = "status == 'ok' and solver.tag == 1 and problem.k == 2 and initializer.scale > 0"
    check = "median(param_error) >= 0 and max(time_s) >= 0 and count(trial >= 0) == 6"
    by = ["problem.n", "cell_id"]
    """
    path = write_suite(SUITE + claims)
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path / "r") == 0


# ---------------------------------------------------------------- item 4: --only


def test_only_selects_cells_for_dry_run_run_and_report(write_suite, probe_plugin, tmp_path, capsys):
    path = write_suite(SUITE)
    only = ["--only", "solver.tag=2", "--only", "problem.n=30", "--only", "problem.n=60"]
    assert run(["run", str(path), "--dry-run", *only], probe_plugin, tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "2 cells x 3 trials" in out and "tag=1" not in out
    assert run(["run", str(path), *only[:2]], probe_plugin, tmp_path / "r") == 0
    runs = load_results(tmp_path / "r" / "cli-test")
    assert set(runs["solver.tag"]) == {2} and len(runs) == 6
    assert run(["run", str(path)], probe_plugin, tmp_path / "r") == 0  # the rest of the suite
    capsys.readouterr()
    folder = tmp_path / "r" / "cli-test"
    assert (
        main(["report", str(folder), "--only", "problem.n=30", "--out", str(tmp_path / "o")]) == 0
    )
    assert "--only problem.n=30: 6 rows" in capsys.readouterr().out
    assert set(select_rows(folder, only=["problem.n=30"]).runs["problem.n"]) == {30}


def test_a_claim_about_cells_only_left_out_is_not_judged(write_suite, probe_plugin, tmp_path):
    claims = """
    [[expect]]
    where = "solver.tag == 2"
    check = "count() == 6"
    """
    path = write_suite(SUITE + claims)
    results = tmp_path / "r"
    assert run(["run", str(path), "--only", "solver.tag=1"], probe_plugin, results) == 0
    assert run(["run", str(path), "--only", "solver.tag=2"], probe_plugin, results) == 0
    # judged when its cells run, and it can fail there
    broken = path.read_text().replace("count() == 6", "count() == 5")
    path.write_text(broken)
    assert run(["run", str(path), "--only", "solver.tag=2"], probe_plugin, results) == 1


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("solvr=probe", "no key 'solvr' (did you mean 'solver'?)"),
        ("solver=prbe", "no cell of suite cli-test has solver = 'prbe' (did you mean 'probe'?)"),
        ("problem.n=31", "has problem.n = '31'; values: 30, 60"),
        ("solver", "expected KEY=VALUE"),
    ],
)
def test_only_with_an_unknown_key_or_value_exits_2(
    write_suite, probe_plugin, tmp_path, capsys, term, message
):
    path = write_suite(SUITE)
    assert run(["run", str(path), "--dry-run", "--only", term], probe_plugin, tmp_path / "r") == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------- item 6: profiles


def test_smoke_and_full_runs_in_one_folder_are_not_mixed(
    write_suite, probe_plugin, tmp_path, capsys
):
    claim = '\n[[expect]]\ncheck = "count() == 4"\nprofiles = ["smoke"]\n'
    path = write_suite(SUITE + SMOKE + claim)
    results = tmp_path / "r"
    folder = results / "cli-test"
    assert run(["run", str(path), "--profile", "smoke"], probe_plugin, results) == 0
    capsys.readouterr()
    assert run(["run", str(path)], probe_plugin, results) == 0
    out = capsys.readouterr().out
    # The full run's summary: its 4 cells x 3 trials; the smoke cells (n=20) are named, not used.
    assert (
        "rows: profile default, 4 cells x 3 trials (12 rows); not used: 4 rows of profile smoke"
        in out
    )
    assert len(load_results(folder)) == 16  # both profiles' rows are stored
    # The report uses the most recent profile and says what it left out ...
    latest = select_rows(folder)
    assert latest.profile == "default" and len(latest.runs) == 12
    assert set(latest.runs["problem.n"]) == {30, 60}
    assert "left out: smoke (4 rows)" in latest.note
    # ... or the profile asked for, or all of them on purpose.
    smoke = select_rows(folder, "smoke")
    assert len(smoke.runs) == 4 and set(smoke.runs["problem.n"]) == {20}
    assert set(smoke.runs["trial"]) == {0, 1}
    assert len(select_rows(folder, "all").runs) == 16
    out_dir = tmp_path / "report"
    assert main(["report", str(folder), "--profile", "smoke", "--out", str(out_dir)]) == 0
    assert "rows: profile smoke, 2 cells, 4 rows" in capsys.readouterr().out
    summary = (out_dir / "summary.md").read_text()
    assert "rows: profile smoke" in summary
    # the smoke claims, judged on the smoke rows (not those of the newest run's profile)
    assert "(profile smoke) on the rows named above: 1 of 1 held" in summary
    assert main(["report", str(folder), "--profile", "smok"]) == 2
    assert "did you mean 'smoke'?" in capsys.readouterr().err


def test_a_smaller_profile_uses_only_its_own_trials_of_shared_cells(
    write_suite, probe_plugin, tmp_path
):
    # Same cells, fewer trials: the smoke profile's rows are trials 0-1 of the full cells.
    path = write_suite(SUITE + "\n[profiles.smoke]\ntrials = 2\n")
    results = tmp_path / "r"
    assert run(["run", str(path)], probe_plugin, results) == 0
    assert run(["run", str(path), "--profile", "smoke", "--force"], probe_plugin, results) == 0
    smoke = select_rows(results / "cli-test")
    assert smoke.profile == "smoke" and len(smoke.runs) == 8
    assert set(smoke.runs["trial"]) == {0, 1}


# ------------------------------------------------------------- item 10: small things


def test_blocking_an_unknown_plugin_is_an_error_with_the_closest_name(capsys):
    assert main(["list", "solvers", "-p", "no:jagatap"]) == 2
    err = capsys.readouterr().err
    assert "-p no:jagatap: no plugin is named 'jagatap' (did you mean 'jagatap_hegde'?)" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--executor", "seral"], "--executor 'seral': unknown (did you mean 'serial'?)"),
        (["--workers", "0"], "--workers 0: must be >= 1"),
        (["--scheduler", "tcp://x:1"], "only used with --executor dask"),
    ],
)
def test_dry_run_checks_the_execution_options(
    write_suite, probe_plugin, tmp_path, capsys, option, message
):
    path = write_suite(SUITE)
    args = ["run", str(path), "--dry-run", "--plugin", str(probe_plugin), *option]
    assert main([*args, "--results", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_run_of_a_folder_runs_every_suite_in_it(write_suite, probe_plugin, tmp_path, capsys):
    write_suite(SUITE, "a.toml")
    write_suite(SUITE.replace('"cli-test"', '"cli-test-b"').replace("[1, 2]", "3"), "b.toml")
    results = tmp_path / "r"
    folder = tmp_path
    assert run(["run", str(folder), "--dry-run"], probe_plugin, results) == 0
    out = capsys.readouterr().out
    assert "suite cli-test " in out and "suite cli-test-b " in out
    assert run(["run", str(folder)], probe_plugin, results) == 0
    assert "ran 2 suites" in capsys.readouterr().out
    assert len(load_results(results / "cli-test")) == 12
    assert len(load_results(results / "cli-test-b")) == 6


def test_a_folder_run_fits_profile_and_only_to_each_suite(
    write_suite, probe_plugin, tmp_path, capsys
):
    write_suite(SUITE + SMOKE, "a.toml")  # has [profiles.smoke]
    other = SUITE.replace('"cli-test"', '"cli-test-b"').replace("[1, 2]", "3")
    write_suite(other, "b.toml")  # has none: runs as written
    results = tmp_path / "r"
    args = ["run", str(tmp_path), "--profile", "smoke", "--only", "solver.tag=1"]
    assert run(args, probe_plugin, results) == 0
    out = capsys.readouterr().out
    assert "b.toml: no [profiles.smoke], runs as written" in out
    assert "b.toml: skipped, --only selects none of its cells" in out
    assert len(load_results(results / "cli-test")) == 2  # smoke: n=20 x 2 trials, tag=1
    assert not (results / "cli-test-b").exists()
    assert run(["run", str(tmp_path), "--dry-run", "--profile", "smok"], probe_plugin, results) == 2
    assert "no suite of" in capsys.readouterr().err


def test_a_bad_suite_in_a_folder_stops_the_folder_before_anything_runs(
    write_suite, probe_plugin, tmp_path, capsys
):
    write_suite(SUITE, "a.toml")
    write_suite(SUITE.replace('name = "probe"', 'name = "prob"'), "b.toml")
    results = tmp_path / "r"
    assert run(["run", str(tmp_path)], probe_plugin, results) == 2
    assert "unknown solver 'prob' (did you mean 'probe'?)" in capsys.readouterr().err
    assert not (results / "cli-test").exists()


def test_an_empty_folder_is_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["run", str(tmp_path / "empty"), "--dry-run"]) == 2
    assert "a folder without suite files" in capsys.readouterr().err


def test_an_error_in_the_suite_itself_does_not_name_a_profile(
    write_suite, probe_plugin, tmp_path, capsys
):
    path = write_suite(SUITE.replace("scale = 0.5", "scal = 0.5") + SMOKE)
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "initializers[0]" in err and "with [profiles" not in err
    bad_profile = SUITE + "\n[profiles.smoke]\nproblems.n = [0]\n"
    path = write_suite(bad_profile, "p.toml")
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path / "r") == 2
    assert "(with [profiles.smoke] applied)" in capsys.readouterr().err


def test_messages_suggest_the_closest_valid_name(write_suite, probe_plugin, tmp_path, capsys):
    path = write_suite(SUITE + SMOKE)
    assert run(["run", str(path), "--dry-run", "--profile", "smok"], probe_plugin, tmp_path) == 2
    assert "unknown profile 'smok' (did you mean 'smoke'?)" in capsys.readouterr().err
    assert main(["show", "solver", "altmn"]) == 2
    assert "unknown solver 'altmn' (did you mean 'altmin'?)" in capsys.readouterr().err
    args = ["run", str(path), "--dry-run", "--set", "problems.kk=3"]
    assert run(args, probe_plugin, tmp_path) == 2
    assert "parameter 'kk' (did you mean 'k'?)" in capsys.readouterr().err
    path = write_suite(SUITE.replace("trials = 3", "trial = 3").replace("k = 2", "kk = 2"))
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path) == 2
    assert "unknown key 'suite.trial' (did you mean 'trials'?)" in capsys.readouterr().err
    path = write_suite(SUITE.replace("k = 2", "kk = 2"))
    assert run(["run", str(path), "--dry-run"], probe_plugin, tmp_path) == 2
    assert "unknown parameter 'kk' (did you mean 'k'?)" in capsys.readouterr().err


def test_show_suite_lists_cells_profiles_and_claims(write_suite, probe_plugin, capsys):
    claim = '\n[[expect]]\nname = "probe runs"\ncheck = "count() > 0"\nprofiles = ["smoke"]\n'
    path = write_suite(SUITE + SMOKE + claim)
    assert main(["show", "suite", str(path), "--plugin", str(probe_plugin)]) == 0
    out = capsys.readouterr().out
    assert "suite cli-test" in out and "4 cells x 3 trials = 12 trials" in out
    assert "smoke" in out and "problems.n = [20]" in out
    assert out.count("probe[one_hidden n=") == 4
    assert "claims ([[expect]])" in out and "probe runs" in out and "expect[0]" in out
    assert "problem.n" in out and "metric.param_error" in out  # the columns claims may name
    assert (
        main(["show", "suite", str(path), "--plugin", str(probe_plugin), "--profile", "smoke"]) == 0
    )
    assert "2 cells x 2 trials" in capsys.readouterr().out


def test_run_suite_has_a_typed_signature():
    sig = inspect.signature(harness.run_suite)
    kinds = {p.kind for p in sig.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    for name in ("profile", "workers", "executor", "results", "force", "overrides", "only"):
        assert name in sig.parameters and sig.parameters[name].annotation != inspect._empty
    with pytest.raises(TypeError):
        harness.run_suite("suites/quickstart.toml", progres=True)


def test_docs_point_only_at_files_in_the_repository():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    md_names = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    missing = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):  # [text](target)
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
        for target in re.findall(r"`(\.\./[^`\s]+)`", text):  # `../elsewhere`
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
        for name in re.findall(r"\b([A-Z][A-Z_-]+\.md)\b", text):  # DESIGN.md, NOTES.md
            if name not in md_names:
                missing.append(f"{page.relative_to(ROOT)} -> {name}")
    assert not missing, missing


def test_docs_do_not_claim_every_suite_has_a_full_profile():
    text = " ".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    without_full = [
        p.name for p in (ROOT / "suites").glob("*.toml") if "[profiles.full]" not in p.read_text()
    ]
    if without_full:
        assert not re.search(r"every suite (has|ships|defines) a `?full`? profile", text, re.I)
