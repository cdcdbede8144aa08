"""Suite sizes are counted before anything is built (issue 14, item 4).

A 10**9-cell grid used to be expanded until the process ran out of memory,
``trials = 10**18`` made ``--dry-run`` loop forever, and a 10**5-cell dry run
printed every cell. Now the size is arithmetic, refused above ``--max-cells`` /
``--max-trials`` (exit 2), and a large dry run is a summary.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import InputError
from harness.expand import MAX_CELLS, Limits, check_size, count_cells
from harness.plugins import get_registry
from harness.run import prepare
from harness.suite import load_suite

SUITE = """
[suite]
name = "size"
trials = {trials}

[[problems]]
name = "single_neuron"
d = {{ start = 1, stop = {stop} }}
n = [10, 20]

[[problems]]
name = "single_neuron"
d = 5
n = 30

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = [2, 3, 4]

[metrics]
names = ["param_error"]
"""


def write(tmp_path: Path, *, stop: int, trials: int = 1) -> Path:
    path = tmp_path / "size.toml"
    path.write_text(SUITE.format(stop=stop, trials=trials))
    return path


def test_cells_are_counted_by_arithmetic(tmp_path):
    suite = load_suite(write(tmp_path, stop=7, trials=4), get_registry())
    counts = count_cells(suite)
    # 7 x 2 grid points in the first entry, 1 in the second; 3 solver settings.
    assert counts == {"problems": 15, "initializers": 1, "solvers": 3}
    assert check_size(suite) == (45, 180)
    cells, _ = suite.expand(get_registry())
    assert len(cells) == 45


def test_a_billion_cells_are_refused_without_building_them(tmp_path):
    path = write(tmp_path, stop=10**9)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InputError) as info:
            prepare(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "6,000,000,003 cells" in message  # (10**9 x 2 + 1) x 1 x 3
    assert f"limit of {MAX_CELLS:,}" in message and "--max-cells 6000000003" in message
    assert peak < 50 * 2**20, peak  # nothing the size of the grid was built
    assert time.perf_counter() - started < 60


def test_raising_the_limit_lets_a_suite_through(tmp_path):
    path = write(tmp_path, stop=6000)  # 12,001 x 3 = 36,003 cells
    with pytest.raises(InputError, match="36,003 cells"):
        prepare(path)
    _, _, cells, _ = prepare(path, limits=Limits(max_cells=40_000))
    assert len(cells) == 36_003


def test_ten_million_trials_are_refused_before_any_row(tmp_path, capsys):
    path = write(tmp_path, stop=1, trials=10**7)
    results = tmp_path / "results"
    code = main(["run", str(path), "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "90,000,000 trials" in err and "--max-trials" in err
    assert not results.exists()


def test_dry_run_of_huge_trial_counts_ends_at_once(tmp_path):
    # On main this looped over range(10**18) to count stored trials.
    path = write(tmp_path, stop=1, trials=10**18)
    cmd = [sys.executable, "-m", "harness.cli", "run", str(path), "--dry-run"]
    cmd += ["--results", str(tmp_path / "r"), "--max-trials", str(10**19)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "9 cells x 1000000000000000000 trials" in done.stdout


def test_a_large_dry_run_is_a_summary(tmp_path, capsys):
    path = write(tmp_path, stop=4000)  # 8,001 problems x 3 solvers = 24,003 cells
    code = main(["run", str(path), "--dry-run", "--max-cells", "30000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "24003 cells x 1 trials" in out
    assert "cells per problem: single_neuron 24003" in out
    assert "cells per solver: altmin 24003" in out
    assert "... 24,003" not in out and "... 23993 more cells ..." in out
    # The first and the last cells are shown, not the 24,003 in between.
    assert out.count("altmin[") == 10
    assert len(out.splitlines()) < 40
