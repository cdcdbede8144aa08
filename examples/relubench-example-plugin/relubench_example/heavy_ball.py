"""Heavy-ball gradient descent: a solver written the way any third party would write one."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, Weights, param


@dataclass(frozen=True)
class HeavyBallParams:
    step_size: float = param(0.5, "step eta", min=0.0, exclusive_min=True)
    momentum: float = param(0.5, "momentum beta in [0, 1)", min=0.0, max=0.999)
    max_iter: int = param(500, "iterations", min=1)


class HeavyBall(Solver):
    """Polyak's heavy ball: W <- W - eta grad L(W) + beta (W - W_prev), with the model's
    own gradient, so it runs on every family whose model has one. Batched over trials."""

    name = "heavy_ball"
    Params = HeavyBallParams
    families = ("one_hidden", "additive")

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        W = {k: v.clone() for k, v in weights.items()}
        prev = {k: v.clone() for k, v in W.items()}
        for t in range(1, p.max_iter + 1):
            g = instance.model.grad(W, instance.X, instance.y)
            new = {k: W[k] - p.step_size * g[k] + p.momentum * (W[k] - prev[k]) for k in W}
            prev, W = W, new
            ctx.record(t, W)
        B = instance.X.shape[0]
        return SolveResult(W, torch.full((B,), p.max_iter, dtype=torch.long))
