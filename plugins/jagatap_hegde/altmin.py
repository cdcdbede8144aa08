"""Alternating minimization for one-hidden-layer ReLU networks (Jagatap & Hegde, Algorithm 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param
from plugins.common.linalg import MaskedLeastSquares, bmm

if TYPE_CHECKING:
    from plugins.jagatap_hegde.neuron_lapack import NeuronAltMin

LAPACK_NEURON = True
"""Run k = 1, float64, CPU cells one trial at a time on LAPACK (neuron_lapack.py). Off, they
take the trial-batched tensor path every other case takes (tests compare the two)."""


def batched_least_squares(A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmin_x ||A x - y|| for each trial: A (B, n, m), y (B, n) -> x (B, m).

    Normal equations with a batched Cholesky solve; trials whose Gram matrix is
    singular or indefinite in floating point (e.g. n < m) fall back to an exact
    minimum-norm least-squares solve of their own.
    """
    G = A.transpose(1, 2) @ A  # (B, m, m)
    r = A.transpose(1, 2) @ y.unsqueeze(-1)  # (B, m, 1)
    L, info = torch.linalg.cholesky_ex(G)
    x = torch.cholesky_solve(r, L).squeeze(-1)
    # A numerically singular G can still factor, with tiny pivots whose rounding (which
    # differs with the batch's blocking) blows up into an arbitrary x: treat a Gram
    # condition number past 1e10 (pivot ratio 1e-5) as singular too.
    pivots = torch.diagonal(L, dim1=1, dim2=2).abs()
    ill = pivots.amin(1) <= 1e-5 * pivots.amax(1)
    bad = (info != 0) | ill | ~torch.isfinite(x).all(-1)
    # LAPACK aborts the whole call on a NaN input: trials with non-finite data stay NaN.
    finite = torch.isfinite(A).flatten(1).all(1) & torch.isfinite(y).all(1)
    if (bad & finite).any():
        idx = (bad & finite).nonzero().squeeze(-1)
        driver = "gelsd" if A.device.type == "cpu" else None
        x[idx] = torch.linalg.lstsq(A[idx], y[idx].unsqueeze(-1), driver=driver).solution.squeeze(
            -1
        )
    x[~finite] = torch.nan
    return x


@dataclass(frozen=True)
class AltMinParams:
    max_iter: int = param(100, "maximum number of alternations T", min=1)
    tol: float = param(1e-10, "stop when ||W_{t+1} - W_t||_F <= tol ||W_t||_F", min=0.0)


