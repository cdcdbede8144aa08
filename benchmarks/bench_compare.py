"""Speed of `relubench compare` (issue 18) on a synthetic results folder.

Writes a suite-shaped folder (4 solvers x 40 points x 50 trials = 8,000 rows) and
times the one-folder analysis (ranks, pairwise tests with bootstrap intervals,
profiles) and the two-run regression report. Target: a suite of this size is
analysed in seconds, so `compare` fits in a CI job.

    python benchmarks/bench_compare.py [--trials 50] [--points 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, line, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def write_folder(root: Path, points: int, trials: int, seed: int) -> Path:
    """A results folder with the columns of docs/results-schema.md."""
    rng = np.random.default_rng(seed)
    rows = []
    for solver, skill in (("gd", 0.0), ("altmin", 0.3), ("sgd", -0.2), ("dante", 0.1)):
        for p in range(points):
            for t in range(trials):
                err = float(np.exp(rng.normal(-2 - skill, 1.0)))
                rows.append(
                    {"suite": "bench", "cell_id": f"{solver}-{p}", "trial": t,
                     "seed": 1000 * p + t, "problem": "one_hidden", "problem.n": 10 * (p + 1),
                     "initializer": "gaussian", "solver": solver, "status": "ok",
                     "iterations": int(rng.integers(10, 1000)), "time_s": float(rng.random()),
                     "time_mode": "per_trial", "metric.param_error": err,
                     "metric.success": float(err < 0.1), "created_at": "x", "run_id": "r"}
                )  # fmt: skip
    folder = root / "bench"
    (folder / "runs").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "runs" / "part-0.parquet")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--points", type=int, default=40)
    args = ap.parse_args()
    header("relubench compare on a synthetic suite")
    from harness.analysis import analyze_folder, analyze_runs

    with tempfile.TemporaryDirectory() as tmp:
        old = write_folder(Path(tmp) / "old", args.points, args.trials, 0)
        new = write_folder(Path(tmp) / "new", args.points, args.trials, 1)
        rows = 4 * args.points * args.trials
        t = time.perf_counter()
        a = analyze_folder(old)
        one = time.perf_counter() - t
        tests = sum(len(s.cells) for s in a.pairs)
        line(f"one folder, {rows} rows, {tests} point tests", one, "s", "<= 30 s", one <= 30)
        t = time.perf_counter()
        report, _ = analyze_runs(old, new)
        two = time.perf_counter() - t
        line(f"two runs, {len(report.cells)} cell tests", two, "s", "<= 10 s", two <= 10)


if __name__ == "__main__":
    main()
