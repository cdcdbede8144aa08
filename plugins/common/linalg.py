"""Fast trial-batched least squares for activation-masked designs (AltMin's inner step).

Jagatap & Hegde's Algorithm 1 solves, per trial, ``argmin_W ||sum_q diag(p_q) X w_q - y||``:
the design ``B = [diag(p_1) X ... diag(p_k) X]`` (n x dk) never needs to exist.

* **Primal** (every unit active on >= d rows, >= dk active rows): normal equations
  ``G vec(W) = B^T y`` with Gram blocks ``G_qr = X^T diag(p_q p_r) X`` built from the
  active rows only (rows no unit uses contribute nothing), one batched matmul for all
  blocks, then a batched Cholesky solve.
* **Dual** (at most dk active rows): the minimum-norm solution
  ``vec(W) = B_R^T (B_R B_R^T)^{-1} y_R`` on the active rows R, where
  ``B_R B_R^T = (X X^T)_RR o (P P^T)_RR`` (Hadamard product), so with the kernel
  ``K = X X^T`` computed once per trial an iteration costs no multiply by d at all.
  This is what ``numpy.linalg.lstsq`` returns too (minimum norm), at a fraction of its cost.
* **Fallback**: anything else, or a Cholesky that fails or is too ill-conditioned to
  trust, goes to an exact minimum-norm ``torch.linalg.lstsq`` (SVD driver on CPU) of
  its own.

Rows are compacted per trial (active rows first, padded to the largest count in the
batch) so the arithmetic is proportional to the active rows. Each trial's numbers
come only from its own data; the padding changes at most the rounding of a sum, so
batched and one-at-a-time results agree to float tolerance (tests/test_batching.py).
"""

from __future__ import annotations

import torch

# A Cholesky factor with (min diag / max diag)^2 below this bounds cond(G) above 1e12:
# normal equations would keep ~4 digits, so such trials take the SVD path instead.
ILL_CONDITIONED = 1e-12


