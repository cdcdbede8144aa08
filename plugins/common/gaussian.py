"""Closed-form Gaussian expectations for sums of ReLUs (x ~ N(0, s^2 I)).

For two vectors a, c with angle t between them (Cho & Saul's arc-cosine kernel
of degree 1; Tian 2017, Eqn (13); Li & Yuan 2017, Lemma 2.1):

    K(a, c) = E[relu(a^T x) relu(c^T x)] = s^2 |a||c| (sin t + (pi - t) cos t) / (2 pi)
    M(a, c) = E[x relu(c^T x) 1[a^T x >= 0]] = s^2 ((pi - t) c + |c| sin t a/|a|) / (2 pi)

so M(a, c) is the gradient of K(a, c) in a. For a student
f(x) = sum_j relu(a_j^T x) and a teacher f*(x) = sum_i relu(b_i^T x) (columns of
``A`` and ``C``), the population loss with the harness's 1/2 convention is

    L(A) = 1/2 E[(f(x) - f*(x))^2]
         = 1/2 (sum_jk K(a_j, a_k) - 2 sum_ji K(a_j, b_i) + sum_ik K(b_i, b_k))

and its gradient in column a_j is sum_k M(a_j, a_k) - sum_i M(a_j, b_i).
Li & Yuan's loss (2) has no 1/2, and their Lemma 2.1 writes -grad of (2) times pi:
``lemma21_neg_grad = -2 pi grad L`` (checked against Monte Carlo in the tests).

Every function is batched over trials: matrices are (B, d, k), columns are the
units, and results keep the trial dimension first.
"""

from __future__ import annotations

import math

import torch


def _unit_columns(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column norms (B, k) and unit columns (B, d, k); a zero column stays zero."""
    norms = A.norm(dim=-2)
    return norms, A / norms.clamp_min(torch.finfo(A.dtype).tiny).unsqueeze(-2)


def _angle_terms(cos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Angle t and sin t from cos t, clamped against rounding outside [-1, 1]."""
    cos = cos.clamp(-1.0, 1.0)
    return torch.arccos(cos), torch.sqrt((1.0 - cos * cos).clamp_min(0.0))


def _kernel_from_cos(
    na: torch.Tensor, nc: torch.Tensor, cos: torch.Tensor, input_std: float
) -> torch.Tensor:
    t, sin = _angle_terms(cos)
    scale = input_std**2 / (2 * math.pi)
    return scale * na.unsqueeze(-1) * nc.unsqueeze(-2) * (sin + (math.pi - t) * cos.clamp(-1, 1))


def relu_kernel(A: torch.Tensor, C: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """E[relu(a_j^T x) relu(c_i^T x)] for every column pair: (B, d, p), (B, d, q) -> (B, p, q)."""
    na, Au = _unit_columns(A)
    nc, Cu = _unit_columns(C)
    return _kernel_from_cos(na, nc, Au.transpose(-1, -2) @ Cu, input_std)


def relu_gram(A: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """relu_kernel(A, A), with the diagonal written as s^2 |a|^2 / 2 (t = 0).

    The separate diagonal keeps autograd finite: arccos has an infinite
    derivative at cos t = 1, which every self-pair would hit.
    """
    na, Au = _unit_columns(A)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    off = _kernel_from_cos(na, na, (Au.transpose(-1, -2) @ Au) * (1 - eye), input_std) * (1 - eye)
    return off + torch.diag_embed(0.5 * input_std**2 * na * na)


def relu_cross_moment_sum(A: torch.Tensor, C: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """sum_i M(a_j, c_i) = E[x (sum_i relu(c_i^T x)) 1[a_j^T x >= 0]] for each column a_j.

    (B, d, p), (B, d, q) -> (B, d, p). Tian 2017, Eqn (13).
    """
    na, Au = _unit_columns(A)
    nc, Cu = _unit_columns(C)
    t, sin = _angle_terms(Au.transpose(-1, -2) @ Cu)  # (B, p, q)
    first = C @ (math.pi - t).transpose(-1, -2)  # sum_i (pi - t_ji) c_i, (B, d, p)
    second = Au * (sin @ nc.unsqueeze(-1)).squeeze(-1).unsqueeze(
        -2
    )  # (sum_i |c_i| sin t_ji) a_j/|a_j|
    return input_std**2 / (2 * math.pi) * (first + second)


def relu_sum_loss(A: torch.Tensor, C: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """1/2 E[(sum_j relu(a_j^T x) - sum_i relu(c_i^T x))^2], shape (B,)."""
    saa = relu_gram(A, input_std).sum((-1, -2))
    sac = relu_kernel(A, C, input_std).sum((-1, -2))
    scc = relu_gram(C, input_std).sum((-1, -2))
    return 0.5 * (saa - 2 * sac + scc)


def relu_sum_grad(A: torch.Tensor, C: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """Gradient of :func:`relu_sum_loss` in A, (B, d, p): sum_k M(a_j, a_k) - sum_i M(a_j, c_i)."""
    return relu_cross_moment_sum(A, A, input_std) - relu_cross_moment_sum(A, C, input_std)


def relu_mean(A: torch.Tensor, input_std: float = 1.0) -> torch.Tensor:
    """E[sum_j relu(a_j^T x)] = s sum_j |a_j| / sqrt(2 pi), shape (B,)."""
    return input_std * A.norm(dim=-2).sum(-1) / math.sqrt(2 * math.pi)
