"""Issue 17, target 4, for the DANTE suites (dante-sigmoid, dante-mlp, dante-xent): the
same reduced command run against the baseline tree and this tree, alternating.

The reduced command: dante-sigmoid's ``full`` profile (full-profile epochs, rounds and
trace points, the 4,000/1,000 MNIST digits), one architecture (``--hidden``, default
400), ``--trials`` trials per solver (default 1), DANTE and backprop SGD at the suite's
former single learning rates (the tuned values replaced by one value each, the
``[tuning]`` table dropped, so there is no tuning phase), serial executor, one thread.
Each side is a fresh process (``python -m harness.cli``) with ``PYTHONPATH`` set to its
tree; the script prints which ``harness`` each tree imports. Wall times are CLI start to
exit; the ratio is baseline / new, the median over ``--repeats`` alternating pairs.

``--check SUITE PROFILE`` instead runs that suite's profile with both trees and compares
every ``metric.*`` column of the result rows, and every trace value, exactly (NaN equal
to NaN): the changes are meant to be bitwise neutral in float64.

Baseline tree: ``git -C /work/main worktree add /tmp/base-NAME 3b26aed``, plus a copy of
an ``relubench.egg-info`` (the entry points) in it; pass it as ``--base``. Both trees run
under the system ``python3`` (a venv's editable install would shadow ``PYTHONPATH``).

``--float32`` also times the new tree with ``--set dtype=float32`` (the suites' existing
``dtype`` key: an opt-in that changes the numbers, not a bitwise-neutral change).

Usage: python3 benchmarks/bench_dante.py --base /tmp/base-hP [--hidden 400] [--trials 1]
       [--repeats 1] [--float32] [--check suites/dante-sigmoid.toml smoke]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "dante-sigmoid.toml"
# The single values the suite used before the tuning protocol (its comments say so).
SINGLE_LR = {"dante": "0.1", "backprop": "1.0"}


def reduced_suite(text: str) -> str:
    """dante-sigmoid without its tuning phase: each tuned lr replaced by its former value."""
    out, solver = [], None
    for row in text.splitlines():
        m = re.match(r'name = "(\w+)"', row)
        if m:
            solver = m.group(1)
        if row.startswith("lr = { tune") and solver in SINGLE_LR:
            row = f"lr = {SINGLE_LR[solver]}"
        if row.startswith("tuning.") or ("{ tune" in row and row.startswith("solvers.")):
            continue  # a profile's tuning settings
        out.append(row)
    text = "\n".join(out) + "\n"
    text = re.sub(r"\n\[tuning\]\n.*?\n(?=\[)", "\n", text, flags=re.S)
    if "tune =" in text or "[tuning]" in text:
        raise SystemExit(f"bench_dante: could not remove the tuning phase of {SUITE}")
    return text.replace('name = "dante-sigmoid"', 'name = "dante-sigmoid-bench"')


def run_cli(tree: Path, args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the child) and output of one CLI run."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    cmd = ["nice", "-n", "10", "python3", "-m", "harness.cli", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd="/", env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # 1: a claim failed (a reduced run judges few rows)
        raise SystemExit(f"bench_dante: {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return wall, cpu, proc.stdout + proc.stderr


def imported_from(tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import harness, plugins.dante.dante as d; print(harness.__file__, d.__file__)"
    return subprocess.run(
        ["python3", "-c", code], cwd="/", env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def load(folder: Path):
    import pandas as pd

    def read(kind: str) -> pd.DataFrame:
        files = sorted(folder.glob(f"*/{kind}/*.parquet"))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    # cell_id hashes the components' source too, so the trees' ids differ: rows are
    # matched on what the cell is (split, components, parameters) and the trial.
    runs = read("runs")
    what = [c for c in runs.columns if c.split(".")[0] in ("problem", "initializer", "solver")]
    key = ["split", "problem", "initializer", "solver", *what, "trial", "seed"]
    runs = runs.astype({c: str for c in what}).sort_values(key, kind="stable")
    runs = runs.reset_index(drop=True)
    runs["order"] = range(len(runs))
    traces = read("traces").merge(runs[["cell_id", "trial", "order"]], on=["cell_id", "trial"])
    traces = traces.sort_values(["order", "metric", "iteration"], kind="stable")
    return runs, traces.reset_index(drop=True)


def compare(base: Path, new: Path) -> bool:
    import numpy as np

    (rb, tb), (rn, tn) = load(base), load(new)
    cols = ["split", "solver", "trial", "seed", "status", "iterations"]
    metrics = sorted(c for c in rb.columns if c.startswith("metric."))
    ok = rb[cols].equals(rn[cols]) and metrics == sorted(
        c for c in rn.columns if c.startswith("metric.")
    )
    for c in metrics:
        same = np.array_equal(rb[c].to_numpy(float), rn[c].to_numpy(float), equal_nan=True)
        ok &= same
        print(f"   rows   {c:<28} {len(rb)} values  {'identical' if same else 'DIFFER'}")
        if not same:
            a, b = rb[c].to_numpy(float), rn[c].to_numpy(float)
            bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            for i in np.flatnonzero(bad)[:4]:
                print(
                    f"      {rb.solver[i]} {rb.split[i]} trial {rb.trial[i]}: {a[i]!r} vs {b[i]!r}"
                )
    keys = ["order", "metric", "iteration"]
    same_keys = tb[keys].equals(tn[keys])
    same = same_keys and np.array_equal(
        tb["value"].to_numpy(float), tn["value"].to_numpy(float), equal_nan=True
    )
    ok &= same
    print(f"   traces {'value':<28} {len(tb)} values  {'identical' if same else 'DIFFER'}")
    return bool(ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="baseline tree (3b26aed worktree)")
    ap.add_argument("--new", type=Path, default=ROOT, help="tree under test (this one)")
    ap.add_argument("--hidden", default="400", help="the architecture (problem.hidden)")
    ap.add_argument("--trials", type=int, default=1, help="trials per solver (one batch)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating baseline/new pairs")
    ap.add_argument("--check", nargs=2, metavar=("SUITE", "PROFILE"))
    ap.add_argument(
        "--float32",
        action="store_true",
        help="also time the new tree with --set dtype=float32 (opt-in: changes the numbers)",
    )
    args = ap.parse_args()
    for tree in (args.base, args.new):
        print(f"   tree {tree}: imports {imported_from(tree)}")
    print(f"   {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_dante-", dir=ROOT / "results-tmp"))
    try:
        if args.check:
            suite = Path(args.check[0]).resolve()
            for name, tree in (("base", args.base), ("new", args.new)):
                run_cli(tree, ["run", str(suite), "--profile", args.check[1], "--executor",
                               "serial", "--workers", "1", "--no-progress",
                               "--results", str(tmp / name)])  # fmt: skip
            ok = compare(tmp / "base", tmp / "new")
            if not ok and os.environ.get("BENCH_DANTE_KEEP"):
                print(f"   kept {tmp}")
                return
            print(f"== {suite.name} --profile {args.check[1]}: bitwise identical: {ok}")
            sys.exit(0 if ok else 1)
        suite = tmp / "dante-sigmoid-bench.toml"
        suite.write_text(reduced_suite(SUITE.read_text()))
        cmd = ["run", str(suite), "--profile", "full", "--only", f"problem.hidden={args.hidden}",
               "--set", f"trials={args.trials}", "--executor", "serial", "--workers", "1",
               "--no-progress", "--force"]  # fmt: skip
        print(f"== DANTE + backprop SGD, dante-sigmoid full profile, hidden={args.hidden}, "
              f"{args.trials} trial(s) per solver, 1 thread")  # fmt: skip
        sides = [("base", args.base, []), ("new", args.new, [])]
        if args.float32:
            sides.append(("new-f32", args.new, ["--set", "dtype=float32"]))
        times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in sides}
        for r in range(args.repeats):
            for name, tree, extra in sides:
                wall, cpu, _ = run_cli(tree, [*cmd, *extra, "--results", str(tmp / f"{name}{r}")])
                times[name].append((wall, cpu))
                avg = os.getloadavg()[0]
                took = f"wall {wall:7.1f} s  cpu {cpu:7.1f} s"
                print(f"   round {r + 1}: {name:<7} {took}  (load {avg:.1f})")
        for name in times:
            if name == "base":
                continue
            for i, unit in ((1, "cpu"), (0, "wall")):
                ratio = statistics.median(b[i] / n[i] for b, n in zip(times["base"], times[name]))
                base_s = statistics.median(t[i] for t in times["base"])
                new_s = statistics.median(t[i] for t in times[name])
                verdict = f", target 2x: {'MET' if ratio >= 2 else 'NOT MET'}" if i else ""
                print(f"   {unit:<4} baseline {base_s:.1f} s, {name} {new_s:.1f} s, "
                      f"ratio {ratio:.2f}x{verdict}")  # fmt: skip
        identical = compare(tmp / "base0", tmp / "new0")
        print(f"   float64 results of the timed runs bitwise identical: {identical}")
        if args.float32:  # what float32 changes: the final metrics side by side
            (r64, _), (r32, _) = load(tmp / "new0"), load(tmp / "new-f320")
            for c in sorted(c for c in r64.columns if c.startswith("metric.")):
                for i in range(len(r64)):
                    a, b = float(r64[c][i]), float(r32[c][i])
                    rel = abs(a - b) / max(abs(a), 1e-300)
                    print(f"   {r64.solver[i]:<8} trial {r64.trial[i]} {c:<22} float64 {a:.6g}  "
                          f"float32 {b:.6g}  rel. diff {rel:.1e}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
