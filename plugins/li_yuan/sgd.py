"""Minibatch SGD (Li & Yuan 2017, Sec. 2: W_{t+1} = W_t - eta G_t), batched over trials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, SolveContext, Solver, SolveResult, Weights, batched_randn, param
from plugins.li_yuan import population


def fresh_samples(
    instance: Instance, generators: list[torch.Generator], m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """m new samples per trial: x ~ N(0, s^2 I), y = teacher(x) + noise.

    The problem states the input scale and the noise in ``extras`` (``input_std``,
    ``noise_std``, default 0) and, when the teacher is not the student's own
    architecture, the ``teacher`` model; the teacher's weights are the ``truth``.
    """
    X0 = instance.X
    teacher = instance.extras.get("teacher", instance.model)
    t_weights = {k: instance.truth[k] for k in teacher.param_shapes()}
    s = population.input_std(instance)
    X = s * batched_randn(generators, m, X0.shape[-1], dtype=X0.dtype).to(X0.device)
    y = teacher.forward(t_weights, X)
    noise_std = float(instance.extras.get("noise_std", 0.0))
    if noise_std > 0:
        y = y + noise_std * batched_randn(generators, m, dtype=X0.dtype).to(X0.device)
    return X, y


class _Minibatches:
    """Per-trial shuffled passes over the stored training set (each trial its own generator)."""

    def __init__(self, instance: Instance, generators: list[torch.Generator], m: int) -> None:
        self.X, self.y, self.gens = instance.X, instance.y, generators
        self.n = self.X.shape[1]
        self.m = min(m, self.n)
        self.rows = torch.arange(self.X.shape[0], device=self.X.device).unsqueeze(1)
        self.pos = self.n  # forces a shuffle on the first draw

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.m > self.n:
            perms = [torch.randperm(self.n, generator=g) for g in self.gens]
            self.perm = torch.stack(perms).to(self.X.device)  # (B, n)
            self.pos = 0
        idx = self.perm[:, self.pos : self.pos + self.m]  # (B, m)
        self.pos += self.m
        return self.X[self.rows, idx], self.y[self.rows, idx]


class SGD(Solver):
    """Minibatch SGD on the squared loss (Li & Yuan 2017, Sec. 2 and Sec. 5.2).

    Each step follows model.grad on a minibatch of ``batch_size`` samples:
    ``sampling = "dataset"`` walks shuffled passes over the stored training set;
    ``"fresh"`` draws new samples from the problem's input distribution and
    teacher every step, i.e. SGD on the population loss (2), as the paper's
    analysis assumes. The loss is 1/2 the mean squared error (the harness
    convention), so the gradient is half that of the paper's loss (2).
    """

    name = "sgd"
    families = ("reslink", "one_hidden", "three_block")

    @dataclass(frozen=True)
    class Params:
        step_size: float = param(0.001, "constant step size eta", min=0, exclusive_min=True)
        batch_size: int = param(200, "samples per step (capped at n for dataset sampling)", min=1)
        max_iter: int = param(1000, "SGD steps", min=0)
        sampling: Literal["dataset", "fresh"] = param(
            "dataset", "minibatches of the training set, or fresh samples each step"
        )

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model = instance.model
        weights = {k: v.clone() for k, v in weights.items()}
        B = instance.batch
        if p.sampling == "dataset":
            batches = _Minibatches(instance, ctx.generators, p.batch_size)
            draw = batches.next
        else:
            draw = lambda: fresh_samples(instance, ctx.generators, p.batch_size)
        ctx.record(0, weights)
        for t in range(1, p.max_iter + 1):
            X, y = draw()
            grads = model.grad(weights, X, y)
            weights = {k: v - p.step_size * grads[k] for k, v in weights.items()}
            ctx.record(t, weights)
        iterations = torch.full((B,), p.max_iter, dtype=torch.long, device=instance.X.device)
        return SolveResult(weights, iterations)
