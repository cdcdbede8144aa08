"""Teachers of Jagatap & Hegde beyond the dense one-hidden layer: skip connections, two layers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, param
from plugins.common.models import SkipModel, TwoHiddenModel
from plugins.common.teacher import (
    GaussianTeacher,
    InputScale,
    dimension,
    input_scale,
    noise_std,
    test_samples,
    train_samples,
)

PAPER_SCALE = "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n', the paper's)"


@dataclass(frozen=True)
class SkipOneHiddenParams:
    d: int = dimension(20)
    k: int = param(5, "hidden units = size of the skip support S (k <= d)", min=1)
    n: int = train_samples(500)
    n_test: int = test_samples()
    gamma: float = param(3.0, "scale of the residual: W* entries gamma * N(0, 1/n)", min=0.0)
    input_scale: InputScale = input_scale("inv_sqrt_n", PAPER_SCALE)
    noise_std: float = noise_std()


class SkipOneHidden(GaussianTeacher):
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

    def student(self, generators: list[torch.Generator]) -> SkipModel:
        p = self.params
        # S comes first from each trial's generator, before the teacher's (truth, X, ...).
        S = torch.stack([torch.randperm(p.d, generator=g)[: p.k] for g in generators])
        return SkipModel(p.d, p.k, S)

    def draw_truth(self, gen: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        p = self.params
        std = p.gamma / math.sqrt(p.n)
        return {"W": std * torch.randn(p.d, p.k, generator=gen, dtype=dtype)}

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        instance = super().sample(generators, dtype)
        instance.extras["S"] = instance.model.S
        return instance


@dataclass(frozen=True)
class TwoHiddenParams:
    d: int = dimension(20)
    k: int = param(3, "units of the first hidden layer", min=1)
    k_out: int = param(2, "units of the second hidden layer (output weights all ones)", min=1)
    n: int = train_samples(1000)
    n_test: int = test_samples()
    input_scale: InputScale = input_scale("inv_sqrt_n", PAPER_SCALE)
    noise_std: float = noise_std()
    dead_units: Literal["redraw", "keep"] = param(
        "redraw",
        "teachers whose W2* has a column with no positive entry (a second-layer unit that "
        "is identically zero, its weights unidentifiable): 'redraw' them (ours; the paper "
        "is silent) or 'keep' them",
    )


MAX_REDRAWS = 1000


def dead_second_layer_units(W2: torch.Tensor) -> torch.Tensor:
    """Which columns of W2 (k x k_out) make their unit identically zero: relu(W1^T x) >= 0,
    so a column with no positive entry gives a pre-activation <= 0 for every input."""
    return ~(W2 > 0).any(dim=-2)


class TwoHidden(GaussianTeacher):
    """Two hidden ReLU layers, y = 1^T relu(W2*^T relu(W1*^T x)) with N(0, 1) entries in
    W1* (d x k) and W2* (k x k_out) (Jagatap & Hegde eq. (1), appendix B.1, Fig. 4).

    param_error is measured up to the network's symmetries: hidden units of each
    layer are matched to the truth and first-layer scales moved into W2.

    A column of W2* with no positive entry makes that second-layer unit identically
    zero (about 1 - (7/8)^2 = 23% of teachers at k = 3, k_out = 2); the weights
    feeding it cannot be identified, so param_error would count an exactly
    recovered function as a failure. ``dead_units = "redraw"`` (the default, our
    choice: the paper does not say) redraws (W1*, W2*) from the trial's generator
    until no unit is dead; ``"keep"`` keeps the first draw. ``function_error``
    judges recovery in function space whatever the teacher.
    """

    name = "two_hidden"
    Params = TwoHiddenParams
    families = ("two_hidden",)

    def student(self, generators: list[torch.Generator]) -> TwoHiddenModel:
        p = self.params
        return TwoHiddenModel(p.d, p.k, p.k_out)

    def draw_truth(self, gen: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        p = self.params
        for _ in range(MAX_REDRAWS):
            W1 = torch.randn(p.d, p.k, generator=gen, dtype=dtype)
            W2 = torch.randn(p.k, p.k_out, generator=gen, dtype=dtype)
            if p.dead_units == "keep" or not dead_second_layer_units(W2).any():
                return {"W1": W1, "W2": W2}
        raise RuntimeError(  # (1/2)^k per column: unreachable for k >= 1
            f"two_hidden: no teacher without a dead unit in {MAX_REDRAWS} draws (k = {p.k})"
        )
