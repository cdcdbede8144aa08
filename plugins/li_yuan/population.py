"""Population (x ~ N(0, s^2 I)) loss and gradient of the sum-of-ReLUs students.

ResLink, Vanilla and the one-hidden-layer model are all f(x) = sum_j relu(a_j^T x)
for some columns a_j that move one-for-one with the weight W, so the closed-form
loss and gradient of :mod:`plugins.common.gaussian` apply with dA/dW = I.
"""

from __future__ import annotations

import torch

from harness import Instance, Weights
from plugins.common import gaussian
from plugins.li_yuan.models import ReslinkModel

FAMILIES = ("reslink", "one_hidden")


def columns(instance: Instance, weights: Weights) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher hidden-unit columns, (B, d, k) and (B, d, k*)."""
    model = instance.model
    if isinstance(model, ReslinkModel):
        W_star = instance.truth["W_star"]
        eye = torch.eye(W_star.shape[-1], dtype=W_star.dtype, device=W_star.device)
        return model.columns(weights), W_star + eye
    if model.family == "one_hidden":
        return weights["W"], instance.truth["W_star"]
    raise ValueError(f"no closed-form population loss for model family {model.family!r}")


def input_std(instance: Instance) -> float:
    """Standard deviation of the input entries (problems state it in ``extras``; N(0, I) if not)."""
    return float(instance.extras.get("input_std", 1.0))


def applies(instance: Instance) -> bool:
    """Whether the closed forms describe this instance (a known teacher of a supported family)."""
    return instance.model.family in FAMILIES and "W_star" in instance.truth


def loss(instance: Instance, weights: Weights) -> torch.Tensor:
    """1/2 E[(f(x, W) - f(x, W*))^2], shape (B,) (noise excluded)."""
    A, C = columns(instance, weights)
    return gaussian.relu_sum_loss(A, C, input_std(instance))


def grad(instance: Instance, weights: Weights) -> torch.Tensor:
    """Gradient of :func:`loss` in the weight ``W``, (B, d, k)."""
    A, C = columns(instance, weights)
    return gaussian.relu_sum_grad(A, C, input_std(instance))
