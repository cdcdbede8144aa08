"""Targets 3 and 4: harness overhead per trial, and parallel efficiency from 1 to 2 workers.

Overhead: a do-nothing problem, solver and metric (benchmarks/noop_plugin.py) run through
the whole path, suite expansion to the Parquet write, in this process (serial executor):
* batched cells (many trials per cell): <= 0.05 ms per trial;
* every trial its own cell (trials = 1): <= 1 ms per trial.

Parallel efficiency: a suite of many AltMin cells (J1's rows d = 50..125, 100 trials: a
few seconds of work per worker, so start-up does not decide it) with the processes
executor at 1 and 2 workers; efficiency = T1 / (2 T2), >= 85%.

Usage: python benchmarks/bench_overhead.py [--skip-parallel] [--trials 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, line  # noqa: E402

PLUGIN = str(ROOT / "benchmarks" / "noop_plugin.py")

NOOP_SUITE = """
[suite]
name = "overhead"
trials = {trials}
seed = 0

[[problems]]
name = "noop_problem"
index = {{ start = 0, stop = {last}, step = 1 }}

[[initializers]]
name = "zero"

[[solvers]]
name = "noop_solver"

[metrics]
names = ["noop_metric"]
"""

PARALLEL_SUITE = """
[suite]
name = "parallel"
trials = 20
seed = 0

[[problems]]
name = "single_neuron"
d = [50, 75, 100, 125]
n = { start = 50, stop = 500, step = 50 }
input_scale = "inv_sqrt_n"

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = 100

[metrics]
names = ["param_error", "success"]
"""


def overhead(tmp: Path, cells: int, trials: int) -> tuple[float, int]:
    from harness.run import execute

    tmp.mkdir(parents=True, exist_ok=True)
    suite = tmp / f"overhead-{cells}x{trials}.toml"
    suite.write_text(textwrap.dedent(NOOP_SUITE.format(trials=trials, last=cells - 1)))
    results = tmp / f"res-{cells}x{trials}"
    # warm-up: imports, plugin registry, first Parquet write
    execute(suite, executor="serial", results=results / "warm", plugins=[PLUGIN], check=False)
    start = time.perf_counter()
    report = execute(suite, executor="serial", results=results, plugins=[PLUGIN], check=False)
    wall = time.perf_counter() - start
    assert report.trials_run == cells * trials and report.failed_trials == 0
    return wall, report.trials_run


def parallel(tmp: Path, workers: int, trials: int) -> float:
    from harness.run import execute

    tmp.mkdir(parents=True, exist_ok=True)
    suite = tmp / "parallel.toml"
    suite.write_text(textwrap.dedent(PARALLEL_SUITE).replace("trials = 20", f"trials = {trials}"))
    start = time.perf_counter()
    execute(
        suite,
        executor="processes",
        workers=workers,
        results=tmp / f"par-{workers}",
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-parallel", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs for each figure")
    ap.add_argument("--trials", type=int, default=100, help="trials per cell, parallel suite")
    args = ap.parse_args()
    header("Harness overhead (do-nothing components) and parallel efficiency")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for cells, trials, target in ((20, 1000, 0.05), (2000, 1, 1.0)):
            best = min(overhead(tmp / f"r{r}", cells, trials)[0] for r in range(args.repeat))
            per = best / (cells * trials) * 1e3
            what = f"{cells} cells x {trials} trials, ms per trial"
            line(what, per, "ms", f"<= {target} ms", per <= target)
        if not args.skip_parallel:
            t1 = min(parallel(tmp / f"p1-{r}", 1, args.trials) for r in range(args.repeat))
            t2 = min(parallel(tmp / f"p2-{r}", 2, args.trials) for r in range(args.repeat))
            eff = t1 / (2 * t2)
            print(
                f"   parallel suite: 40 AltMin cells (J1's rows d <= 125) x {args.trials} trials, "
                "processes executor, wall time including worker start-up"
            )
            line("1 worker wall", t1, "s", "", None)
            line("2 workers wall", t2, "s", "", None)
            line("parallel efficiency T1 / (2 T2)", eff * 100, "%", ">= 85%", eff >= 0.85)


if __name__ == "__main__":
    main()
