"""Test plugin: a solver that takes a few gradient steps, or misbehaves on demand."""

import ctypes
import os
import time
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class FaultyParams:
    mode: str = param("ok", "what to do", choices=("ok", "hang", "exit", "segv", "raise"))
    steps: int = param(3, "gradient steps in mode ok", min=1)


class Faulty(Solver):
    """Gradient steps (mode ok), or a hang, an os._exit, a segfault, an exception."""

    name = "faulty"
    Params = FaultyParams

    def solve(self, instance, weights, ctx):
        mode = self.params.mode
        if mode == "hang":
            while True:
                time.sleep(0.05)
        if mode == "exit":
            os._exit(3)
        if mode == "segv":
            ctypes.string_at(0)
        if mode == "raise":
            raise RuntimeError("faulty solver raised on purpose")
        W = {k: v.clone() for k, v in weights.items()}
        for _ in range(self.params.steps):
            g = instance.model.grad(W, instance.X, instance.y)
            W = {k: W[k] - 0.5 * g[k] for k in W}
        return SolveResult(W, torch.full((instance.batch,), self.params.steps, dtype=torch.long))


@hookimpl
def relubench_solvers():
    return [Faulty]
