"""The additive ReLU model of Oymak & Asif (2018): f(x; w) = 1^T relu(w + x), eq. (1)."""

from __future__ import annotations

import torch

from harness import Model, Weights
from plugins.common.models import relu


def activations(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """The entrywise step 1(w + x_i) of eq. (4) (the ReLU derivative, 1 at 0), (B, n, d)."""
    return (w.unsqueeze(1) + X >= 0).to(X.dtype)


class AdditiveModel(Model):
    """f(x; w) = sum_k relu(w[k] + x[k]) (Oymak & Asif eq. (1)); weight ``w`` (B, d).

    :meth:`grad` is the standard gradient of loss (2) used by GD (3);
    :meth:`centered_grad` the centered gradient (4).
    """

    family = "additive"

    def __init__(self, d: int) -> None:
        self.d = d

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"w": (self.d,)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(weights["w"].unsqueeze(1) + X).sum(-1)  # (B, n)

    def residuals(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward(weights, X) - y

    def grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> Weights:
        # Gradient of (2): (1/n) sum_i (f(x_i; w) - y_i) 1(w + x_i).
        r = self.residuals(weights, X, y)  # (B, n)
        return {"w": (r.unsqueeze(1) @ activations(weights["w"], X)).squeeze(1) / X.shape[1]}

    def centered_grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. (4): (1/n) sum_i (f(x_i; w) - y_i - rbar(w)) 1(w + x_i), (B, d).

        Since the centered residuals sum to zero, this is exactly the gradient of
        (1/2n) sum_i (r_i - rbar)^2, the variance of the residuals: centering
        drops the label mean that slows down GD (3).
        """
        r = self.residuals(weights, X, y)
        r = r - r.mean(1, keepdim=True)  # rbar(w), the mean residual
        return (r.unsqueeze(1) @ activations(weights["w"], X)).squeeze(1) / X.shape[1]
