"""The first plugins: teachers, initializers, metrics, matching, AltMin and GD."""

from __future__ import annotations

import math

import pytest
import torch

from harness import Model, SolveContext
from plugins.common.gd import GD, GDParams, column_major
from plugins.common.initializers import Perturbed, PerturbedParams
from plugins.common.matching import match_columns, permute_columns
from plugins.common.metrics import relative_error
from plugins.common.models import OneHiddenModel
from plugins.common.problems import OneHidden, OneHiddenParams, SingleNeuron, SingleNeuronParams
from plugins.jagatap_hegde.altmin import AltMin, AltMinParams


def gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def ctx(B: int) -> SolveContext:
    return SolveContext(device=torch.device("cpu"), dtype=torch.float64, generators=gens(B, 99))


def altmin_errors(d: int, n: int, trials: int = 10) -> torch.Tensor:
    inst = SingleNeuron(SingleNeuronParams(d=d, n=n, input_scale="inv_sqrt_n")).sample(
        gens(trials), torch.float64
    )
    W0 = {"W": torch.zeros(trials, d, 1, dtype=torch.float64)}
    result = AltMin(AltMinParams(max_iter=100)).solve(inst, W0, ctx(trials))
    return relative_error(inst, result.weights)


def test_altmin_recovers_a_single_neuron_at_n_4d():
    err = altmin_errors(d=25, n=100)
    assert err.max() < 1e-6


def test_altmin_fails_at_n_half_d():
    err = altmin_errors(d=40, n=20)
    assert err.min() > 0.1


def test_matching_finds_a_shuffled_teacher():
    torch.manual_seed(0)
    W_star = torch.randn(4, 6, 5, dtype=torch.float64)
    perms = torch.stack([torch.randperm(5) for _ in range(4)])
    W = permute_columns(W_star, perms) + 1e-3 * torch.randn(4, 6, 5, dtype=torch.float64)
    aligned = permute_columns(W, match_columns(W, W_star))
    assert (aligned - W_star).abs().max() < 1e-2
    # Without matching the same estimate looks far off: the metric depends on it.
    assert ((W - W_star).norm(dim=(1, 2)) / W_star.norm(dim=(1, 2))).min() > 0.3


def test_param_error_is_permutation_invariant():
    inst = OneHidden(OneHiddenParams(d=8, k=4, n=10)).sample(gens(3), torch.float64)
    shuffled = inst.truth["W"][:, :, [2, 0, 3, 1]]
    assert relative_error(inst, {"W": shuffled}).max() < 1e-12


def test_one_hidden_teacher_has_the_declared_singular_values():
    inst = OneHidden(OneHiddenParams(d=20, k=5, n=10, kappa=1.8)).sample(gens(2), torch.float64)
    s = torch.linalg.svdvals(inst.truth["W"])
    expected = torch.linspace(1.8, 1.0, 5, dtype=torch.float64)
    assert torch.allclose(s, expected.expand_as(s), atol=1e-12)


def test_inputs_have_the_requested_scale():
    p = SingleNeuronParams(d=50, n=400, input_scale="inv_sqrt_n")
    X = SingleNeuron(p).sample(gens(1), torch.float64).X
    # Entries N(0, 1/n): the sample variance of 20,000 draws is within 5% of 1/n.
    assert X.var().item() == pytest.approx(1 / 400, rel=0.05)


def test_perturbed_init_is_at_the_exact_relative_distance():
    inst = OneHidden(OneHiddenParams(d=10, k=3, n=10)).sample(gens(4), torch.float64)
    W0 = Perturbed(PerturbedParams(relative_distance=0.9)).initialize(
        inst, gens(4, 7), torch.float64
    )
    dist = (W0["W"] - inst.truth["W"]).norm(dim=(1, 2)) / inst.truth["W"].norm(dim=(1, 2))
    assert torch.allclose(dist, torch.full_like(dist, 0.9), atol=1e-12)


def test_one_hidden_analytic_gradient_equals_autograd():
    inst = OneHidden(OneHiddenParams(d=6, k=3, n=50)).sample(gens(3), torch.float64)
    W = {"W": torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))}
    analytic = inst.model.grad(W, inst.X, inst.y)["W"]
    auto = Model.grad(inst.model, W, inst.X, inst.y)["W"]  # the autograd default
    assert torch.allclose(analytic, auto, atol=1e-12)


def test_a_singular_least_squares_trial_does_not_disturb_the_others():
    # Trial 0 has n < d (singular normal equations) alongside trials that are well posed.
    inst = SingleNeuron(SingleNeuronParams(d=10, n=40)).sample(gens(3), torch.float64)
    inst.X[0, 5:] = 0.0
    inst.y[0, 5:] = 0.0
    W0 = {"W": torch.zeros(3, 10, 1, dtype=torch.float64)}
    res = AltMin().solve(inst, W0, ctx(3))
    err = relative_error(inst, res.weights)
    assert torch.isfinite(res.weights["W"]).all()
    assert err[1:].max() < 1e-8


