"""Initializers of Li & Yuan (2017): the constructed start of Sec. 5.3 (Fig. 8)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Initializer, Instance, Weights, batched_randn, param


@dataclass(frozen=True)
class SkewStartParams:
    skew: float = param(0.129, "coefficient a of the skew-symmetric part: W0 = a K + b I")
    diagonal: float = param(-0.0125, "coefficient b of the identity: W0 = a K + b I")


def skew_orthogonal(generators: list[torch.Generator], d: int, dtype: torch.dtype) -> torch.Tensor:
    """Per trial a random d x d skew-symmetric K (K^T = -K) with K 1 = 0 that is orthogonal on
    the orthogonal complement of its null space: K = sum_j (a_j b_j^T - b_j a_j^T) over
    floor((d - 1) / 2) pairs of orthonormal vectors a_j, b_j orthogonal to the all-ones
    vector 1 (a random orthonormal basis of 1's complement, from the trial's generator).
    Its non-zero singular values are all 1, so ||K||_2 = 1, ||K||_F = sqrt(2 floor((d-1)/2))."""
    G = batched_randn(generators, d, d, dtype=dtype)
    G[:, :, 0] = 1.0  # the first basis vector is 1 / sqrt(d); the rest are orthogonal to it
    Q, _ = torch.linalg.qr(G)
    m = (d - 1) // 2
    A, Bv = Q[:, :, 1 : 2 * m : 2], Q[:, :, 2 : 2 * m + 1 : 2]
    return A @ Bv.transpose(-1, -2) - Bv @ A.transpose(-1, -2)


class SkewStart(Initializer):
    """The start W0 = skew K + diagonal I of Li & Yuan's Fig. 8 experiment, K skew-symmetric,
    orthogonal on 1's complement and K 1 = 0 (:func:`skew_orthogonal`).

    The paper only says it "constructs" a 1500 x 1500 W0 "based on the analysis" with
    ||W0||_2 ~ 0.15 and ||W0||_F ~ 5 for which, with W* = 0, the negative gradient first
    points away from W* (Phase I). This construction is ours (found in the 2026-12 audit),
    not the paper's: at d = 1500 the defaults give ||W0||_2 = 0.13, ||W0||_F = 5.0 and a
    one-point inner product of about -9 that stays negative for about 30 SGD steps while
    the potential g falls. The columns e_i + w_i then have norms just below 1 (g > 0)
    while (I + W0) 1 = (1 + diagonal) 1. At smaller d the same balance (column norms
    sqrt((1 + diagonal)^2 + skew^2) ~ 0.996) needs a larger ``skew``: e.g. d = 300,
    skew 0.3, diagonal -0.0504 gives ||W0||_F = 5.25 and a negative inner product.
    Only for the ``reslink`` family (the weight ``W`` of ResLink).
    """

    name = "skew_start"
    Params = SkewStartParams
    families = ("reslink",)

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        (shape,) = instance.model.param_shapes().values()
        d = shape[0]
        K = skew_orthogonal(generators, d, dtype)
        eye = torch.eye(d, dtype=dtype)
        return {"W": self.params.skew * K + self.params.diagonal * eye}
