"""AltMin for a single ReLU neuron (k = 1) on the CPU: one trial at a time, straight on LAPACK.

Jagatap & Hegde's Algorithm 1 with one hidden unit alternates
``p = 1[X w >= 0]`` (line 3) and ``w = argmin ||diag(p) X w - y||`` (lines 4-6). On a
CPU the fastest way to run thousands of such trials is not one big tensor per
iteration: a trial's data (X, and X X^T when it is needed) fits in the core's cache, so
each trial runs all its iterations back to back, each iteration a handful of BLAS and
LAPACK calls on cached data. Batching over trials in tensors instead streams the whole
batch through memory every iteration and pays torch's per-call copies (``tril``,
gathers) that cost more than the factorization itself (benchmarks/RESULTS.md).

The least squares, with ``R`` the active rows and ``m = |R|``:

* **primal** (``m >= d``): normal equations ``(X_R^T X_R) w = X_R^T y_R``; the Gram matrix
  by ``syrk`` (m d^2 flops), then ``potrf`` / ``potrs``;
* **dual** (``m < d``, the system is underdetermined): the minimum-norm solution
  ``w = X_R^T z`` with ``(X X^T)_RR z = y_R``; ``X X^T`` is computed once per trial, so an
  iteration costs a gather and an m x m Cholesky, no multiply by d;
* **fallback**: a Cholesky that fails or whose pivots bound cond > 1e12 (normal equations
  would keep ~4 digits) goes to ``gelsd`` (SVD, minimum norm), as ``np.linalg.lstsq`` does.

All three return the minimum-norm least-squares solution, like the batched
:class:`plugins.common.linalg.MaskedLeastSquares`. Every number of a trial comes from its
own data through the same calls whatever the batch, so results do not depend on the batch
size or on the order trials are run in (tests/test_batching.py).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from plugins.common.linalg import ILL_CONDITIONED


def _scipy_wrappers(name: str) -> ModuleType:
    """scipy's f2py module ``scipy.linalg.<name>`` (``_flapack``, ``_fblas``), loaded alone.

    ``import scipy.linalg`` costs ~0.4 s (its package imports scipy's array-API layer,
    which imports numpy.f2py and numpy.fft); the two extension modules this file calls
    cost ~25 ms. They are the very objects ``scipy.linalg.lapack`` and ``.blas`` re-export
    (registered under their own names, so a later ``import scipy.linalg`` reuses them):
    the same LAPACK, the same numbers. Any surprise falls back to the package import.
    """
    full = f"scipy.linalg.{name}"
    if full in sys.modules:
        return sys.modules[full]
    try:
        spec = importlib.util.find_spec("scipy")  # finds the package, does not import it
        folder = Path(spec.submodule_search_locations[0]) / "linalg"  # type: ignore[union-attr,index]
        path = next(
            folder / f"{name}{suffix}"
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (folder / f"{name}{suffix}").is_file()
        )
        loader = importlib.machinery.ExtensionFileLoader(full, str(path))
        module_spec = importlib.util.spec_from_file_location(full, path, loader=loader)
        module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
        loader.exec_module(module)
    except Exception:  # noqa: BLE001 - another layout: pay for the package import
        return importlib.import_module(full)
    sys.modules[full] = module
    return module


lapack = _scipy_wrappers("_flapack")
dsyrk = _scipy_wrappers("_fblas").dsyrk

_POOLS = None


def blas_threads(threads: int):
    """A context that holds scipy's BLAS pools to ``threads`` threads.

    The runner limits the BLAS pools loaded when a unit starts; AltMin imports this
    module (and scipy's OpenBLAS with it) on its first solve, after that, so without this
    the factorizations would run on a thread per core beside every worker (several
    times slower, and another thread count than the runner's).
    """
    global _POOLS
    if _POOLS is None:
        from threadpoolctl import ThreadpoolController

        _POOLS = ThreadpoolController()
    return _POOLS.limit(limits=threads, user_api="blas")


def _cholesky_solve(G: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Solve G x = b by Cholesky (lower triangle of G, overwritten); None if untrustworthy."""
    L, x, info = lapack.dposv(G, b, lower=1, overwrite_a=1)  # G in Fortran order: no copy
    if info != 0:
        return None
    diag = L.diagonal()
    if not (diag.min() / diag.max()) ** 2 >= ILL_CONDITIONED or not np.isfinite(x @ x):
        return None
    return x


class NeuronLeastSquares:
    """``argmin_w ||diag(p) X w - y||`` (minimum norm) for one trial and a sequence of patterns.

    Keeps what the next solve can reuse: the kernel ``X X^T`` for the dual form, and the
    last Gram matrix ``X_R^T X_R`` with its rows, so that when a few rows join or leave the
    active set the Gram matrix is updated by ``syrk`` on those rows only (|joined| +
    |left| rows instead of m; AltMin's patterns change by a few rows per iteration once
    past the first ones). It is computed afresh whenever that is cheaper.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y
        self.K: np.ndarray | None = None  # X X^T, both triangles
        self.G: np.ndarray | None = None  # X_R^T X_R for the rows self.rows (lower triangle)
        self.rows: np.ndarray | None = None

    def _gram(self, p: np.ndarray, R: np.ndarray) -> np.ndarray:
        """X_R^T X_R (lower triangle), from the previous one when few rows changed."""
        X = self.X
        if self.rows is not None:
            joined = np.flatnonzero(p & ~self.rows)
            left = np.flatnonzero(self.rows & ~p)
            if len(joined) + len(left) < len(R):
                G = self.G.copy(order="F")
                if len(joined):
                    G = dsyrk(1.0, X[joined].T, beta=1.0, c=G, lower=1, overwrite_c=1)
                if len(left):
                    G = dsyrk(-1.0, X[left].T, beta=1.0, c=G, lower=1, overwrite_c=1)
                self.G, self.rows = G, p
                return G.copy(order="F")
        self.G = dsyrk(1.0, X[R].T, lower=1)  # X_R^T X_R; X[R].T is Fortran, no copy
        self.rows = p
        return self.G.copy(order="F")

    def solve(self, p: np.ndarray) -> np.ndarray:
        X, y = self.X, self.y
        n, d = X.shape
        R = np.flatnonzero(p)
        m = len(R)
        if m == 0:
            return np.zeros(d)
        w = None
        if m >= d:  # primal: (X_R^T X_R) w = X_R^T y_R
            yr = np.zeros(n)
            yr[R] = y[R]
            w = _cholesky_solve(self._gram(p, R), X.T @ yr)
        else:  # dual: w = X_R^T z with (X X^T)_RR z = y_R
            if self.K is None:
                full = dsyrk(1.0, X.T, trans=1, lower=1)  # X X^T (n, n), lower triangle
                self.K = np.tril(full) + np.tril(full, -1).T
            # (X X^T)_RR is symmetric: its transpose view is the Fortran-order matrix LAPACK
            # takes in place.
            z = _cholesky_solve(self.K.take(R, 0).take(R, 1).T, y[R])
            if z is not None:
                z_all = np.zeros(n)
                z_all[R] = z
                w = X.T @ z_all  # X_R^T z without gathering X_R
        if w is None:  # SVD, minimum norm (what np.linalg.lstsq returns)
            w = np.linalg.lstsq(X[R], y[R], rcond=None)[0]
        return w


class NeuronAltMin:
    """One trial of Algorithm 1 with k = 1, advanced an iteration at a time by :meth:`step`.

    Stops when the activation pattern repeats the previous one (the least squares would
    return the same w), when ``||w_t - w_{t-1}|| <= tol ||w_{t-1}||``, on non-finite
    iterates, or after ``T`` iterations.

    Cycles: w_t is a function of p_t, so a pattern p_t equal to an earlier p_s (s < t - 1)
    gets w_t = w_s (the stored iterate, not a new solve whose rounding could differ from
    the first: the Gram updates make a solve depend on the path by rounding), and from
    there the trial repeats w_s, ..., w_{t-1} up to T. With ``jump`` (no trace wanted) the
    trial ends at once on the iterate it would hold at T; without, it runs the cycle out
    from the stored iterates. Both give the same final state.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, T: int, tol: float, jump: bool):
        self.w, self.T, self.tol, self.jump = w.copy(), T, tol, jump
        self.X = X
        self.iterations = 0
        self.done = not (np.isfinite(X).all() and np.isfinite(y).all())
        if self.done:  # LAPACK on NaN input is undefined: report the trial as NaN
            self.w[:] = np.nan
            self.iterations = 1
        self.ls: NeuronLeastSquares | None = NeuronLeastSquares(X, y)
        self.prev: bytes | None = None  # the last pattern, as bytes
        self.seen: dict[bytes, int] = {}
        self.history: list[np.ndarray] = []  # w_1, w_2, ... up to the first repeated pattern

    def step(self, t: int) -> bool:
        """Run iteration t; return whether the trial goes on."""
        p = self.X @ self.w >= 0  # line 3
        key = p.tobytes()
        if key == self.prev:
            return self._stop()  # the least squares would return w_{t-1} again
        s = self.seen.get(key)
        if s is None:
            w_new = self.ls.solve(p)  # lines 4-6
            self.seen[key] = t
            self.history.append(w_new)
        else:
            w_new = self.history[s - 1]  # p_t = p_s, so w_t = w_s
        delta = w_new - self.w
        change = np.sqrt(delta @ delta)
        stop = bool(change <= self.tol * np.sqrt(self.w @ self.w)) or not np.isfinite(change)
        if s is not None and not stop and self.jump:
            # The cycle w_s, ..., w_{t-1} of period t - s repeats up to T: jump to its end.
            self.w = self.history[s - 1 + (self.T - t) % (t - s)]
            self.iterations = self.T
            return self._stop()
        self.w, self.prev, self.iterations = w_new, key, t
        if stop or t == self.T:
            return self._stop()
        return True

    def _stop(self) -> bool:
        self.done, self.ls, self.seen, self.history = True, None, {}, []
        return False


def altmin_lstsq_reference(
    X: np.ndarray, y: np.ndarray, T: int, tol: float
) -> tuple[np.ndarray, int]:
    """Algorithm 1 for one neuron from w0 = 0, written plainly: ``np.linalg.lstsq`` at every
    iteration, the same stopping rules (pattern repeats, ``||w_t - w_{t-1}|| <= tol
    ||w_{t-1}||``, T). The straightforward per-trial loop the fast kernel is tested and
    benchmarked against (tests/test_batching.py, benchmarks/bench_j1.py).

    Returns ``(w, iterations)``.
    """
    w = np.zeros(X.shape[1])
    prev = None
    it = 0
    for t in range(1, T + 1):
        p = X @ w >= 0
        if prev is not None and np.array_equal(p, prev):
            break
        w_new = np.linalg.lstsq(p[:, None] * X, y, rcond=None)[0]
        small = np.linalg.norm(w_new - w) <= tol * np.linalg.norm(w)
        w, prev, it = w_new, p, t
        if small:
            break
    return w, it
