"""Gradient descent on the closed-form population loss (Li & Yuan Lemma 2.1; Tian 2017)."""

from __future__ import annotations

from dataclasses import dataclass

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param
from plugins.li_yuan import population


@dataclass(frozen=True)
class PopulationGDParams:
    step_size: float = param(0.1, "constant step size", min=0, exclusive_min=True)
    max_iter: int = param(1000, "iterations", min=0)
    tol: float = param(
        0.0, "stop a trial once the gradient's Frobenius norm is at most this", min=0
    )


class PopulationGD(Solver):
    """Gradient descent with the exact population gradient for x ~ N(0, s^2 I).

    W <- W - step_size * grad L(W), L(W) = 1/2 E[(f(x, W) - f(x, W*))^2], with the
    gradient in closed form (Li & Yuan 2017, Lemma 2.1, i.e. Tian 2017 Eqn (13)):
    what SGD follows in expectation, without sampling noise. A trial stops when
    ||grad||_F <= tol. For ``reslink`` (ResLink and Vanilla) and ``one_hidden``.
    """

    name = "population_gd"
    families = population.FAMILIES

    Params = PopulationGDParams

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        W = weights["W"].clone()
        B = W.shape[0]
        stop = TrialStopper(B, p.max_iter, device=W.device)
        ctx.record(0, {"W": W})
        for t in stop:
            G = population.grad(instance, {"W": W})
            # Checked before the step: a trial whose gradient is small takes no step t.
            norm = G.flatten(1).norm(dim=1)
            stop.halt(converged=~(norm > p.tol), diverged=norm.isnan())
            if stop.done:
                break
            W = stop.freeze(W - p.step_size * G, W)
            stop.update()
            ctx.record(t, {"W": W})
        return SolveResult({"W": W}, stop.iterations)
