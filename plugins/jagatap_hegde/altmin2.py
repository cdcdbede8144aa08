"""Alternating minimization for two-hidden-layer ReLU networks (Jagatap & Hegde, Algorithm 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param
from plugins.common.models import relu
from plugins.jagatap_hegde.altmin import batched_least_squares


@dataclass(frozen=True)
class AltMin2Params:
    max_iter: int = param(100, "maximum number of alternations T", min=1)
    tol: float = param(
        1e-10, "stop when ||(W1, W2)_{t+1} - (W1, W2)_t|| <= tol ||(W1, W2)_t||", min=0.0
    )


class AltMin2(Solver):
    """Alternating minimization for two hidden layers (Jagatap & Hegde, appendix B.1, Algorithm 2).

    Each iteration fixes the activation patterns p1_q = 1[X w1_q > 0] and
    p2_r = 1[relu(X W1) w2_r > 0] (lines 3-4), then solves two least-squares
    problems in turn: W1 from C = [C_1 ... C_k] with
    C_q = sum_r W2[q, r] diag(p2_r) diag(p1_q) X (lines 5-8), then W2 from
    B = [B_1 ... B_ko] with B_r = diag(p2_r) [diag(p1_1) X w1_1 ... diag(p1_k) X w1_k]
    using the new W1 and the old patterns (lines 9-12). A unit active on no sample
    leaves its columns of C or B all zero, so the least squares says nothing about
    it: it keeps its previous weights (the minimum-norm value 0 would kill it for
    good). A trial stops when the relative change of (W1, W2) falls below ``tol``
    or after ``max_iter`` iterations. Batched over trials.
    """

    name = "altmin2"
    Params = AltMin2Params
    families = ("two_hidden",)

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        X, y = instance.X, instance.y  # (B, n, d), (B, n)
        W1, W2 = weights["W1"].clone(), weights["W2"].clone()  # (B, d, k), (B, k, ko)
        Bn, n, d = X.shape
        k, ko = W2.shape[1], W2.shape[2]
        stop = TrialStopper(Bn, self.params.max_iter, device=X.device, check_every=1)
        for t in stop:
            active = stop.index
            Xa, ya, W1a, W2a = X[active], y[active], W1[active], W2[active]
            b = len(active)
            Z1 = Xa @ W1a  # (b, n, k)
            P1 = (Z1 > 0).to(X.dtype)  # line 3
            P2 = (relu(Z1) @ W2a > 0).to(X.dtype)  # line 4, (b, n, ko)
            # lines 5-7: row i of C_q is p1_iq (sum_r W2[q, r] p2_ir) x_i; unit-major columns
            coef = P1 * (P2 @ W2a.transpose(1, 2))  # (b, n, k)
            C = (coef.unsqueeze(-1) * Xa.unsqueeze(-2)).reshape(b, n, k * d)
            W1_new = batched_least_squares(C, ya).reshape(b, k, d).transpose(1, 2)  # line 8
            # A unit active on no sample has all-zero columns: the least squares says
            # nothing about it (its minimum-norm value 0 would kill it for good), so it
            # keeps its previous weights and may come back when the other layer moves.
            W1_new = torch.where((coef != 0).any(1).unsqueeze(1), W1_new, W1a)
            # lines 9-11: H = [P1_1 X w1_1 ... P1_k X w1_k] with the new W1, old patterns
            H = P1 * (Xa @ W1_new)  # (b, n, k)
            Bmat = (P2.unsqueeze(-1) * H.unsqueeze(-2)).reshape(b, n, ko * k)
            W2_new = batched_least_squares(Bmat, ya).reshape(b, ko, k).transpose(1, 2)  # line 12
            W2_new = torch.where((P2 != 0).any(1).unsqueeze(1), W2_new, W2a)
            change = torch.sqrt(
                (W1_new - W1a).flatten(1).pow(2).sum(1) + (W2_new - W2a).flatten(1).pow(2).sum(1)
            )
            size = torch.sqrt(W1a.flatten(1).pow(2).sum(1) + W2a.flatten(1).pow(2).sum(1))
            W1[active], W2[active] = W1_new, W2_new
            ctx.record(t, {"W1": W1, "W2": W2})
            keep = torch.isfinite(change) & (change > self.params.tol * size)
            stop.update(converged=~keep, diverged=~torch.isfinite(change))
            if stop.should_compact():
                stop.compact()
        return SolveResult({"W1": W1, "W2": W2}, stop.iterations)
