"""Gradient descent on the squared loss (Zhang, Yu, Wang & Gu, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param

CHECK_EVERY = 8
"""Iterations between two looks at which trials have stopped. A look reads a flag back to
the host (a device sync on a GPU) and, when some trials stopped, compacts the batch; in
between, stopped trials are frozen by a mask, so a trial's result and iteration count do
not depend on this number."""


@dataclass(frozen=True)
class GDParams:
    step_size: float = param(0.5, "constant step eta", exclusive_min=True, min=0.0)
    max_iter: int = param(1000, "maximum number of iterations", min=1)
    tol: float = param(1e-12, "stop when ||W_{t+1} - W_t|| <= tol ||W_t||", min=0.0)
    batch_size: int = param(
        0, "0: full batch; m > 0: each step uses m fresh samples (disjoint within an epoch)", min=0
    )


def column_major(X: torch.Tensor) -> torch.Tensor:
    """X (B, n, d) with the same values, each trial's matrix stored column by column."""
    return X if X.mT.is_contiguous() else X.mT.contiguous().mT


def _sq_norm(W: Weights) -> torch.Tensor:
    """Per-trial squared Frobenius norm over all weight tensors, (b,)."""
    return sum(v.flatten(1).pow(2).sum(1) for v in W.values())  # type: ignore[return-value]


class GD(Solver):
    """Full-batch gradient descent W <- W - eta grad L(W) (Zhang et al., Algorithm 1) on the
    squared loss (1/2N) sum_i (f(x_i; W) - y_i)^2, eq. (1.2), with the model's gradient
    (the analytic eq. (3.2) for one_hidden; autograd for families without one).

    ``batch_size = m > 0`` steps along the gradient on m fresh samples instead, the
    resampling of Zhong et al. (2017) that Zhang et al. (Sec. 3) show is not needed:
    each trial shuffles its training set once per epoch (its own generator) and
    takes consecutive disjoint batches of m.

    A trial stops when its step is below tol (relative) or its loss or weights become
    non-finite (reported as diverged). All trials step together as one batch; stopped
    trials are masked, and every ``CHECK_EVERY`` iterations they leave the batch, so
    trials that stop early cost nothing after that.
    """

    name = "gd"
    Params = GDParams
    families = ("one_hidden", "additive", "skip", "two_hidden")

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        model, X, y = instance.model, instance.X, instance.y
        device = X.device
        eta, tol = self.params.step_size, self.params.tol
        B, n, m = X.shape[0], X.shape[1], self.params.batch_size
        minibatch = 0 < m < n
        # Full-batch state (what is returned and traced) and the compacted running batch:
        # ``stop.index`` maps running rows to trials; Xa, ya, model_a, Wa are those trials' data.
        W = {k: v.clone() for k, v in weights.items()}
        stop = TrialStopper(B, self.params.max_iter, device=device, check_every=CHECK_EVERY)
        gens = list(ctx.generators)
        # Full batch, a model whose gradient reads X^T (one_hidden): X^T contiguous, the
        # same numbers at 0.6x the time of the transposed product (J2's GD).
        layout = (
            column_major if not minibatch and getattr(model, "column_major_inputs", False) else None
        )
        X = layout(X) if layout else X
        Xa, ya, model_a = X, y, model
        Wa = {k: v.clone() for k, v in W.items()}
        Xp, yp, pos = X, y, n  # this epoch's shuffled data (minibatch mode)
        for t in stop:
            if minibatch:
                if pos + m > n:  # new epoch: every trial reshuffles with its own generator
                    perm = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
                    rows = torch.arange(len(gens), device=device).unsqueeze(1)
                    Xp, yp, pos = Xa[rows, perm], ya[rows, perm], 0
                Xb, yb = Xp[:, pos : pos + m], yp[:, pos : pos + m]  # views: no copy
                pos += m
            else:
                Xb, yb = Xa, ya
            g = model_a.grad(Wa, Xb, yb)
            W_new = {k: Wa[k] - eta * g[k] for k in Wa}  # Algorithm 1's step
            change = _sq_norm({k: W_new[k] - Wa[k] for k in Wa}).sqrt()
            finite = torch.isfinite(change)
            keep = finite & (change > tol * _sq_norm(Wa).sqrt())
            Wa = stop.freeze(W_new, Wa)
            stop.update(converged=~keep, diverged=~finite)
            # Traced iterates only (the full batch is assembled for them), and only while some
            # trial still runs: nothing is recorded past the last trial's own final iterate.
            if ctx.wants(t) and stop.any_ran:
                W = stop.scatter(W, Wa)
                ctx.record(t, W)
            if stop.should_compact():  # a host sync: once per CHECK_EVERY
                W = stop.scatter(W, Wa)
                rows = stop.compact()
                gens = [gens[i] for i in rows.tolist()]
                Wa = {k: v[rows] for k, v in Wa.items()}
                index = stop.index
                Xa, ya, model_a = X[index], y[index], model.select(index)
                Xa = layout(Xa) if layout else Xa
                if minibatch:
                    Xp, yp = Xp[rows], yp[rows]
        return SolveResult(stop.scatter(W, Wa), stop.iterations)
