"""Population (x ~ N(0, s^2 I)) loss and gradient of the sum-of-ReLUs students.

ResLink, Vanilla and the one-hidden-layer model are all f(x) = sum_j relu(a_j^T x)
for columns a_j that move one-for-one with the weight W, so the closed-form
loss and gradient of :mod:`plugins.common.gaussian` apply with dA/dW = I. The
teacher is the student's architecture at the ``truth`` weights.
"""

from __future__ import annotations

import torch

from harness import Instance, Weights
from plugins.common import gaussian
from plugins.li_yuan.models import ReslinkModel

FAMILIES = ("reslink", "one_hidden")


def columns(instance: Instance, weights: Weights) -> torch.Tensor:
    """The hidden units' weight vectors as columns, (B, d, k)."""
    model = instance.model
    if isinstance(model, ReslinkModel):
        return model.columns(weights)
    if model.family == "one_hidden":
        return weights["W"]
    raise ValueError(f"no closed-form population loss for model family {model.family!r}")


def input_std(instance: Instance) -> float:
    """Standard deviation of the input entries, which the problem states in ``extras``."""
    if "input_std" not in instance.extras:
        raise ValueError(
            "the problem does not state its input distribution (extras['input_std']), "
            "which closed-form population quantities and fresh samples need"
        )
    return float(instance.extras["input_std"])


def applies(instance: Instance) -> bool:
    """Whether the closed forms describe this instance (known teacher and input scale)."""
    return (
        instance.model.family in FAMILIES
        and "W" in instance.truth
        and "input_std" in instance.extras
    )


def loss(instance: Instance, weights: Weights) -> torch.Tensor:
    """1/2 E[(f(x, W) - f(x, W*))^2], shape (B,) (label noise excluded)."""
    A, C = columns(instance, weights), columns(instance, instance.truth)
    return gaussian.relu_sum_loss(A, C, input_std(instance))


def grad(instance: Instance, weights: Weights) -> torch.Tensor:
    """Gradient of :func:`loss` in the weight ``W``, (B, d, k)."""
    A, C = columns(instance, weights), columns(instance, instance.truth)
    return gaussian.relu_sum_grad(A, C, input_std(instance))
