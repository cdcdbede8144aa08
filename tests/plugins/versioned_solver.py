"""Test plugin: a tiny linear teacher and a gradient-descent solver whose code has a version.

Used by tests/harness/test_analysis.py to check ``relubench compare OLD NEW``: a
suite runs once with this file and once with a copy whose ``VERSION`` is 2, i.e.
the same solver name and parameters with changed code (so new cell ids) and
worse results, as a solver change that breaks something would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, Model, Problem, Solver, SolveResult, batched_randn, hookimpl, param


class LinearModel(Model):
    """y = X w: one weight vector ``w`` of length d."""

    family = "tiny_linear"

    def __init__(self, d: int) -> None:
        self.d = d

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"w": (self.d,)}

    def forward(self, weights, X: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bnd,bd->bn", X, weights["w"])  # (B, n)


@dataclass(frozen=True)
class TinyLinearParams:
    d: int = param(5, "input dimension", min=1)
    n: int = param(40, "training samples", min=1)


class TinyLinear(Problem):
    """Noiseless linear teacher y = X w*, x ~ N(0, I), w* ~ N(0, I)."""

    name = "tiny_linear"
    Params = TinyLinearParams
    families = ("tiny_linear",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        X = batched_randn(generators, p.n, p.d, dtype=dtype)  # (B, n, d)
        w_star = batched_randn(generators, p.d, dtype=dtype)  # (B, d)
        model = LinearModel(p.d)
        return Instance(X, model.forward({"w": w_star}, X), model, truth={"w": w_star})


@dataclass(frozen=True)
class VersionedGDParams:
    step_size: float = param(0.5, "gradient step", exclusive_min=True, min=0.0)
    max_iter: int = param(50, "gradient steps", min=1)


class VersionedGD(Solver):
    """Full-batch gradient descent on (1/2n)||X w - y||^2; version 2 takes 50x shorter steps."""

    name = "versioned_gd"
    Params = VersionedGDParams
    families = ("tiny_linear",)
    VERSION = 1  # the tests write a copy of this file with VERSION = 2

    def solve(self, instance: Instance, weights, ctx) -> SolveResult:
        X, y, w = instance.X, instance.y, weights["w"]
        n = X.shape[1]
        step = self.params.step_size * (1.0 if self.VERSION == 1 else 0.02)
        for it in range(1, self.params.max_iter + 1):
            residual = torch.einsum("bnd,bd->bn", X, w) - y  # (B, n)
            w = w - step * torch.einsum("bnd,bn->bd", X, residual) / n
            ctx.record(it, {"w": w})
        iterations = torch.full((X.shape[0],), self.params.max_iter, dtype=torch.long)
        return SolveResult({"w": w}, iterations)


@hookimpl
def relubench_problems():
    return [TinyLinear]


@hookimpl
def relubench_solvers():
    return [VersionedGD]
