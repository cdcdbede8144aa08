"""Kill and resume, concurrent runs, stale temporary files.

``relubench run`` runs as a real subprocess and is killed with SIGKILL before its
first part file, mid-way, and in the middle of writing one; rerunning the same
suite must then give exactly one ``ok`` row per (cell_id, trial), with the same
numbers as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.run import execute, prepare
from harness.store import STALE_TEMPORARY_S, Lease, Leases, Store, load_results, part_files

SLOW_PLUGIN = '''
"""Test plugin: a few gradient steps after a pause, so a run can be killed mid-way."""
import time
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class SlowParams:
    pause: float = param(0.3, "seconds to sleep first", min=0.0)
    steps: int = param(2, "gradient steps", min=1)


class Slow(Solver):
    """Sleeps, then takes gradient steps (a stand-in for a long solver)."""

    name = "slow"
    Params = SlowParams

    def solve(self, instance, weights, ctx):
        time.sleep(self.params.pause)
        W = {k: v.clone() for k, v in weights.items()}
        for _ in range(self.params.steps):
            g = instance.model.grad(W, instance.X, instance.y)
            W = {k: W[k] - 0.5 * g[k] for k in W}
        return SolveResult(W, torch.full((instance.batch,), self.params.steps, dtype=torch.long))


@hookimpl
def relubench_solvers():
    return [Slow]
'''

SUITE = """
[suite]
name = "killme"
trials = 2
seed = 5

[[problems]]
name = "single_neuron"
d = 4
n = 16

[[initializers]]
name = "gaussian"

[[solvers]]
name = "slow"
pause = {pause}
steps = [1, 2, 3, 4, 5, 6]

[metrics]
names = ["param_error", "train_loss"]
"""
CELLS, TRIALS = 6, 2

# Runs the CLI with pyarrow's writer replaced: on the third part file it writes half the
# bytes of the temporary file and then SIGKILLs its own process, as a kill mid-write would.
KILL_DURING_WRITE = """
import os, signal, sys
import pyarrow.parquet as pq
from harness.cli import main

real_write = pq.write_table
count = [0]

def write_table(table, where, **kw):
    real_write(table, where, **kw)
    count[0] += 1
    if count[0] == 3:
        size = os.path.getsize(where)
        with open(where, "r+b") as fh:
            fh.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = write_table
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def setup(tmp_path: Path):
    plugin = tmp_path / "slow_plugin.py"
    plugin.write_text(SLOW_PLUGIN)

    def suite(pause: float) -> Path:
        path = tmp_path / f"killme_{pause}.toml"
        path.write_text(SUITE.format(pause=pause))
        return path

    return plugin, suite, tmp_path


