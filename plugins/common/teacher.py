"""The Gaussian teacher that every teacher-student problem builds on: its shared parameters,
its input sampling, and a base class that samples (truth, X, noise, X_test) per trial.

A problem's ``Params`` declares the shared fields with the factories below
(``d = dimension(20)``, ``n = train_samples(1000)``, ...), so each field's doc and
bounds live here once. They are factories rather than fields of a base dataclass
because a dataclass puts inherited fields first, and the order of a problem's fields
is part of the key its trial seeds derive from: the teachers list their own fields
between the shared ones (``d, k, n, n_test, kappa, input_scale, noise_std``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from harness import Instance, Model, Problem, Weights, batched_randn, param

InputScale = Literal["unit", "inv_sqrt_n"]


# ---------------------------------------------------------------------------
# Shared parameter fields
# ---------------------------------------------------------------------------


def dimension(default: int, doc: str = "input dimension") -> Any:
    """The input dimension d."""
    return param(default, doc, min=1)


def train_samples(default: int, *, min: int = 1) -> Any:
    """The training-set size n."""
    return param(default, "training samples", min=min)


def test_samples(default: int = 0) -> Any:
    """The test-set size (0: no test split)."""
    return param(default, "test samples (0: no test set)", min=0)


def input_scale(default: InputScale = "unit", doc: str = "") -> Any:
    """x ~ N(0, I) ("unit") or N(0, I/n) ("inv_sqrt_n", Jagatap & Hegde's scaling)."""
    return param(default, doc or "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n')")


def input_std(default: float = 1.0) -> Any:
    """The standard deviation s of the input entries, x ~ N(0, s^2 I)."""
    return param(default, "standard deviation of the input entries", min=0, exclusive_min=True)


def noise_std() -> Any:
    """The standard deviation of additive Gaussian label noise."""
    return param(0.0, "standard deviation of additive label noise", min=0.0)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def gaussian_inputs(
    gen: torch.Generator,
    n: int,
    d: int,
    input_scale: str,
    dtype: torch.dtype,
    n_train: int | None = None,
) -> torch.Tensor:
    """Rows x_i ~ N(0, I) ("unit") or N(0, I/n) ("inv_sqrt_n", Jagatap & Hegde's scaling, with
    n the training-set size also for test rows, so both splits share one distribution)."""
    X = torch.randn(n, d, generator=gen, dtype=dtype)
    return X / math.sqrt(n_train or n) if input_scale == "inv_sqrt_n" else X


def scaled_gaussian_inputs(
    generators: list[torch.Generator], n: int, d: int, std: float, dtype: torch.dtype
) -> torch.Tensor | None:
    """(B, n, d) entries N(0, std^2), one draw per trial generator; None for n = 0 (no split)."""
    return std * batched_randn(generators, n, d, dtype=dtype) if n else None


def teacher_instance(
    gens: list[torch.Generator],
    draw_truth: Callable[[torch.Generator], Weights],
    model: Model,
    *,
    n: int,
    n_test: int,
    d: int,
    input_scale: str,
    noise_std: float,
    dtype: torch.dtype,
) -> Instance:
    """Sample (truth, X, noise, X_test) per trial, in that order, from each trial's generator;
    labels are the teacher's outputs y = f(X; truth) plus N(0, noise_std^2) noise."""
    truths, Xs, noises, Xts = [], [], [], []
    for g in gens:
        truths.append(draw_truth(g))
        Xs.append(gaussian_inputs(g, n, d, input_scale, dtype))
        noises.append(noise_std * torch.randn(n, generator=g, dtype=dtype) if noise_std else None)
        Xts.append(gaussian_inputs(g, n_test, d, input_scale, dtype, n) if n_test else None)
    truth = {k: torch.stack([t[k] for t in truths]) for k in truths[0]}
    X = torch.stack(Xs)
    y = model.forward(truth, X)
    if noise_std:
        y = y + torch.stack(noises)
    X_test = torch.stack(Xts) if n_test else None
    y_test = model.forward(truth, X_test) if n_test else None  # noiseless: error vs. the teacher
    # What a solver may know of the input distribution (closed-form population losses need it).
    input_std = 1.0 / math.sqrt(n) if input_scale == "inv_sqrt_n" else 1.0
    extras = {"input_std": input_std, "noise_std": noise_std}
    return Instance(X=X, y=y, model=model, X_test=X_test, y_test=y_test, truth=truth, extras=extras)


class GaussianTeacher(Problem):
    """A teacher whose student has its architecture: y = f(X; truth) + noise, x Gaussian.

    Subclasses declare ``Params`` with the fields ``d, n, n_test, input_scale,
    noise_std`` (the factories above) and implement :meth:`draw_truth` and
    :meth:`student`; :meth:`sample` draws, from each trial's own generator, first
    what :meth:`student` needs, then (truth, X, noise, X_test).
    """

    def student(self, generators: list[torch.Generator]) -> Model:
        """The student model (the teacher's architecture); it may draw per-trial structure
        that the solver is told (the skip support S) from ``generators`` first."""
        raise NotImplementedError

    def draw_truth(self, gen: torch.Generator, dtype: torch.dtype) -> Weights:
        """One trial's teacher weights, drawn from its generator ``gen``."""
        raise NotImplementedError

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        model = self.student(generators)
        return teacher_instance(
            generators,
            lambda g: self.draw_truth(g, dtype),
            model,
            n=p.n,
            n_test=p.n_test,
            d=p.d,
            input_scale=p.input_scale,
            noise_std=p.noise_std,
            dtype=dtype,
        )
