"""Test plugin (deliberately wrong): a gradient step normalized over the whole batch.

``relubench check`` must fail it on ``independence``: the norm is taken over every
trial at once, so one trial's data changes every other trial's step.
"""

from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class Params:
    step_size: float = param(0.1, "step eta", min=0.0, exclusive_min=True)
    max_iter: int = param(20, "iterations", min=1)


class MixesTrials(Solver):
    """Normalized gradient descent whose normalization mixes trials (a bug on purpose)."""

    name = "mixes_trials"
    Params = Params
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        W = weights["W"].clone()
        for t in range(1, self.params.max_iter + 1):
            g = instance.model.grad({"W": W}, instance.X, instance.y)["W"]
            W = W - self.params.step_size * g / (g.norm() + 1e-12)  # the norm of ALL trials
            ctx.record(t, {"W": W})
        return SolveResult({"W": W}, torch.full((W.shape[0],), self.params.max_iter))


@hookimpl
def relubench_solvers():
    return [MixesTrials]
