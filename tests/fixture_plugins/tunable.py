"""A solver with a tuning knob, and hooks that log their order (for tuning-protocol tests).

``toy_scaled`` returns ``scale`` times the minimum-norm least-squares solution, so on the
toy plugin's ``toy_line`` problem with n >= d its ``toy_error`` is ``|1 - scale| |w*|``:
tuning ``scale`` must choose 1.0. Load it next to ``toy.py`` (problem, initializer and
metric). When ``RELUBENCH_HOOK_LOG`` names a file, ``relubench_run_start`` appends
``start`` to it and ``relubench_cell_done`` appends ``done <split> <solver params>``.
"""

import os
from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


class ToyScaled(Solver):
    """``scale`` x minimum-norm least squares."""

    name = "toy_scaled"

    @dataclass(frozen=True)
    class Params:
        scale: float = param(1.0)

    def solve(self, instance, weights, ctx):
        w = (torch.linalg.pinv(instance.X) @ instance.y.unsqueeze(-1)).squeeze(-1)
        return SolveResult({"w": self.params.scale * w}, torch.ones(w.shape[0], dtype=torch.long))


def _log(line):
    path = os.environ.get("RELUBENCH_HOOK_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\n")


@hookimpl
def relubench_solvers():
    return [ToyScaled]


@hookimpl
def relubench_run_start(suite, cells, results_dir):
    _log(f"start {len(cells)}")


@hookimpl
def relubench_cell_done(cell, rows):
    _log(f"done {cell.split} {dict(cell.solver.params)}")
