"""The example third-party plugin loads by module name and its solver runs in a suite."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import load_results
from harness.plugins import create_manager
from harness.run import execute

EXAMPLE = Path(__file__).parents[2] / "examples" / "relubench-example-plugin"

SUITE = """
[suite]
name = "example"
trials = 4

[[problems]]
name = "single_neuron"
d = 5
n = 200

[[initializers]]
name = "gaussian"
scale = 0.5

[[solvers]]
name = "heavy_ball"
max_iter = 300

[metrics]
names = ["param_error", "train_loss"]
"""


def test_example_plugin_registers_and_recovers_a_neuron(monkeypatch, write_suite, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    registry = create_manager(["relubench_example"])
    assert registry.plugin_of("solver", "heavy_ball") == "relubench_example"
    report = execute(
        write_suite(SUITE), plugins=["relubench_example"], results=tmp_path, executor="serial"
    )
    runs = load_results(report.results_dir)
    assert (runs["status"] == "ok").all()
    # Heavy ball from a random start recovers the neuron at n = 40 d.
    assert (runs["metric.param_error"] < 1e-4).all()
    sys.modules.pop("relubench_example", None)
