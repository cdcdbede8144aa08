"""Minibatch SGD (Li & Yuan 2017, Sec. 2: W_{t+1} = W_t - eta G_t), batched over trials."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from harness import (
    Instance,
    SolveContext,
    Solver,
    SolveResult,
    TrialStopper,
    Weights,
    batched_randn,
    param,
)
from plugins.li_yuan import population
from plugins.li_yuan.models import ReslinkModel


def teacher_forward(instance: Instance) -> Callable[[torch.Tensor], torch.Tensor]:
    """The labelling function x -> teacher(x) (noise-free) of the instance.

    When the teacher is not the student's own architecture the problem puts the
    ``teacher`` model in ``extras``; the teacher's weights are the ``truth``. A
    ResLink teacher binds its weights once (``forward_at``: no product for W* = 0).
    """
    teacher = instance.extras.get("teacher", instance.model)
    t_weights = {k: instance.truth[k] for k in teacher.param_shapes()}
    if isinstance(teacher, ReslinkModel):
        return teacher.forward_at(t_weights)
    return functools.partial(teacher.forward, t_weights)


def fresh_samples(
    instance: Instance,
    generators: list[torch.Generator],
    m: int,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """m new samples per trial: x ~ N(0, s^2 I), y = teacher(x) + noise.

    The problem states the input scale and the noise in ``extras`` (``input_std``,
    ``noise_std``, default 0); ``forward`` is :func:`teacher_forward` of the instance
    (computed here when not given).
    """
    X0 = instance.X
    s = population.input_std(instance)
    X = s * batched_randn(generators, m, X0.shape[-1], dtype=X0.dtype).to(X0.device)
    y = (forward or teacher_forward(instance))(X)
    noise_std = float(instance.extras.get("noise_std", 0.0))
    if noise_std > 0:
        y = y + noise_std * batched_randn(generators, m, dtype=X0.dtype).to(X0.device)
    return X, y


FRESH_BLOCK_NUMBERS = 8192
"""Fresh samples are drawn for several steps at once, about this many numbers per trial
(at least one step): one draw per trial generator and one teacher forward per block
instead of per step. Larger blocks fall out of the cache and were slower (measured:
32 steps of 100 x 10 samples 15-25% slower than 8)."""

CHECK_EVERY = 8
"""Steps between two looks at which trials diverged (a host sync on a GPU); in between a
diverged trial is frozen by a mask, so results do not depend on this number."""


class _Minibatches:
    """Per-trial shuffled passes over the stored training set (each trial its own generator).

    Each epoch permutes every trial's data once; a step's minibatch is then a slice of
    it (a view, no copy).
    """

    def __init__(self, instance: Instance, generators: list[torch.Generator], m: int) -> None:
        self.X, self.y, self.gens = instance.X, instance.y, list(generators)
        self.n = self.X.shape[1]
        self.m = min(m, self.n)
        self.pos = self.n  # forces a shuffle on the first draw

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.m > self.n:
            device = self.X.device
            perm = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])
            perm = perm.to(device)  # (b, n)
            rows = torch.arange(len(self.gens), device=device).unsqueeze(1)
            self.Xp, self.yp, self.pos = self.X[rows, perm], self.y[rows, perm], 0
        s = slice(self.pos, self.pos + self.m)
        self.pos += self.m
        return self.Xp[:, s], self.yp[:, s]

    def keep(self, rows: torch.Tensor, instance: Instance) -> None:
        """Continue with the trials ``rows`` of the current batch only."""
        self.X, self.y = instance.X, instance.y
        self.gens = [self.gens[i] for i in rows.tolist()]
        if self.pos < self.n:
            self.Xp, self.yp = self.Xp[rows], self.yp[rows]


class _FreshBlocks:
    """Fresh samples for several steps at a time (see :func:`fresh_samples`)."""

    def __init__(self, instance: Instance, generators: list[torch.Generator], m: int) -> None:
        self.instance, self.gens, self.m = instance, list(generators), m
        self.forward = teacher_forward(instance)
        self.block = max(1, FRESH_BLOCK_NUMBERS // (m * instance.X.shape[-1]))
        self.step = self.block

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.step == self.block:
            X, y = fresh_samples(self.instance, self.gens, self.block * self.m, self.forward)
            self.X = X.view(X.shape[0], self.block, self.m, X.shape[-1])
            self.y = y.view(y.shape[0], self.block, self.m, *y.shape[2:])
            self.step = 0
        self.step += 1
        return self.X[:, self.step - 1], self.y[:, self.step - 1]

    def keep(self, rows: torch.Tensor, instance: Instance) -> None:
        self.instance, self.forward = instance, teacher_forward(instance)
        self.gens = [self.gens[i] for i in rows.tolist()]
        self.X, self.y = self.X[rows], self.y[rows]


def _finite(weights: Weights) -> torch.Tensor:
    """Per trial: are all weights finite? (b,)"""
    oks = [torch.isfinite(v.flatten(1)).all(1) for v in weights.values()]
    return torch.stack(oks).all(0)


@dataclass(frozen=True)
class SGDParams:
    step_size: float = param(0.001, "constant step size eta", min=0, exclusive_min=True)
    batch_size: int = param(200, "samples per step (capped at n for dataset sampling)", min=1)
    max_iter: int = param(1000, "SGD steps", min=0)
    sampling: Literal["dataset", "fresh"] = param(
        "dataset", "minibatches of the training set, or fresh samples each step"
    )


class SGD(Solver):
    """Minibatch SGD on the squared loss (Li & Yuan 2017, Sec. 2 and Sec. 5.2).

    Each step follows model.grad on a minibatch of ``batch_size`` samples:
    ``sampling = "dataset"`` walks shuffled passes over the stored training set;
    ``"fresh"`` draws new samples from the problem's input distribution and
    teacher every step, i.e. SGD on the population loss (2), as the paper's
    analysis assumes. The loss is 1/2 the mean squared error (the harness
    convention), so the gradient is half that of the paper's loss (2).

    Every trial runs ``max_iter`` steps, except one whose weights stop being finite:
    it stops at that step (its iteration count), is reported as diverged, and leaves
    the batch.
    """

    name = "sgd"
    families = ("reslink", "one_hidden", "three_block")

    Params = SGDParams

    def solve(self, instance: Instance, weights: Weights, ctx: SolveContext) -> SolveResult:
        p = self.params
        model = instance.model
        W = {k: v.clone() for k, v in weights.items()}
        B, device = instance.batch, instance.X.device
        source = _Minibatches if p.sampling == "dataset" else _FreshBlocks
        batches = source(instance, ctx.generators, p.batch_size)
        ctx.record(0, W)
        # The running batch: ``stop.index`` maps its rows to trials; a diverged trial is
        # frozen and leaves the batch at the next look (every CHECK_EVERY steps).
        stop = TrialStopper(B, p.max_iter, device=device, check_every=CHECK_EVERY)
        Wa, model_a = W, model
        for t in stop:
            X, y = batches.next()
            grads = model_a.grad(Wa, X, y)
            W_new = {k: v - p.step_size * grads[k] for k, v in Wa.items()}  # W_t - eta G_t
            Wa = stop.freeze(W_new, Wa)
            stop.update(diverged=~_finite(W_new))
            # Traced iterates only (the full batch is assembled for them), and only while some
            # trial still runs: nothing is recorded past the last trial's own final iterate.
            if ctx.wants(t) and stop.any_ran:
                W = stop.scatter(W, Wa)
                ctx.record(t, W)
            if stop.should_compact():
                W = stop.scatter(W, Wa)
                rows = stop.compact()
                Wa = {k: v[rows] for k, v in Wa.items()}
                sub = instance.select(stop.index)
                model_a = sub.model
                batches.keep(rows, sub)
        return SolveResult(stop.scatter(W, Wa), stop.iterations)
