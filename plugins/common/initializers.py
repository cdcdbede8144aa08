"""Initializers every family can use: zero, Gaussian, and a perturbed copy of the truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness import Initializer, Instance, Weights, batched_randn, param


class Zero(Initializer):
    """All weights zero (Jagatap & Hegde Fig. 1: w0 = 0; for the skip model, the identity start)."""

    name = "zero"

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        B = instance.batch
        return {
            k: torch.zeros(B, *shape, dtype=dtype)
            for k, shape in instance.model.param_shapes().items()
        }


@dataclass(frozen=True)
class GaussianParams:
    scale: float = param(1.0, "standard deviation of every entry", min=0.0)


class Gaussian(Initializer):
    """Independent N(0, scale^2) entries for every weight (Jagatap & Hegde: 1e-4 N(0, I))."""

    name = "gaussian"
    Params = GaussianParams

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        out = {}
        for k, shape in instance.model.param_shapes().items():
            out[k] = self.params.scale * batched_randn(generators, *shape, dtype=dtype)
        return out


@dataclass(frozen=True)
class PerturbedParams:
    relative_distance: float = param(
        0.9, "||W0 - W*|| / ||W*|| per weight tensor, exactly", min=0.0
    )
    norm: Literal["fro", "spectral"] = param(
        "fro", "norm of that distance: Frobenius (Fig. 2) or spectral (Fig. 4, 0.2 per layer)"
    )


def _norm(M: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-trial norm of (B, ...) tensors; spectral for matrices (a vector: its 2-norm)."""
    if kind == "spectral" and M.dim() == 3:
        return torch.linalg.matrix_norm(M, ord=2)
    return M.flatten(1).norm(dim=1)


class Perturbed(Initializer):
    """W0 = W* + E with a Gaussian direction E scaled so ||E|| = relative_distance ||W*||, for
    each weight tensor (layer) on its own, in the Frobenius or the spectral norm
    (Jagatap & Hegde Fig. 2 "good" initialization: Frobenius 0.9; Fig. 4: spectral 0.2 per
    layer). ||W*|| is taken on the model's recovery view (the effective weights W* + I_S
    of the skip model), the quantity param_error measures."""

    name = "perturbed"
    Params = PerturbedParams
    families = ("one_hidden", "skip", "two_hidden", "reslink", "additive")

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        truth = {k: v.to(dtype) for k, v in instance.truth.items()}
        reference = instance.model.recovery_view(truth)
        out = {}
        for k, shape in instance.model.param_shapes().items():
            W_star = truth[k]
            E = batched_randn(generators, *shape, dtype=dtype).to(W_star.device)
            ratio = _norm(reference.get(k, W_star), self.params.norm) / _norm(E, self.params.norm)
            scale = self.params.relative_distance * ratio
            out[k] = W_star + scale.reshape(-1, *[1] * len(shape)) * E
        return out
