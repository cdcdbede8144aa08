"""A gradient-descent solver whose code has a version, for the toy linear teacher (toy.py).

tests/harness/test_analysis.py checks ``relubench compare OLD NEW`` with it: a
suite runs once with this file and once with a copy whose ``VERSION`` is 2, i.e.
the same solver name and parameters with changed code (so new cell ids) and
worse results, as a solver change that breaks something would give. Load it
together with ``toy.py`` (the problem and the initializer).
"""

from dataclasses import dataclass

import torch

from harness import Instance, Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class VersionedGDParams:
    step_size: float = param(0.5, "gradient step", exclusive_min=True, min=0.0)
    max_iter: int = param(50, "gradient steps", min=1)


class VersionedGD(Solver):
    """Full-batch gradient descent on (1/2n)||X w - y||^2; version 2 takes 50x shorter steps."""

    name = "versioned_gd"
    Params = VersionedGDParams
    families = ("toy_linear",)
    VERSION = 1  # the tests write a copy of this file with VERSION = 2

    def solve(self, instance: Instance, weights, ctx) -> SolveResult:
        X, y, w = instance.X, instance.y, weights["w"]  # (B, n, d), (B, n), (B, d)
        n = X.shape[1]
        step = self.params.step_size * (1.0 if self.VERSION == 1 else 0.02)
        for it in range(1, self.params.max_iter + 1):
            residual = torch.einsum("bnd,bd->bn", X, w) - y  # (B, n)
            w = w - step * torch.einsum("bnd,bn->bd", X, residual) / n
            ctx.record(it, {"w": w})
        iterations = torch.full((X.shape[0],), self.params.max_iter, dtype=torch.long)
        return SolveResult({"w": w}, iterations)


@hookimpl
def relubench_solvers():
    return [VersionedGD]
