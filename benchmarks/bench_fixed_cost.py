"""Issue 17, target 1: the fixed cost of a command, against a bare ``import torch``.

Runs, interleaved, ``--rounds`` times each (median kept):

* ``python -c "import torch"`` (the reference);
* ``relubench list``, ``relubench show solver altmin``, ``relubench run SUITE --dry-run``
  (targets <= 1.2x the reference, wall and CPU);
* ``relubench run`` of a one-cell, one-trial AltMin suite (target <= 1.5x, wall and CPU).

CPU is user + system of the whole process tree (driver, forkserver, workers). Also printed
for each command: the processes it started and the heavy modules its driver imported
(counts that do not depend on the machine's load).

Usage: python benchmarks/bench_fixed_cost.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, line, measure, median  # noqa: E402

ONE_CELL = """
[suite]
name = "one_cell"
trials = 1
seed = 0

[[problems]]
name = "single_neuron"
d = 20
n = 60

[[initializers]]
name = "gaussian"
scale = 0.1

[[solvers]]
name = "altmin"
max_iter = 100

[metrics]
names = ["param_error", "success"]
success = { threshold = 0.01 }
"""

# Python writes and reuses compiled bytecode (__pycache__), as it does for an installed
# relubench; this project's shell sets PYTHONDONTWRITEBYTECODE=1, which would make every
# command compile the harness and the plugins from source while torch's bytecode is cached.
ENV = {"PYTHONDONTWRITEBYTECODE": ""}

HEAVY = ("torch", "numpy", "scipy", "pandas", "pyarrow", "matplotlib", "dask", "distributed")

IMPORTS = """
import json, sys
from harness.cli import main
code = main(sys.argv[1:])
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def driver_imports(args: list[str]) -> list[str]:
    """Heavy top-level modules the driver has imported when the command returns."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS.format(heavy=HEAVY), *args],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, **ENV},
        text=True,
        check=False,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    header("Target 1: fixed cost of relubench commands vs a bare `import torch`")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "one_cell.toml"
        suite.write_text(ONE_CELL)
        results = str(Path(tmp) / "results")
        commands = {
            "import torch": ([py, "-c", "import torch"], None),
            "list": ([py, "-m", "harness.cli", "list"], 1.2),
            "show solver altmin": ([py, "-m", "harness.cli", "show", "solver", "altmin"], 1.2),
            "run --dry-run": ([py, "-m", "harness.cli", "run", str(suite), "--dry-run"], 1.2),
            "run (1 cell x 1 trial)": (
                [py, "-m", "harness.cli", "run", str(suite), "--results", results]
                + ["--force", "--no-progress"],
                1.5,
            ),
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        for cmd, _ in commands.values():  # warm-up: bytecode written, files in the page cache
            measure(cmd, ENV)
        for _ in range(args.rounds):
            for name, (cmd, _) in commands.items():
                m = measure(cmd, ENV)
                if m["rc"] != 0:
                    raise SystemExit(f"{name}: exit code {m['rc']}: {' '.join(cmd)}")
                samples[name].append(m)
        ref_wall = median([m["wall"] for m in samples["import torch"]])
        ref_cpu = median([m["cpu"] for m in samples["import torch"]])
        print(
            f"   reference `import torch`: {ref_wall:.2f} s wall, {ref_cpu:.2f} s CPU "
            f"(median of {args.rounds})"
        )
        for name, (cmd, target) in commands.items():
            if target is None:
                continue
            wall = median([m["wall"] for m in samples[name]])
            cpu = median([m["cpu"] for m in samples[name]])
            procs = max(int(m["processes"]) for m in samples[name])
            mods = driver_imports(cmd[3:])
            print(
                f"   {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {procs} processes started, "
                f"driver imports {', '.join(mods)}"
            )
            line(f"{name}: wall / import torch", wall / ref_wall, "x", f"<= {target}x", None)
            line(f"{name}: CPU / import torch", cpu / ref_cpu, "x", f"<= {target}x", None)
            met = wall / ref_wall <= target and cpu / ref_cpu <= target
            line(
                f"{name}: verdict (wall and CPU)",
                max(wall / ref_wall, cpu / ref_cpu),
                "x",
                f"<= {target}x",
                met,
            )


if __name__ == "__main__":
    main()
