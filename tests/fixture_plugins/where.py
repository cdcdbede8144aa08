"""Test plugin: a solver that records which process ran each trial, and whose trials may
be split across workers (it declares itself batch-invariant)."""

import os
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class WhereParams:
    invariant: bool = param(True, "declare batch invariance (lets the planner split a cell)")


class Where(Solver):
    """Returns its initial weights; ``info.pid`` is the process id, ``info.x_sum`` the data."""

    name = "where"
    Params = WhereParams
    families = ("one_hidden",)

    @classmethod
    def batch_invariant(cls, params, problem, *, dtype, device):
        return params.invariant

    def solve(self, instance, weights, ctx):
        B = instance.X.shape[0]
        info = {
            "pid": torch.full((B,), float(os.getpid()), dtype=torch.float64),
            "x_sum": instance.X.flatten(1).sum(1),
        }
        return SolveResult(weights, torch.zeros(B, dtype=torch.long), info=info)


@hookimpl
def relubench_solvers():
    return [Where]