class AltMin(Solver):
    """Alternating minimization (Jagatap & Hegde, Algorithm 1).

    Repeat: activation patterns p_q = 1[X w_q >= 0] for every hidden unit q;
    B = [diag(p_1) X ... diag(p_k) X] (n x dk); vec(W) = argmin ||B vec(W) - y||_2
    (solved exactly). A trial stops when its activation pattern repeats (the
    next least-squares solution would be the same), when the relative change
    of W falls below ``tol``, or after ``max_iter`` alternations. Batched over
    trials; stopped trials leave the batch. With one hidden unit on the CPU in float64
    (J1) each trial instead runs on its own, straight on LAPACK with its data in cache
    (plugins/jagatap_hegde/neuron_lapack.py): the same algorithm, several times faster.

    For the ``skip`` family (Sec. 3.2, eq. (7)) the same least squares runs on the
    effective weights W + I_S (support S known); the residual W is returned.
    """

    name = "altmin"
    Params = AltMinParams
    families = ("one_hidden", "skip")

    @classmethod
    def batch_invariant(cls, params, problem, *, dtype: str, device: str) -> bool:
        """One hidden unit, float64 on the CPU runs each trial on its own (LAPACK path)."""
        return LAPACK_NEURON and problem.get("k", 1) == 1 and dtype == "float64" and device == "cpu"

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        X, y = instance.X, instance.y  # (B, n, d), (B, n)
        model = instance.model
        # Effective weights W + I_S for the skip family; the plain W otherwise.
        offset = model.identity_part(X.dtype) if model.family == "skip" else 0.0
        W = weights["W"] + offset  # (B, d, k), a fresh tensor
        Bn, n, d = X.shape
        k = W.shape[2]
        T, tol = self.params.max_iter, self.params.tol
        if k == 1 and LAPACK_NEURON and X.device.type == "cpu" and X.dtype == torch.float64:
            # Imported here: scipy.linalg costs ~0.3 s that `relubench list` should not pay.
            from plugins.jagatap_hegde.neuron_lapack import blas_threads

            with blas_threads(torch.get_num_threads()):
                W, iterations = self._neurons_on_lapack(X, y, W, ctx)
            return SolveResult({"W": W - offset}, iterations)
        # Compacted every iteration (AltMin's steps are large): ``stop.index`` maps the rows
        # of the running batch to trials.
        stop = TrialStopper(Bn, T, device=X.device, check_every=1)
        ls = MaskedLeastSquares(X, y)
        # Iterates only depend on the pattern (W_t = LS(P_t)), so a pattern seen before
        # at s < t-1 starts a cycle of length t - s that lasts to max_iter: jump to the
        # iterate the trial would end on. Exact, so only skipped when a trace must
        # show every iteration.
        jump = not any(ctx.wants(t) for t in range(1, T + 1))
        jump = jump and PatternHistory.fits(Bn, T, n * k, d * k)
        cycles = PatternHistory(Bn, T, n * k, (d, k), W) if jump else None
        prev_P: torch.Tensor | None = None
        Xa, Wa = X, W.clone()  # the running trials' data, re-indexed only when trials stop
        for t in stop:
            P = bmm(Xa, Wa) >= 0  # (b, n, k) line 3
            if prev_P is not None:
                # Same pattern as last time: the least squares would return W again.
                stop.halt(converged=(prev_P == P).flatten(1).all(1))
                if stop.done:
                    break
                if stop.should_compact():
                    ls.keep(stop.running)
                    rows = stop.compact()
                    P, Wa, Xa = P[rows], Wa[rows], Xa[rows]
            # lines 4-6: vec(W) = argmin ||[diag(p_1) X ... diag(p_k) X] vec(W) - y||
            W_new = ls.solve(P)
            if cycles is not None:
                W_new = cycles.substitute(t, stop.index, P, W_new)
            change = (W_new - Wa).flatten(1).norm(dim=1)
            small = change <= tol * Wa.flatten(1).norm(dim=1)
            W[stop.index] = W_new
            if ctx.wants(t):
                ctx.record(t, {"W": W - offset})
            ended = small | ~torch.isfinite(change)
            # A trial in a cycle ends at once on the iterate it holds at T (counted as T).
            looped = None if cycles is None else cycles.finish(t, stop.index, ~ended, W)
            stop.update(converged=small, diverged=~torch.isfinite(change), max_iter=looped)
            if looped is not None:
                stop.fast_forward(looped, T)
            Wa, prev_P = W_new, P
            if stop.should_compact():
                ls.keep(stop.running)
                rows = stop.compact()
                Wa, prev_P, Xa = Wa[rows], P[rows], Xa[rows]
        return SolveResult({"W": W - offset}, stop.iterations)

    def _neurons_on_lapack(
        self, X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, ctx: SolveContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """k = 1 on the CPU: each trial on its own, its data in cache (neuron_lapack.py).

        Without traces a trial runs all its iterations back to back (and may jump to the
        end of a cycle); with traces the trials advance in lockstep so every recorded
        iterate is timed where it happens. Both run the same calls on each trial, so the
        results are the same.
        """
        from plugins.jagatap_hegde.neuron_lapack import NeuronAltMin

        T, tol = self.params.max_iter, self.params.tol
        traced = any(ctx.wants(t) for t in range(1, T + 1))
        Xn, yn, Wn = X.numpy(), y.numpy(), W[:, :, 0].numpy()
        trials = [
            NeuronAltMin(Xn[b], yn[b], Wn[b], T, tol, jump=not traced) for b in range(len(Xn))
        ]
        if traced:
            going = [tr for tr in trials if not tr.done]
            for t in range(1, T + 1):
                going = [tr for tr in going if tr.step(t)]
                if ctx.wants(t):
                    ctx.record(t, {"W": self._stack(trials, W)})
                if not going:
                    break
        else:
            for tr in trials:
                t = 1
                while not tr.done and tr.step(t):
                    t += 1
        iterations = torch.tensor([tr.iterations for tr in trials], dtype=torch.long)
        return self._stack(trials, W), iterations

    @staticmethod
    def _stack(trials: list[NeuronAltMin], like: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.stack([tr.w for tr in trials])).to(like).unsqueeze(-1)


class PatternHistory:
    """Activation patterns and iterates of each trial, to detect AltMin cycles.

    Patterns are matched by a 64-bit hash (a random signed sum, wrapping) and then
    compared in full, so a match is exact.
    """

    BUDGET = 256 << 20  # bytes of history; beyond it cycles are not tracked

    @classmethod
    def fits(cls, B: int, T: int, size: int, weights: int) -> bool:
        return B * (T + 1) * (size + 8 * weights) <= cls.BUDGET

    def __init__(self, B: int, T: int, size: int, shape: tuple[int, int], like: torch.Tensor):
        gen = torch.Generator().manual_seed(0x5EED)
        self.hash = torch.randint(-(2**62), 2**62, (size,), generator=gen).to(like.device)
        self.keys = torch.zeros(B, T + 1, dtype=torch.long, device=like.device)
        self.seen = torch.zeros(B, T + 1, dtype=torch.bool, device=like.device)
        self.patterns = torch.zeros(B, T + 1, size, dtype=torch.bool, device=like.device)
        self.iterates = like.new_zeros(B, T + 1, *shape)
        self.match = torch.full((B,), -1, dtype=torch.long, device=like.device)
        self.T = T

    def substitute(
        self, t: int, active: torch.Tensor, P: torch.Tensor, W_new: torch.Tensor
    ) -> torch.Tensor:
        """Record (P_t, W_t); where P_t equals an earlier P_s, W_t is W_s by definition."""
        flat = P.reshape(len(active), -1)
        key = (flat.long() * self.hash).sum(1)  # wraps mod 2^64
        hits = (self.keys[active, :t] == key.unsqueeze(1)) & self.seen[active, :t]
        self.match[active] = -1
        for j in hits.any(1).nonzero().squeeze(1).tolist():
            trial = int(active[j])
            for s in hits[j].nonzero().squeeze(1).tolist():
                if torch.equal(self.patterns[trial, s], flat[j]):
                    self.match[trial] = s
                    W_new[j] = self.iterates[trial, s]
                    break
        self.keys[active, t] = key
        self.seen[active, t] = True
        self.patterns[active, t] = flat
        self.iterates[active, t] = W_new
        return W_new

    def finish(
        self,
        t: int,
        active: torch.Tensor,
        going: torch.Tensor,
        W: torch.Tensor,
    ) -> torch.Tensor:
        """Trials that entered a cycle and would not stop otherwise: set their final weights
        (the iterate they hold at T) and return them as a mask over ``active``."""
        s = self.match[active]
        looped = going & (s >= 0)
        for j in looped.nonzero().squeeze(1).tolist():
            trial, start = int(active[j]), int(s[j])
            period = t - start
            W[trial] = self.iterates[trial, start + (self.T - t) % period]
        return looped
