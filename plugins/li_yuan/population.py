"""Population (x ~ N(0, s^2 I)) loss and gradient of the sum-of-ReLUs students.

ResLink, Vanilla and the one-hidden-layer model are all f(x) = sum_j relu(a_j^T x)
for columns a_j that move one-for-one with the weight W, so the closed-form
loss and gradient of :mod:`plugins.common.gaussian` apply with dA/dW = I. The
teacher is the student's architecture at the ``truth`` weights.
"""

from __future__ import annotations

import math

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


def _angles(cos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """In place: clamp ``cos`` to [-1, 1]; return (t, sin t) as gaussian._angle_terms does."""
    cos.clamp_(-1.0, 1.0)
    sin = (cos * cos).neg_().add_(1.0).clamp_min_(0.0).sqrt_()
    return torch.arccos(cos), sin


def _quad(a: torch.Tensor, X: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a^T X b per trial: (B, p), (B, p, q), (B, q) -> (B,)."""
    return (a.unsqueeze(-2) @ X @ b.unsqueeze(-1)).reshape(-1)


def one_point_inner(instance: Instance, weights: Weights) -> torch.Tensor:
    """<-grad L(W), W* - W> of :func:`loss`, shape (B,), without forming the gradient.

    Columns a_j (norms n_j, unit u_j), teacher columns c_i (m_i, v_i), D = C - A =
    W* - W. The gradient's column j is (:mod:`plugins.common.gaussian`)
    s^2 / (2 pi) [sum_k (pi - t_jk) a_k + S_j u_j - sum_i (pi - r_ji) c_i - R_j u_j]
    with t_jk = angle(a_j, a_k), r_ji = angle(a_j, c_i), S_j = sum_k n_k sin t_jk,
    R_j = sum_i m_i sin r_ji. Its inner product with D_j needs only
    a_k . D_j = n_k (m_j H_kj - n_j G_kj), c_i . D_j = m_i (m_j K_ij - n_j H_ji) and
    u_j . D_j = m_j H_jj - n_j G_jj for the Gram matrices G = Au^T Au, H = Au^T Cu and
    K = Cu^T Cu, which the angles need anyway: one d^3 product (G) when W* is diagonal
    (Li & Yuan's W* = 0), three otherwise, instead of the gradient's four, and sums
    written as quadratic forms. Equal to ``-(grad(instance, weights) * D).sum()`` up to
    rounding (tested).
    """
    A, C = columns(instance, weights), columns(instance, instance.truth)
    if A.shape != C.shape:
        raise ValueError(
            f"the one-point inner product needs W and W* of one shape, got {tuple(A.shape)} "
            f"and {tuple(C.shape)}"
        )
    n, Au = gaussian._unit_columns(A)
    m, Cu = gaussian._unit_columns(C)
    c_diag = torch.diagonal(Cu, dim1=-2, dim2=-1)  # (B, k)
    diagonal = bool(torch.count_nonzero(Cu) == torch.count_nonzero(c_diag))
    # HT[i, j] = H_ji = v_i . u_j (stored transposed: contiguous in the diagonal case).
    HT = Au * c_diag.unsqueeze(-1) if diagonal else Cu.transpose(-1, -2) @ Au
    G = Au.transpose(-1, -2) @ Au  # G[j, k] = u_j . u_k, symmetric
    # u_j . D_j, (B, k), taken before the angles clamp G and HT in place.
    u_dot_d = m * torch.diagonal(HT, dim1=-2, dim2=-1) - n * torch.diagonal(G, dim1=-2, dim2=-1)
    pi = math.pi
    # sum_jk (pi - t_jk) a_k . D_j (t symmetric) = sum_jk (pi - t_jk) n_k (m_j H_kj - n_j G_kj).
    qH, qG = _quad(m, HT, n), _quad(n, G, n)  # sum_kj n_k m_j H_kj, sum_kj n_k n_j G_kj
    t, sin_t = _angles(G)  # clamps G in place (a rounding-level change)
    first = pi * (qH - qG) - (_quad(m, t * HT, n) - _quad(n, t * G, n))
    second = ((sin_t @ n.unsqueeze(-1)).squeeze(-1) * u_dot_d).sum(-1)  # sum_j S_j u_j . D_j
    del t, sin_t
    # sum_ji (pi - r_ji) c_i . D_j = sum_ji (pi - r_ji) m_i (m_j K_ij - n_j H_ji).
    rT, sin_rT = _angles(HT)  # rT[i, j] = r_ji
    if diagonal:  # K = diag(c_diag^2): only r_jj
        rd = torch.diagonal(rT, dim1=-2, dim2=-1)
        k_term = ((pi - rd) * m * m * c_diag * c_diag).sum(-1)
    else:
        K = Cu.transpose(-1, -2) @ Cu
        k_term = pi * _quad(m, K, m) - _quad(m, rT * K, m)
    third = k_term - (pi * qH - _quad(m, rT * HT, n))
    fourth = ((m.unsqueeze(-2) @ sin_rT).squeeze(-2) * u_dot_d).sum(-1)  # sum_j R_j u_j . D_j
    s = input_std(instance)
    return -(s * s / (2 * math.pi)) * (first + second - third - fourth)
