"""Issue 17 target 4: O1 (oymak-fig2), X2 (cross-additive) and J2 (jagatap-fig2) at least 2x
faster than main's 3b26aed, measured on reduced full-profile commands.

Each suite's reduced command runs against the baseline tree and this tree, alternating
(baseline, new, baseline, new, ...), one worker, serial executor, fresh results folders.
Prints each side's wall and CPU times (the median over rounds), their ratio with
"target 2x: MET/NOT MET", and whether every metric column, the iteration counts and the
statuses of the two sides' Parquet rows are identical (they must be: the speed-ups are
bit-identical in float64).

The baseline is a git worktree of 3b26aed: ``git -C /work/main worktree add /tmp/base-hR
3b26aed``; it runs with ``PYTHONPATH=<baseline>`` from inside that tree, and the script
prints the ``harness`` and plugin files each side imports.

Usage: python benchmarks/bench_oymak_j2.py [--baseline /tmp/base-hR] [--rounds 2]
       [--only O1,X2,J2]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, median  # noqa: E402

COMMON = ["--profile", "full", "--workers", "1", "--executor", "serial", "--no-progress"]
# The reduced commands: each suite's most expensive corner of its full profile.
SUITES = {
    # d = 500, n = 1000, sigma = 1, the full profile's 10 trials (the batch size matters:
    # the page faults the speed-up removes hit tensors past glibc's 32 MB mmap threshold,
    # B n d = 10 x 1000 x 500 doubles = 40 MB), 300 of the 1000 iterations (the trials
    # need ~850: every one runs all 300, so per-iteration cost is what is compared).
    "O1": [
        "suites/oymak-fig2.toml",
        "--only=problem.d=500",
        "--only=problem.n=1000",
        "--only=problem.sigma=1.0",
        "--set=solvers.centered_pgd.max_iter=300",
    ],
    # d = 50, n = 200, sigma = 1: tuning (4 steps of GD, 4 rates of Adam) and the
    # reported trials (--only keeps every centered_pgd cell of this suite).
    "X2": [
        "suites/cross-additive.toml",
        "--only=problem.d=50",
        "--only=problem.n=200",
        "--only=problem.sigma=1.0",
    ],
    # The largest k and n, both inits and both solvers, 10 of 50 trials.
    "J2": [
        "suites/jagatap-fig2.toml",
        "--only=problem.k=5",
        "--only=problem.n=2000",
        "--set=trials=10",
    ],
}
PROBE = (
    "import harness, plugins.oymak_asif.models as o, plugins.common.gd as g; "
    "print(harness.__file__, o.__file__, g.__file__)"
)


def side_env(tree: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if tree != ROOT:
        env["PYTHONPATH"] = str(tree)
    else:
        env.pop("PYTHONPATH", None)
    return env


def run(tree: Path, args: list[str], results: Path) -> tuple[float, float, str]:
    """``python -m harness.cli run ...`` from inside ``tree``: (wall s, CPU s, output)."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "harness.cli", "run", *args, *COMMON]
    cmd += ["--results", str(results), "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=side_env(tree), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: a claim failed on the slice
        raise SystemExit(f"{tree}: {' '.join(cmd)} failed:\n{out[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, out


def rows(results: Path):
    import pandas as pd

    files = glob.glob(str(results / "**" / "*.parquet"), recursive=True)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    keys = ["solver", "initializer", "problem", "split", "trial", "seed"]
    keys += sorted(c for c in df if c.startswith(("problem.", "solver.", "initializer.")))
    df = df.sort_values(keys).reset_index(drop=True)
    return df, keys


def identical(a: Path, b: Path) -> str:
    """Whether two runs' rows agree exactly on every metric, iterations and status."""
    da, keys = rows(a)
    db, _ = rows(b)
    if len(da) != len(db):
        return f"NO ({len(da)} vs {len(db)} rows)"
    for k in keys:
        if (
            not da[k]
            .astype(object)
            .where(da[k].notna(), None)
            .equals(db[k].astype(object).where(db[k].notna(), None))
        ):
            return f"NO (cells differ in {k})"
    cols = [c for c in da if c.startswith("metric.")] + ["iterations", "status"]
    bad = []
    for c in cols:
        x, y = da[c], db[c]
        same = (x == y) | (x.isna() & y.isna())
        if not same.all():
            diff = (x.astype(float) - y.astype(float)).abs().max()
            bad.append(f"{c} ({int((~same).sum())} rows, max |diff| {diff:.3g})")
    if bad:
        return "NO: " + "; ".join(bad)
    return f"yes ({len(da)} rows x {len(cols)} columns, exactly)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=Path("/tmp/base-hR"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default="O1,X2,J2", help="comma-separated: O1,X2,J2")
    args = ap.parse_args()
    base = args.baseline.resolve()
    if not (base / "harness").is_dir():
        raise SystemExit(f"--baseline {base}: no harness/ there (git worktree add it, see doc)")
    header("O1 / X2 / J2 reduced full profiles: baseline vs this tree (target 4: >= 2x)")
    for label, tree in (("baseline", base), ("new", ROOT)):
        probe = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=tree, env=side_env(tree), capture_output=True
        )
        print(f"   {label:<8} imports {probe.stdout.decode().strip()}")
    for name in args.only.split(","):
        cmd = SUITES[name]
        print(f"-- {name}: relubench run {' '.join(cmd)} {' '.join(COMMON)}")
        times: dict[str, list[tuple[float, float]]] = {"baseline": [], "new": []}
        with tempfile.TemporaryDirectory(prefix="bench-oj2-") as tmp:
            out = {"baseline": Path(tmp) / "baseline", "new": Path(tmp) / "new"}
            for r in range(args.rounds):
                for label, tree in (("baseline", base), ("new", ROOT)):
                    shutil.rmtree(out[label], ignore_errors=True)  # the last round's rows stay
                    wall, cpu, _ = run(tree, cmd, out[label])
                    times[label].append((wall, cpu))
                    load = os.getloadavg()[0]
                    print(
                        f"   round {r + 1} {label:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s  "
                        f"(load {load:.1f})"
                    )
            same = identical(out["baseline"], out["new"])
        wall = {k: median([w for w, _ in v]) for k, v in times.items()}
        cpu = {k: median([c for _, c in v]) for k, v in times.items()}
        ratio, cpu_ratio = wall["baseline"] / wall["new"], cpu["baseline"] / cpu["new"]
        verdict = "MET" if ratio >= 2 else "NOT MET"
        print(
            f"   {name}: baseline {wall['baseline']:.1f} s, new {wall['new']:.1f} s (median "
            f"wall), ratio {ratio:.2f}x (CPU {cpu_ratio:.2f}x); target 2x: {verdict}"
        )
        print(f"   {name}: results identical to the baseline: {same}")


if __name__ == "__main__":
    main()
