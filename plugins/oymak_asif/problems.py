"""The additive teacher of Oymak & Asif (2018), Sec. 4, with heavy-tailed inputs as well."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness import Instance, Problem, batched_rand, batched_randn, param
from plugins.common.teacher import dimension, input_std, test_samples, train_samples
from plugins.oymak_asif.models import AdditiveModel


def sample_inputs(
    generators: list[torch.Generator],
    n: int,
    d: int,
    dist: str,
    sigma: float,
    df: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """(B, n, d) i.i.d. zero-mean entries with variance sigma^2 from each trial's generator."""
    if dist == "gaussian":
        return sigma * batched_randn(generators, n, d, dtype=dtype)
    if dist == "laplace":
        # Laplace(b) is the difference of two Exp(1) draws times b; variance 2 b^2.
        E = -torch.log1p(-batched_rand(generators, 2, n, d, dtype=dtype))
        return sigma / math.sqrt(2) * (E[:, 0] - E[:, 1])
    # Student-t with df > 2 has variance df / (df - 2); numpy draws it, seeded per trial.
    scale = sigma * math.sqrt((df - 2) / df)
    out = []
    for g in generators:
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        out.append(torch.from_numpy(np.random.default_rng(seed).standard_t(df, size=(n, d))))
    return scale * torch.stack(out).to(dtype)


@dataclass(frozen=True)
class AdditiveParams:
    d: int = dimension(50, "dimension of w")
    n: int = train_samples(150)
    n_test: int = test_samples()
    sigma: float = input_std(1.0)
    input_dist: Literal["gaussian", "laplace", "student_t"] = param(
        "gaussian", "distribution of the input entries (scaled to variance sigma^2)"
    )
    df: float = param(
        5.0, "degrees of freedom of student_t (> 2: finite variance)", min=2, exclusive_min=True
    )
    w_star_range: float = param(1.0, "w* entries are U[-w_star_range, w_star_range]", min=0)


class Additive(Problem):
    """Oymak & Asif (2018) teacher y = sum_k relu(w*[k] + x[k]) (eq. (1)).

    w* has i.i.d. U[-w_star_range, w_star_range] entries; the entries of x are
    i.i.d. with mean 0 and variance sigma^2: Gaussian as in the paper (Sec. 4),
    or Laplace / Student-t (``df`` > 2) to probe Theorem 3.1's claim that any
    distribution with enough tail mass works.
    """

    name = "additive"
    Params = AdditiveParams
    families = ("additive",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        w_star = p.w_star_range * (2 * batched_rand(generators, p.d, dtype=dtype) - 1)  # (B, d)
        X = sample_inputs(generators, p.n, p.d, p.input_dist, p.sigma, p.df, dtype)
        model = AdditiveModel(p.d)
        truth = {"w": w_star}
        X_test = y_test = None
        if p.n_test:
            X_test = sample_inputs(generators, p.n_test, p.d, p.input_dist, p.sigma, p.df, dtype)
            y_test = model.forward(truth, X_test)
        return Instance(
            X=X, y=model.forward(truth, X), model=model, X_test=X_test, y_test=y_test, truth=truth
        )
