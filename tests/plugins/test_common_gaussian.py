"""Closed-form Gaussian ReLU expectations (common/gaussian.py) vs Monte Carlo and autograd.

Monte-Carlo tolerances: each comparison uses the empirical standard error of the
sample mean (std / sqrt(n)) and allows 5 of them, so a correct formula fails with
probability below ~1e-6 per entry, while a wrong constant (e.g. a missing 1/2 or
pi) is off by hundreds of standard errors at n = 200,000.
"""

from __future__ import annotations

import math

import torch

from plugins.common import gaussian

N_MC = 200_000
DT = torch.float64


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _assert_mc(closed: torch.Tensor, samples: torch.Tensor, z: float = 5.0) -> None:
    """``samples`` has the Monte-Carlo axis at dim 1; compare its mean with ``closed``."""
    mean = samples.mean(1)
    se = samples.std(1) / math.sqrt(samples.shape[1])
    assert torch.all((closed - mean).abs() <= z * se + 1e-12), (closed, mean, se)


def _inputs(B: int, d: int, s: float, seed: int) -> torch.Tensor:
    return s * _rand(B, N_MC, d, seed=seed)


def test_kernel_matches_monte_carlo_and_scales_with_input_variance():
    B, d, s = 3, 4, 0.7
    A, C = _rand(B, d, 3, seed=1), _rand(B, d, 2, seed=2)
    X = _inputs(B, d, s, seed=3)
    fa, fc = torch.relu(X @ A), torch.relu(X @ C)  # (B, n, p), (B, n, q)
    prods = fa.unsqueeze(-1) * fc.unsqueeze(-2)  # (B, n, p, q)
    _assert_mc(gaussian.relu_kernel(A, C, s), prods)
    _assert_mc(gaussian.relu_gram(A, s), fa.unsqueeze(-1) * fa.unsqueeze(-2))
    _assert_mc(gaussian.relu_mean(A, s), fa.sum(-1))


def test_gram_equals_kernel_with_itself():
    A = _rand(2, 5, 4, seed=4)
    assert torch.allclose(gaussian.relu_gram(A), gaussian.relu_kernel(A, A), atol=1e-12)
    # Degenerate angles: t = 0 gives |a||c|/2, t = pi gives 0.
    a = _rand(1, 5, 1, seed=5)
    assert torch.allclose(gaussian.relu_kernel(a, 2 * a), a.pow(2).sum().reshape(1, 1, 1))
    assert torch.allclose(gaussian.relu_kernel(a, -a), torch.zeros(1, 1, 1, dtype=DT), atol=1e-12)


def test_loss_and_gradient_match_monte_carlo():
    B, d, s = 2, 3, 1.3
    A, C = _rand(B, d, 3, seed=6), _rand(B, d, 2, seed=7)
    X = _inputs(B, d, s, seed=8)
    r = torch.relu(X @ A).sum(-1) - torch.relu(X @ C).sum(-1)  # (B, n)
    _assert_mc(gaussian.relu_sum_loss(A, C, s), 0.5 * r.pow(2))
    # grad_j = E[(f - f*) x 1[a_j^T x >= 0]], one sample per row of X.
    per_sample = r[..., None, None] * X.unsqueeze(-1) * (X @ A >= 0).to(DT).unsqueeze(-2)
    _assert_mc(gaussian.relu_sum_grad(A, C, s), per_sample)


def test_gradient_equals_autograd_of_closed_form_loss():
    A, C = _rand(3, 6, 4, seed=9), _rand(3, 6, 5, seed=10)
    leaf = A.clone().requires_grad_(True)
    gaussian.relu_sum_loss(leaf, C, 0.8).sum().backward()
    assert torch.allclose(leaf.grad, gaussian.relu_sum_grad(A, C, 0.8), atol=1e-12, rtol=1e-10)


def _lemma_21_literal(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    """-grad L(W)_j exactly as Li & Yuan's Lemma 2.1 writes it, one column at a time."""
    d = W.shape[0]
    I = torch.eye(d, dtype=W.dtype)
    out = torch.zeros_like(W)
    for j in range(d):
        aj = I[:, j] + W[:, j]
        aj_bar = aj / aj.norm()
        for i in range(d):
            ai, bi = I[:, i] + W[:, i], I[:, i] + W_star[:, i]
            t_ij = torch.arccos((ai @ aj_bar / ai.norm()).clamp(-1, 1))
            t_sj = torch.arccos((bi @ aj_bar / bi.norm()).clamp(-1, 1))
            out[:, j] += (
                math.pi / 2 * (W_star[:, i] - W[:, i])
                + (math.pi / 2 - t_sj) * bi
                - (math.pi / 2 - t_ij) * ai
                + (bi.norm() * torch.sin(t_sj) - ai.norm() * torch.sin(t_ij)) * aj_bar
            )
    return out


def test_lemma_21_is_minus_two_pi_times_the_half_loss_gradient():
    d = 4
    W, W_star = 0.3 * _rand(d, d, seed=11), 0.3 * _rand(d, d, seed=12)
    I = torch.eye(d, dtype=DT)
    G = gaussian.relu_sum_grad((I + W)[None], (I + W_star)[None])[0]
    assert torch.allclose(_lemma_21_literal(W, W_star), -2 * math.pi * G, atol=1e-12)


def test_zero_columns_and_nan_trials_stay_contained():
    A, C = _rand(3, 4, 3, seed=13), _rand(3, 4, 3, seed=14)
    A[0, :, 1] = 0.0  # a dead unit: finite everywhere, contributes nothing
    A[2, 0, 0] = math.nan  # a broken trial must not touch trial 1
    loss, grad = gaussian.relu_sum_loss(A, C), gaussian.relu_sum_grad(A, C)
    assert torch.isfinite(loss[:2]).all() and torch.isfinite(grad[:2]).all()
    kept = torch.cat([A[0, :, :1], A[0, :, 2:]], dim=-1)[None]
    assert torch.allclose(loss[0], gaussian.relu_sum_loss(kept, C[:1])[0])
    assert torch.allclose(loss[1], gaussian.relu_sum_loss(A[1:2], C[1:2])[0])
