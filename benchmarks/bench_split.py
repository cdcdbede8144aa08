"""Issue 17, target 2: one large cell uses every worker.

One cell of 200 AltMin trials on a single neuron at d = 200 (n = 1.5 d, below the
transition: every trial runs its 100 iterations) with the processes executor, 1 worker
then 2, CLI start to exit. AltMin's single-neuron path is batch-invariant, so with 2
workers the planner splits the cell into 2 units of 100 trials; the stored results must
be identical to the 1-worker run (one unit, run in the driver). Target: >= 1.8x.

Also printed: the units each run had, the speedup of the work alone (solver time
summed per unit: the 1-worker total over the slower of the 2 units), which says how much
of the gap is start-up (the forkserver importing torch, the workers loading plugins), and
the bound a perfect second core would give end to end: with S the wall time of the same
command on 1 trial (start-up, imports, writing) and W = t1 - S, (S + W) / (S + W / 2).
Workers fork from the driver (one torch thread each), so a worker starts without importing
torch again; what is left of S is the driver's own start (torch, plugins, expansion) and
its end (writing the part files, reading the rows back, the summary).

Usage: python benchmarks/bench_split.py [--trials 200] [--d 200] [--n 300] [--rounds 1]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, line, median, relubench  # noqa: E402

SUITE = """
[suite]
name = "split"
trials = {trials}
seed = 0

[[problems]]
name = "single_neuron"
d = {d}
n = {n}
input_scale = "inv_sqrt_n"

[[initializers]]
name = "gaussian"
scale = 0.1

[[solvers]]
name = "altmin"
max_iter = 100

[metrics]
names = ["param_error", "success", "train_loss"]
success = {{ threshold = 0.01 }}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    header(f"Target 2: one cell of {args.trials} AltMin trials (d = {args.d}, n = {args.n})")
    from harness import load_results

    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "split.toml"
        suite.write_text(SUITE.format(trials=args.trials, d=args.d, n=args.n))
        tiny = Path(tmp) / "tiny.toml"
        tiny.write_text(SUITE.format(trials=1, d=args.d, n=args.n).replace('"split"', '"tiny"'))
        fixed = [
            relubench(["run", str(tiny), "--results", str(Path(tmp) / f"t{r}"), "--no-progress"])[0]
            for r in range(args.rounds)
        ]
        walls: dict[int, list[float]] = {1: [], 2: []}
        units: dict[int, int] = {}
        for r in range(args.rounds):
            for w in (1, 2):
                res = Path(tmp) / f"w{w}-{r}"
                wall, _, out = relubench(
                    ["run", str(suite), "--results", str(res), "--workers", str(w)]
                    + ["--no-progress"]
                )
                found = re.search(r"ran (\d+) trials in (\d+) units", out)
                if not found:
                    raise SystemExit(out)
                units[w] = int(found.group(2))
                walls[w].append(wall)
        one = load_results(Path(tmp) / "w1-0" / "split").sort_values("trial")
        two = load_results(Path(tmp) / "w2-0" / "split").sort_values("trial")
    cols = ["trial", "seed", "iterations", "metric.param_error", "metric.train_loss"]
    same = one[cols].reset_index(drop=True).equals(two[cols].reset_index(drop=True))
    t1, t2 = median(walls[1]), median(walls[2])
    work1 = one["time_s"].sum()
    half = len(two) // units[2] if units[2] else len(two)
    work2 = max(two["time_s"].iloc[i : i + half].sum() for i in range(0, len(two), half))
    print(f"   1 worker: {units[1]} unit(s), {t1:.2f} s; 2 workers: {units[2]} units, {t2:.2f} s")
    line("units with 2 workers", units[2], "", ">= 2", units[2] >= 2)
    line("results identical to the 1-worker run", float(same), "bool", "1", same)
    line("work alone: 1-worker solver time / slower unit", work1 / work2, "x", "", None)
    S = median(fixed)
    bound = t1 / (S + (t1 - S) / 2)
    print(f"   fixed cost S (same command, 1 trial, 1 worker): {S:.2f} s; work W = {t1 - S:.2f} s")
    line("bound with a free second core: (S+W)/(S+W/2)", bound, "x", "", None)
    line("speedup 1 -> 2 workers, CLI start to exit", t1 / t2, "x", ">= 1.8x", t1 / t2 >= 1.8)


if __name__ == "__main__":
    main()
