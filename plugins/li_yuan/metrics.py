"""Metrics of Li & Yuan (2017): potential g (Def. 2.2), one-point inner product (Def. 2.4,
Fig. 8), distance to W*, closed-form population loss, relative test error (Fig. 7a)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, Metric, SolveResult, Weights, param
from plugins.li_yuan import population
from plugins.li_yuan.models import ReslinkModel


def _is_reslink(instance: Instance) -> bool:
    return isinstance(instance.model, ReslinkModel) and "W" in instance.truth


class PotentialG(Metric):
    """Li & Yuan Definition 2.2: g = sum_i (||e_i + w*_i||_2 - ||e_i + w_i||_2) (ResLink only)."""

    name = "potential_g"
    role = "score"
    direction = "lower"  # Li & Yuan Phase I drives g down
    families = ("reslink",)

    def applies(self, instance: Instance) -> bool:
        return _is_reslink(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        model = instance.model
        norms = lambda w: model.columns(w).norm(dim=-2).sum(-1)  # sum_i ||e_i + w_i||
        return norms(instance.truth) - norms(weights)


@dataclass(frozen=True)
class OnePointInnerParams:
    normalize: bool = param(False, "divide by ||W* - W||_F^2")


class OnePointInner(Metric):
    """<-grad L(W), W* - W> with the closed-form gradient of Li & Yuan Lemma 2.1 (Def. 2.4, Fig. 8).

    Scaled as Lemma 2.1 writes it, which is pi times the negative gradient of the
    loss (2) (the constants of Theorem 3.3 refer to this scale). Positive means
    the negative gradient points towards W*. ``normalize = true`` divides by
    ||W* - W||_F^2, the delta of one-point strong convexity (Theorem 3.3: > 0.03
    when g <= 0.1). For ``one_hidden`` W* is taken as is, without matching units.
    """

    name = "one_point_inner"
    role = "score"
    direction = "higher"  # positive: -grad L points towards W*
    families = population.FAMILIES

    Params = OnePointInnerParams

    def applies(self, instance: Instance) -> bool:
        return population.applies(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        # Lemma 2.1 = -pi grad of (2) = -2 pi grad of the 1/2-scaled loss; from Gram
        # matrices (population.one_point_inner), not the d^3-heavier gradient.
        inner = 2 * math.pi * population.one_point_inner(instance, weights)
        if not self.params.normalize:
            return inner
        # W* - W is the same in the vanilla's own weights: (I + W*) - V = W* - (V - I).
        delta = (instance.truth["W"] - weights["W"]).flatten(1)
        return inner / delta.pow(2).sum(1)


@dataclass(frozen=True)
class DistanceParams:
    norm: Literal["fro", "spectral"] = param("fro", "Frobenius (Fig. 8) or spectral (Fig. 7b) norm")


class Distance(Metric):
    """||W - W*|| for ResLink (Li & Yuan Fig. 7b, 8); Vanilla compares V - I (footnote 3)."""

    name = "distance"
    role = "error"
    families = ("reslink",)

    Params = DistanceParams

    def applies(self, instance: Instance) -> bool:
        return _is_reslink(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        model = instance.model
        delta = model.residual(weights) - model.residual(instance.truth)
        return torch.linalg.matrix_norm(delta, ord="fro" if self.params.norm == "fro" else 2)


class PopulationLoss(Metric):
    """Closed-form population loss 1/2 E[(f(x, W) - f(x, W*))^2] for x ~ N(0, s^2 I).

    Li & Yuan (2), halved to match the harness's training loss; from the
    arc-cosine kernel (Tian 2017). Excludes label noise. ``reslink``, ``one_hidden``.
    """

    name = "population_loss"
    role = "error"
    families = population.FAMILIES

    def applies(self, instance: Instance) -> bool:
        return population.applies(instance)

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        return population.loss(instance, weights)


class RelativeTestError(Metric):
    """Relative test error of a regression teacher (Li & Yuan Fig. 7a "test error"):
    sum (f - y)^2 / sum (y - mean y)^2 over the test split (the fraction of variance
    unexplained), so students whose teachers have different output scales (ResLink,
    Vanilla, 3-Block) compare on one axis. The plain test MSE is ``test_loss`` (x 2).
    """

    name = "relative_test_error"
    role = "error"
    families = ("reslink", "three_block", "one_hidden", "additive")

    def applies(self, instance: Instance) -> bool:
        return (
            instance.X_test is not None
            and instance.y_test is not None
            and instance.X_test.shape[1] > 1
            and instance.y_test.dim() == 2
        )

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        y = instance.y_test
        resid = (instance.model.forward(weights, instance.X_test) - y).pow(2).sum(1)
        return resid / (y - y.mean(1, keepdim=True)).pow(2).sum(1)
