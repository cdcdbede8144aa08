"""Executors: crash isolation, pre-emptive timeouts, and identical numbers across executors.

A test plugin solver misbehaves on demand (hang, os._exit, segfault, raise). The
Dask tests share one LocalCluster (2 worker processes) per module: starting one
costs seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.executors import ProcessExecutor, SerialExecutor
from harness.executors.processes import STARTED
from harness.run import execute, plan_units, plugin_paths, prepare
from harness.runner import run_unit
from harness.store import load_results

FAULTY_PLUGIN = Path(__file__).parents[1] / "fixture_plugins" / "faulty.py"

FAULT_SUITE = """
[suite]
name = "faults"
trials = 2
seed = 3

[[problems]]
name = "single_neuron"
d = 4
n = 16

[[initializers]]
name = "gaussian"

[[solvers]]
name = "faulty"
mode = {modes}
steps = [2, 3]

[metrics]
names = ["param_error", "train_loss"]
"""

# Built-in solvers only: what the determinism comparison runs everywhere.
DETERMINISM_SUITE = """
[suite]
name = "determinism"
trials = 3
seed = 11

[[problems]]
name = "single_neuron"
d = 6
n = [18, 30]

[[problems]]
name = "one_hidden"
d = 5
k = 2
n = 40

[[initializers]]
name = "gaussian"
scale = 0.1

[[solvers]]
name = "altmin"
max_iter = 15

[[solvers]]
name = "gd"
step_size = 0.5
max_iter = 40

