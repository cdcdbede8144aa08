"""The paper-reproduction suites under suites/: each loads, expands, and its smoke profile holds.

Every suite file (whoever wrote it) must load and expand under each of its profiles, as
``relubench run --dry-run`` would, without dropping a combination it names on purpose. The
reproduction suites of REPRODUCTIONS.md (and the cross-paper ones) must also run their
``smoke`` profile and meet every expectation that applies to it: a claim that stops holding
at smoke scale means a plugin's behaviour changed (or the suite's settings broke).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.run import execute, prepare
from harness.seeds import trial_seed

SUITES = Path(__file__).resolve().parents[1] / "suites"

# The experiments of REPRODUCTIONS.md owned by this test file (jagatap-fig1 and the
# *-small suites are tested by their owners; they are still loaded below).
REPRODUCTIONS = [
    "jagatap-fig2",
    "jagatap-fig3a",
    "jagatap-fig3b",
    "jagatap-fig4",
    "zhang-fig2a",
    "zhang-fig2b",
    "zhang-fig2c",
    "zhang-fig2d",
    "liyuan-fig7",
    "liyuan-fig8",
    "liyuan-zero-init",
    "oymak-fig2",
    "oymak-fig3",
    "dante-mlp",
    "dante-sigmoid",
    "dante-xent",
    "dante-adaptive",
    "dante-T",
    "dante-regression",
    "dante-autoencoder",
    "cross-one-hidden",
    "cross-additive",
]


def _profiles(path: Path) -> list[str | None]:
    with path.open("rb") as fh:
        doc = tomllib.load(fh)
    return [None, *sorted(doc.get("profiles", {}))]


def _suite_files() -> list[Path]:
    return sorted(p for p in SUITES.glob("*.toml"))


def test_every_reproduction_has_a_suite_file() -> None:
    missing = [name for name in REPRODUCTIONS if not (SUITES / f"{name}.toml").is_file()]
    assert not missing, f"no suite file for {missing}"


@pytest.mark.parametrize(
    ("path", "profile"),
    [(p, prof) for p in _suite_files() for prof in _profiles(p)],
    ids=lambda v: v.stem if isinstance(v, Path) else str(v),
)
def test_suite_loads_and_expands(path: Path, profile: str | None) -> None:
    _, suite, cells, dropped = prepare(path, profile=profile)
    assert cells, "a suite must expand to at least one cell"
    # Every reproduction suite names compatible components only: nothing is dropped silently.
    if path.stem in REPRODUCTIONS:
        assert not dropped, [d.reason for d in dropped]
        assert {"full", "smoke"} <= set(suite.profiles), "needs a full and a smoke profile"
        assert suite.expectations, "states the paper's claim as [[expect]] entries"
    # Paired comparisons: every trial's data seed depends on the problem only, not the solver.
    by_problem: dict[str, set[int]] = {}
    for cell in cells:
        data_seed = trial_seed(cell.seed, cell.problem.key(), cell.initializer.key(), 0).data
        by_problem.setdefault(cell.problem.key(), set()).add(data_seed)
    assert all(len(seeds) == 1 for seeds in by_problem.values())


@pytest.mark.parametrize("name", REPRODUCTIONS)
def test_smoke_profile_runs_and_its_claims_hold(name: str, tmp_path: Path) -> None:
    report = execute(
        SUITES / f"{name}.toml",
        profile="smoke",
        executor="serial",
        results=tmp_path,
        check=True,
    )
    rows = sum(c.trials for c in report.cells)
    assert report.trials_run == rows
    assert report.failed_trials == 0
    outcomes = [o for o in report.outcomes if o.expectation.applies("smoke")]
    assert outcomes, "the smoke profile checks at least one claim"
    failed = [o.describe() for o in outcomes if not o.held]
    assert not failed, "\n".join(failed)


GRID_SUITE = """
[suite]
name = "grid"
trials = 2

[[problems]]
name = "single_neuron"
d = { start = 2, stop = 4 }
n = [10, 20]

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = [2, 3]

[[solvers]]
name = "altmin2"

[metrics]
names = ["param_error"]
"""


def test_entries_are_typed_and_expand_to_their_cross_product(tmp_path: Path) -> None:
    from harness.expand import expand
    from harness.plugins import get_registry
    from harness.suite import SuiteEntry, load_suite

    path = tmp_path / "grid.toml"
    path.write_text(GRID_SUITE)
    registry = get_registry()
    suite = load_suite(path, registry)
    (problem,) = suite.entries["problems"]
    assert isinstance(problem, SuiteEntry)
    assert (problem.kind, problem.name) == ("problem", "single_neuron")
    assert problem.where == "problems[0]"
    assert problem.cls is registry.get("problem", "single_neuron")
    assert problem.grid == {"d": [2, 3, 4], "n": [10, 20]}  # the inclusive range, the list
    assert [e.name for e in suite.entries["solvers"]] == ["altmin", "altmin2"]

    cells, dropped = expand(suite, registry)
    # 3 d x 2 n problems x 1 initializer x 2 altmin settings; altmin2 fits none of them
    assert len(cells) == 12 and len({c.cell_id for c in cells}) == 12
    assert len(dropped) == 6 and all(d.solver.startswith("altmin2 ") for d in dropped)
    assert all("not single_neuron's family" in d.reason for d in dropped)
    assert "altmin[single_neuron d=3 n=20, zero, max_iter=2]" in {c.label for c in cells}
    assert all(c.trials == 2 and c.seed == suite.seed for c in cells)
    # Suite.expand is the same expansion
    assert [c.cell_id for c in suite.expand(registry)[0]] == [c.cell_id for c in cells]