def test_test_error_is_the_test_mse_for_teachers():
    from plugins.common.metrics import TestError, TestLoss

    inst = OneHidden(OneHiddenParams(d=6, k=2, n=20, n_test=50)).sample(gens(2), torch.float64)
    W = {"W": torch.zeros(2, 6, 2, dtype=torch.float64)}
    mse = inst.y_test.pow(2).mean(1)  # the zero network predicts 0
    assert torch.allclose(TestError().compute(inst, W, None), mse)
    assert torch.allclose(TestError().compute(inst, W, None), 2 * TestLoss().compute(inst, W, None))
    assert torch.allclose(
        TestError().compute(inst, inst.truth, None), torch.zeros(2, dtype=torch.float64)
    )


def test_gaussian_teacher_draws_truth_inputs_noise_test_in_that_order():
    """The shared teacher base: each trial's generator yields W*, X, noise, X_test in turn
    (the order every stored result's data depends on), and test rows share the training
    scale 1/sqrt(n)."""
    d, n, n_test, noise = 4, 9, 5, 0.1
    p = SingleNeuronParams(d=d, n=n, n_test=n_test, noise_std=noise, input_scale="inv_sqrt_n")
    inst = SingleNeuron(p).sample(gens(2, 7), torch.float64)
    for b, g in enumerate(gens(2, 7)):
        w = torch.randn(d, 1, generator=g, dtype=torch.float64)
        X = torch.randn(n, d, generator=g, dtype=torch.float64) / n**0.5
        eps = noise * torch.randn(n, generator=g, dtype=torch.float64)
        X_test = torch.randn(n_test, d, generator=g, dtype=torch.float64) / n**0.5
        assert torch.equal(inst.truth["W"][b], w)
        assert torch.equal(inst.X[b], X)
        assert torch.equal(inst.y[b], torch.relu(X @ w).squeeze(1) + eps)
        assert torch.equal(inst.X_test[b], X_test)
        assert torch.equal(inst.y_test[b], torch.relu(X_test @ w).squeeze(1))  # noiseless
    assert inst.extras == {"input_std": 1 / n**0.5, "noise_std": noise}


def test_gd_is_a_common_solver_available_without_zhang_gd():
    from harness.plugins import get_registry

    registry = get_registry(blocked=["zhang_gd"])
    assert registry.plugin_of("solver", "gd") == "common"
    assert registry.get("solver", "gd").supports("one_hidden")


def test_one_hidden_gradient_is_bitwise_the_masked_product():
    # The in-place mask 1{Z >= 0} r must give exactly the products (Z >= 0).to(dtype) * r,
    # signed zeros and non-finite residuals included (a diverging trial stays NaN).
    inst = OneHidden(OneHiddenParams(d=7, k=3, n=64)).sample(gens(4), torch.float64)
    W = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = inst.y.clone()
    y[1, :5] = math.inf
    y[2, 0] = math.nan
    W[3, :, 0] = 0.0  # Z = 0 exactly: the step is 1 there
    Z = inst.X @ W
    r = torch.relu(Z).sum(-1) - y
    mask = (Z >= 0).to(Z.dtype) * r.unsqueeze(-1)
    expected = inst.X.transpose(1, 2) @ mask / inst.X.shape[1]
    got = inst.model.grad({"W": W}, inst.X, y)["W"]
    assert torch.equal(got.isnan(), expected.isnan())
    assert torch.equal(got.nan_to_num(), expected.nan_to_num())
    assert torch.isfinite(got[[0, 3]]).all() and not torch.isfinite(got[1]).all()


class _RowMajorOneHidden(OneHiddenModel):
    column_major_inputs = False


def test_gd_on_column_major_inputs_ends_bitwise_where_row_major_inputs_end():
    # GD keeps one_hidden inputs column-major (X^T contiguous) for speed; trials stop at
    # different iterations, so the running batch is re-indexed on the way.
    assert column_major(torch.zeros(2, 5, 3)).mT.is_contiguous()
    inst = OneHidden(OneHiddenParams(d=6, k=3, n=90)).sample(gens(5), torch.float64)
    plain = OneHidden(OneHiddenParams(d=6, k=3, n=90)).sample(gens(5), torch.float64)
    plain.model = _RowMajorOneHidden(6, 3)
    W0 = {"W": 0.3 * torch.randn(5, 6, 3, generator=torch.Generator().manual_seed(2))}
    W0 = {"W": W0["W"].to(torch.float64)}
    solver = GD(GDParams(step_size=0.5, max_iter=400, tol=1e-4))
    a = solver.solve(inst, W0, ctx(5))
    b = solver.solve(plain, W0, ctx(5))
    assert torch.equal(a.weights["W"], b.weights["W"])
    assert torch.equal(a.iterations, b.iterations)
    assert len(set(a.iterations.tolist())) > 1
