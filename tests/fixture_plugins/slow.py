"""Test plugin: a solver that takes its time, so a test can interrupt a run midway."""

import time
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class SlowParams:
    delay: float = param(0.5, "seconds each work unit sleeps before returning")
    tag: int = param(0, "distinguishes otherwise identical cells")


class Slow(Solver):
    """Sleeps ``delay`` seconds, then returns its initial weights unchanged."""

    name = "slow"
    Params = SlowParams
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        time.sleep(self.params.delay)
        return SolveResult(weights, torch.zeros(instance.X.shape[0], dtype=torch.long))


@hookimpl
def relubench_solvers():
    return [Slow]
