"""Initializers of the skip-connection model (Jagatap & Hegde, Sec. 3.2 and Fig. 3b)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import Initializer, Instance, Weights, batched_randn, param


class Identity(Initializer):
    """Identity initialization (Jagatap & Hegde, Sec. 3.2, eq. (8)): the effective weights
    start at I_S, i.e. the residual W0 = 0, so dist(W0 + I_S, W* + I_S) = ||W*||_F."""

    name = "identity"
    families = ("skip",)

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        model = instance.model
        return {"W": torch.zeros(instance.batch, model.d, model.k, dtype=dtype)}


@dataclass(frozen=True)
class EffectiveGaussianParams:
    scale: float = param(1e-4, "standard deviation of every effective weight", min=0.0)


class EffectiveGaussian(Initializer):
    """Random initialization of the skip model's effective weights, W0 + I_S ~ scale N(0, I)
    (the random start Fig. 3b compares identity initialization with; 1e-4 as in Fig. 2).
    The residual is W0 = scale N(0, I) - I_S."""

    name = "effective_gaussian"
    Params = EffectiveGaussianParams
    families = ("skip",)

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        model = instance.model
        W_eff = self.params.scale * batched_randn(generators, model.d, model.k, dtype=dtype)
        return {"W": W_eff - model.identity_part(dtype).to(W_eff.device)}
