"""Test plugin: a solver that takes a few gradient steps, or misbehaves on demand."""

import ctypes
import os
import sys
import time
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param

MODES = (
    "ok",
    "hang",
    "exit",
    "segv",
    "raise",
    "sys_exit",
    "exit0",
    "dict",
    "bad_shape",
    "poison",
)


@dataclass(frozen=True)
class FaultyParams:
    mode: str = param("ok", "what to do", choices=MODES)
    steps: int = param(3, "gradient steps in mode ok (and poison)", min=1)


class Faulty(Solver):
    """Gradient steps (mode ok), or a hang, an exit, a segfault, an exception, a bad result.

    ``poison`` is a batched solver that fails its whole batch whenever the batch holds a
    trial whose first input entry ``X[0, 0]`` exceeds 1 (about one trial in six).
    """

    name = "faulty"
    Params = FaultyParams

    def solve(self, instance, weights, ctx):
        mode = self.params.mode
        if mode == "hang":
            while True:
                time.sleep(0.05)
        if mode == "exit":
            os._exit(3)
        if mode == "exit0":
            os._exit(0)
        if mode == "sys_exit":
            sys.exit(3)
        if mode == "segv":
            ctypes.string_at(0)
        if mode == "raise":
            raise RuntimeError("faulty solver raised on purpose")
        if mode == "poison" and bool((instance.X[:, 0, 0] > 1.0).any()):
            raise ValueError("poisoned trial in the batch: X[0, 0] > 1")
        W = {k: v.clone() for k, v in weights.items()}
        for _ in range(self.params.steps):
            g = instance.model.grad(W, instance.X, instance.y)
            W = {k: W[k] - 0.5 * g[k] for k in W}
        iterations = torch.full((instance.batch,), self.params.steps, dtype=torch.long)
        if mode == "dict":
            return {"weights": W, "iterations": iterations}
        if mode == "bad_shape":
            W = {k: v[0, :3] for k, v in W.items()}
        return SolveResult(W, iterations)


@hookimpl
def relubench_solvers():
    return [Faulty]
