"""The additive ReLU model of Oymak & Asif (2018): f(x; w) = 1^T relu(w + x), eq. (1)."""

from __future__ import annotations

import torch

from harness import Model, Weights
from plugins.common.models import relu


def activations(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """The entrywise step 1(w + x_i) of eq. (4) (the ReLU derivative, 1 at 0), (B, n, d)."""
    return (w.unsqueeze(1) + X >= 0).to(X.dtype)


class Workspace:
    """Reusable (B, n, d) buffers for the gradient passes of one solve.

    At O1's sizes (B n d = 10 x 2000 x 500 doubles, 80 MB) every fresh tensor of that
    size is a new mapping from the OS whose pages fault in on first touch: most of an
    iteration went to the kernel. Reusing two buffers (replaced when the running batch
    shrinks) leaves the arithmetic, and so the results, exactly as before.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def buffer(self, name: str, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """An uninitialized tensor of ``shape`` with the dtype and device of ``like``."""
        buf = self._buffers.get(name)
        if (
            buf is None
            or buf.shape != shape
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = self._buffers[name] = like.new_empty(shape)
        return buf


def outputs_and_steps(
    w: torch.Tensor, X: torch.Tensor, work: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x_i; w) (B, n) and the steps 1(w + x_i) (B, n, d) from one sum w + x_i.

    The same operations as :meth:`AdditiveModel.forward` and :func:`activations`, so the
    same numbers; with ``work`` the (B, n, d) tensors live in its buffers (the returned
    steps are overwritten by the next call with the same ``work``).
    """
    shape = torch.broadcast_shapes(w.unsqueeze(1).shape, X.shape)
    if work is None:
        Z = w.unsqueeze(1) + X
        D = (Z >= 0).to(X.dtype)
    else:
        Z = torch.add(w.unsqueeze(1), X, out=work.buffer("z", shape, X))
        D = torch.ge(Z, 0, out=work.buffer("steps", shape, X))
    return Z.clamp_(min=0).sum(-1), D  # relu in place: Z is ours


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

    def grad(
        self, weights: Weights, X: torch.Tensor, y: torch.Tensor, work: Workspace | None = None
    ) -> Weights:
        # Gradient of (2): (1/n) sum_i (f(x_i; w) - y_i) 1(w + x_i).
        f, D = outputs_and_steps(weights["w"], X, work)
        r = f - y  # (B, n)
        return {"w": (r.unsqueeze(1) @ D).squeeze(1) / X.shape[1]}

    def centered_grad(
        self, weights: Weights, X: torch.Tensor, y: torch.Tensor, work: Workspace | None = None
    ) -> torch.Tensor:
        """Eq. (4): (1/n) sum_i (f(x_i; w) - y_i - rbar(w)) 1(w + x_i), (B, d).

        Since the centered residuals sum to zero, this is exactly the gradient of
        (1/2n) sum_i (r_i - rbar)^2, the variance of the residuals: centering
        drops the label mean that slows down GD (3). ``work`` (see :class:`Workspace`)
        keeps the (B, n, d) intermediates of one solve between calls.
        """
        f, D = outputs_and_steps(weights["w"], X, work)
        r = f - y
        r = r - r.mean(1, keepdim=True)  # rbar(w), the mean residual
        return (r.unsqueeze(1) @ D).squeeze(1) / X.shape[1]
