"""Test plugin: a few gradient steps after a pause, so a run can be killed mid-way (or leased)."""

import time
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class SlowParams:
    pause: float = param(0.3, "seconds to sleep first", min=0.0)
    steps: int = param(2, "gradient steps", min=1)


class Slow(Solver):
    """Sleeps, then takes gradient steps (a stand-in for a long solver)."""

    name = "slow"
    Params = SlowParams

    def solve(self, instance, weights, ctx):
        time.sleep(self.params.pause)
        W = {k: v.clone() for k, v in weights.items()}
        for _ in range(self.params.steps):
            g = instance.model.grad(W, instance.X, instance.y)
            W = {k: W[k] - 0.5 * g[k] for k in W}
        return SolveResult(W, torch.full((instance.batch,), self.params.steps, dtype=torch.long))


@hookimpl
def relubench_solvers():
    return [Slow]
