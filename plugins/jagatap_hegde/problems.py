"""Teachers of Jagatap & Hegde beyond the dense one-hidden layer: skip connections, two layers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness import Instance, Problem, param
from plugins.common.models import SkipModel, TwoHiddenModel
from plugins.common.problems import InputScale, teacher_instance


@dataclass(frozen=True)
class SkipOneHiddenParams:
    d: int = param(20, "input dimension", min=1)
    k: int = param(5, "hidden units = size of the skip support S (k <= d)", min=1)
    n: int = param(500, "training samples", min=1)
    n_test: int = param(0, "test samples (0: no test set)", min=0)
    gamma: float = param(3.0, "scale of the residual: W* entries gamma * N(0, 1/n)", min=0.0)
    input_scale: InputScale = param(
        "inv_sqrt_n", "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n', the paper's)"
    )
    noise_std: float = param(0.0, "standard deviation of additive label noise", min=0.0)


class SkipOneHidden(Problem):
    """One hidden layer with skip connections, y = sum_q relu(x^T (w*_q + e_{S_q}))
    (Jagatap & Hegde eq. (7), Fig. 3b).

    The support S (k distinct input indices, drawn at random per trial) is known
    to the solver: the student model holds it. The truth ``W`` is the residual W*
    with entries gamma * N(0, 1/n); recovery (param_error) is measured on the
    effective weights W + I_S.
    """

    name = "skip_one_hidden"
    Params = SkipOneHiddenParams
    families = ("skip",)

    @classmethod
    def check_params(cls, params: SkipOneHiddenParams) -> tuple[str, str] | None:
        if params.k > params.d:
            return (
                "k",
                f"the skip support S has k = {params.k} of d = {params.d} inputs; need k <= d",
            )
        return None

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        # S first, then (truth, X, noise, X_test), all from each trial's own generator.
        S = torch.stack([torch.randperm(p.d, generator=g)[: p.k] for g in generators])
        std = p.gamma / math.sqrt(p.n)
        instance = teacher_instance(
            generators,
            lambda g: {"W": std * torch.randn(p.d, p.k, generator=g, dtype=dtype)},
            SkipModel(p.d, p.k, S),
            n=p.n,
            n_test=p.n_test,
            d=p.d,
            input_scale=p.input_scale,
            noise_std=p.noise_std,
            dtype=dtype,
        )
        instance.extras["S"] = S
        return instance


@dataclass(frozen=True)
class TwoHiddenParams:
    d: int = param(20, "input dimension", min=1)
    k: int = param(3, "units of the first hidden layer", min=1)
    k_out: int = param(2, "units of the second hidden layer (output weights all ones)", min=1)
    n: int = param(1000, "training samples", min=1)
    n_test: int = param(0, "test samples (0: no test set)", min=0)
    input_scale: InputScale = param(
        "inv_sqrt_n", "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n', the paper's)"
    )
    noise_std: float = param(0.0, "standard deviation of additive label noise", min=0.0)


class TwoHidden(Problem):
    """Two hidden ReLU layers, y = 1^T relu(W2*^T relu(W1*^T x)) with N(0, 1) entries in
    W1* (d x k) and W2* (k x k_out) (Jagatap & Hegde eq. (1), appendix B.1, Fig. 4).

    param_error is measured up to the network's symmetries: hidden units of each
    layer are matched to the truth and first-layer scales moved into W2.
    """

    name = "two_hidden"
    Params = TwoHiddenParams
    families = ("two_hidden",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params

        def draw(g: torch.Generator) -> dict[str, torch.Tensor]:
            return {
                "W1": torch.randn(p.d, p.k, generator=g, dtype=dtype),
                "W2": torch.randn(p.k, p.k_out, generator=g, dtype=dtype),
            }

        return teacher_instance(
            generators,
            draw,
            TwoHiddenModel(p.d, p.k, p.k_out),
            n=p.n,
            n_test=p.n_test,
            d=p.d,
            input_scale=p.input_scale,
            noise_std=p.noise_std,
            dtype=dtype,
        )
