"""Teacher models with Gaussian inputs shared by the recovery papers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from harness import Instance, Problem, param
from plugins.common.models import OneHiddenModel, relu

InputScale = Literal["unit", "inv_sqrt_n"]


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


def qr_teacher(
    gen: torch.Generator, d: int, k: int, kappa: float, dtype: torch.dtype
) -> torch.Tensor:
    """W* = U diag(linspace(1, kappa, k)) V^T with U (d x k), V (k x k) from reduced QR of
    Gaussian matrices (Jagatap & Hegde Sec. 4; condition number kappa)."""
    U, _ = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=dtype))
    V, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=dtype))
    S = torch.linspace(1.0, kappa, k, dtype=dtype)
    return U @ torch.diag(S) @ V.T


def teacher_instance(
    gens: list[torch.Generator],
    draw_truth,
    model,
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


@dataclass(frozen=True)
class SingleNeuronParams:
    d: int = param(50, "input dimension", min=1)
    n: int = param(200, "training samples", min=1)
    n_test: int = param(0, "test samples (0: no test set)", min=0)
    input_scale: InputScale = param("unit", "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n')")
    noise_std: float = param(0.0, "standard deviation of additive label noise", min=0.0)


class SingleNeuron(Problem):
    """Single ReLU neuron y = relu(X w*) with w* ~ N(0, I) (Jagatap & Hegde, Fig. 1).

    The student is the one-hidden-layer family with k = 1, so every one_hidden
    solver and metric applies.
    """

    name = "single_neuron"
    Params = SingleNeuronParams
    families = ("one_hidden",)

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        return teacher_instance(
            generators,
            lambda g: {"W": torch.randn(p.d, 1, generator=g, dtype=dtype)},
            OneHiddenModel(p.d, 1),
            n=p.n,
            n_test=p.n_test,
            d=p.d,
            input_scale=p.input_scale,
            noise_std=p.noise_std,
            dtype=dtype,
        )


@dataclass(frozen=True)
class OneHiddenParams:
    d: int = param(20, "input dimension", min=1)
    k: int = param(3, "hidden units", min=1)
    n: int = param(1000, "training samples", min=1)
    n_test: int = param(0, "test samples (0: no test set)", min=0)
    kappa: float = param(
        1.8, "condition number of W* (singular values linspace(1, kappa, k))", min=1.0
    )
    input_scale: InputScale = param("unit", "x ~ N(0, I) ('unit') or N(0, I/n) ('inv_sqrt_n')")
    noise_std: float = param(0.0, "standard deviation of additive label noise", min=0.0)


class OneHidden(Problem):
    """One hidden ReLU layer y = sum_q relu(X w*_q), output weights all ones
    (Jagatap & Hegde eq. (2); Zhang et al. eq. (1.1) with v = 1).

    W* = U diag(linspace(1, kappa, k)) V^T, U (d x k) and V (k x k) from the
    reduced QR of Gaussian matrices (Jagatap & Hegde Sec. 4).
    """

    name = "one_hidden"
    Params = OneHiddenParams
    families = ("one_hidden",)

    @classmethod
    def check_params(cls, params: OneHiddenParams) -> tuple[str, str] | None:
        if params.k > params.d:
            return "k", f"k = {params.k} hidden units need d >= k (d = {params.d})"
        return None

    def sample(self, generators: list[torch.Generator], dtype: torch.dtype) -> Instance:
        p = self.params
        return teacher_instance(
            generators,
            lambda g: {"W": qr_teacher(g, p.d, p.k, p.kappa, dtype)},
            OneHiddenModel(p.d, p.k),
            n=p.n,
            n_test=p.n_test,
            d=p.d,
            input_scale=p.input_scale,
            noise_std=p.noise_std,
            dtype=dtype,
        )


__all__ = ["OneHidden", "SingleNeuron", "gaussian_inputs", "qr_teacher", "relu", "teacher_instance"]