def bmm(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """A @ B for (b, n, m) @ (b, m, c), each trial's result independent of the batch size.

    torch sends a batch of one matrix-vector product (c = 1) to gemv and larger batches
    to gemm, which sum in another order; a duplicated column keeps every batch on gemm.
    """
    if A.dim() == 3 and B.dim() == 3 and B.shape[-1] == 1 and A.shape[0] == B.shape[0]:
        return torch.bmm(A, B.expand(-1, -1, 2))[..., :1]
    return A @ B


def compact_rows(mask: torch.Tensor, m: int) -> torch.Tensor:
    """Row indices (b, m) putting each trial's rows with ``mask`` (b, n) first, in order.

    Positions past a trial's active count hold inactive rows (the caller masks them).
    """
    if m == mask.shape[1] and bool(mask.all()):
        return torch.arange(m, device=mask.device).expand(mask.shape[0], m)
    # A stable sort keeps the original order of rows within each group.
    return torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices[:, :m]


def row_buckets(count: torch.Tensor, n: int, width: int = 32) -> torch.Tensor:
    """The padded row count of each trial: its active count rounded up to ``width`` (<= n).

    Trials are solved in groups of equal padded size, so a trial's arithmetic (shapes,
    summation order) depends on its own data only, never on the other trials of the
    batch: batched and one-at-a-time runs agree bit for bit. That matters because
    AltMin's sign test 1[x_i^T w >= 0] reads rounding noise on the rows it interpolates.
    """
    return torch.clamp((count + width - 1) // width * width, max=n)


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(q, r) for q in range(k) for r in range(q, k)]


def masked_gram(Xc: torch.Tensor, Pc: torch.Tensor) -> torch.Tensor:
    """G (b, dk, dk) with blocks X^T diag(p_q p_r) X from compacted rows Xc (b, m, d), Pc (b, m, k).

    One batched matmul computes the k(k+1)/2 distinct blocks side by side; the
    products p_q p_r scale rows of an (m, d) copy, never an (n, dk) design.
    """
    b, m, d = Xc.shape
    k = Pc.shape[2]
    if k == 1:
        Z = Xc * Pc  # zero the padding rows
        return Z.transpose(1, 2) @ Z
    pairs = _pairs(k)
    q_idx = torch.tensor([q for q, _ in pairs], device=Pc.device)
    r_idx = torch.tensor([r for _, r in pairs], device=Pc.device)
    weights = Pc[:, :, q_idx] * Pc[:, :, r_idx]  # (b, m, npairs)
    Z = (weights.unsqueeze(-1) * Xc.unsqueeze(-2)).reshape(b, m, len(pairs) * d)
    blocks = (Xc.transpose(1, 2) @ Z).reshape(b, d, len(pairs), d)  # (b, d, npairs, d)
    G = Xc.new_empty(b, k * d, k * d)
    for j, (q, r) in enumerate(pairs):
        blk = blocks[:, :, j, :]
        G[:, q * d : (q + 1) * d, r * d : (r + 1) * d] = blk
        if q != r:
            G[:, r * d : (r + 1) * d, q * d : (q + 1) * d] = blk.transpose(1, 2)
    return G


def _cholesky_solve(G: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve G x = r (b, m, m), (b, m, c) by Cholesky; second value marks trials to redo."""
    L, info = torch.linalg.cholesky_ex(G)
    x = torch.cholesky_solve(r, L)
    diag = L.diagonal(dim1=-2, dim2=-1)
    ratio = (diag.amin(-1) / diag.amax(-1)).square()
    bad = (info != 0) | ~(ratio >= ILL_CONDITIONED) | ~torch.isfinite(x).flatten(1).all(1)
    return x, bad


def design(X: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """B = [diag(p_1) X ... diag(p_k) X] (b, n, dk), columns unit-major (index q*d + j)."""
    b, n, d = X.shape
    return (P.unsqueeze(-1) * X.unsqueeze(-2)).reshape(b, n, P.shape[2] * d)


def lstsq_min_norm(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact minimum-norm least squares per trial: A (b, n, m), y (b, n) -> (b, m).

    The SVD driver (gelsd) on CPU handles rank deficiency; other devices use their default.
    """
    driver = "gelsd" if A.device.type == "cpu" else None
    return torch.linalg.lstsq(A, y.unsqueeze(-1), driver=driver).solution.squeeze(-1)


class MaskedLeastSquares:
    """Per-trial ``argmin_W ||sum_q diag(p_q) X w_q - y||`` (minimum norm if not unique).

    Holds the data of the trials still being solved, ``X`` (b, n, d) and ``y`` (b, n),
    and caches the kernel ``X X^T`` of trials that need the dual form (within
    ``kernel_budget`` bytes), so a trial that stays underdetermined for many
    iterations pays for it once. ``keep(mask)`` drops finished trials (one copy per
    change of the active set, not one per iteration); ``solve(P)`` takes the
    patterns P (b, n, k) of the trials kept.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, kernel_budget: int = 256 << 20) -> None:
        B, n, d = X.shape
        finite = torch.isfinite(X).flatten(1).all(1) & torch.isfinite(y).all(1)
        self.finite = finite
        if not bool(finite.all()):
            # LAPACK may abort a whole batched call on NaN input: solve on zeros, report NaN.
            X = torch.where(finite.reshape(-1, 1, 1), X, torch.zeros_like(X))
            y = torch.where(finite.reshape(-1, 1), y, torch.zeros_like(y))
        self.X, self.y = X, y
        self.use_kernel = B * n * n * X.element_size() <= kernel_budget
        self.K: torch.Tensor | None = None
        self.has_K = torch.zeros(B, dtype=torch.bool, device=X.device)
        # how many trial solves took each path (benchmarks and tests read it)
        self.stats = {"primal": 0, "dual": 0, "fallback": 0}

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the trials where ``mask`` (b,) is true, in order."""
        if bool(mask.all()):
            return
        self.X, self.y, self.finite, self.has_K = (
            self.X[mask],
            self.y[mask],
            self.finite[mask],
            self.has_K[mask],
        )
        if self.K is not None:
            self.K = self.K[mask]

    def _kernel(self, s: torch.Tensor) -> torch.Tensor:
        """The cache of X X^T (b, n, n), with the entries of trials ``s`` filled in."""
        if self.K is None:
            n = self.X.shape[1]
            self.K = self.X.new_empty(self.X.shape[0], n, n)
        missing = s[~self.has_K[s]]
        if len(missing):
            Xm = self.X[missing]
            self.K[missing] = Xm @ Xm.transpose(1, 2)
            self.has_K[missing] = True
        return self.K

    def _solve_group(
        self,
        mode: str,
        s: torch.Tensor,
        rows: torch.Tensor,
        n_rows: torch.Tensor,
        P: torch.Tensor,
        m: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Primal or dual solve of the kept trials ``s``, rows compacted to ``m``."""
        X, y = self.X, self.y
        b, n, d = X.shape
        k = P.shape[2]
        if len(s) < b:
            rows, n_rows = rows[s], n_rows[s]
        g = len(s)
        idx = compact_rows(rows, m)  # (g, m)
        # One gather per tensor straight from the full batch (no copy of X[s] first).
        flat = (s.unsqueeze(1) * n + idx).reshape(-1)
        Xc = X.reshape(b * n, d).index_select(0, flat).reshape(g, m, d)
        Pc = P.reshape(b * n, k).index_select(0, flat).reshape(g, m, k)
        yc = y.reshape(b * n).index_select(0, flat).reshape(g, m)
        if mode == "primal":
            G = masked_gram(Xc, Pc)  # (g, dk, dk)
            rhs = bmm(Xc.transpose(1, 2), Pc * yc.unsqueeze(-1))  # (g, d, k)
            x, bad = _cholesky_solve(G, rhs.transpose(1, 2).reshape(g, k * d, 1))
            return x.reshape(g, k, d).transpose(1, 2), bad
        real = torch.arange(m, device=X.device) < n_rows.unsqueeze(1)  # (g, m)
        if self.use_kernel:
            K = self._kernel(s)  # (b, n, n), filled for the trials s
            at = (s * (n * n)).reshape(-1, 1, 1) + idx.unsqueeze(2) * n + idx.unsqueeze(1)
            Kc = K.reshape(-1).take(at)  # (g, m, m)
        else:
            Kc = Xc @ Xc.transpose(1, 2)
        # (B_R B_R^T)_ij = x_i^T x_j sum_q p_qi p_qj (zero on padding rows, whose
        # patterns are 0); padding rows then get an identity row.
        pp = Pc * Pc.transpose(1, 2) if k == 1 else Pc @ Pc.transpose(1, 2)
        M = Kc * pp
        M.diagonal(dim1=-2, dim2=-1).add_((~real).to(X.dtype))
        z, bad = _cholesky_solve(M, (yc * real).unsqueeze(-1))  # (g, m, 1)
        return bmm(Xc.transpose(1, 2), Pc * z), bad  # (g, d, k): w_q = X_R^T (p_q o z)

    def solve(self, P: torch.Tensor) -> torch.Tensor:
        """W (b, d, k) for the kept trials with activation patterns P (b, n, k), bool or 0/1."""
        X, y = self.X, self.y
        b, n, d = X.shape
        k = P.shape[2]
        P = P.to(X.dtype)
        W = X.new_zeros(b, d, k)
        if b == 0:
            return W
        rows = P.bool().any(2)  # (b, n): rows some unit uses
        per_unit = P.sum(1)  # (b, k)
        n_rows = rows.sum(1)
        primal = (per_unit >= d).all(1) & (n_rows >= d * k)
        dual = ~primal & (n_rows <= d * k)
        redo = ~(primal | dual)
        bucket = row_buckets(n_rows, n)
        everyone = torch.arange(b, device=X.device)
        for mode, sel in (("primal", primal), ("dual", dual)):
            if not bool(sel.any()):
                continue
            for m in bucket[sel].unique().tolist():
                grp = sel & (bucket == m)
                s = everyone if bool(grp.all()) else grp.nonzero().squeeze(1)
                if m == 0:  # dual with no active row: the minimum-norm W is 0
                    self.stats[mode] += len(s)
                    continue
                Ws, bad = self._solve_group(mode, s, rows, n_rows, P, m)
                if len(s) == b:
                    W = Ws
                else:
                    W[s] = Ws
                self.stats[mode] += int(len(s) - bad.sum())
                redo[s[bad]] = True
        if bool(redo.any()):
            r = redo.nonzero().squeeze(1)
            self.stats["fallback"] += len(r)
            vec = lstsq_min_norm(design(X[r], P[r]), y[r])
            W[r] = vec.reshape(len(r), k, d).transpose(1, 2)
        if not bool(self.finite.all()):
            W[~self.finite] = torch.nan
        return W
