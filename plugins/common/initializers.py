"""Initializers every family can use: zero, Gaussian, and a perturbed copy of the truth."""

from __future__ import annotations

from dataclasses import dataclass

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
    relative_distance: float = param(0.9, "||W0 - W*||_F / ||W*||_F, exactly", min=0.0)


class Perturbed(Initializer):
    """W0 = W* + E with a Gaussian direction E scaled so ||E||_F = relative_distance ||W*||_F
    (Jagatap & Hegde Fig. 2 "good" initialization, 0.9)."""

    name = "perturbed"
    Params = PerturbedParams
    families = ("one_hidden", "skip", "two_hidden", "reslink", "additive")

    def initialize(
        self, instance: Instance, generators: list[torch.Generator], dtype: torch.dtype
    ) -> Weights:
        out = {}
        for k, shape in instance.model.param_shapes().items():
            W_star = instance.truth[k].to(dtype)
            E = batched_randn(generators, *shape, dtype=dtype)
            dims = tuple(range(1, E.dim()))
            scale = self.params.relative_distance * W_star.norm(dim=dims) / E.norm(dim=dims)
            out[k] = W_star + scale.reshape(-1, *[1] * len(shape)) * E
        return out
