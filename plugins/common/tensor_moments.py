"""Moment tensors of one-hidden-layer ReLU networks with Gaussian inputs (Zhong et al. 2017).

For y = sum_i v_i relu(w_i^T x) with x ~ N(0, I), write s = ||w_i||, w_bar_i = w_i / s and
gamma_j(s) = E[relu(s z) z^j] (z ~ N(0, 1)). The Hermite moments of Zhong et al. 2017
(Definition 5.1) are

* M1 = E[y x]                                  = sum_i v_i m1(s_i) w_bar_i
* M2 = E[y (x x^T - I)]                        = sum_i v_i m2(s_i) w_bar_i w_bar_i^T
* M4 = E[y He4(x)]                             = sum_i v_i m4(s_i) w_bar_i^(x4)

with He4(x) = x^(x4) - sym(x (x) x (x) I) + sym(I (x) I) and, for ReLU,
m1 = s/2, m2 = s/sqrt(2 pi), m3 = 0, m4 = -s/sqrt(2 pi). Because m3 = 0 the
third-order tensor of the decomposition comes from M4 contracted with a unit vector.

Every function is batched over trials: tensors carry the trial dimension B first,
and no operation mixes trials.
"""

from __future__ import annotations

import math

import torch

SQRT_2PI = math.sqrt(2.0 * math.pi)

# gamma_j(s) / s for the ReLU, j = 0..4: E[z^(j+1); z > 0] for z ~ N(0, 1).
_GAMMA_OVER_S = (1.0 / SQRT_2PI, 0.5, 2.0 / SQRT_2PI, 1.5, 8.0 / SQRT_2PI)


def relu_gamma(j: int, s: float | torch.Tensor = 1.0) -> float | torch.Tensor:
    """gamma_j(s) = E[relu(s z) z^j] for s >= 0, j = 0..4 (Zhong et al. 2017, Sec. 5 / Table 2)."""
    if not 0 <= j <= 4:
        raise ValueError(f"relu_gamma: j must be in 0..4, got {j}")
    return _GAMMA_OVER_S[j] * s


def relu_m(j: int, s: float | torch.Tensor = 1.0) -> float | torch.Tensor:
    """Hermite moment m_j(s) = E[relu(s z) He_j(z)] for s >= 0, j = 1..4 (Zhong et al. Def. 5.1).

    m1 = gamma_1, m2 = gamma_2 - gamma_0, m3 = gamma_3 - 3 gamma_1,
    m4 = gamma_4 + 3 gamma_0 - 6 gamma_2.
    """
    g = [relu_gamma(i, s) for i in range(5)]
    if j == 1:
        return g[1]
    if j == 2:
        return g[2] - g[0]
    if j == 3:
        return g[3] - 3 * g[1]
    if j == 4:
        return g[4] + 3 * g[0] - 6 * g[2]
    raise ValueError(f"relu_m: j must be in 1..4, got {j}")


# ---------------------------------------------------------------------------
# Empirical moments (batched)
# ---------------------------------------------------------------------------


