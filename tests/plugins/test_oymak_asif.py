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
from plugins.oymak_asif.models import AdditiveModel, Workspace, activations
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


def _reference_grads(model, w, X, y):
    """Gradients (3) and (4) as the model computed them before the workspace: two fresh
    sums w + x_i, one for the outputs and one for the steps."""
    D = activations(w, X)
    r = model.forward({"w": w}, X) - y
    rc = r - r.mean(1, keepdim=True)
    return (r.unsqueeze(1) @ D).squeeze(1) / X.shape[1], (rc.unsqueeze(1) @ D).squeeze(1) / X.shape[
        1
    ]


def test_workspace_gradients_are_bitwise_the_fresh_ones_and_reuse_their_buffers():
    inst = _additive(B=4, d=30, n=90)
    model: AdditiveModel = inst.model
    w = 0.8 * torch.randn(4, 30, generator=torch.Generator().manual_seed(3), dtype=DT)
    w[0, :3] = -inst.X[0, 0, :3]  # w + x_i exactly 0 on some entries: the step is 1 there
    w[3, 0] = math.nan  # a NaN trial stays NaN and leaves the others alone
    plain, centered = _reference_grads(model, w, inst.X, inst.y)
    work = Workspace()
    for _ in range(2):  # the second call runs on the first call's buffers
        assert torch.equal(model.grad({"w": w}, inst.X, inst.y, work)["w"][:3], plain[:3])
        got = model.centered_grad({"w": w}, inst.X, inst.y, work)
        assert torch.equal(got[:3], centered[:3]) and torch.isnan(got[3]).all()
    assert torch.equal(model.grad({"w": w}, inst.X, inst.y)["w"][:3], plain[:3])  # no workspace
    z = work.buffer("z", torch.Size((4, 90, 30)), inst.X)
    assert z.data_ptr() == work.buffer("z", torch.Size((4, 90, 30)), inst.X).data_ptr()
    # A smaller running batch (trials stopped) gets buffers of its own shape.
    rows = [1, 2]
    got = model.centered_grad({"w": w[rows]}, inst.X[rows], inst.y[rows], work)
    assert torch.equal(got, centered[rows])
    assert work.buffer("z", torch.Size((2, 90, 30)), inst.X).shape == (2, 90, 30)


class _FreshAdditive(AdditiveModel):
    """The additive model without buffer reuse (every gradient on fresh tensors)."""

    def centered_grad(self, weights, X, y, work=None):
        return super().centered_grad(weights, X, y, None)


def test_centered_pgd_with_the_workspace_ends_bitwise_where_fresh_tensors_end():
    # Trials stop at different iterations (the batch shrinks, buffers are replaced) and
    # Theorem 3.1's batches alternate two data shapes through the same workspace.
    inst = _additive(B=5, d=20, n=61)
    fresh = _additive(B=5, d=20, n=61)
    fresh.model = _FreshAdditive(20)
    counts = []
    for params in ({"max_iter": 400}, {"max_iter": 200, "batches": 2}):
        solver = CenteredPGD(CenteredPGD.make_params(params))
        a = solver.solve(inst, _zero(inst), _ctx(5))
        b = solver.solve(fresh, _zero(fresh), _ctx(5))
        assert torch.equal(a.weights["w"], b.weights["w"])
        assert torch.equal(a.iterations, b.iterations)
        counts.append(set(a.iterations.tolist()))
    assert len(counts[0]) > 1  # the unbatched trials did stop at different iterations
