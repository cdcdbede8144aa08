"""Alternating minimization for one-hidden-layer ReLU networks (Jagatap & Hegde, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, Weights, param


def batched_least_squares(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmin_x ||A x - y|| for each trial: A (B, n, m), y (B, n) -> x (B, m).

    Normal equations with a batched Cholesky solve; trials whose Gram matrix is
    singular or indefinite in floating point (e.g. n < m) fall back to an exact
    minimum-norm least-squares solve of their own.
    """
    G = A.transpose(1, 2) @ A  # (B, m, m)
    r = A.transpose(1, 2) @ y.unsqueeze(-1)  # (B, m, 1)
    L, info = torch.linalg.cholesky_ex(G)
    x = torch.cholesky_solve(r, L).squeeze(-1)
    bad = (info != 0) | ~torch.isfinite(x).all(-1)
    # LAPACK aborts the whole call on a NaN input: trials with non-finite data stay NaN.
    finite = torch.isfinite(A).flatten(1).all(1) & torch.isfinite(y).all(1)
    if (bad & finite).any():
        idx = (bad & finite).nonzero().squeeze(-1)
        driver = "gelsd" if A.device.type == "cpu" else None
        x[idx] = torch.linalg.lstsq(A[idx], y[idx].unsqueeze(-1), driver=driver).solution.squeeze(
            -1
        )
    x[~finite] = torch.nan
    return x


@dataclass(frozen=True)
class AltMinParams:
    max_iter: int = param(100, "maximum number of alternations T", min=1)
    tol: float = param(1e-10, "stop when ||W_{t+1} - W_t||_F <= tol ||W_t||_F", min=0.0)


class AltMin(Solver):
    """Alternating minimization (Jagatap & Hegde, Algorithm 1).

    Repeat: activation patterns p_q = 1[X w_q >= 0] for every hidden unit q;
    B = [diag(p_1) X ... diag(p_k) X] (n x dk); vec(W) = argmin ||B vec(W) - y||_2
    (solved exactly). A trial stops when its activation pattern repeats (the
    next least-squares solution would be the same), when the relative change
    of W falls below ``tol``, or after ``max_iter`` alternations. Batched over
    trials; stopped trials leave the batch.

    For the ``skip`` family (Sec. 3.2, eq. (7)) the same least squares runs on the
    effective weights W + I_S (support S known); the residual W is returned.
    """

    name = "altmin"
    Params = AltMinParams
    families = ("one_hidden", "skip")

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        X, y = instance.X, instance.y  # (B, n, d), (B, n)
        model = instance.model
        # Effective weights W + I_S for the skip family; the plain W otherwise.
        offset = model.identity_part(X.dtype) if model.family == "skip" else 0.0
        W = weights["W"] + offset  # (B, d, k), a fresh tensor
        Bn, n, d = X.shape
        k = W.shape[2]
        iterations = torch.zeros(Bn, dtype=torch.long)
        active = torch.arange(Bn)
        prev_P: torch.Tensor | None = None
        for t in range(1, self.params.max_iter + 1):
            Xa, Wa = X[active], W[active]
            P = (Xa @ Wa >= 0).to(X.dtype)  # (b, n, k) line 3
            if prev_P is not None:
                repeated = (prev_P == P).flatten(1).all(1)
            else:
                repeated = torch.zeros(len(active), dtype=torch.bool)
            # line 4: B = [diag(p_1) X ... diag(p_k) X], columns unit-major: index q*d + j
            Bmat = (P.unsqueeze(-1) * Xa.unsqueeze(-2)).reshape(len(active), n, k * d)
            vecW = batched_least_squares(Bmat, y[active])  # line 5
            W_new = vecW.reshape(len(active), k, d).transpose(1, 2)  # line 6
            change = (W_new - Wa).flatten(1).norm(dim=1)
            small = change <= self.params.tol * Wa.flatten(1).norm(dim=1)
            W[active] = torch.where(repeated.reshape(-1, 1, 1), Wa, W_new)
            iterations[active] = torch.where(repeated, iterations[active], t)
            if ctx.wants(t):
                ctx.record(t, {"W": W - offset})
            keep = ~(repeated | small | ~torch.isfinite(change))
            active, prev_P = active[keep], P[keep]
            if len(active) == 0:
                break
        return SolveResult({"W": W - offset}, iterations)
