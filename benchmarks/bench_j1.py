"""Issue 17 target 3 (issue 8 targets 1, 5): J&H Fig. 1 in full (7,000 AltMin runs).

Prints, each next to its target:
* wall time of ``relubench run suites/jagatap-fig1.toml --profile full``,
  startup included (<= 10 s), and the peak summed RSS of the driver and its workers
  (<= 1.2 GiB);
* the speedup over a straightforward per-trial NumPy loop (np.linalg.lstsq every
  iteration, same max_iter and stopping rule) on subsets both finish: J1's whole
  grid with 3 trials per cell, and the 15-cell subset earlier versions used; both
  single-threaded in this process on the same trials (>= 45x), and whether they agree;
* that the stored results equal an unbatched run (every trial its own work unit).

Usage: python benchmarks/bench_j1.py [--grid-trials 3] [--subset-trials 10] [--skip-unbatched]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, line, relubench, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402
import torch  # noqa: E402

SUITE = ROOT / "suites" / "jagatap-fig1.toml"


def subset_speedup(cells: list[tuple[int, int]], trials: int, label: str) -> None:
    from harness import SolveContext
    from plugins.common.problems import SingleNeuron, SingleNeuronParams
    from plugins.jagatap_hegde.altmin import AltMin, AltMinParams
    from plugins.jagatap_hegde.neuron_lapack import altmin_lstsq_reference

    torch.set_num_threads(1)
    t_torch = t_numpy = 0.0
    agree = total = 0
    max_dev = 0.0
    for d, n in cells:
        gens = [torch.Generator().manual_seed(1000 * d + n + i) for i in range(trials)]
        problem = SingleNeuron(SingleNeuronParams(d=d, n=n, input_scale="inv_sqrt_n"))
        inst = problem.sample(gens, torch.float64)
        ctx = SolveContext(device=torch.device("cpu"), dtype=torch.float64, generators=gens)
        w0 = {"W": torch.zeros(trials, d, 1, dtype=torch.float64)}
        start = time.perf_counter()
        res = AltMin(AltMinParams(max_iter=100)).solve(inst, w0, ctx)
        t_torch += time.perf_counter() - start
        W_star = inst.truth["W"][:, :, 0].numpy()
        err_t = np.linalg.norm(res.weights["W"][:, :, 0].numpy() - W_star, axis=1)
        err_t /= np.linalg.norm(W_star, axis=1)
        start = time.perf_counter()
        for i in range(trials):
            w, _ = altmin_lstsq_reference(inst.X[i].numpy(), inst.y[i].numpy(), 100, 1e-10)
            e = np.linalg.norm(w - W_star[i]) / np.linalg.norm(W_star[i])
            agree += int((e < 0.01) == (err_t[i] < 0.01))
            total += 1
            if e < 0.01:
                max_dev = max(max_dev, abs(e - err_t[i]))
        t_numpy += time.perf_counter() - start
    print(f"   subset: {label}, {trials} trials per cell, 1 thread")
    line("torch batched AltMin (s)", t_torch, "s", "", None)
    line("NumPy per-trial lstsq loop (s)", t_numpy, "s", "", None)
    line("speedup over the NumPy loop", t_numpy / t_torch, "x", ">= 45x", t_numpy / t_torch >= 45)
    line("same success decision as NumPy", agree / total, "fraction", "1", agree == total)
    line("max |error difference| on successes", max_dev, "", "< 1e-8", max_dev < 1e-8)


def stored(folder: Path):
    from harness import load_results

    runs = load_results(folder / "jagatap-fig1")
    return runs.sort_values(["cell_id", "trial"]).reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subset-trials", type=int, default=10)
    ap.add_argument("--grid-trials", type=int, default=3)
    ap.add_argument("--skip-unbatched", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    header("J1: relubench run suites/jagatap-fig1.toml --profile full (7,000 AltMin runs)")
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "batched"
        wall, rss, out = relubench(
            ["run", str(SUITE), "--profile", "full", "--results", str(res), "--no-progress"]
            + ["--workers", str(args.workers)]
        )
        tail = [ln for ln in out.splitlines() if ln.startswith(("ran ", "held", "FAILED", "fail"))]
        print("   " + "\n   ".join(tail[-4:]))
        line("wall time, CLI start to exit", wall, "s", "<= 10 s", wall <= 10)
        line("peak RSS, driver + workers", rss / 2**30, "GiB", "<= 1.2 GiB", rss <= 1.2 * 2**30)
        if not args.skip_unbatched:
            # Unbatched: every trial its own work unit (B = 1), on a subset of rows of the grid.
            one = Path(tmp) / "unbatched"
            sets = ["--set", "chunk_trials=1", "--set", "problems.d=[50,125,200]"]
            wall1, _, _ = relubench(
                ["run", str(SUITE), "--profile", "full", "--results", str(one), "--no-progress"]
                + sets
                + ["--workers", str(args.workers)]
            )
            a, b = stored(res), stored(one)
            a = a[a["cell_id"].isin(set(b["cell_id"]))].reset_index(drop=True)
            same = (
                len(a) == len(b)
                and (a["trial"].values == b["trial"].values).all()
                and (a["iterations"].values == b["iterations"].values).all()
                and (a["metric.success"].values == b["metric.success"].values).all()
            )
            dev = float(np.max(np.abs(a["metric.param_error"] - b["metric.param_error"])))
            print(f"   unbatched run of d in (50, 125, 200): {len(b)} trials as {len(b)} units")
            line("unbatched wall time (3 of 7 rows)", wall1, "s", "", None)
            line("identical success + iterations", float(same), "bool", "1", same)
            line("max |param_error difference|", dev, "", "0", dev == 0.0)
    # J1's own grid (every d and n, so the cells below, at and above the transition weigh
    # as they do in the full run) with few trials, then the smaller subset earlier runs of
    # this script used (fewer cells below the transition: the NumPy loop is cheapest there).
    grid = [(d, n) for d in range(50, 201, 25) for n in range(50, 501, 50)]
    subset_speedup(grid, args.grid_trials, "J1's grid (7 d x 10 n)")
    old = [(d, n) for d in (50, 100, 150) for n in (50, 150, 250, 350, 500)]
    subset_speedup(old, args.subset_trials, "d in (50, 100, 150) x n in (50, 150, ..., 500)")


if __name__ == "__main__":
    main()
