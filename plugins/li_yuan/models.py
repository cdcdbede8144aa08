"""Student models of Li & Yuan (2017): ResLink (1), its Vanilla twin, and the 3-Block network.

Family ``reslink`` (weights ``W`` (B, d, d)):

* ResLink: f(x, W) = || relu((I + W)^T x) ||_1, eq. (1).
* Vanilla: f(x, V) = || relu(V^T x) ||_1, the same network without the identity
  mapping. Its stored weight is its actual weight V; as in the paper's footnote 3,
  every comparison with W* uses V - I (``residual``, also the ``recovery_view``),
  which is why its distance to W* starts much larger. Its ground truth (the
  weight that reproduces the teacher) is V* = I + W*.

Family ``three_block`` (weights ``W1`` (B, d, m), ``W2``, ``W3`` (B, m, m)): three
blocks of (linear, batch norm, ReLU) as in Sec. 5.2, output the sum of the last
block's units (the l1 norm, as in (1)).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from harness import Model, Weights
from plugins.common.models import relu


@functools.lru_cache(maxsize=8)
def _eye(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.eye(n, dtype=dtype, device=device)


def _eye_like(W: torch.Tensor) -> torch.Tensor:
    """The identity of W's last dimension, built once per size (every step and metric
    adds it; at d = 1500 building it took as long as a small matrix product). Shared:
    never modify it in place."""
    return _eye(W.shape[-1], W.dtype, W.device)


def reslink_forward(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Eq. (1) for a batch of trials: || relu((I + W)^T x) ||_1, (B, d, d), (B, n, d) -> (B, n)."""
    return relu(X @ (W + _eye_like(W))).sum(-1)


class ReslinkModel(Model):
    """f(x, W) = || relu((I + W)^T x) ||_1 (Li & Yuan eq. (1)); ``vanilla``: no identity."""

    family = "reslink"

    def __init__(self, d: int, vanilla: bool = False) -> None:
        self.d, self.vanilla = d, vanilla

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.d, self.d)}

    def columns(self, weights: Weights) -> torch.Tensor:
        """The hidden units' weight vectors as columns: I + W (ResLink) or V (vanilla)."""
        W = weights["W"]
        return W if self.vanilla else W + _eye_like(W)

    def residual(self, weights: Weights) -> torch.Tensor:
        """The weight compared with W*: W (ResLink) or V - I (vanilla, the paper's footnote 3)."""
        W = weights["W"]
        return W - _eye_like(W) if self.vanilla else W

    def recovery_view(self, weights: Weights) -> Weights:
        return {"W": self.residual(weights)}

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        return relu(X @ self.columns(weights)).sum(-1)

    def forward_at(self, weights: Weights) -> Callable[[torch.Tensor], torch.Tensor]:
        """``X -> forward(weights, X)`` for fixed weights (a teacher drawing fresh labels):
        when the columns are the identity (Li & Yuan's W* = 0) it skips the product,
        X @ I = X exactly, so the labels are bit-identical."""
        A = self.columns(weights)
        if torch.equal(A, _eye_like(A).expand_as(A)):
            return lambda X: relu(X).sum(-1)
        return lambda X: relu(X @ A).sum(-1)

    def grad(self, weights: Weights, X: torch.Tensor, y: torch.Tensor) -> Weights:
        # Sec. 2: grad_j = E[(f - y) x 1[(e_j + w_j)^T x >= 0]], here the sample mean (1/2 loss).
        Z = X @ self.columns(weights)  # (B, n, d)
        r = relu(Z).sum(-1) - y  # (B, n)
        active = (Z >= 0).to(X.dtype)
        return {"W": X.transpose(-1, -2) @ (r.unsqueeze(-1) * active) / X.shape[1]}


def batch_norm(
    Z: torch.Tensor, mean: torch.Tensor | None = None, var: torch.Tensor | None = None
) -> torch.Tensor:
    """Batch normalization without affine terms over the sample axis of (B, n, m).

    With ``mean``/``var`` (B, m) it normalizes with those fixed statistics (the
    teacher's), otherwise with the batch's own (training-mode batch norm).
    """
    if mean is None or var is None:
        mean = Z.mean(1)
        var = Z.var(1, unbiased=False)
    return (Z - mean.unsqueeze(1)) / torch.sqrt(var.unsqueeze(1) + 1e-5)


class ThreeBlockModel(Model):
    """Three blocks of (linear ``width``, batch norm, ReLU), summed at the end (Sec. 5.2).

    The student normalizes with the statistics of the batch it is given; the
    teacher (``fixed_stats=True``) with statistics frozen when the problem was
    sampled (weights ``mean1..3``, ``var1..3``), so its labels do not depend on
    how samples are batched.
    """

    family = "three_block"

    def __init__(self, d: int, width: int, fixed_stats: bool = False) -> None:
        self.d, self.width, self.fixed_stats = d, width, fixed_stats

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        m = self.width
        shapes = {"W1": (self.d, m), "W2": (m, m), "W3": (m, m)}
        if self.fixed_stats:
            for l in (1, 2, 3):
                shapes[f"mean{l}"] = (m,)
                shapes[f"var{l}"] = (m,)
        return shapes

    def pre_activations(self, weights: Weights, X: torch.Tensor) -> list[torch.Tensor]:
        """Each block's linear output before batch norm (to freeze teacher statistics)."""
        out, h = [], X
        for l in (1, 2, 3):
            Z = h @ weights[f"W{l}"]
            out.append(Z)
            h = relu(batch_norm(Z, weights.get(f"mean{l}"), weights.get(f"var{l}")))
        return out

    def forward(self, weights: Weights, X: torch.Tensor) -> torch.Tensor:
        Z3 = self.pre_activations(weights, X)[-1]
        return relu(batch_norm(Z3, weights.get("mean3"), weights.get("var3"))).sum(-1)
