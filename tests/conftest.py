"""Shared fixtures: write suite files and plugin files into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

# Tests run in parallel (pytest -n auto): one torch thread per test process keeps two
# processes from fighting over the cores, and keeps float results independent of threads.
torch.set_num_threads(1)

PROBE_PLUGIN = '''
"""Test plugin: solvers that expose what they were given, and ones that fail."""
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class ProbeParams:
    tag: int = param(0, "distinguishes otherwise identical probe cells")


class Probe(Solver):
    """Returns its initial weights and records fingerprints of the data it saw."""

    name = "probe"
    Params = ProbeParams
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        B = instance.X.shape[0]
        info = {
            "x_sum": instance.X.flatten(1).sum(1),
            "y_sum": instance.y.flatten(1).sum(1),
            "w0_sum": weights["W"].flatten(1).sum(1),
            "rand": torch.stack(
                [torch.rand((), generator=g, dtype=torch.float64) for g in ctx.generators]
            ),
        }
        return SolveResult(weights, torch.zeros(B, dtype=torch.long), info=info)


class Boom(Solver):
    """Always raises."""

    name = "boom"
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        raise RuntimeError("boom: this solver always fails")


class Nan(Solver):
    """Returns NaN weights for trial 0 only."""

    name = "nan_solver"
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        W = weights["W"].clone()
        W[0] = float("nan")
        return SolveResult({"W": W}, torch.ones(W.shape[0], dtype=torch.long))


class AdditiveOnly(Solver):
    """Declares a family no teacher in the test suites has."""

    name = "additive_only"
    families = ("some_other_family",)

    def solve(self, instance, weights, ctx):
        raise AssertionError("never run")


@hookimpl
def relubench_solvers():
    return [Probe, Boom, Nan, AdditiveOnly]
'''


@pytest.fixture
def probe_plugin(tmp_path: Path) -> Path:
    path = tmp_path / "probe_plugin.py"
    path.write_text(PROBE_PLUGIN)
    return path


@pytest.fixture
def write_suite(tmp_path: Path):
    """write_suite(text, name="suite.toml") -> Path of a suite file written in tmp_path."""

    def write(text: str, name: str = "suite.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small matrices: threads only fight over the
    shared cores, ~10x slower under load); restored afterwards. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
