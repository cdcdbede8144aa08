"""Gradient descent on the squared loss (Zhang, Yu, Wang & Gu, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, Weights, param


@dataclass(frozen=True)
class GDParams:
    step_size: float = param(0.5, "constant step eta", exclusive_min=True, min=0.0)
    max_iter: int = param(1000, "maximum number of iterations", min=1)
    tol: float = param(1e-12, "stop when ||W_{t+1} - W_t|| <= tol ||W_t||", min=0.0)
    batch_size: int = param(
        0, "0: full batch; m > 0: each step uses m fresh samples (disjoint within an epoch)", min=0
    )


class GD(Solver):
    """Full-batch gradient descent W <- W - eta grad L(W) (Zhang et al., Algorithm 1) on the
    squared loss (1/2N) sum_i (f(x_i; W) - y_i)^2, eq. (1.2), with the model's gradient
    (the analytic eq. (3.2) for one_hidden; autograd for families without one).

    ``batch_size = m > 0`` steps along the gradient on m fresh samples instead, the
    resampling of Zhong et al. (2017) that Zhang et al. (Sec. 3) show is not needed:
    each trial shuffles its training set once per epoch (its own generator) and
    takes consecutive disjoint batches of m.

    A trial whose loss or weights become non-finite stops and is reported as diverged.
    """

    name = "gd"
    Params = GDParams
    families = ("one_hidden", "additive", "skip", "two_hidden")

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        model, X, y = instance.model, instance.X, instance.y
        W = {k: v.clone() for k, v in weights.items()}
        Bn = X.shape[0]
        eta, tol = self.params.step_size, self.params.tol
        iterations = torch.zeros(Bn, dtype=torch.long)
        active = torch.arange(Bn)
        sub_model = model
        n, m = X.shape[1], self.params.batch_size
        minibatch = 0 < m < n
        perms, pos = None, n
        for t in range(1, self.params.max_iter + 1):
            Wa = {k: v[active] for k, v in W.items()}
            if len(active) < Bn:
                sub_model = model.select(active)
            Xa, ya = X[active], y[active]
            if minibatch:
                if pos + m > n:  # new epoch: every trial reshuffles with its own generator
                    perms = torch.stack([torch.randperm(n, generator=g) for g in ctx.generators])
                    perms, pos = perms.to(X.device), 0
                idx = perms[active, pos : pos + m]  # (b, m)
                pos += m
                rows = torch.arange(len(active), device=X.device).unsqueeze(1)
                Xa, ya = Xa[rows, idx], ya[rows, idx]
            g = sub_model.grad(Wa, Xa, ya)
            W_new = {k: Wa[k] - eta * g[k] for k in Wa}
            change = torch.sqrt(sum((W_new[k] - Wa[k]).flatten(1).pow(2).sum(1) for k in Wa))
            size = torch.sqrt(sum(Wa[k].flatten(1).pow(2).sum(1) for k in Wa))
            for k in W:
                W[k][active] = W_new[k]
            iterations[active] = t
            ctx.record(t, W)
            keep = torch.isfinite(change) & (change > tol * size)
            active = active[keep]
            if len(active) == 0:
                break
        return SolveResult(W, iterations)
