"""Test plugin (deliberately wrong): noisy gradient descent drawing from the global RNG.

``relubench check`` must fail it on ``global_rng``: ``torch.randn_like`` without a
generator uses (and advances) torch's global random state instead of ``ctx.generators``.
"""

from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class Params:
    step_size: float = param(0.1, "step eta", min=0.0, exclusive_min=True)
    noise: float = param(0.01, "standard deviation of the noise added to each step", min=0.0)
    max_iter: int = param(20, "iterations", min=1)


class GlobalRng(Solver):
    """Gradient descent with Gaussian noise from the global generator (a bug on purpose)."""

    name = "global_rng"
    Params = Params
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        W = weights["W"].clone()
        for t in range(1, self.params.max_iter + 1):
            g = instance.model.grad({"W": W}, instance.X, instance.y)["W"]
            W = W - self.params.step_size * g + self.params.noise * torch.randn_like(W)
            ctx.record(t, {"W": W})
        return SolveResult({"W": W}, torch.full((W.shape[0],), self.params.max_iter))


@hookimpl
def relubench_solvers():
    return [GlobalRng]
