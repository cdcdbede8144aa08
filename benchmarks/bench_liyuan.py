"""Li & Yuan suites (L1 fig7, L2 fig8, L3 zero-init): baseline code against this tree
(issue 17 target 4, at least 2x each on the full profiles).

Runs the same reduced commands of each suite's full profile against a baseline tree
(a git worktree of main's 3b26aed, created with ``git worktree add`` if missing) and this
tree, alternating, each side in its own process with ``PYTHONPATH`` set to its tree (the
imported tree is printed and checked). Each suite is run at two lengths; the difference
is the cost of the extra iterations, which is what a full profile is made of, so the
ratio of those differences is the full-profile speed-up (the whole-command ratio, fixed
costs included, is printed too).

    python benchmarks/bench_liyuan.py [--reps 1] [--suites L1 L2 L3] [--base /tmp/base-hQ]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, line  # noqa: E402

BASE_COMMIT = "3b26aed"

# suite -> (file, the reduced command's options, the option varied, short and long value,
# how many of those units a full profile runs, what a unit is)
SUITES = {
    "L2": (
        "liyuan-fig8.toml",
        ["--profile", "full"],
        "solvers.max_iter",
        (2, 12),
        1000,
        "SGD step with its traced metrics (d = 1500)",
    ),
    "L1": (
        "liyuan-fig7.toml",
        ["--profile", "full", "--only", "problem=three_block"]
        + [
            "--set",
            "problems.n=5000",
            "--set",
            "problems.n_test=2000",
            "--set",
            "metrics.trace=[]",
        ],
        "solvers.max_iter",
        (5, 45),
        20000,
        "3-Block SGD step, 5 trials, untraced (the full profile's dominant cell)",
    ),
    "L3": (
        "liyuan-zero-init.toml",
        ["--profile", "full", "--only", "initializer=zero", "--set", "trials=1"]
        + ["--only", "problem.hidden=identity:784-784-784-784-784"],
        "solvers.epochs",
        (1, 2),
        10 * 5 * 4,
        "epoch of one trial of one cell (5 blocks of 784)",
    ),
}


def ensure_base(path: Path) -> Path:
    if not (path / "harness" / "__init__.py").exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), BASE_COMMIT],
            check=True,
        )
    return path


def imported_tree(tree: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, "-c", "import harness, plugins.li_yuan; print(harness.__file__)"],
        env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def run_once(tree: Path, suite: str, options: list[str], results: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `relubench run` with ``tree``'s code,
    one worker, serial, one BLAS thread: on a shared machine CPU time is the steadier
    figure (wall time counts the other users' work)."""
    cmd = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "suites" / suite), *options]
    cmd += ["--workers", "1", "--executor", "serial", "--no-progress", "--force"]
    cmd += ["--results", str(results)]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        ["nice", "-n", "10", *cmd] if os.nice(0) == 0 else cmd, env=env, cwd=tempfile.gettempdir(),
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if "ran " not in out.stdout + out.stderr:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    ap.add_argument("--base", type=Path, default=Path(tempfile.gettempdir()) / "base-hQ")
    args = ap.parse_args()
    header("Li & Yuan suites: baseline 3b26aed vs this tree (one worker, serial)")
    trees = {"base": ensure_base(args.base), "new": ROOT}
    for side, tree in trees.items():
        where = imported_tree(tree)
        print(f"   {side}: imports {where}")
        if not where.startswith(str(tree)):
            raise SystemExit(f"{side}: expected the tree {tree}")
    with tempfile.TemporaryDirectory(dir=ROOT / "results-tmp" if (ROOT / "results-tmp").is_dir()
                                     else None) as tmp:  # fmt: skip
        for key in args.suites:
            suite, options, knob, (short, long_), units, what = SUITES[key]
            times: dict[tuple[str, int], list[tuple[float, float]]] = {}
            for rep in range(args.reps):
                order = ["base", "new"] if rep % 2 == 0 else ["new", "base"]
                for value in (short, long_):
                    for side in order:
                        opts = [*options, "--set", f"{knob}={value}"]
                        res = Path(tmp) / f"{key}-{side}-{value}"
                        times.setdefault((side, value), []).append(
                            run_once(trees[side], suite, opts, res)
                        )
            print(f"-- {key} {suite} {' '.join(options)}, {knob} = {short} / {long_}")
            ratios = {}
            for i, kind in enumerate(("wall", "cpu")):
                med = {k: statistics.median(t[i] for t in v) for k, v in times.items()}
                per = {s: (med[(s, long_)] - med[(s, short)]) / (long_ - short) for s in trees}
                for s in trees:
                    print(
                        f"   {s:<4} {kind:<4} {med[(s, short)]:7.1f} s / {med[(s, long_)]:7.1f} s; "
                        f"per {what}: {per[s]:.3f} s, x {units} = ~{per[s] * units / 60:.0f} min"
                    )
                whole = med[("base", long_)] / med[("new", long_)]
                ratios[kind] = per["base"] / per["new"]
                line(f"{key} {kind}: whole command base/new", whole, "x", "", None)
                line(f"{key} {kind}: per unit base/new", ratios[kind], "x", ">= 2x", None)
            met = ratios["cpu"] >= 2
            print(f"   {key} target 2x (per-unit CPU time ratio): {'MET' if met else 'NOT MET'}")
            sys.stdout.flush()
    print(f"   load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
