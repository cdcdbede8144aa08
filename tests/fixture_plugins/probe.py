"""Test plugin: solvers that expose what they were given, and ones that fail."""

from dataclasses import dataclass

import torch

from harness import Solver, SolveResult, hookimpl, param


@dataclass(frozen=True)
class ProbeParams:
    tag: int = param(0, "distinguishes otherwise identical probe cells")


class Probe(Solver):
    """Returns its initial weights and records fingerprints of the data it saw."""

    name = "probe"
    Params = ProbeParams
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        B = instance.X.shape[0]
        info = {
            "x_sum": instance.X.flatten(1).sum(1),
            "y_sum": instance.y.flatten(1).sum(1),
            "w0_sum": weights["W"].flatten(1).sum(1),
            "rand": torch.stack(
                [torch.rand((), generator=g, dtype=torch.float64) for g in ctx.generators]
            ),
        }
        return SolveResult(weights, torch.zeros(B, dtype=torch.long), info=info)


class Boom(Solver):
    """Always raises."""

    name = "boom"
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        raise RuntimeError("boom: this solver always fails")


class Nan(Solver):
    """Returns NaN weights for trial 0 only."""

    name = "nan_solver"
    families = ("one_hidden",)

    def solve(self, instance, weights, ctx):
        W = weights["W"].clone()
        W[0] = float("nan")
        return SolveResult({"W": W}, torch.ones(W.shape[0], dtype=torch.long))


class AdditiveOnly(Solver):
    """Declares a family no teacher in the test suites has."""

    name = "additive_only"
    families = ("some_other_family",)

    def solve(self, instance, weights, ctx):
        raise AssertionError("never run")


@hookimpl
def relubench_solvers():
    return [Probe, Boom, Nan, AdditiveOnly]
