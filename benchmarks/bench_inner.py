"""Target 2: AltMin's inner step against torch's dense matmul rate (same dtype, same threads).

The inner step is one least-squares solve for a batch of trials
(plugins/common/linalg.py, MaskedLeastSquares.solve) at the largest J1 cell:
B = 100 trials, n = 500, d = 200, a pattern with about half the rows active (as
near the solution). Its useful arithmetic is counted as Gram 2 m d^2 + Cholesky d^3/3
+ two triangular solves 2 d^2 each + right-hand side 2 m d per trial (m active rows),
and divided by the best wall time of a few repeats. The reference is the best rate of
torch.matmul on 1000 x 1000 matrices. The dual step (n = 300: fewer active rows than d)
is printed too, for information.

Usage: python benchmarks/bench_inner.py [--threads 1] [--dtype float64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import header, line  # noqa: E402


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
    ap.add_argument("--threads", type=int, default=1, help="torch threads (workers use 1)")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import torch

    from plugins.common.linalg import MaskedLeastSquares

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    header("AltMin inner step vs. dense matmul", args.dtype)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(1000, 1000, generator=g, dtype=dtype)
    t_mm = best(lambda: A @ A, args.repeat)
    mm_rate = 2 * 1000**3 / t_mm / 1e9
    line("torch.matmul 1000x1000 rate", mm_rate, "GFLOP/s", "", None)

    def problem(n: int, d: int, B: int = 100):
        X = torch.randn(B, n, d, generator=g, dtype=dtype) / n**0.5
        w_star = torch.randn(B, d, 1, generator=g, dtype=dtype)
        y = torch.clamp_min(X @ w_star, 0).squeeze(-1)
        w = w_star + 0.1 * torch.randn(B, d, 1, generator=g, dtype=dtype)
        return X, y, (X @ w) >= 0

    X, y, P = problem(500, 200)
    m = P.sum(1).squeeze(-1).to(torch.float64)
    d = 200
    flops = float((2 * m * d**2 + d**3 / 3 + 4 * d**2 + 2 * m * d).sum())
    t = best(lambda: MaskedLeastSquares(X, y).solve(P), args.repeat)
    rate = flops / t / 1e9
    line("primal step B=100 n=500 d=200 (m ~ 250)", rate, "GFLOP/s", "", None)
    line("primal step / matmul rate", rate / mm_rate * 100, "%", ">= 50%", rate >= 0.5 * mm_rate)

    X, y, P = problem(300, 200)
    P = P & (torch.rand(P.shape, generator=g) < 0.95)  # m below d: the dual form
    m = P.sum(1).squeeze(-1).to(torch.float64)
    ls = MaskedLeastSquares(X, y)
    ls.solve(P)  # fills the X X^T cache, as the first dual iteration of a trial does
    flops = float((m**3 / 3 + 4 * m**2 + 2 * m * d).sum())
    t = best(lambda: ls.solve(P), args.repeat)
    assert ls.stats["dual"] > 0
    line("dual step B=100 n=300 d=200 (m ~ 140), cached K", flops / t / 1e9, "GFLOP/s", "", None)
    line("dual step / matmul rate", flops / t / 1e9 / mm_rate * 100, "%", "(info)", None)


if __name__ == "__main__":
    main()