def moment_m1(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Empirical M1 = (1/n) sum_i y_i x_i; X (B, n, d), y (B, n) -> (B, d)."""
    return torch.einsum("bn,bnd->bd", y, X) / X.shape[1]


def moment_m2(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Empirical M2 = (1/n) sum_i y_i (x_i x_i^T - I); X (B, n, d), y (B, n) -> (B, d, d)."""
    n, d = X.shape[1], X.shape[2]
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    yx = X * y.unsqueeze(-1)
    return yx.transpose(1, 2) @ X / n - y.mean(1)[:, None, None] * eye


def moment_t4(X: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Empirical T4 = M4(V, V, V, V), a (B, k, k, k, k) tensor, without forming M4.

    V (B, d, k) has orthonormal columns. With p = V^T x (and V^T V = I), He4(x)
    contracted with V on every mode is
    p^(x4) - sum_6 I (x) p (x) p + sum_3 I (x) I over the index placements.
    M4(V, V, V, V beta) = T4(I, I, I, beta): Zhong's R3 for any alpha = V beta in the span.
    """
    n, k = X.shape[1], V.shape[2]
    P = X @ V  # (B, n, k)
    Q = (P.unsqueeze(-1) * P.unsqueeze(-2)).reshape(P.shape[0], n, k * k)  # p (x) p
    pppp = ((Q * y.unsqueeze(-1)).transpose(1, 2) @ Q / n).reshape(-1, k, k, k, k)
    S = torch.einsum("zn,zna,znc->zac", y, P, P) / n  # (B, k, k): mean y p p^T
    I = torch.eye(k, dtype=X.dtype, device=X.device)
    sym_ipp = (
        torch.einsum("ab,zcd->zabcd", I, S)
        + torch.einsum("ac,zbd->zabcd", I, S)
        + torch.einsum("ad,zbc->zabcd", I, S)
        + torch.einsum("bc,zad->zabcd", I, S)
        + torch.einsum("bd,zac->zabcd", I, S)
        + torch.einsum("cd,zab->zabcd", I, S)
    )
    sym_ii = (
        torch.einsum("ab,cd->abcd", I, I)
        + torch.einsum("ac,bd->abcd", I, I)
        + torch.einsum("ad,bc->abcd", I, I)
    )
    return pppp - sym_ipp + y.mean(1)[:, None, None, None, None] * sym_ii


# ---------------------------------------------------------------------------
# Span and decomposition
# ---------------------------------------------------------------------------


def _finite_trials(*tensors: torch.Tensor) -> torch.Tensor:
    """(B,) mask of the trials whose tensors are all finite."""
    ok = torch.ones(tensors[0].shape[0], dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        ok &= torch.isfinite(t).flatten(1).all(1)
    return ok


def _replace_bad(M: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """M with the (square, batched) matrices of bad trials replaced by the identity.

    LAPACK raises on a NaN in any batch element; swapping in a harmless matrix keeps
    the other trials computing (the bad trial's outputs are set to NaN afterwards).
    """
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device).expand_as(M)
    return torch.where(ok.view(-1, *([1] * (M.dim() - 1))), M, eye)


def _nan_where_bad(out: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    return torch.where(ok.view(-1, *([1] * (out.dim() - 1))), out, torch.nan)


def _lstsq(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched least squares argmin_x ||A x - b|| that tolerates non-finite trials (-> NaN)."""
    ok = _finite_trials(A, b)
    mask = ok.view(-1, 1, 1)
    x = torch.linalg.lstsq(torch.where(mask, A, 0.0), torch.where(mask, b, 0.0)).solution
    return _nan_where_bad(x, ok)


def span_from_p(P: torch.Tensor, k: int) -> torch.Tensor:
    """Orthonormal basis (B, d, k) of the top-k eigenspace of a symmetric P, by |eigenvalue|.

    The procedure of Zhong et al. (Alg. 1) as Zhang et al. (Sec. 4) and Jagatap &
    Hegde (App. B.2) describe it: with C >= 2 ||P||_2, take the top-k eigenpairs of
    P1 = C I + P and of P2 = C I - P, merge the 2k eigenvalues, keep the k largest,
    orthogonalize their eigenvectors. P1 and P2 share P's eigenvectors, so one
    eigendecomposition of P serves both.
    """
    ok = _finite_trials(P)
    evals, evecs = torch.linalg.eigh(_replace_bad(P, ok))  # ascending, (B, d), (B, d, d)
    C = 2.0 * evals.abs().amax(1, keepdim=True)  # C = 2 ||P||_2 per trial
    d = P.shape[-1]
    # Top-k of C I + P are the k largest eigenvalues of P; of C I - P the k smallest.
    pool_vals = torch.cat([C + evals[:, d - k :], C - evals[:, :k]], dim=1)  # (B, 2k)
    pool_vecs = torch.cat([evecs[:, :, d - k :], evecs[:, :, :k]], dim=2)  # (B, d, 2k)
    order = pool_vals.argsort(dim=1, descending=True)[:, :k]
    chosen = torch.gather(pool_vecs, 2, order.unsqueeze(1).expand(-1, d, -1))
    # The two pools can hold the same eigenvector when k > d/2; QR keeps a basis.
    Q, _ = torch.linalg.qr(chosen)
    return _nan_where_bad(Q, ok)


def jennrich(T: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Unit components of a symmetric (B, k, k, k) tensor T = sum_i lambda_i u_i^(x3).

    Simultaneous diagonalization (Jennrich): A = T(I, I, g1) = U D1 U^T and
    B = T(I, I, g2) = U D2 U^T, so the eigenvectors of A B^{-1} are the u_i.
    Returns U (B, k, k) with unit columns (sign arbitrary); empirical tensors can
    give slightly complex eigenvectors, whose real part is kept.
    """
    A = torch.einsum("zabc,zc->zab", T, g1)
    Bm = torch.einsum("zabc,zc->zab", T, g2)
    ok = _finite_trials(A, Bm)
    # A B^-1 = (B^-T A^T)^T; solve_ex does not raise on a singular B of one trial.
    Mt, _ = torch.linalg.solve_ex(_replace_bad(Bm, ok).transpose(1, 2), A.transpose(1, 2))
    ok &= _finite_trials(Mt)
    _, vecs = torch.linalg.eig(_replace_bad(Mt.transpose(1, 2), ok))
    U = vecs.real
    U = U / U.norm(dim=1, keepdim=True).clamp_min(torch.finfo(U.dtype).tiny)
    return _nan_where_bad(U, ok)


def decompose_t4(
    T4: torch.Tensor, betas: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor
) -> torch.Tensor:
    """Unit components U (B, k, k) of T4 = sum_i lambda_i u_i^(x4), best of D random draws.

    For each draw r, R3 = T4(I, I, I, beta_r) (Zhong's M4 contracted with a random
    unit vector) is decomposed by :func:`jennrich` with (g1_r, g2_r). A draw fails
    when some beta_r^T u_i is near 0 (that component vanishes from R3) or the
    eigenvalue ratios nearly tie, so each trial keeps the draw whose components
    best fit T4 itself (least-squares residual over lambda).
    betas, g1, g2: (B, D, k) with unit-norm betas.
    """
    Bn, D, k = betas.shape
    R3 = torch.einsum("zabcd,zrd->zrabc", T4, betas).reshape(Bn * D, k, k, k)
    U = jennrich(R3, g1.reshape(Bn * D, k), g2.reshape(Bn * D, k))  # (B*D, k, k)
    # Design matrix: columns vec(u_i^(x4)), shape (B*D, k^4, k).
    u4 = torch.einsum("zai,zbi,zci,zdi->zabcdi", U, U, U, U).reshape(Bn * D, k**4, k)
    target = T4.repeat_interleave(D, dim=0).reshape(Bn * D, k**4, 1)
    lam = _lstsq(u4, target)
    resid = (u4 @ lam - target).squeeze(-1).norm(dim=1).reshape(Bn, D)
    resid = torch.nan_to_num(resid, nan=torch.inf)
    best = resid.argmin(dim=1)  # (B,)
    return U.reshape(Bn, D, k, k)[torch.arange(Bn, device=U.device), best]


def weights_from_m1(Q1: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Weights w_i = 2 z_i d_i from M1 = sum_i m1(||w_i||) w_bar_i with unit directions d_i.

    Solves z = argmin || Q1 - sum_i z_i d_i || (Zhong et al. Alg. 1, last step, with
    output weights v_i = 1): z_i estimates m1(||w_i||) = ||w_i|| / 2 with the sign of
    d_i folded in, so 2 z_i d_i is w_i whatever sign the decomposition gave d_i.
    Q1 (B, d), directions (B, d, k) -> (B, d, k).
    """
    z = _lstsq(directions, Q1.unsqueeze(-1)).squeeze(-1)  # (B, k)
    # m1 is linear in the norm, so ||w_i|| = z_i / m1(1) (= 2 z_i for the ReLU).
    return directions * (z / relu_m(1, 1.0)).unsqueeze(1)
