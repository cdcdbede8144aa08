"""Student architectures (model families) shared by the paper plugins.

Weight naming is the contract between problems, initializers, solvers and
metrics of a family; every tensor has the trial dimension B first.

=============  ==========================================  ==============================
family         weights                                      output f(x)
=============  ==========================================  ==============================
one_hidden     ``W`` (B, d, k)                              sum_q relu(w_q^T x)
skip           ``W`` (B, d, k) residual; model holds S       sum_q relu((w_q + e_{S_q})^T x)
two_hidden     ``W1`` (B, d, k), ``W2`` (B, k, k_out)       1^T relu(W2^T relu(W1^T x))
=============  ==========================================  ==============================

A single neuron is ``one_hidden`` with k = 1. Other families (``reslink``,
``additive``, ``mlp``) live with the plugins that introduced them.
"""

from __future__ import annotations

import torch

from harness import Model, Weights
from plugins.common.linalg import bmm
from plugins.common.matching import match_columns, permute_columns


def relu(t: torch.Tensor) -> torch.Tensor:
    return torch.clamp_min(t, 0)


class OneHiddenModel(Model):
    """f(x) = sum_q relu(w_q^T x): one hidden ReLU layer, output weights all ones."""

    family = "one_hidden"
    column_major_inputs = True
    """:meth:`grad` multiplies by X^T: gradient descent may hold each trial's X (n, d) in
    column-major order (X^T contiguous), which MKL multiplies faster, to the same bits."""

    def __init__(self, d: int, k: int) -> None:
        self.d, self.k = d, k

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.d, self.k)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        # bmm: a trial's outputs must not depend on the batch size (see linalg.bmm)
        return relu(bmm(X, weights["W"])).sum(-1)  # (B, n, d) @ (B, d, k) -> (B, n)

    def grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> Weights:
        """Analytic gradient of loss (1.2), Zhang et al. eq. (3.2):
        grad_j = (1/N) sum_i (sum_l relu(w_l^T x_i) - y_i) 1{w_j^T x_i >= 0} x_i."""
        Z = bmm(X, weights["W"])  # (B, n, k)
        A = relu(Z)
        r = A.sum(-1) - y  # (B, n)
        # 1{Z >= 0} r as (Z >= 0) * r, written in place over relu(Z): the same products,
        # without the broadcast multiply into a fresh tensor that cost 10x as much (J2's GD).
        mask = torch.ge(Z, 0, out=A).mul_(r.unsqueeze(-1))  # (B, n, k)
        return {"W": X.transpose(1, 2) @ mask / X.shape[1]}

    def align(self, weights: Weights, truth: dict[str, torch.Tensor]) -> Weights:
        """Hidden units are interchangeable: reorder them by Hungarian matching to W*."""
        if self.k == 1 or "W" not in truth:
            return weights
        return {
            **weights,
            "W": permute_columns(weights["W"], match_columns(weights["W"], truth["W"])),
        }


def skip_support_matrix(S: torch.Tensor, d: int, dtype: torch.dtype) -> torch.Tensor:
    """I_S: the k columns e_{S_1}, ..., e_{S_k} of I_d, shape (B, d, k)."""
    B, k = S.shape
    I_S = torch.zeros(B, d, k, dtype=dtype, device=S.device)
    I_S.scatter_(1, S.unsqueeze(1), 1.0)
    return I_S


class SkipModel(Model):
    """f(x) = sum_q relu((w_q + e_{S_q})^T x): one hidden layer with skip connections
    (Jagatap & Hegde, Sec. 3.2). The support S (B, k) is known to the solver and
    held by the model, so ``forward`` works like any other family's."""

    family = "skip"

    def __init__(self, d: int, k: int, S: torch.Tensor) -> None:
        self.d, self.k, self.S = d, k, S

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.d, self.k)}

    def select(self, index) -> SkipModel:
        return SkipModel(self.d, self.k, self.S[index])

    def to(self, device) -> SkipModel:
        return SkipModel(self.d, self.k, self.S.to(device))

    def identity_part(self, dtype: torch.dtype) -> torch.Tensor:
        """I_S, shape (B, d, k)."""
        return skip_support_matrix(self.S, self.d, dtype)

    def effective(self, weights: Weights) -> torch.Tensor:
        return weights["W"] + self.identity_part(weights["W"].dtype)

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(bmm(X, self.effective(weights))).sum(-1)

    def recovery_view(self, weights: Weights) -> Weights:
        """Recovery is measured on the effective weights W + I_S (Jagatap & Hegde Fig. 3b)."""
        return {**weights, "W": self.effective(weights)}

    def align(self, weights: Weights, truth: dict[str, torch.Tensor]) -> Weights:
        """The effective units are interchangeable: match W + I_S to W* + I_S (Hungarian)
        and return the residual of the reordered effective weights."""
        if self.k == 1 or "W" not in truth:
            return weights
        eff, eff_star = self.effective(weights), self.effective(truth)
        perm = match_columns(eff, eff_star)
        return {**weights, "W": permute_columns(eff, perm) - self.identity_part(eff.dtype)}


class TwoHiddenModel(Model):
    """f(x) = 1^T relu(W2^T relu(W1^T x)) (Jagatap & Hegde, appendix B.1)."""

    family = "two_hidden"

    def __init__(self, d: int, k: int, k_out: int) -> None:
        self.d, self.k, self.k_out = d, k, k_out

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W1": (self.d, self.k), "W2": (self.k, self.k_out)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(relu(X @ weights["W1"]) @ weights["W2"]).sum(-1)

    def align(self, weights: Weights, truth: dict[str, torch.Tensor]) -> Weights:
        """Put the weights in the truth's gauge without changing the function.

        relu is positively homogeneous: scaling unit q of the first layer by c > 0 and
        row q of W2 by 1/c changes nothing. First-layer units are matched to W1* by
        direction (Hungarian on unit columns; W2's rows follow), rescaled to the norms
        of their truth columns, then second-layer units are matched to W2*'s columns.
        """
        if "W1" not in truth or "W2" not in truth:
            return weights
        W1, W2 = weights["W1"], weights["W2"]
        tiny = torch.finfo(W1.dtype).tiny
        norms = W1.norm(dim=1).clamp_min(tiny)  # (B, k)
        W1, W2 = W1 / norms.unsqueeze(1), W2 * norms.unsqueeze(2)
        star_norms = truth["W1"].norm(dim=1)  # (B, k)
        perm1 = match_columns(W1, truth["W1"] / star_norms.clamp_min(tiny).unsqueeze(1))
        W1 = permute_columns(W1, perm1) * star_norms.unsqueeze(1)
        W2 = permute_columns(W2.transpose(1, 2), perm1).transpose(1, 2)
        W2 = W2 / star_norms.clamp_min(tiny).unsqueeze(2)
        W2 = permute_columns(W2, match_columns(W2, truth["W2"]))
        return {**weights, "W1": W1, "W2": W2}
