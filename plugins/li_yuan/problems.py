"""Teachers of Li & Yuan (2017), Sec. 5.2: the ResLink teacher (1) and the 3-Block network.

Both draw x ~ N(0, input_scale^2 I) and put in ``extras`` what a solver may
legitimately use to draw fresh samples of the same distribution (SGD on the
population loss): ``input_std``, ``noise_std`` and, where the teacher is not the
student's own architecture, the ``teacher`` model. ``truth`` holds the teacher's
weights under the student's weight names (``W`` = W* for ResLink).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness import Instance, Problem, batched_randn, param
from plugins.common.models import relu
from plugins.common.teacher import (
    dimension,
    input_std,
    scaled_gaussian_inputs,
    test_samples,
    train_samples,
)
from plugins.li_yuan.models import ReslinkModel, ThreeBlockModel, batch_norm, reslink_forward


def linear_spectrum(d: int, top: float, fro: float) -> list[float]:
    """d singular values falling linearly from ``top`` with Frobenius norm ``fro``:
    s_i = top - c i / (d - 1), the spread c in [0, top] solving sum s_i^2 = fro^2.
    Needs top sqrt(sum t_i^2) <= fro <= top sqrt(d) with t_i = i / (d - 1)."""
    if d == 1:
        return [top]
    t = [i / (d - 1) for i in range(d)]
    t1, t2 = sum(t), sum(x * x for x in t)
    disc = (top * t1) ** 2 - t2 * (d * top**2 - fro**2)
    c = (top * t1 - math.sqrt(max(disc, 0.0))) / t2
    c = min(max(c, 0.0), top)
    return [top - c * x for x in t]


def spectrum_bounds(d: int, top: float) -> tuple[float, float]:
    """The Frobenius norms :func:`linear_spectrum` can reach for this d and spectral norm."""
    if d == 1:
        return top, top
    t2 = sum((i / (d - 1)) ** 2 for i in range(d))
    return top * math.sqrt(t2), top * math.sqrt(d)


def flat_spectrum_matrix(
    generators: list[torch.Generator], d: int, top: float, fro: float, dtype: torch.dtype
) -> torch.Tensor:
    """Per trial U diag(s) V^T with Haar-random orthogonal U, V (QR of Gaussian matrices,
    signs fixed) and the singular values of :func:`linear_spectrum`: ||.||_2 = top and
    ||.||_F = fro exactly."""

    def haar() -> torch.Tensor:
        Q, R = torch.linalg.qr(batched_randn(generators, d, d, dtype=dtype))
        return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)

    U, V = haar(), haar()
    s = torch.tensor(linear_spectrum(d, top, fro), dtype=dtype)
    return (U * s) @ V.transpose(-1, -2)


def spectral_scaled_gaussian(
    generators: list[torch.Generator], d: int, norm: float, dtype: torch.dtype
) -> torch.Tensor:
    """A Gaussian d x d matrix per trial, rescaled to spectral norm ``norm`` (0 gives W* = 0)."""
    G = batched_randn(generators, d, d, dtype=dtype)  # drawn even for norm 0: same streams
    if norm == 0:  # G * (0 / ||G||_2) without the SVD (seconds at d = 1500), same zeros
        return G * 0.0
    return G * (norm / torch.linalg.matrix_norm(G, ord=2)).reshape(-1, 1, 1)


@dataclass(frozen=True)
class ReslinkParams:
    d: int = dimension(20, "input dimension (W is d x d)")
    n: int = train_samples(2000)
    n_test: int = test_samples(1000)
    w_star_norm: float = param(0.3, "spectral norm of W*", min=0)
    w_star_fro: float = param(
        0.0,
        "Frobenius norm of W* (0: a Gaussian W* rescaled to the spectral norm, whose "
        "||W*||_F is about w_star_norm sqrt(d) / 2; > 0: W* = U S V^T with random orthogonal "
        "U, V and a nearly flat spectrum S falling linearly from w_star_norm, Li & Yuan "
        "Sec. 5.2's ||W*||_2 ~ 0.6, ||W*||_F ~ 5.7 at d = 100)",
        min=0,
    )
    input_scale: float = input_std(1.0)
    vanilla: bool = param(
        False, "train the model without identity mapping (weight V, compared as V - I)"
    )


class Reslink(Problem):
    """Li & Yuan (2017) teacher y = || relu((I + W*)^T x) ||_1 (eq. (1)), x ~ N(0, input_scale^2 I).

    W* is a Gaussian matrix rescaled to spectral norm ``w_star_norm`` (Sec. 5.2
    uses 0.6 at d = 100; Sec. 5.3 uses W* = 0), or, with ``w_star_fro > 0``, a matrix
    with both norms as given and a nearly flat spectrum (Sec. 5.2: ||W*||_2 ~ 0.6 and
    ||W*||_F ~ 5.7, which a Gaussian matrix, ||W*||_F ~ 3, cannot have).
    ``vanilla = true`` trains the same network without the identity mapping, whose
    weight V is compared with W* through V - I (footnote 3).
    """

    name = "reslink"
    Params = ReslinkParams
    families = ("reslink",)

    @classmethod
    def check_params(cls, params: ReslinkParams) -> tuple[str, str] | None:
        if params.w_star_fro > 0:
            lo, hi = spectrum_bounds(params.d, params.w_star_norm)
            if not lo - 1e-9 <= params.w_star_fro <= hi + 1e-9:
                return (
                    "w_star_fro",
                    f"{params.w_star_fro} is not reachable with ||W*||_2 = {params.w_star_norm} "
                    f"at d = {params.d} by a linearly falling spectrum; allowed "
                    f"{lo:.4g} <= w_star_fro <= {hi:.4g} (or 0 for a Gaussian W*)",
                )
        return None

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        if p.w_star_fro > 0:
            W_star = flat_spectrum_matrix(generators, p.d, p.w_star_norm, p.w_star_fro, dtype)
        else:  # (B, d, d)
            W_star = spectral_scaled_gaussian(generators, p.d, p.w_star_norm, dtype)
        X = scaled_gaussian_inputs(generators, p.n, p.d, p.input_scale, dtype)
        X_test = scaled_gaussian_inputs(generators, p.n_test, p.d, p.input_scale, dtype)
        return Instance(
            X=X,
            y=reslink_forward(W_star, X),
            model=ReslinkModel(p.d, vanilla=p.vanilla),
            X_test=X_test,
            y_test=None if X_test is None else reslink_forward(W_star, X_test),
            # The weight that reproduces the teacher: W* (ResLink) or V* = I + W* (Vanilla).
            truth={"W": W_star + torch.eye(p.d, dtype=dtype) if p.vanilla else W_star},
            extras={"input_std": p.input_scale, "noise_std": 0.0},
        )


@dataclass(frozen=True)
class ThreeBlockParams:
    d: int = dimension(20)
    width: int = param(50, "units per block (500 in the paper)", min=1)
    n: int = train_samples(2000, min=2)  # batch-norm statistics need two samples
    n_test: int = test_samples(1000)
    input_scale: float = input_std(1.0)


class ThreeBlock(Problem):
    """Li & Yuan (2017), Sec. 5.2 "3-Block": three blocks of (linear ``width``, batch norm, ReLU).

    Teacher and student share the structure; the output is the sum of the last
    block's units. The teacher's linear weights are N(0, 1/fan_in) and its batch
    norm statistics are frozen on the training inputs, so it is a fixed function
    of x. The paper does not say how its 3-Block reduces to a scalar; the l1
    norm mirrors the ResLink output (1).
    """

    name = "three_block"
    Params = ThreeBlockParams
    families = ("three_block",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        m = p.width
        teacher = ThreeBlockModel(p.d, m, fixed_stats=True)
        weights = {
            "W1": batched_randn(generators, p.d, m, dtype=dtype) / p.d**0.5,
            "W2": batched_randn(generators, m, m, dtype=dtype) / m**0.5,
            "W3": batched_randn(generators, m, m, dtype=dtype) / m**0.5,
        }
        X = scaled_gaussian_inputs(generators, p.n, p.d, p.input_scale, dtype)
        X_test = scaled_gaussian_inputs(generators, p.n_test, p.d, p.input_scale, dtype)
        # Batch-norm statistics frozen on the training set make the teacher a fixed function.
        Zs = ThreeBlockModel(p.d, m).pre_activations(weights, X)
        for l, Z in enumerate(Zs, start=1):
            weights[f"mean{l}"] = Z.mean(1)
            weights[f"var{l}"] = Z.var(1, unbiased=False)
        # On X itself the frozen statistics are the batch's own, so the teacher's last
        # pre-activation is Zs[-1] (the same operations on the same numbers): its training
        # labels without a second forward pass over the n samples.
        return Instance(
            X=X,
            y=relu(batch_norm(Zs[-1], weights["mean3"], weights["var3"])).sum(-1),
            model=ThreeBlockModel(p.d, m),
            X_test=X_test,
            y_test=None if X_test is None else teacher.forward(weights, X_test),
            truth=weights,
            extras={"input_std": p.input_scale, "noise_std": 0.0, "teacher": teacher},
        )