[metrics]
names = ["param_error", "train_loss", "success"]
"""


@pytest.fixture(scope="module")
def faulty() -> Path:
    return FAULTY_PLUGIN


def units_of(path: Path, plugins=(), timeout_s=None):
    plugins = plugin_paths([str(p) for p in plugins])
    _, suite, cells, _ = prepare(path, plugins=plugins)
    return plan_units(suite, cells, set(), run_id="t", plugins=plugins, timeout_s=timeout_s)


def by_mode(results) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in results:
        out.setdefault(dict(r.unit.cell.solver.params)["mode"], []).extend(r.runs)
    return out


def test_a_dying_worker_costs_only_its_own_unit(write_suite, faulty):
    # Crashing units first: the ones after them must still run, on replacement workers.
    path = write_suite(FAULT_SUITE.format(modes='["exit", "segv", "raise", "ok"]'))
    units = units_of(path, [faulty])
    ex = ProcessExecutor(2)
    try:
        results = list(ex.run(units))
    finally:
        ex.close()
    assert len(results) == len(units) == 8
    rows = by_mode(results)
    for row in rows["exit"]:
        assert row["status"] == "error"
        assert "worker process died" in row["error"] and "exit code 3" in row["error"]
    for row in rows["segv"]:
        assert row["status"] == "error" and "SIGSEGV" in row["error"]
    for row in rows["raise"]:
        assert row["status"] == "error" and "faulty solver raised on purpose" in row["error"]
    # The units that share the pool with the crashes are unharmed, and equal a serial run.
    reference = {
        (r.unit.cell.cell_id, row["trial"]): row["metric.param_error"]
        for r in map(run_unit, [u for u in units if dict(u.cell.solver.params)["mode"] == "ok"])
        for row in r.runs
    }
    ok = [
        (r.unit.cell.cell_id, row["trial"], row)
        for r in results
        if dict(r.unit.cell.solver.params)["mode"] == "ok"
        for row in r.runs
    ]
    assert len(ok) == 4
    for cell_id, trial, row in ok:
        assert row["status"] == "ok"
        assert row["metric.param_error"] == reference[(cell_id, trial)]


def test_a_hanging_unit_is_stopped_within_twice_its_timeout(write_suite, faulty):
    path = write_suite(FAULT_SUITE.format(modes='["ok", "hang"]'))
    timeout = 1.5
    units = units_of(path, [faulty], timeout_s=timeout)
    ok_units = [u for u in units if dict(u.cell.solver.params)["mode"] == "ok"]
    hang_units = [u for u in units if dict(u.cell.solver.params)["mode"] == "hang"]
    ex = ProcessExecutor(1)
    try:
        # Warm the worker (torch, plugins) so the clock below measures the unit alone.
        (first,) = list(ex.run(ok_units[:1]))
        assert first.runs[0]["status"] == "ok"
        start = time.monotonic()
        (stopped,) = list(ex.run(hang_units[:1]))
        elapsed = time.monotonic() - start
        # The pool recovers: the next unit runs on a fresh worker and finishes.
        (after,) = list(ex.run(ok_units[1:2]))
    finally:
        ex.close()
    assert timeout <= elapsed < 2 * timeout
    assert [r["status"] for r in stopped.runs] == ["timeout", "timeout"]
    assert "timeout_s = 1.5 s" in stopped.runs[0]["error"]
    assert [r["status"] for r in after.runs] == ["ok", "ok"]


def test_timeout_counts_from_the_units_start_not_from_the_workers_start(faulty, write_suite):
    # A fresh worker loads torch and the plugins before STARTED: a short timeout does not
    # fire on a quick unit just because the worker was slow to start.
    path = write_suite(FAULT_SUITE.format(modes='["ok"]'))
    units = units_of(path, [faulty], timeout_s=0.75)
    ex = ProcessExecutor(2)
    try:
        results = list(ex.run(units))
    finally:
        ex.close()
    assert STARTED == "started"
    assert [r["status"] for res in results for r in res.runs] == ["ok"] * 4


def test_serial_executor_runs_timed_units_in_a_child_with_the_same_numbers(write_suite, faulty):
    path = write_suite(FAULT_SUITE.format(modes='["ok", "hang"]'))
    timed = units_of(path, [faulty], timeout_s=1.0)
    ex = SerialExecutor()
    try:
        results = list(ex.run(timed))
    finally:
        ex.close()
    rows = by_mode(results)
    assert {r["status"] for r in rows["hang"]} == {"timeout"}
    ok_units = [u for u in units_of(path, [faulty]) if dict(u.cell.solver.params)["mode"] == "ok"]
    in_process = by_mode(map(run_unit, ok_units))
    got = [r["metric.param_error"] for r in rows["ok"]]
    assert got == [r["metric.param_error"] for r in in_process["ok"]]
    assert all(r["status"] == "ok" for r in rows["ok"])


def test_timeout_from_the_suite_and_the_command_line(write_suite, faulty, tmp_path):
    text = FAULT_SUITE.format(modes='["hang"]').replace("seed = 3", "seed = 3\ntimeout_s = 1.0")
    report = execute(
        write_suite(text),
        plugins=[str(faulty)],
        results=tmp_path / "r",
        executor="processes",
        workers=2,
    )
    runs = load_results(report.results_dir)
    assert len(runs) == 4 and set(runs["status"]) == {"timeout"}
    assert report.exit_code == 1
    # --timeout overrides the suite's value (and reaches every unit).
    _, suite, cells, _ = prepare(write_suite(text), plugins=[str(faulty)])
    assert suite.timeout_s == 1.0
    units = plan_units(suite, cells, set(), run_id="x", timeout_s=7.0)
    assert {u.timeout_s for u in units} == {7.0}


# ---------------------------------------------------------------------------
# Determinism across executors
# ---------------------------------------------------------------------------

METRICS = ["metric.param_error", "metric.train_loss", "metric.success", "iterations"]


def table(results_dir: Path) -> pd.DataFrame:
    runs = load_results(results_dir).sort_values(["cell_id", "trial"]).reset_index(drop=True)
    assert (runs["status"] == "ok").all()
    return runs[["cell_id", "trial", *METRICS]]


def assert_bitwise_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a["cell_id"]) == list(b["cell_id"]) and list(a["trial"]) == list(b["trial"])
    for col in METRICS:
        x = a[col].to_numpy(dtype=np.float64)
        y = b[col].to_numpy(dtype=np.float64)
        assert x.tobytes() == y.tobytes(), col


@pytest.fixture(scope="module")
def dask_executor():
    pytest.importorskip("distributed")
    from harness.executors.dask import DaskExecutor

    # The no-address path: a LocalCluster of 2 worker processes, one thread each.
    ex = DaskExecutor(workers=2)
    yield ex
    ex.close()


def test_serial_processes_and_dask_give_bitwise_identical_metrics(
    write_suite, tmp_path, dask_executor
):
    path = write_suite(DETERMINISM_SUITE)
    serial = table(execute(path, executor="serial", results=tmp_path / "s").results_dir)
    assert len(serial) == 3 * 2 * 3  # (2 single_neuron + 1 one_hidden) x 2 solvers x 3 trials
    one = table(execute(path, executor="processes", workers=1, results=tmp_path / "p1").results_dir)
    two = table(execute(path, executor="processes", workers=2, results=tmp_path / "p2").results_dir)
    # --scheduler: a client of the running cluster, as on a real one.
    address = dask_executor.client.scheduler.address
    dask = table(
        execute(path, executor="dask", scheduler=address, results=tmp_path / "d").results_dir
    )
    for other in (one, two, dask):
        assert_bitwise_equal(serial, other)
    # Trial chunks (more workers than cells) give every trial the same data, but a trial
    # batched with fewer others may round differently in BLAS/LAPACK (kernels pick their
    # blocking by shape): equal to rounding, not bitwise. See docs/execution.md.
    chunked = table(
        execute(
            path,
            executor="processes",
            workers=2,
            results=tmp_path / "c",
            overrides=["chunk_trials=1"],
        ).results_dir
    )
    for col in METRICS:
        np.testing.assert_allclose(chunked[col], serial[col], rtol=1e-9, atol=1e-12)


def test_dask_local_cluster_isolates_a_crash_and_stops_a_hang(write_suite, faulty, dask_executor):
    # One unit per mode: every worker death costs a restart of a Dask worker (seconds).
    text = FAULT_SUITE.format(modes='["ok", "exit", "hang"]').replace("[2, 3]", "2")
    path = write_suite(text)
    units = units_of(path, [faulty], timeout_s=3.0)
    assert len(units) == 3
    rows = by_mode(dask_executor.run(units))
    assert {r["status"] for r in rows["exit"]} == {"error"}
    assert "worker process died" in rows["exit"][0]["error"]
    assert {r["status"] for r in rows["hang"]} == {"timeout"}
    ok_units = [u for u in units_of(path, [faulty]) if dict(u.cell.solver.params)["mode"] == "ok"]
    reference = by_mode(map(run_unit, ok_units))
    assert [r["status"] for r in rows["ok"]] == ["ok"] * 2
    assert [r["metric.param_error"] for r in rows["ok"]] == [
        r["metric.param_error"] for r in reference["ok"]
    ]


HANG_BESIDE_HEALTHY = """
[suite]
name = "hang_beside_healthy"
trials = 2
seed = 3

