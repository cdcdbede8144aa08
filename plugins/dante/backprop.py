"""Minibatch backpropagation baselines of the DANTE experiments (SGD, momentum, Adam,
Adagrad, RMSProp; Sinha et al. Sec. 4 and Table 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, SolveContext, Solver, SolveResult, Weights, param
from plugins.dante.minibatch import epoch_batches, gather

OPTIMIZERS = ("sgd", "momentum", "adam", "adagrad", "rmsprop")


@dataclass(frozen=True)
class BackpropParams:
    optimizer: Literal["sgd", "momentum", "adam", "adagrad", "rmsprop"] = param(
        "sgd", "update rule (torch.optim defaults apart from lr and momentum)"
    )
    lr: float = param(0.1, "learning rate", min=0.0, exclusive_min=True)
    momentum: float = param(0.9, 'momentum parameter of optimizer = "momentum"', min=0.0, max=1.0)
    epochs: int = param(20, "passes over the training set", min=1)
    batch_size: int = param(32, "minibatch size", min=1)


class Backprop(Solver):
    """Minibatch backpropagation on the model's training loss, every layer updated at every
    step: the SGD baseline of Sinha et al. (DANTE paper, Sec. 4), and its adaptive variants
    of Table 1 (momentum 0.9, Adam, Adagrad, RMSProp). All of these update rules act on each
    weight separately, so trials batched along the first dimension stay independent.

    Works for any model family (gradients by autograd of ``model.loss``). Traces record
    ``weights_updated``, the paper's x-axis.
    """

    name = "backprop"
    Params = BackpropParams
    families = ("*",)

    def _optimizer(self, leaves: list[torch.Tensor]) -> torch.optim.Optimizer:
        p = self.params
        if p.optimizer == "sgd":
            return torch.optim.SGD(leaves, lr=p.lr)
        if p.optimizer == "momentum":
            return torch.optim.SGD(leaves, lr=p.lr, momentum=p.momentum)
        if p.optimizer == "adam":
            return torch.optim.Adam(leaves, lr=p.lr)
        if p.optimizer == "adagrad":
            return torch.optim.Adagrad(leaves, lr=p.lr)
        return torch.optim.RMSprop(leaves, lr=p.lr)

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model = instance.model
        X, y = instance.X, instance.y
        B, n = X.shape[0], X.shape[1]
        w = {k: v.detach().clone().requires_grad_(True) for k, v in weights.items()}
        opt = self._optimizer(list(w.values()))
        per_step = sum(v[0].numel() for v in w.values())
        step = 0
        ctx.record(0, _detached(w), weights_updated=0)
        with torch.enable_grad():
            for _ in range(p.epochs):
                for idx in epoch_batches(ctx.generators, n, p.batch_size, X.device):
                    opt.zero_grad(set_to_none=True)
                    # The sum of per-trial losses: each trial gets its own gradient.
                    model.loss(w, gather(X, idx), gather(y, idx)).sum().backward()
                    opt.step()
                    step += 1
                    if ctx.wants(step):
                        ctx.record(step, _detached(w), weights_updated=step * per_step)
        final = _detached(w)
        iterations = torch.full((B,), step, dtype=torch.long, device=X.device)
        updated = torch.full((B,), float(step * per_step), dtype=torch.float64, device=X.device)
        return SolveResult(final, iterations, info={"weights_updated": updated})


def _detached(w: Weights) -> Weights:
    return {k: v.detach().clone() for k, v in w.items()}
