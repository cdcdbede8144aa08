"""Target 2: AltMin's inner step against torch's dense matmul rate (same dtype, one thread).

The inner step is one least-squares solve of Algorithm 1 (lines 4-6) for a trial, as
J1 runs it: k = 1, float64, CPU, one trial at a time on LAPACK
(plugins/jagatap_hegde/neuron_lapack.py), the trial's data in cache because a trial runs
its iterations back to back. Sizes are J1's largest cell: n = 500, d = 200, a pattern with
about half the rows active (m ~ 250, as near the solution), 100 trials.

Flops counted are the ones the step performs: a fresh Gram matrix by syrk m d^2
(d (d + 1) m, one triangle), Cholesky d^3 / 3, two triangular solves d^2 each, right-hand
side 2 n d. The rate is the flop count over the best wall time of a few repeats; the
reference is the best rate of torch.matmul on 1000 x 1000 matrices in the same process.

Printed for information beside the target: the step after a few rows flip (the Gram
matrix updated by syrk on those rows only: Cholesky-bound), the dual step (m ~ 140 < d,
cached X X^T: an m x m Cholesky), the trial-batched tensor path AltMin takes on GPUs and
for float32 (plugins/common/linalg.py), and the rates of LAPACK's potrf and BLAS's syrk
at this size, which bound what any step here can reach.

Usage: python benchmarks/bench_inner.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, line, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from scipy.linalg import lapack
    from scipy.linalg.blas import dsyrk

    from plugins.common.linalg import MaskedLeastSquares
    from plugins.jagatap_hegde.neuron_lapack import NeuronLeastSquares

    torch.set_num_threads(1)
    header("AltMin inner step vs. dense matmul", "float64")
    g = torch.Generator().manual_seed(0)
    A = torch.randn(1000, 1000, generator=g, dtype=torch.float64)
    # Best of many: the steps below are short and their best times dodge other load, so the
    # reference gets as many chances (and is measured again at the end).
    mm_rate = 2 * 1000**3 / best(lambda: A @ A, 4 * args.repeat) / 1e9

    rng = np.random.default_rng(0)
    B, n, d = 100, 500, 200
    X = rng.standard_normal((B, n, d)) / np.sqrt(n)
    w_star = rng.standard_normal((B, d))
    y = np.maximum(np.einsum("bnd,bd->bn", X, w_star), 0)
    P = np.einsum("bnd,bd->bn", X, w_star + 0.1 * rng.standard_normal((B, d))) >= 0
    m = P.sum(1).astype(float)

    def per_trial_best(step) -> float:
        """Summed over trials of each trial's best time (its data stays in cache)."""
        total = 0.0
        for b in range(B):
            total += best(lambda b=b: step(b), args.repeat)
        return total

    t = per_trial_best(lambda b: NeuronLeastSquares(X[b], y[b]).solve(P[b]))
    flops = float((m * d * (d + 1) + d**3 / 3 + 2 * d**2 + 2 * n * d).sum())
    rate = flops / t / 1e9

    flips = [rng.choice(n, 10, replace=False) for _ in range(B)]

    def updated(b: int) -> None:
        ls = NeuronLeastSquares(X[b], y[b])
        ls.solve(P[b])
        q = P[b].copy()
        q[flips[b]] ^= True
        ls.solve(q)

    t_up = per_trial_best(updated) - t
    line("step after 10 rows flip (Gram updated)", t_up / t * 100, "% of fresh", "(info)", None)

    n2 = 300
    X2, y2 = X[:, :n2], y[:, :n2]
    P2 = P[:, :n2] & (rng.random((B, n2)) < 0.95)
    m2 = P2.sum(1).astype(float)
    solvers = [NeuronLeastSquares(X2[b], y2[b]) for b in range(B)]
    for b in range(B):
        solvers[b].solve(P2[b])  # fills the X X^T cache, as a trial's first dual iteration does
    t2 = per_trial_best(lambda b: solvers[b].solve(P2[b]))
    flops2 = float((m2**3 / 3 + 2 * m2**2 + 2 * n2 * d).sum())
    line("dual step n=300 (m ~ 140 < d)", flops2 / t2 / 1e9, "GFLOP/s", "(info)", None)

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    Pt = torch.from_numpy(P).unsqueeze(-1)
    t_batch = best(lambda: MaskedLeastSquares(Xt, yt).solve(Pt), args.repeat)
    flops_b = float((2 * m * d**2 + d**3 / 3 + 4 * d**2 + 2 * m * d).sum())
    line("tensor path (GPU, float32), on CPU", flops_b / t_batch / 1e9, "GFLOP/s", "(info)", None)

    R = np.flatnonzero(P[0])
    Xr = X[0][R]
    syrk = len(R) * d * (d + 1) / best(lambda: dsyrk(1.0, Xr.T, lower=1), 50) / 1e9
    G = dsyrk(1.0, Xr.T, lower=1)
    potrf = d**3 / 3 / best(lambda: lapack.dpotrf(G, lower=1, clean=0), 50) / 1e9
    mm_rate = max(mm_rate, 2 * 1000**3 / best(lambda: A @ A, 4 * args.repeat) / 1e9)
    line("torch.matmul 1000x1000 rate (best of 2 x 20)", mm_rate, "GFLOP/s", "", None)
    line("primal step n=500 d=200 (m ~ 250), fresh Gram", rate, "GFLOP/s", "", None)
    line("primal step / matmul rate", rate / mm_rate * 100, "%", ">= 50%", rate >= 0.5 * mm_rate)
    line("ceiling: BLAS syrk rate at this size", syrk, "GFLOP/s", "(info)", None)
    line("ceiling: LAPACK potrf rate at d = 200", potrf, "GFLOP/s", "(info)", None)


if __name__ == "__main__":
    main()