[[problems]]
name = "single_neuron"
d = 4
n = [16, 20, 24, 28]

[[initializers]]
name = "gaussian"

[[solvers]]
name = "faulty"
mode = ["hang", "ok"]

[[solvers]]
name = "altmin"
max_iter = 10

[metrics]
names = ["param_error"]
"""


def test_dask_timeouts_never_cost_a_healthy_unit(write_suite, faulty, dask_executor):
    # Killing the worker of a hung unit used to charge "worker process died" to a healthy
    # unit the scheduler had just handed that worker (and a LocalCluster dropped workers
    # whose restart took over 15 s, then waited forever). Two rounds: it was intermittent.
    path = write_suite(HANG_BESIDE_HEALTHY)
    healthy = [
        u for u in units_of(path, [faulty]) if dict(u.cell.solver.params).get("mode") != "hang"
    ]
    reference = {
        (r.unit.cell.cell_id, row["trial"]): row["metric.param_error"]
        for r in map(run_unit, healthy)
        for row in r.runs
    }
    for _ in range(2):
        # Hung units first, healthy ones queued behind them: when a hung unit's worker is
        # killed and its task cancelled, the scheduler hands the next one to that worker.
        units = sorted(
            units_of(path, [faulty], timeout_s=6.0),  # ample for a healthy unit under load
            key=lambda u: dict(u.cell.solver.params).get("mode") != "hang",
        )
        results: list = []
        # A cluster that lost its workers for good used to leave the run waiting forever.
        consume = threading.Thread(target=results.extend, args=(dask_executor.run(units),))
        consume.start()
        consume.join(timeout=180)
        assert not consume.is_alive(), "the Dask run did not finish"
        assert len(results) == len(units) == 12
        for r in results:
            hangs = dict(r.unit.cell.solver.params).get("mode") == "hang"
            for row in r.runs:
                if hangs:
                    assert row["status"] == "timeout"
                else:
                    assert row["status"] == "ok", row["error"]
                    key = (r.unit.cell.cell_id, row["trial"])
                    assert row["metric.param_error"] == reference[key]


SLOW_SUITE = """
[suite]
name = "cluster"
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
pause = 1.5
steps = [1, 2, 3, 4, 5, 6]