def cli(args: list[str], *, script: str | None = None) -> subprocess.Popen:
    prefix = ["-c", script] if script else ["-m", "harness.cli"]
    # A session of its own: the test can kill whatever the run left behind, and only that.
    return subprocess.Popen(
        [sys.executable, *prefix, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_for(condition, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def run_args(suite: Path, plugin: Path, results: Path) -> list[str]:
    return ["run", str(suite), "--plugin", str(plugin), "--results", str(results), "--no-progress"]


def final_table_is_complete(
    results: Path, reference: pd.DataFrame, *, raw_unique: bool = True
) -> pd.DataFrame:
    """Exactly one ok row per (cell_id, trial) (none stored twice either, unless two runs
    raced), and the numbers of an uninterrupted run."""
    if raw_unique:
        raw = load_results(results, dedupe=False)
        ok = raw[raw["status"] == "ok"]
        assert not ok.duplicated(["cell_id", "trial"]).any()
    runs = load_results(results)
    assert len(runs) == CELLS * TRIALS
    assert (runs["status"] == "ok").all()
    # The reference has another pause (so other cell ids): match trials by steps and index.
    key = ["solver.steps", "trial"]
    runs = runs.sort_values(key).reset_index(drop=True)
    ref = reference.sort_values(key).reset_index(drop=True)
    assert runs[key].equals(ref[key])
    for col in ("metric.param_error", "metric.train_loss"):
        assert np.array_equal(runs[col].to_numpy(), ref[col].to_numpy())
    return runs


@pytest.fixture
def reference(setup):
    plugin, suite, tmp = setup
    report = execute(suite(0.0), plugins=[str(plugin)], results=tmp / "ref", executor="serial")
    return load_results(report.results_dir).sort_values(["cell_id", "trial"]).reset_index(drop=True)


def rerun(suite: Path, plugin: Path, results: Path):
    return execute(suite, plugins=[str(plugin)], results=results, executor="serial")


def test_kill_before_the_first_part_file_then_resume(setup, reference):
    plugin, suite, tmp = setup
    path, results = suite(0.3), tmp / "r"
    runs_dir = results / "killme" / "runs"
    proc = cli(run_args(path, plugin, results) + ["--executor", "serial"])
    try:
        # The folder exists just before the first unit starts; that unit takes 0.3 s.
        wait_for(runs_dir.is_dir, proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        kill_group(proc)
    assert part_files(runs_dir) == []
    assert load_results(results / "killme").empty
    report = rerun(path, plugin, results)
    assert report.trials_skipped == 0 and report.trials_run == CELLS * TRIALS
    final_table_is_complete(results / "killme", reference)


def test_kill_mid_way_with_worker_processes_then_resume(setup, reference):
    plugin, suite, tmp = setup
    path, results = suite(0.5), tmp / "r"
    runs_dir = results / "killme" / "runs"
    proc = cli(run_args(path, plugin, results) + ["--executor", "processes", "--workers", "2"])
    try:
        wait_for(lambda: len(part_files(runs_dir)) >= 2, proc=proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` would
        proc.wait()
        # Its workers notice the driver is gone and exit: nothing is left running.
        wait_for(lambda: not _group_alive(proc.pid), timeout=30)
    finally:
        kill_group(proc)
    visible = part_files(runs_dir)
    assert 2 <= len(visible) < CELLS
    for f in visible:  # every visible part file is complete and readable
        assert pq.read_table(f).num_rows == TRIALS
    stored = len(load_results(results / "killme"))
    assert stored == TRIALS * len(visible)
    report = rerun(path, plugin, results)
    assert report.trials_skipped == stored
    assert report.trials_run == CELLS * TRIALS - stored
    final_table_is_complete(results / "killme", reference)


def test_kill_during_a_write_then_resume_and_clean_up(setup, reference):
    plugin, suite, tmp = setup
    path, results = suite(0.0), tmp / "r"
    runs_dir = results / "killme" / "runs"
    proc = cli(run_args(path, plugin, results) + ["--executor", "serial"], script=KILL_DURING_WRITE)
    try:
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        kill_group(proc)
    # Two complete part files, and the half-written third under its temporary name.
    assert len(part_files(runs_dir)) == 2
    (tmp_file,) = list(runs_dir.glob(".*.tmp-*"))
    with pytest.raises(Exception):  # noqa: B017 - any parquet error: the file is truncated
        pq.read_table(tmp_file)
    assert len(load_results(results / "killme")) == 2 * TRIALS
    # A fresh leftover is kept (its writer may be alive elsewhere); an old one is removed.
    assert Store(results / "killme").clean_stale_temporaries() == []
    old = time.time() - STALE_TEMPORARY_S - 1
    os.utime(tmp_file, (old, old))
    report = rerun(path, plugin, results)
    assert not tmp_file.exists()
    assert report.trials_skipped == 2 * TRIALS
    final_table_is_complete(results / "killme", reference)


def test_two_concurrent_runs_on_one_folder_corrupt_nothing(setup, reference):
    plugin, suite, tmp = setup
    path, results = suite(0.2), tmp / "r"
    folder = results / "killme"
    args = run_args(path, plugin, results) + ["--executor", "processes", "--workers", "1"]
    procs = [cli(args), cli(args)]
    reads = []
    try:
        # A reader polling during both runs always sees complete files and a growing table.
        while any(p.poll() is None for p in procs):
            reads.append(len(load_results(folder)) if folder.exists() else 0)
            time.sleep(0.05)
        outs = [p.communicate() for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-2000:] for _, e in outs]
    assert reads == sorted(reads)
    raw = load_results(folder, dedupe=False)
    assert (raw["status"] == "ok").all()
    # A trial computed by both runs has the same numbers in both rows.
    spread = raw.groupby(["cell_id", "trial"])["metric.param_error"].agg(["min", "max", "size"])
    assert (spread["min"] == spread["max"]).all()
    assert spread["size"].between(1, 2).all()
    # Readers agree on which duplicate is kept.
    first, second = load_results(folder), load_results(folder)
    pd.testing.assert_frame_equal(first, second)
    final_table_is_complete(folder, reference, raw_unique=False)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_results_folder_deleted_mid_run_is_reported_and_fails_the_run(setup):
    plugin, suite, tmp = setup
    path, results = suite(0.4), tmp / "r"
    folder = results / "killme"
    proc = cli(run_args(path, plugin, results) + ["--executor", "serial"])
    try:
        wait_for(lambda: len(part_files(folder / "runs")) >= 2, proc=proc)
        shutil.rmtree(folder)  # two units' rows are gone; the run goes on
        out, err = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    text = out.decode() + err.decode()
    assert proc.returncode == 1, text
    lost = [line for line in text.splitlines() if line.startswith("rows lost: ")]
    stored = load_results(folder)
    assert 2 <= len(lost) < CELLS and len(stored) == TRIALS * (CELLS - len(lost))
    assert all(f"of {TRIALS} trials run by" in line for line in lost)
    # The lost cells are the ones missing from the store, and a rerun completes them.
    lost_cells = {line.split()[3] for line in lost}
    assert lost_cells.isdisjoint(set(stored["cell_id"]))
    report = rerun(path, plugin, results)
    assert report.trials_run == TRIALS * len(lost) and report.exit_code == 0


def test_two_concurrent_runs_compute_each_trial_once(setup, reference):
    plugin, suite, tmp = setup
    path, results = suite(0.3), tmp / "r"
    folder = results / "killme"
    args = run_args(path, plugin, results) + ["--executor", "processes", "--workers", "1"]
    procs = [cli(args), cli(args)]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    text = [o.decode() + e.decode() for o, e in outs]
    assert [p.returncode for p in procs] == [0, 0], [t[-2000:] for t in text]
    raw = load_results(folder, dedupe=False)
    assert len(raw) == CELLS * TRIALS  # nothing computed twice
    assert not raw.duplicated(["cell_id", "trial"]).any()
    ran = [int(t.split("ran ")[1].split()[0]) for t in text]
    assert sum(ran) == CELLS * TRIALS
    # The run that waited says so, and every lease is gone.
    assert any("computed by another run on this folder" in t for t in text)
    assert list((folder / ".leases").glob("*.json")) == []
    final_table_is_complete(folder, reference)


def test_a_crashed_runs_leases_are_taken_over(setup):
    plugin, suite, tmp = setup
    path, results = suite(0.0), tmp / "r"
    _, s, cells, _ = prepare(path, plugins=[str(plugin)])
    folder = results / "killme"
    # A lease of a run whose process is gone (this host), and one that expired elsewhere.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = Leases(folder, "crashed-run")
    gone.acquire(cells[0].cell_id)
    lease_file = folder / ".leases" / f"{cells[0].cell_id}.json"
    data = json.loads(lease_file.read_text())
    lease_file.write_text(json.dumps({**data, "pid": dead.pid}))
    leases = folder / ".leases"
    (leases / f"{cells[1].cell_id}.json").write_text(
        json.dumps({"run_id": "remote-run", "host": "elsewhere", "pid": 1})
    )
    (leases / "run-remote-run.json").write_text(json.dumps({"expires": time.time() - 1}))
    report = rerun(path, plugin, results)
    assert report.trials_run == CELLS * TRIALS and report.trials_waited == 0
    assert report.exit_code == 0 and not report.missing
    # A live lease of another run is respected: that run's cell is not taken.
    mine, theirs = Leases(folder, "a"), Leases(folder, "b")
    assert mine.acquire("x") is None
    held = theirs.acquire("x")
    assert held is not None and held.run_id == "a" and theirs.alive(held)
    mine.release("x")
    assert theirs.acquire("x") is None  # released: free to take
    mine.release_all()  # the run ended: its heartbeat is gone, so are its leases' lives
    assert not theirs.alive(Lease("y", "a", socket.gethostname(), os.getpid()))
