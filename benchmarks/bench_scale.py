"""Issue 17, target 6: results at scale, with the do-nothing plugin (noop_plugin.py).

* expansion: ``harness.run.prepare`` of a suite of ``--cells`` (100,000) one-trial cells,
  in this process (target <= 5 s);
* no-op resume: a suite of ``--resume-cells`` (10,000) one-trial cells is run once, then
  ``relubench run`` again with nothing left to do, CLI start to exit (target <= 2 s; the
  same in this process, ``harness.run.execute``, is printed too);
* results at scale: ``--rows`` (10,000,000) rows are written by running 1,000 cells x
  rows / 1,000 trials, then ``relubench report``, ``compare`` (one folder, and the folder
  against itself: twice the rows) and ``export`` are run on them, each with its peak
  memory (target <= 2 GiB).
  ``--rows 0`` skips this part (generating 10M rows takes minutes).

Usage: python benchmarks/bench_scale.py [--cells 100000] [--resume-cells 10000]
       [--rows 10000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, line, measure  # noqa: E402

LIMIT = 4 * 2**30  # a command past this much memory is stopped (the target is 2 GiB)
PLUGIN = str(ROOT / "benchmarks" / "noop_plugin.py")

SUITE = """
[suite]
name = "{name}"
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


def write(tmp: Path, name: str, cells: int, trials: int) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(SUITE.format(name=name, trials=trials, last=cells - 1))
    return path


# These suites are far above the default size limits (harness.expand.Limits) on purpose.
LIMITS = ("--max-cells", str(10**9), "--max-trials", str(10**12))


def cli(*args: str) -> list[str]:
    extra = LIMITS if args[0] == "run" else ()
    return [sys.executable, "-m", "harness.cli", *args, *extra, "--plugin", PLUGIN]


def limits():
    from harness.expand import Limits

    return Limits(max_cells=10**9, max_trials=10**12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--resume-cells", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    header("Target 6: results at scale (do-nothing plugin)")
    from harness.run import execute, prepare

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # -- expansion
        suite = write(tmp, "expand", args.cells, 1)
        start = time.perf_counter()
        _, _, cells, _ = prepare(suite, plugins=[PLUGIN], limits=limits())
        took = time.perf_counter() - start
        line(f"expansion of {len(cells):,} cells (in process)", took, "s", "<= 5 s", took <= 5)

        # -- no-op resume
        suite = write(tmp, "resume", args.resume_cells, 1)
        results = tmp / "results"
        first = measure(
            cli(
                "run",
                str(suite),
                "--results",
                str(results),
                "--no-progress",
                "--workers",
                str(args.workers),
            )
        )
        n = args.resume_cells
        print(f"   first run of {n:,} cells: {first['wall']:.1f} s (exit {first['rc']})")
        again = measure(cli("run", str(suite), "--results", str(results), "--no-progress"))
        start = time.perf_counter()
        report = execute(suite, results=results, plugins=[PLUGIN], limits=limits())
        inproc = time.perf_counter() - start
        assert report.trials_run == 0, report.trials_run
        line("no-op resume, in process (execute)", inproc, "s", "", None)
        line(
            f"no-op resume of {args.resume_cells:,} cells, CLI",
            again["wall"],
            "s",
            "<= 2 s",
            again["wall"] <= 2,
        )

        # -- report / compare / export on many rows
        if args.rows:
            cells_n = 1000
            suite = write(tmp, "rows", cells_n, max(1, args.rows // cells_n))
            big = tmp / "big"
            gen = measure(
                cli(
                    "run",
                    str(suite),
                    "--results",
                    str(big),
                    "--no-progress",
                    "--workers",
                    str(args.workers),
                )
            )
            print(f"   wrote {args.rows:,} rows in {gen['wall']:.0f} s (exit {gen['rc']})")
            folder = big / "rows"
            commands = {"report": ["report", str(folder), "--out", str(tmp / "report")]}
            helptext = subprocess.run(
                [sys.executable, "-m", "harness.cli", "--help"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if "compare" in helptext:
                commands["compare"] = ["compare", str(folder)]
                commands["compare (two runs)"] = ["compare", str(folder), str(folder)]
            if "export" in helptext:
                commands["export"] = ["export", str(folder), "--out", str(tmp / "export.csv")]
            for name, cmd in commands.items():
                m = measure([sys.executable, "-m", "harness.cli", *cmd], limit=LIMIT)
                if m["killed"]:
                    print(f"   {name}: stopped at {LIMIT / 2**30:.0f} GiB (would not fit)")
                if m["rc"] not in (0, 1):
                    print(f"   {name}: exit {m['rc']}: {' '.join(cmd)}")
                gib = m["rss"] / 2**30
                print(f"   {name}: {m['wall']:.1f} s, exit {m['rc']}")
                line(f"{name} on {args.rows:,} rows: peak memory", gib, "GiB", "<= 2 GiB", gib <= 2)


if __name__ == "__main__":
    main()
