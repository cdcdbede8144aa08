"""Metric of Oymak & Asif (2018): the relative recovery error (8)."""

from __future__ import annotations

import torch

from harness import Instance, Metric, SolveResult, Weights


class RelErrorSq(Metric):
    """Relative recovery error ||w - w*||^2 / ||w*||^2 (Oymak & Asif eq. (8))."""

    name = "rel_error_sq"
    role = "error"
    families = ("additive",)

    def applies(self, instance: Instance) -> bool:
        return "w" in instance.truth

    def compute(
        self, instance: Instance, weights: Weights, result: SolveResult | None
    ) -> torch.Tensor:
        w_star = instance.truth["w"]
        return (weights["w"] - w_star).pow(2).sum(1) / w_star.pow(2).sum(1)
