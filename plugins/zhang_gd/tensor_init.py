"""Tensor initialization of Zhong et al. (2017) for one-hidden-layer ReLU networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness import Initializer, Instance, Weights, batched_randn, param
from plugins.common.tensor_moments import (
    decompose_t4,
    moment_m1,
    moment_m2,
    moment_t4,
    span_from_p,
    weights_from_m1,
)


@dataclass(frozen=True)
class TensorInitParams:
    mode: Literal["span", "full"] = param(
        "span", "span: orthonormal basis of span(W*); full: Zhong et al.'s whole method"
    )
    fresh_samples: bool = param(
        False, "full mode: use disjoint thirds of the samples for M2, M4 and M1"
    )
    draws: int = param(
        8, "full mode: random contractions of M4 tried; the best fit of M4 is kept", min=1
    )


class TensorInit(Initializer):
    """Tensor initialization (Zhong et al. 2017, Alg. 1; Zhang et al. 2019, Sec. 4).

    ``mode = "span"``: the procedure Zhang et al. (Sec. 4) and Jagatap & Hegde
    (App. B.2) describe: P = (1/n) sum y_i (x_i x_i^T - I), top-k eigenvectors by
    magnitude of C I + P and C I - P merged and orthogonalized. W0 is that
    orthonormal basis of the span of W* (unit columns, arbitrary rotation).

    ``mode = "full"``: Zhong et al.'s complete method for ReLU (m3 = 0): the span V
    from M2, R3 = M4(V, V, V, alpha) for a random unit alpha, its components by
    simultaneous diagonalization (Jennrich), then norms and signs from
    M1 = E[y x] (output weights are all ones). Needs many samples: for d = 5,
    k = 2 about 10^5 for a 0.3 relative error; for d = 10, k = 5 (Zhang et al.'s
    Fig. 2a) the relative error of the empirical M4(V, V, V, V) is 2.4 at N = 5000,
    0.8 at 5 10^4 and 0.25 at 5 10^5 (it falls as 1/sqrt(N); the estimator is
    consistent), so the directions are noise below N ~ 10^6 and the matched error
    of W0 is 0.9 at N = 5000, 0.66 at 5 10^5, 0.19 at 2 10^6 (measured, 6-10
    trials). Zhang et al.'s own text (Sec. 4) describes only the span step, i.e.
    ``mode = "span"``. Two choices beyond the paper:
    alpha is drawn in the estimated span (alpha = V beta), and ``draws`` random
    (beta, Jennrich) draws are tried, keeping the one whose components best fit
    M4(V, V, V, V), since a single draw fails when some beta^T u_i is near 0.

    Inputs are standardized first (by the teacher's ``input_std`` when it gives one,
    else their empirical scale), so N(0, 1/n) inputs (Jagatap & Hegde) work as well
    as N(0, I) (Zhang et al.). ``fresh_samples``
    splits the training set into three disjoint parts for M2, M4 and M1, the
    sample splitting of Zhong et al.'s analysis.
    """

    name = "tensor"
    families = ("one_hidden",)

    Params = TensorInitParams

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        X = instance.X.to(dtype)
        y = instance.y.to(dtype)
        k = instance.model.k
        n = X.shape[1]
        if self.params.mode == "full" and self.params.fresh_samples and n < 3:
            raise ValueError("tensor init with fresh_samples needs n >= 3 samples")
        # Zhong's moments assume x ~ N(0, I); with x = s g, y = sum relu((s w)^T g).
        # The teacher's input scale when it says so, else the empirical one.
        if isinstance(instance.extras.get("input_std"), (int, float)):
            scale = torch.full((X.shape[0],), float(instance.extras["input_std"]), dtype=dtype)
        else:
            scale = X.pow(2).mean(dim=(1, 2)).sqrt()  # (B,)
        scale = scale.to(X.device)
        Xs = X / scale[:, None, None]

        parts = [slice(0, n)] * 3
        if self.params.fresh_samples and self.params.mode == "full":  # span uses M2 only
            cuts = [0, n // 3, 2 * n // 3, n]
            parts = [slice(cuts[i], cuts[i + 1]) for i in range(3)]
        s2, s4, s1 = parts

        V = span_from_p(moment_m2(Xs[:, s2], y[:, s2]), k)  # (B, d, k)
        if self.params.mode == "span":
            return {"W": V.contiguous()}

        # alpha = V beta for a random unit beta: alpha^T w_bar_i = beta^T u_i is then
        # O(1/sqrt k) rather than the O(1/sqrt d) of a direction drawn in R^d, which
        # the fourth-moment noise swamps; and M4(V, V, V, V beta) = T4(I, I, I, beta).
        T4 = moment_t4(Xs[:, s4], y[:, s4], V)  # (B, k, k, k, k)
        D = self.params.draws
        betas = batched_randn(generators, D, k, dtype=dtype).to(X.device)
        betas = betas / betas.norm(dim=2, keepdim=True)
        g1 = batched_randn(generators, D, k, dtype=dtype).to(X.device)
        g2 = batched_randn(generators, D, k, dtype=dtype).to(X.device)
        U = decompose_t4(T4, betas, g1, g2)  # (B, k, k), unit columns in span coordinates
        directions = V @ U  # (B, d, k)
        W = weights_from_m1(moment_m1(Xs[:, s1], y[:, s1]), directions)
        return {"W": (W / scale[:, None, None]).contiguous()}
