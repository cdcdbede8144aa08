"""Test plugin (deliberately wrong): returns the weights transposed, (B, k, d) for (B, d, k).

``relubench check`` must fail it on ``shapes``, naming the weight and both shapes.
"""

from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class Params:
    step_size: float = param(0.1, "step eta", min=0.0, exclusive_min=True)
    max_iter: int = param(20, "iterations", min=1)


class WrongShape(Solver):
    """Gradient descent that returns W transposed (a bug on purpose)."""

    name = "wrong_shape"
    Params = Params
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        W = weights["W"].clone()  # (B, d, k)
        for t in range(1, self.params.max_iter + 1):
            g = instance.model.grad({"W": W}, instance.X, instance.y)["W"]
            W = W - self.params.step_size * g
            ctx.record(t, {"W": W})
        return SolveResult(
            {"W": W.transpose(1, 2)}, torch.full((W.shape[0],), self.params.max_iter)
        )


@hookimpl
def relubench_solvers():
    return [WrongShape]
