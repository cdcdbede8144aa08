"""Minibatch backpropagation baselines of the DANTE experiments (SGD, momentum, Adam,
Adagrad, RMSProp; Sinha et al. Sec. 4 and Table 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, SolveContext, Solver, SolveResult, TrialStopper, Weights, param
from plugins.dante.minibatch import flat_epoch_batches, flatten_trials, sole_owner, take

OPTIMIZERS = ("sgd", "momentum", "adam", "adagrad", "rmsprop")


@dataclass(frozen=True)
class BackpropParams:
    optimizer: Literal["sgd", "momentum", "adam", "adagrad", "rmsprop"] = param(
        "sgd", "update rule (torch.optim's default constants apart from lr and momentum)"
    )
    lr: float = param(
        1.0,
        "learning rate (1.0 suits plain SGD on the mean-over-outputs MSE)",
        min=0.0,
        exclusive_min=True,
    )
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
    budget_axes = ("weights_updated",)
    Params = BackpropParams
    families = ("*",)

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model = instance.model
        X, y = instance.X, instance.y
        B, n = X.shape[0], X.shape[1]
        names = list(weights)
        w = {k: v.detach().clone() for k, v in weights.items()}
        rule = UpdateRule(p.optimizer, p.lr, p.momentum, [w[k] for k in names])
        per_step = sum(v[0].numel() for v in w.values())
        step = 0
        stop = TrialStopper(B, device=X.device)  # every trial runs every step: no early stop
        ctx.record(0, w, weights_updated=0)
        Xf, yf = flatten_trials(X), flatten_trials(y)  # once: each minibatch is an index_select
        for _ in range(p.epochs):
            for idx in flat_epoch_batches(ctx.generators, n, p.batch_size, X.device):
                # Leaves share w's storage; the rule then updates w in place (no new tensors).
                leaves = [w[k].detach().requires_grad_(True) for k in names]
                with torch.enable_grad():
                    # The sum of per-trial losses: each trial gets its own gradient.
                    total = model.loss(dict(zip(names, leaves)), take(Xf, idx, B), take(yf, idx, B))
                    grads = torch.autograd.grad(total.sum(), leaves)
                with torch.no_grad():
                    rule.step([w[k] for k in names], list(grads))
                stop.update()
                step += 1
                if ctx.wants(step):
                    ctx.record(step, w, weights_updated=step * per_step)
        updated = torch.full((B,), float(step * per_step), dtype=torch.float64, device=X.device)
        return SolveResult(w, stop.iterations, info={"weights_updated": updated})


class UpdateRule:
    """The elementwise update rules, with torch.optim's default constants.

    Written out rather than taken from torch.optim: every rule acts on each scalar
    weight separately, which is what keeps batched trials independent, and
    building a torch.optim optimizer imports torch._dynamo (seconds) inside the
    timed solve.
    """

    def __init__(self, kind: str, lr: float, momentum: float, like: list[torch.Tensor]) -> None:
        self.kind, self.lr, self.momentum, self.t = kind, lr, momentum, 0
        self.m = [torch.zeros_like(v) for v in like]  # first moment / velocity / square sums
        self.v = [torch.zeros_like(v) for v in like]

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Update ``params`` in place (under no_grad); the arithmetic, and so the rounding,
        is that of the out-of-place formulas in the comments. ``grads`` are the caller's
        to give: fresh from autograd, they may be overwritten."""
        self.t += 1
        lr = self.lr
        for i, (w, g) in enumerate(zip(params, grads)):
            if self.kind == "sgd":  # w <- w - lr g (lr g rounded as out of place, in g's buffer)
                w.sub_(g.mul_(lr) if sole_owner(g, grads) else lr * g)
            elif self.kind == "momentum":  # heavy ball: v <- mu v + g; w <- w - lr v
                self.m[i].mul_(self.momentum).add_(g)
                w.sub_(lr * self.m[i])
            elif self.kind == "adam":  # Kingma & Ba, betas (0.9, 0.999), eps 1e-8
                b1, b2 = 0.9, 0.999
                self.m[i].mul_(b1).add_((1 - b1) * g)
                self.v[i].mul_(b2).add_((1 - b2) * g * g)
                m_hat = self.m[i] / (1 - b1**self.t)
                v_hat = self.v[i] / (1 - b2**self.t)
                w.sub_(lr * m_hat / (v_hat.sqrt() + 1e-8))
            elif self.kind == "adagrad":  # Duchi et al., eps 1e-10: s <- s + g^2
                self.v[i].add_(g * g)
                w.sub_(lr * g / (self.v[i].sqrt() + 1e-10))
            else:  # rmsprop (Hinton), alpha 0.99, eps 1e-8: s <- 0.99 s + 0.01 g^2
                self.v[i].mul_(0.99).add_(0.01 * g * g)
                w.sub_(lr * g / (self.v[i].sqrt() + 1e-8))
