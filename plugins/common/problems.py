"""Teacher models with Gaussian inputs shared by the recovery papers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness import param
from plugins.common.models import OneHiddenModel
from plugins.common.teacher import (
    GaussianTeacher,
    InputScale,
    dimension,
    input_scale,
    noise_std,
    test_samples,
    train_samples,
)


def qr_teacher(
    gen: torch.Generator, d: int, k: int, kappa: float, dtype: torch.dtype
) -> torch.Tensor:
    """W* = U diag(linspace(1, kappa, k)) V^T with U (d x k), V (k x k) from reduced QR of
    Gaussian matrices (Jagatap & Hegde Sec. 4; condition number kappa)."""
    U, _ = torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=dtype))
    V, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=dtype))
    S = torch.linspace(1.0, kappa, k, dtype=dtype)
    return U @ torch.diag(S) @ V.T


@dataclass(frozen=True)
class SingleNeuronParams:
    d: int = dimension(50)
    n: int = train_samples(200)
    n_test: int = test_samples()
    input_scale: InputScale = input_scale()
    noise_std: float = noise_std()


class SingleNeuron(GaussianTeacher):
    """Single ReLU neuron y = relu(X w*) with w* ~ N(0, I) (Jagatap & Hegde, Fig. 1).

    The student is the one-hidden-layer family with k = 1, so every one_hidden
    solver and metric applies.
    """

    name = "single_neuron"
    Params = SingleNeuronParams
    families = ("one_hidden",)

    def student(self, generators: list[torch.Generator]) -> OneHiddenModel:
        return OneHiddenModel(self.params.d, 1)

    def draw_truth(self, gen: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"W": torch.randn(self.params.d, 1, generator=gen, dtype=dtype)}


@dataclass(frozen=True)
class OneHiddenParams:
    d: int = dimension(20)
    k: int = param(3, "hidden units", min=1)
    n: int = train_samples(1000)
    n_test: int = test_samples()
    kappa: float = param(
        1.8, "condition number of W* (singular values linspace(1, kappa, k))", min=1.0
    )
    input_scale: InputScale = input_scale()
    noise_std: float = noise_std()


class OneHidden(GaussianTeacher):
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

    def student(self, generators: list[torch.Generator]) -> OneHiddenModel:
        return OneHiddenModel(self.params.d, self.params.k)

    def draw_truth(self, gen: torch.Generator, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        p = self.params
        return {"W": qr_teacher(gen, p.d, p.k, p.kappa, dtype)}


__all__ = ["OneHidden", "OneHiddenParams", "SingleNeuron", "SingleNeuronParams", "qr_teacher"]