[metrics]
names = ["param_error"]
"""


@pytest.fixture
def real_cluster(tmp_path):
    """A scheduler and a worker started as separate processes (``dask scheduler``,
    ``dask worker``: two worker processes of one thread, under nannies), on 127.0.0.1."""
    pytest.importorskip("distributed")
    from distributed import Client

    info = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(info),
                *common,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not info.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(info),
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    *common,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        client = Client(scheduler_file=str(info), timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield client
        client.close()
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def test_dask_against_separate_scheduler_and_worker_processes(real_cluster, tmp_path):
    from harness.store import part_files

    slow = Path(__file__).parents[1] / "fixture_plugins" / "slow_steps.py"
    path = tmp_path / "cluster.toml"
    path.write_text(SLOW_SUITE)
    results = tmp_path / "r"
    address = real_cluster.scheduler.address
    args = [
        "run",
        str(path),
        "--plugin",
        str(slow),
        "--results",
        str(results),
        "--executor",
        "dask",
        "--scheduler",
        address,
        "--no-progress",
    ]
    run = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not part_files(results / "cluster" / "runs"):
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
            time.sleep(0.05)
        # SIGKILL one worker process mid-run (its nanny starts a fresh one).
        pids = real_cluster.run(os.getpid)
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)
        out, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode in (0, 1), err.decode()[-2000:]
    runs = load_results(results / "cluster")
    bad = runs[runs["status"] != "ok"]
    # The killed worker held at most two units (one running, one queued): Dask reruns
    # them on another worker, or they come back as error rows; nothing else is touched.
    assert len(bad) <= 2 * 2 and set(bad["status"]) <= {"error"}
    assert len(runs) == 6 * 2
    again = execute(path, plugins=[str(slow)], results=results, executor="dask", scheduler=address)
    assert again.trials_run == len(bad) and again.exit_code == 0
    final = load_results(results / "cluster")
    assert len(final) == 12 and (final["status"] == "ok").all()
    serial = execute(path, plugins=[str(slow)], results=tmp_path / "s", executor="serial")
    key = ["cell_id", "trial"]
    a = load_results(serial.results_dir).sort_values(key).reset_index(drop=True)
    b = final.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key])
    assert (
        a["metric.param_error"].to_numpy().tobytes() == b["metric.param_error"].to_numpy().tobytes()
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is used on Linux only")
def test_workers_fork_from_the_driver_unless_they_run_several_threads(write_suite, faulty):
    # One thread a worker (the default): forked from the driver, no second `import torch`.
    # More threads: from a forkserver (GNU OpenMP does not survive a fork). Same rows.
    units = units_of(write_suite(FAULT_SUITE.format(modes='["ok"]')), [faulty])
    rows = {}
    for threads, method in ((1, "fork"), (2, "forkserver")):
        ex = ProcessExecutor(2, threads=threads)
        try:
            results = list(ex.run(units))
            assert ex._ctx.get_start_method() == method
        finally:
            ex.close()
        rows[threads] = sorted(
            (r.unit.cell.cell_id, row["trial"], row["status"]) for r in results for row in r.runs
        )
    assert rows[1] == rows[2] and len(rows[1]) == 4
    assert {status for *_, status in rows[1]} == {"ok"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_worker_returns_a_units_freed_data_to_the_os():
    # glibc's default raises its mmap threshold after a large block is freed; blocks of a
    # few MB may then come from the heap and stay resident after the unit. Workers fix the
    # threshold at 4 MiB: blocks that size are unmapped when freed.
    code = (
        "import numpy as np, psutil\n"
        "from harness.executors.base import return_large_blocks_to_the_os\n"
        "assert return_large_blocks_to_the_os()\n"
        "p = psutil.Process()\n"
        "base = p.memory_info().rss\n"
        "keep = []\n"
        "for _ in range(5):\n"
        "    big = np.ones(10_000_000)\n"
        "    del big\n"
        "    parts = [np.ones(1_000_000) for _ in range(10)]\n"
        "    keep.append(np.ones(1000))\n"
        "    del parts\n"
        "print((p.memory_info().rss - base) / 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 20


def test_workers_exit_when_the_driver_is_gone(write_suite, faulty):
    # A worker forked from the driver inherits the driver's end of its own pipe; it must
    # close it, or it never reads EOF when the driver dies and lives on holding the
    # driver's stdout and stderr (a Ctrl-C'd run then never finished for its caller).
    import psutil

    path = write_suite(FAULT_SUITE.format(modes='["ok"]'))
    code = (
        "import os, sys\n"
        "from harness.executors import ProcessExecutor\n"
        "from harness.run import plan_units, plugin_paths, prepare\n"
        f"plugins = plugin_paths([{str(faulty)!r}])\n"
        f"_, suite, cells, _ = prepare({str(path)!r}, plugins=plugins)\n"
        "units = plan_units(suite, cells, set(), run_id='t', plugins=plugins)\n"
        "ex = ProcessExecutor(2)\n"
        "results = list(ex.run(units))\n"
        "print(' '.join(str(w.proc.pid) for w in ex._idle), flush=True)\n"
        "os._exit(0)  # gone without closing the pool\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [
            p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
        ]
    assert alive == []
