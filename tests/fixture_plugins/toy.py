"""Toy components: y = X w*, solved by minimum-norm least squares."""

from dataclasses import dataclass

import torch

from harness import (
    Initializer,
    Instance,
    Metric,
    Model,
    Problem,
    Solver,
    SolveResult,
    hookimpl,
    param,
)


class Linear(Model):
    family = "toy_linear"

    def __init__(self, d):
        self.d = d

    def forward(self, weights, X):
        return (X @ weights["w"].unsqueeze(-1)).squeeze(-1)

    def param_shapes(self):
        return {"w": (self.d,)}


class ToyLine(Problem):
    """y = X w*, X and w* standard Gaussian."""

    name = "toy_line"
    families = ("toy_linear",)

    @dataclass(frozen=True)
    class Params:
        d: int = param(4)
        n: int = param(8)

    def sample(self, generators, dtype):
        d, n = self.params.d, self.params.n
        X = torch.stack([torch.randn(n, d, generator=g, dtype=dtype) for g in generators])
        w = torch.stack([torch.randn(d, generator=g, dtype=dtype) for g in generators])
        return Instance(X=X, y=(X @ w.unsqueeze(-1)).squeeze(-1), model=Linear(d), truth={"w": w})


class ToyZero(Initializer):
    """Zero weights."""

    name = "toy_zero"

    def initialize(self, instance, generators, dtype):
        return {"w": torch.zeros(instance.batch, instance.X.shape[2], dtype=dtype)}


class ToyLsq(Solver):
    """Minimum-norm least squares; diverge = true returns NaN weights (a failure to report)."""

    name = "toy_lsq"

    @dataclass(frozen=True)
    class Params:
        diverge: bool = param(False)

    def solve(self, instance, weights, ctx):
        w = (torch.linalg.pinv(instance.X) @ instance.y.unsqueeze(-1)).squeeze(-1)
        if self.params.diverge:
            w = torch.full_like(w, float("nan"))
        return SolveResult({"w": w}, torch.ones(w.shape[0], dtype=torch.long))


class ToyStay(Solver):
    """Returns the initial weights (never recovers)."""

    name = "toy_stay"

    def solve(self, instance, weights, ctx):
        return SolveResult(dict(weights), torch.zeros(instance.batch, dtype=torch.long))


class ToyError(Metric):
    """Euclidean distance to w*."""

    name = "toy_error"

    def compute(self, instance, weights, result):
        return (weights["w"] - instance.truth["w"]).norm(dim=1)


@hookimpl
def relubench_problems():
    return [ToyLine]


@hookimpl
def relubench_initializers():
    return [ToyZero]


@hookimpl
def relubench_solvers():
    return [ToyLsq, ToyStay]


@hookimpl
def relubench_metrics():
    return [ToyError]
