"""Oymak & Asif plugin: additive teacher, gradients (3) and (4), centered_pgd vs standard gd."""

from __future__ import annotations

import math

import pytest
import torch

from harness import SolveContext
from plugins.common.gd import GD
from plugins.common.metrics import ParamError
from plugins.oymak_asif.centered_pgd import CenteredPGD, centered_curvature
from plugins.oymak_asif.metrics import RelErrorSq
from plugins.oymak_asif.models import activations
from plugins.oymak_asif.problems import Additive, sample_inputs

DT = torch.float64


def _gens(B: int, offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(offset + b) for b in range(B)]


def _ctx(B: int) -> SolveContext:
    return SolveContext(device=torch.device("cpu"), dtype=DT, generators=_gens(B, 500))


def _additive(B: int = 4, **kw):
    return Additive(Additive.make_params({"d": 50, "n": 150, **kw})).sample(_gens(B), DT)


def _zero(inst) -> dict[str, torch.Tensor]:
    return {"w": torch.zeros(inst.batch, inst.X.shape[-1], dtype=DT)}


def test_standard_and_centered_gradients_equal_autograd():
    inst = _additive(B=3, d=6, n=40)
    w = {"w": 0.5 * torch.randn(3, 6, generator=torch.Generator().manual_seed(1), dtype=DT)}
    leaf = w["w"].clone().requires_grad_(True)
    inst.model.loss({"w": leaf}, inst.X, inst.y).sum().backward()
    assert torch.allclose(inst.model.grad(w, inst.X, inst.y)["w"], leaf.grad)
    # (4) is the gradient of (1/2n) sum_i (r_i - rbar)^2: the centered terms sum to zero.
    leaf = w["w"].clone().requires_grad_(True)
    r = inst.model.forward({"w": leaf}, inst.X) - inst.y
    (0.5 * (r - r.mean(1, keepdim=True)).pow(2).mean(1)).sum().backward()
    assert torch.allclose(inst.model.centered_grad(w, inst.X, inst.y), leaf.grad)


@pytest.mark.parametrize(
    ("dist", "kurtosis", "tail3"),
    [
        ("gaussian", 3.0, math.erfc(3 / math.sqrt(2))),
        ("laplace", 6.0, math.exp(-3 * math.sqrt(2))),
        ("student_t", 9.0, None),  # df = 5: kurtosis 3 + 6 / (df - 4)
    ],
)
def test_input_distributions_have_variance_sigma_squared(dist, kurtosis, tail3):
    sigma = 2.0
    X = sample_inputs(_gens(2), 50_000, 4, dist, sigma, 5.0, DT)  # 400,000 entries
    N = X.numel()
    # Mean within 5 standard errors sigma / sqrt(N); the sample variance's relative
    # standard error is sqrt((kurtosis - 1) / N).
    assert abs(float(X.mean())) < 5 * sigma / math.sqrt(N)
    assert abs(float(X.var()) / sigma**2 - 1) < 5 * math.sqrt((kurtosis - 1) / N)
    if tail3 is not None:  # P(|x| > 3 sigma) tells the shapes apart
        p = float((X.abs() > 3 * sigma).to(DT).mean())
        assert abs(p - tail3) < 5 * math.sqrt(tail3 * (1 - tail3) / N)
    # Each trial's draw comes from its own generator only.
    assert torch.equal(X[1], sample_inputs(_gens(1, 1), 50_000, 4, dist, sigma, 5.0, DT)[0])


@pytest.mark.parametrize("sigma", [1.0, 5.0])
def test_centered_pgd_recovers_at_n_3d_where_standard_gd_does_not(sigma):
    inst = _additive(B=4, d=50, n=150, sigma=sigma)
    result = CenteredPGD(CenteredPGD.make_params({"max_iter": 300})).solve(
        inst, _zero(inst), _ctx(4)
    )
    assert torch.all(result.iterations <= 300)
    assert torch.all(RelErrorSq().compute(inst, result.weights, None) < 1e-6)
    # Standard GD (3) at its largest stable step: 2 / L with L the largest eigenvalue of the
    # Gram (1/n) D^T D at w*; just below it GD is still far off after 300 steps, just above
    # it the iterates oscillate and end further away.
    D = activations(inst.truth["w"], inst.X)
    L = float(torch.linalg.eigvalsh(D.transpose(1, 2) @ D / inst.X.shape[1])[:, -1].max())
    errors = {}
    for factor in (1.9, 2.5):
        gd = GD(GD.make_params({"step_size": factor / L, "max_iter": 300, "tol": 0.0}))
        errors[factor] = RelErrorSq().compute(
            inst, gd.solve(inst, _zero(inst), _ctx(4)).weights, None
        )
    assert torch.all(errors[1.9] > 1e-4)
    assert torch.all(errors[2.5] > errors[1.9])


def test_projection_batches_and_explicit_step():
    inst = _additive(B=3, d=20, n=240)
    # Theorem 3.1's scheme: K = 3 batches of 80 = 4d samples, one per iteration.
    batched = CenteredPGD(CenteredPGD.make_params({"batches": 3, "max_iter": 300}))
    assert torch.all(
        RelErrorSq().compute(inst, batched.solve(inst, _zero(inst), _ctx(3)).weights, None) < 1e-6
    )
    # Clipping keeps every entry in [-Theta, Theta] even when w* lies outside.
    clipped = CenteredPGD(CenteredPGD.make_params({"theta": 0.5, "max_iter": 50}))
    w = clipped.solve(inst, _zero(inst), _ctx(3)).weights["w"]
    assert float(w.abs().max()) <= 0.5 and float(inst.truth["w"].abs().max()) > 0.5
    assert torch.allclose(w[inst.truth["w"] > 0.9], torch.tensor(0.5, dtype=DT))
    # An explicit step overrides the default 1 / beta; passing that default changes nothing.
    beta = centered_curvature(_zero(inst)["w"], inst.X)
    one = _additive(B=1, d=20, n=240)
    a = CenteredPGD(CenteredPGD.make_params({"max_iter": 5})).solve(one, _zero(one), _ctx(1))
    b = CenteredPGD(CenteredPGD.make_params({"max_iter": 5, "step_size": float(1 / beta[0])}))
    assert torch.allclose(a.weights["w"], b.solve(one, _zero(one), _ctx(1)).weights["w"])


def test_rel_error_sq_is_squared_param_error_and_trials_stay_independent():
    inst = _additive(B=3, d=10, n=30)
    w0 = _zero(inst)
    w0["w"][1, 0] = math.nan
    out = CenteredPGD(CenteredPGD.make_params({"max_iter": 100})).solve(inst, w0, _ctx(3))
    alone = CenteredPGD(CenteredPGD.make_params({"max_iter": 100})).solve(
        inst.select([2]), {"w": w0["w"][2:]}, _ctx(1)
    )
    assert torch.isnan(out.weights["w"][1]).all()
    assert torch.allclose(out.weights["w"][2], alone.weights["w"][0])
    err = RelErrorSq().compute(inst, out.weights, None)
    assert torch.allclose(err[[0, 2]], ParamError().compute(inst, out.weights, None)[[0, 2]] ** 2)
