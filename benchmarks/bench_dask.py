"""Target 4 with the Dask executor: parallel efficiency from 1 to 2 workers.

The same many-cell suite as bench_overhead.py (40 AltMin cells x 100 trials) runs with
``--executor dask`` (a LocalCluster, worker processes with one thread each) at 1 and 2
workers, and, for comparison, with the processes executor. Efficiency = T1 / (2 T2),
target >= 85%.

Two figures per executor:
* end to end: ``execute()`` wall time, cluster start and worker imports included (what a
  user waits for);
* steady state: the units alone, on a cluster already started and warmed up (workers
  have imported torch and the plugins), which isolates task overhead, serialization
  and scheduling from start-up.

Usage: python benchmarks/bench_dask.py [--repeat N] [--skip-processes] [--trials T]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, line, single_thread_env  # noqa: E402
from bench_overhead import PARALLEL_SUITE  # noqa: E402

single_thread_env()


def suite_text(trials: int) -> str:
    """bench_overhead.py's parallel suite (40 AltMin cells) with ``trials`` trials per cell."""
    return textwrap.dedent(PARALLEL_SUITE).replace("trials = 20", f"trials = {trials}")


def end_to_end(tmp: Path, executor: str, workers: int, trials: int) -> float:
    from harness.run import execute

    tmp.mkdir(parents=True, exist_ok=True)
    suite = tmp / "parallel.toml"
    suite.write_text(suite_text(trials))
    start = time.perf_counter()
    report = execute(suite, executor=executor, workers=workers, results=tmp / "res", check=False)
    wall = time.perf_counter() - start
    assert report.trials_run == 40 * trials and report.failed_trials == 0, report
    return wall


def steady(tmp: Path, executor: str, workers: int, repeat: int, trials: int) -> tuple[float, float]:
    """(executor start + warm-up seconds, best seconds for the units alone)."""
    from harness.executors import make_executor
    from harness.run import plan_units, prepare

    tmp.mkdir(parents=True, exist_ok=True)
    suite_path = tmp / "parallel.toml"
    suite_path.write_text(suite_text(trials))
    _, suite, cells, _ = prepare(suite_path)
    units = plan_units(suite, cells, set(), run_id="bench")
    t0 = time.perf_counter()
    ex = make_executor(executor, workers)
    try:
        list(ex.run(units[: 2 * workers]))  # warm-up: every worker imports torch and plugins
        start_s = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            n = sum(len(r.runs) for r in ex.run(units))
            best = min(best, time.perf_counter() - t)
            assert n == 40 * trials
    finally:
        ex.close()
    return start_s, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="best of N for each figure")
    ap.add_argument("--skip-processes", action="store_true")
    ap.add_argument("--trials", type=int, default=100, help="trials per cell")
    args = ap.parse_args()
    header("Parallel efficiency 1 -> 2 workers, Dask executor (LocalCluster) vs processes")
    print(f"   suite: 40 AltMin cells x {args.trials} trials (bench_overhead.py's parallel suite)")
    executors = ["dask"] + ([] if args.skip_processes else ["processes"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for executor in executors:
            e2e = {
                w: min(
                    end_to_end(tmp / f"{executor}-{w}-{r}", executor, w, args.trials)
                    for r in range(args.repeat)
                )
                for w in (1, 2)
            }
            st = {
                w: steady(tmp / f"{executor}-s{w}", executor, w, args.repeat, args.trials)
                for w in (1, 2)
            }
            print(f"   {executor}")
            line("  end to end, 1 worker", e2e[1], "s", "", None)
            line("  end to end, 2 workers", e2e[2], "s", "", None)
            eff = e2e[1] / (2 * e2e[2])
            line("  efficiency end to end T1 / (2 T2)", eff * 100, "%", ">= 85%", eff >= 0.85)
            line("  start + warm-up, 1 / 2 workers", st[1][0], "s", f"{st[2][0]:.2f} s", None)
            line("  units alone, 1 worker", st[1][1], "s", "", None)
            line("  units alone, 2 workers", st[2][1], "s", "", None)
            eff = st[1][1] / (2 * st[2][1])
            line("  efficiency steady state", eff * 100, "%", ">= 85%", eff >= 0.85)


if __name__ == "__main__":
    main()
