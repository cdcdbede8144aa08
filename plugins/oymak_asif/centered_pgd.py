"""Projected centered gradient descent (Oymak & Asif 2018, eq. (4) and Theorem 3.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param
from plugins.oymak_asif.models import AdditiveModel, Workspace, activations

CHECK_EVERY = 8
"""Iterations between two looks at which trials have stopped (a host sync on a GPU); in
between, stopped trials are frozen by a mask, so results do not depend on this number."""


def centered_curvature(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of (1/n) D_c^T D_c, D_c the sample-centered activations 1(w + x_i), (B,).

    Near w* with fixed activation patterns the centered gradient (4) is
    (1/n) D_c^T D_c (w - w*), so this is the constant beta of Lemma 3.2.
    """
    D = activations(w, X)  # (B, n, d)
    Dc = D - D.mean(1, keepdim=True)
    return torch.linalg.eigvalsh(Dc.transpose(1, 2) @ Dc / X.shape[1])[:, -1]


@dataclass(frozen=True)
class CenteredPGDParams:
    step_size: float | None = param(
        None,
        "mu; default 1 / beta from the data at the start (see the doc)",
        min=0,
        exclusive_min=True,
    )
    theta: float = param(1.0, "Theta: entries of w are clipped to [-Theta, Theta]", min=0)
    max_iter: int = param(1000, "iterations", min=0)
    tol: float = param(1e-12, "stop when ||w_{t+1} - w_t|| <= tol ||w_t||", min=0)
    batches: int = param(1, "K: split the data into K batches, one per iteration", min=1)


class CenteredPGD(Solver):
    """Projected centered gradient descent (Oymak & Asif 2018, eq. (4) + projection onto C_Theta).

    w <- clip(w - mu grad_hat L(w), -Theta, Theta), where grad_hat (4) centers the
    residuals by their mean. With ``batches`` K > 1 the data are split into K
    equal batches and iteration tau uses batch tau mod K (Theorem 3.1's scheme).
    The default step is 1 / beta, beta the largest eigenvalue of the centered
    activation Gram (1/n) D_c^T D_c at the start (Lemma 3.2's mu = alpha / beta^2
    with alpha = beta; the paper's experiments likewise take a large constant
    multiple of GD's step). Theorem 3.1's mu = 2 T(Theta) / (9 S(Theta)^2) is a
    worst-case bound, far too small in practice. A trial stops when
    ||w_{t+1} - w_t|| <= tol ||w_t|| or its iterate is no longer finite; stopped
    trials leave the batch (every ``CHECK_EVERY`` iterations).
    """

    name = "centered_pgd"
    families = ("additive",)

    Params = CenteredPGDParams

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model: AdditiveModel = instance.model  # type: ignore[assignment]
        X, y = instance.X, instance.y
        n_bar = X.shape[1] // p.batches
        if n_bar < 1:
            raise ValueError(f"batches = {p.batches} exceeds the number of samples {X.shape[1]}")
        parts = [
            (X[:, k * n_bar : (k + 1) * n_bar], y[:, k * n_bar : (k + 1) * n_bar])
            for k in range(p.batches)
        ]
        w = weights["w"].clamp(-p.theta, p.theta)
        B, device = w.shape[0], w.device
        if p.step_size is None:
            mu = (1.0 / centered_curvature(w, parts[0][0])).unsqueeze(1)  # (B, 1)
        else:
            mu = torch.full((B, 1), p.step_size, dtype=w.dtype, device=device)
        ctx.record(0, {"w": w})
        # The running batch: ``stop.index`` maps its rows to trials; stopped trials are frozen
        # and leave the batch every CHECK_EVERY iterations (one host sync).
        stop = TrialStopper(B, p.max_iter, device=device, check_every=CHECK_EVERY)
        wa = w.clone()
        work = Workspace()  # the (b, n, d) intermediates, reused across iterations
        for t in stop:
            Xk, yk = parts[(t - 1) % p.batches]  # Theorem 3.1: batch tau mod K
            step = mu * model.centered_grad({"w": wa}, Xk, yk, work)  # eq. (4)
            w_new = (wa - step).clamp(-p.theta, p.theta)  # projection onto C_Theta
            change = (w_new - wa).norm(dim=1)
            finite = torch.isfinite(change)
            keep = finite & (change > p.tol * wa.norm(dim=1))
            wa = stop.freeze(w_new, wa)
            stop.update(converged=~keep, diverged=~finite)
            # Traced iterates only (the full batch is assembled for them), and only while some
            # trial still runs: nothing is recorded past the last trial's own final iterate.
            if ctx.wants(t) and stop.any_ran:
                w = stop.scatter(w, wa)
                ctx.record(t, {"w": w})
            if stop.should_compact():
                w = stop.scatter(w, wa)
                rows = stop.compact()
                wa, mu = wa[rows], mu[rows]
                parts = [(Xk[rows], yk[rows]) for Xk, yk in parts]
        return SolveResult({"w": stop.scatter(w, wa)}, stop.iterations)
