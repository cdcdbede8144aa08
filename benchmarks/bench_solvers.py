"""Trial batching of the first-order solvers: gd, centered_pgd, sgd (issue 8).

For each solver, the time per trial-iteration when B = 100 trials run as one batched
call, against the same trials run one at a time (B = 1, a Python loop over trials),
and their ratio, the batching speedup. Every trial runs the full ``max_iter``
iterations (tol = 0), so both sides do the same arithmetic; the equality of the two
results is checked by tests/plugins/test_batching_solvers.py, not here.

    python benchmarks/bench_solvers.py                  # CPU, float64, one torch thread
    python benchmarks/bench_solvers.py --device cuda    # on a GPU, if there is one
    python benchmarks/bench_solvers.py --dtype float32

Runs with one torch thread (what every executor gives a solver) unless --threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import header, line, single_thread_env  # noqa: E402

single_thread_env()

import torch  # noqa: E402

from harness import SolveContext  # noqa: E402
from harness.plugins import get_registry  # noqa: E402


def _gens(seeds: range) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


# name, problem (name, params), initializer (name, params), solver params
CASES: list[tuple[str, tuple[str, dict], tuple[str, dict], dict]] = [
    (
        "gd",
        ("one_hidden", {"d": 10, "k": 3, "n": 1000}),  # zhang-small's problem
        ("gaussian", {"scale": 1.0}),
        {"step_size": 0.5, "max_iter": 200, "tol": 0.0},
    ),
    (
        "gd",
        ("one_hidden", {"d": 10, "k": 3, "n": 1000}),
        ("gaussian", {"scale": 1.0}),
        {"step_size": 0.5, "max_iter": 200, "tol": 0.0, "batch_size": 100},
    ),
    (
        "centered_pgd",
        ("additive", {"d": 50, "n": 150}),  # oymak-small's problem
        ("zero", {}),
        {"max_iter": 200, "tol": 0.0},
    ),
    (
        "sgd",
        ("reslink", {"d": 10, "n": 2000, "n_test": 0}),  # liyuan-small's problem
        ("gaussian", {"scale": 0.047}),
        {"step_size": 0.2, "batch_size": 100, "max_iter": 200},
    ),
    (
        "sgd",
        ("reslink", {"d": 10, "n": 2000, "n_test": 0}),
        ("gaussian", {"scale": 0.047}),
        {"step_size": 0.2, "batch_size": 100, "max_iter": 200, "sampling": "fresh"},
    ),
]


def _setup(case, B: int, dtype: torch.dtype, device: torch.device):
    name, (pname, pparams), (iname, iparams), sparams = case
    reg = get_registry()
    P, I, S = (
        reg.get(k, n) for k, n in (("problem", pname), ("initializer", iname), ("solver", name))
    )
    inst = P(P.make_params(pparams)).sample(_gens(range(B)), dtype)
    w0 = I(I.make_params(iparams)).initialize(inst, _gens(range(1000, 1000 + B)), dtype)
    inst = inst.to(device)
    w0 = {k: v.to(device) for k, v in w0.items()}
    return inst, w0, S(S.make_params(sparams))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--B", type=int, default=100, help="trials in the batched call")
    ap.add_argument("--single", type=int, default=20, help="trials timed one at a time")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    header(f"Trial batching of gd, centered_pgd, sgd on {device}", args.dtype)
    if device.type == "cuda":
        print(f"   GPU: {torch.cuda.get_device_name(device)}")
    print(
        f"   time per trial-iteration: one call with B = {args.B} trials vs {args.single} "
        f"trials one at a time (B = 1); best of {args.repeat}"
    )
    for case in CASES:
        bench_case(case, args.B, args.single, args.repeat, dtype, device)


def bench_case(
    case: tuple, B: int, single: int, repeat: int, dtype: torch.dtype, device: torch.device
) -> None:
    """Print one solver's batched and one-at-a-time time per trial-iteration."""
    name, _, _, sp = case
    label = name + "".join(f" {k}={v}" for k, v in sp.items() if k in ("batch_size", "sampling"))
    iters = sp["max_iter"]
    inst, w0, solver = _setup(case, B, dtype, device)

    def ctx(b: int) -> SolveContext:
        return SolveContext(device=device, dtype=dtype, generators=_gens(range(7, 7 + b)))

    def batched() -> None:
        res = solver.solve(inst, dict(w0), ctx(B))
        assert int(res.iterations.min()) == iters  # every trial ran the full budget

    subs = [(inst.select([i]), {k: v[i : i + 1] for k, v in w0.items()}) for i in range(single)]

    def one_by_one() -> None:
        for sub, w in subs:
            solver.solve(sub, dict(w), ctx(1))

    batched()  # warm-up (allocator, kernels, CUDA context)
    one_by_one()
    t_b = _timed(batched, device, repeat) / (B * iters)
    t_1 = _timed(one_by_one, device, repeat) / (single * iters)
    print(f"   {label}")
    line(f"  batched (B = {B}), per trial-iteration", t_b * 1e6, "us", "-", None)
    line("  one at a time (B = 1), per trial-iteration", t_1 * 1e6, "us", "-", None)
    line("  batching speedup", t_1 / t_b, "x", "-", None)


if __name__ == "__main__":
    main()
