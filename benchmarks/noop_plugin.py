"""A do-nothing problem, solver and metric, to measure the harness's own overhead.

Load it with ``relubench run SUITE --plugin benchmarks/noop_plugin.py``. Everything a
real run does (expansion, seeds, per-trial generators, initializer, runner, metric,
Parquet write) happens; the components themselves cost next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, Metric, Problem, Solver, SolveResult, hookimpl, param
from plugins.common.models import OneHiddenModel


@dataclass(frozen=True)
class NoopProblemParams:
    d: int = param(2, "input dimension", min=1)
    n: int = param(2, "samples", min=1)
    index: int = param(0, "only makes cells distinct", min=0)


class NoopProblem(Problem):
    """Zeros for X and y (no random draws): measures the harness, not a teacher."""

    name = "noop_problem"
    Params = NoopProblemParams
    families = ("one_hidden",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        B, p = len(generators), self.params
        X = torch.zeros(B, p.n, p.d, dtype=dtype)
        return Instance(X=X, y=torch.zeros(B, p.n, dtype=dtype), model=OneHiddenModel(p.d, 1))


class NoopSolver(Solver):
    """Returns the initial weights after zero iterations."""

    name = "noop_solver"
    families = ("*",)

    def solve(self, instance, weights, ctx) -> SolveResult:
        return SolveResult(dict(weights), torch.zeros(instance.batch, dtype=torch.long))


class NoopMetric(Metric):
    """Zero for every trial."""

    name = "noop_metric"

    def compute(self, instance, weights, result) -> torch.Tensor:
        return torch.zeros(instance.batch, dtype=torch.float64)


@hookimpl
def relubench_problems():
    return [NoopProblem]


@hookimpl
def relubench_solvers():
    return [NoopSolver]


@hookimpl
def relubench_metrics():
    return [NoopMetric]
