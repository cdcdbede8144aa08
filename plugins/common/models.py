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
from plugins.common.matching import match_columns, permute_columns


def relu(t: torch.Tensor) -> torch.Tensor:
    return torch.clamp_min(t, 0)


class OneHiddenModel(Model):
    """f(x) = sum_q relu(w_q^T x): one hidden ReLU layer, output weights all ones."""

    family = "one_hidden"

    def __init__(self, d: int, k: int) -> None:
        self.d, self.k = d, k

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.d, self.k)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(X @ weights["W"]).sum(-1)  # (B, n, d) @ (B, d, k) -> (B, n)

    def grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> Weights:
        """Analytic gradient of loss (1.2), Zhang et al. eq. (3.2):
        grad_j = (1/N) sum_i (sum_l relu(w_l^T x_i) - y_i) 1{w_j^T x_i >= 0} x_i."""
        Z = X @ weights["W"]  # (B, n, k)
        r = relu(Z).sum(-1) - y  # (B, n)
        mask = (Z >= 0).to(X.dtype) * r.unsqueeze(-1)  # (B, n, k)
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
        return relu(X @ self.effective(weights)).sum(-1)


class TwoHiddenModel(Model):
    """f(x) = 1^T relu(W2^T relu(W1^T x)) (Jagatap & Hegde, appendix B.1)."""

    family = "two_hidden"

    def __init__(self, d: int, k: int, k_out: int) -> None:
        self.d, self.k, self.k_out = d, k, k_out

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W1": (self.d, self.k), "W2": (self.k, self.k_out)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(relu(X @ weights["W1"]) @ weights["W2"]).sum(-1)
