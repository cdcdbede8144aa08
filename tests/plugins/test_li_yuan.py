"""Li & Yuan plugin: ResLink/Vanilla/3-Block models and teachers, SGD, population GD, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from harness import SolveContext
from plugins.li_yuan import population
from plugins.li_yuan.initializers import SkewStart
from plugins.li_yuan.metrics import (
    Distance,
    OnePointInner,
    PopulationLoss,
    PotentialG,
    RelativeTestError,
)
from plugins.li_yuan.population_gd import PopulationGD
from plugins.li_yuan.problems import Reslink, ThreeBlock, linear_spectrum, spectral_scaled_gaussian
from plugins.li_yuan.sgd import SGD, fresh_samples

DT = torch.float64


def _gens(B: int, offset: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(offset + b) for b in range(B)]


def _ctx(B: int, offset: int = 1000, record=None) -> SolveContext:
    return SolveContext(
        device=torch.device("cpu"), dtype=DT, generators=_gens(B, offset), recorder=record
    )


def _reslink(B: int = 3, **kw):
    params = {"d": 5, "n": 400, "n_test": 300, "w_star_norm": 0.3, **kw}
    return Reslink(Reslink.make_params(params)).sample(_gens(B), DT)


def _autograd(model, weights, X, y):
    leaves = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    model.loss(leaves, X, y).sum().backward()
    return {k: v.grad for k, v in leaves.items()}


@pytest.mark.parametrize("vanilla", [False, True])
def test_reslink_teacher_labels_truth_and_analytic_gradient(vanilla):
    inst = _reslink(vanilla=vanilla)
    model = inst.model
    # The truth reproduces the teacher's labels in the student's own weights.
    assert torch.allclose(model.forward(inst.truth, inst.X), inst.y)
    assert torch.allclose(model.forward(inst.truth, inst.X_test), inst.y_test)
    W_star = model.residual(inst.truth)
    assert torch.allclose(torch.linalg.matrix_norm(W_star, ord=2), torch.full((3,), 0.3, dtype=DT))
    W = {"W": 0.2 * torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=DT)}
    assert torch.allclose(
        model.grad(W, inst.X, inst.y)["W"], _autograd(model, W, inst.X, inst.y)["W"]
    )


def test_trial_data_do_not_depend_on_the_batch():
    problem = Reslink(Reslink.make_params({"d": 4, "n": 30, "n_test": 5}))
    both = problem.sample(_gens(2), DT)
    alone = problem.sample(_gens(1, offset=1), DT)
    assert torch.equal(both.X[1], alone.X[0]) and torch.equal(
        both.truth["W"][1], alone.truth["W"][0]
    )


def test_vanilla_distance_is_measured_on_v_minus_identity():
    inst = _reslink(vanilla=True)
    V0 = {"W": torch.zeros(3, 5, 5, dtype=DT)}  # the vanilla's actual weight
    # Footnote 3: the comparison uses V - I = -I, so ||(V - I) - W*||_F = ||I + W*||_F.
    expected = torch.linalg.matrix_norm(inst.truth["W"])
    assert torch.allclose(Distance().compute(inst, V0, None), expected)
    assert torch.allclose(Distance().compute(inst, inst.truth, None), torch.zeros(3, dtype=DT))
    spectral = Distance(Distance.make_params({"norm": "spectral"}))
    assert torch.allclose(
        spectral.compute(inst, V0, None), torch.linalg.matrix_norm(inst.truth["W"], ord=2)
    )


def test_fresh_samples_follow_the_teacher_and_their_gradient_is_the_population_gradient():
    inst = _reslink(B=2, d=4, input_scale=0.8)
    X, y = fresh_samples(inst, _gens(2, 50), 100_000)
    assert torch.allclose(inst.model.forward(inst.truth, X), y)
    # Variance of 400,000 N(0, 0.64) entries: relative standard error sqrt(2/4e5) = 0.22%.
    assert abs(float(X.var()) / 0.64 - 1) < 5 * math.sqrt(2 / X.numel())
    W = {"W": 0.3 * torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(3), dtype=DT)}
    cols = inst.model.columns(W)
    r = torch.relu(X @ cols).sum(-1) - y  # (B, n)
    per_sample = r[..., None, None] * X.unsqueeze(-1) * (X @ cols >= 0).to(DT).unsqueeze(-2)
    se = per_sample.std(1) / math.sqrt(X.shape[1])
    assert torch.allclose(per_sample.mean(1), inst.model.grad(W, X, y)["W"])
    assert torch.all((per_sample.mean(1) - population.grad(inst, W)).abs() <= 5 * se)


@pytest.mark.parametrize("sampling", ["dataset", "fresh"])
def test_sgd_from_random_init_reduces_distance_tenfold(sampling):
    inst = _reslink(B=3, d=5)
    W0 = {"W": spectral_scaled_gaussian(_gens(3, 77), 5, 0.3, DT)}  # ||W0||_2 = 0.3
    sgd = SGD(SGD.make_params(dict(step_size=0.2, batch_size=50, max_iter=300, sampling=sampling)))
    result = sgd.solve(inst, W0, _ctx(3))
    before = Distance().compute(inst, W0, None)
    after = Distance().compute(inst, result.weights, None)
    assert torch.all(after < before / 10), (before, after)
    assert torch.all(RelativeTestError().compute(inst, result.weights, None) < 1e-3)
    assert result.iterations.tolist() == [300] * 3


def test_sgd_keeps_trials_independent():
    inst = _reslink(B=3, d=4)
    W0 = {"W": spectral_scaled_gaussian(_gens(3, 7), 4, 0.3, DT)}
    W0["W"][1, 0, 0] = math.nan
    sgd = SGD(SGD.make_params(dict(step_size=0.1, batch_size=20, max_iter=20)))
    out = sgd.solve(inst, W0, _ctx(3)).weights["W"]
    alone = sgd.solve(inst.select([2]), {"W": W0["W"][2:]}, _ctx(1, offset=1002)).weights["W"]
    assert torch.isnan(out[1]).all() and torch.isfinite(out[[0, 2]]).all()
    assert torch.allclose(out[2], alone[0])


def test_population_gd_near_w_star_is_one_point_convex_as_theorem_3_3_says():
    """Theorem 3.3: small ||W||_2, ||W*||_2 and g <= 0.1 give <-grad L, W* - W> > 0.03 ||W* - W||^2;
    GD on the population loss then moves towards W* at every step."""
    d, B = 8, 3
    inst = _reslink(B=B, d=d, w_star_norm=0.1)
    W0 = {"W": inst.truth["W"] + spectral_scaled_gaussian(_gens(B, 9), d, 0.05, DT)}
    assert torch.all(PotentialG().compute(inst, W0, None).abs() <= 0.1)
    delta_metric = OnePointInner(OnePointInner.make_params({"normalize": True}))
    seen = []
    record = lambda t, w, extra: seen.append(
        (Distance().compute(inst, w, None), delta_metric.compute(inst, w, None))
    )
    result = PopulationGD(PopulationGD.make_params({"step_size": 0.2, "max_iter": 300})).solve(
        inst, W0, _ctx(B, record=record)
    )
    dist = torch.stack([s[0] for s in seen])  # (T, B)
    delta = torch.stack([s[1] for s in seen])
    assert torch.all(delta[:-1] > 0.03)
    assert torch.all(dist[1:] < dist[:-1])
    assert torch.all(dist[-1] < 1e-2 * dist[0])
    assert torch.all(PopulationLoss().compute(inst, result.weights, None) < 1e-6)


def test_population_gd_stops_at_tolerance_and_supports_one_hidden():
    from plugins.common.problems import OneHidden

    inst = OneHidden(OneHidden.make_params({"d": 6, "k": 2, "n": 10})).sample(_gens(2), DT)
    inst.extras["input_std"] = 1.0
    W0 = {
        "W": inst.truth["W"]
        + 0.05 * torch.randn(2, 6, 2, generator=torch.Generator().manual_seed(4), dtype=DT)
    }
    solver = PopulationGD(
        PopulationGD.make_params({"step_size": 1.0, "max_iter": 2000, "tol": 1e-9})
    )
    result = solver.solve(inst, W0, _ctx(2))
    assert torch.all(result.iterations < 2000)
    assert torch.all(population.grad(inst, result.weights).flatten(1).norm(dim=1) <= 1e-9)
    assert torch.allclose(result.weights["W"], inst.truth["W"], atol=1e-7)


def test_population_loss_on_the_one_hidden_teacher_uses_its_input_distribution():
    from plugins.common.problems import OneHidden

    params = {"d": 4, "k": 2, "n": 10, "n_test": 40000, "input_scale": "inv_sqrt_n"}
    inst = OneHidden(OneHidden.make_params(params)).sample(_gens(2), DT)
    assert inst.extras["input_std"] == pytest.approx(10**-0.5)
    assert PopulationLoss().applies(inst)
    assert torch.allclose(
        PopulationLoss().compute(inst, inst.truth, None), torch.zeros(2, dtype=DT)
    )
    # At W = 0 the loss is E[f*(x)^2] / 2 for x ~ N(0, I/n): 40,000 test samples give it to ~2%.
    zero = {"W": torch.zeros(2, 4, 2, dtype=DT)}
    mc = 0.5 * inst.y_test.pow(2).mean(1)
    assert torch.allclose(PopulationLoss().compute(inst, zero, None), mc, rtol=0.05)


def test_potential_g_and_population_loss_values():
    inst = _reslink(B=2, d=6)
    zero = {"W": torch.zeros(2, 6, 6, dtype=DT)}
    # Definition 2.2 at W = 0: g = sum_i ||e_i + w*_i|| - d.
    expected = (inst.truth["W"] + torch.eye(6, dtype=DT)).norm(dim=-2).sum(-1) - 6
    assert torch.allclose(PotentialG().compute(inst, zero, None), expected)
    assert torch.allclose(
        PopulationLoss().compute(inst, inst.truth, None), torch.zeros(2, dtype=DT), atol=1e-12
    )
    # The closed-form loss against the test-set mean of 1/2 (f - f*)^2 (n_test = 300: loose, 20%).
    mc = 0.5 * (inst.model.forward(zero, inst.X_test) - inst.y_test).pow(2).mean(1)
    assert torch.allclose(PopulationLoss().compute(inst, zero, None), mc, rtol=0.2)


def test_three_block_teacher_is_fixed_and_sgd_fits_it():
    problem = ThreeBlock(ThreeBlock.make_params({"d": 6, "width": 8, "n": 600, "n_test": 400}))
    inst = problem.sample(_gens(2), DT)
    teacher = inst.extras["teacher"]
    # Frozen statistics: the teacher's output on a sample does not depend on the rest of the batch.
    assert torch.allclose(teacher.forward(inst.truth, inst.X_test[:, :7]), inst.y_test[:, :7])
    # With batch statistics of the training set, the student at the teacher's weights fits exactly.
    assert torch.allclose(inst.model.forward(inst.truth, inst.X), inst.y)
    W0 = {
        k: 0.3 * torch.randn(2, *s, generator=torch.Generator().manual_seed(5), dtype=DT)
        for k, s in inst.model.param_shapes().items()
    }
    before = RelativeTestError().compute(inst, W0, None)
    sgd = SGD(SGD.make_params(dict(step_size=0.01, batch_size=100, max_iter=300)))
    after = RelativeTestError().compute(inst, sgd.solve(inst, W0, _ctx(2)).weights, None)
    assert torch.all(after < 0.5 * before), (before, after)


def test_components_are_registered_with_their_families():
    from harness.plugins import get_registry

    registry = get_registry()
    assert registry.plugin_of("solver", "sgd") == "li_yuan"
    assert registry.get("solver", "population_gd").supports("one_hidden")
    assert not registry.get("solver", "population_gd").supports("three_block")
    for kind, name in [("problem", "reslink"), ("problem", "three_block"), ("metric", "distance")]:
        assert registry.get(kind, name).__doc__


# ---------------------------------------------------------------- Sec. 5.2 / 5.3 settings


def test_flat_spectrum_teacher_has_both_of_the_papers_norms():
    inst = _reslink(B=2, d=100, n=10, n_test=0, w_star_norm=0.6, w_star_fro=5.7)
    W = inst.truth["W"]
    torch.testing.assert_close(torch.linalg.matrix_norm(W, ord=2), torch.full((2,), 0.6, dtype=DT))
    torch.testing.assert_close(W.flatten(1).norm(dim=1), torch.full((2,), 5.7, dtype=DT))
    s = torch.linalg.svdvals(W[0])
    assert s.min() > 0.5  # nearly flat: 0.6 down to 0.54
    assert not torch.allclose(W[0], W[1])  # each trial its own W*
    # a Gaussian W* of the same spectral norm has about half that Frobenius norm
    gauss = _reslink(B=1, d=100, n=10, n_test=0, w_star_norm=0.6).truth["W"]
    assert gauss.norm() < 4.0
    # both ends of the reachable range are exact, outside it is an error naming the key
    for fro in (0.6 * math.sqrt(sum((i / 99) ** 2 for i in range(100))), 6.0):
        assert sum(x * x for x in linear_spectrum(100, 0.6, fro)) == pytest.approx(fro**2)
    with pytest.raises(Exception, match="w_star_fro"):
        Reslink.make_params({"d": 100, "w_star_norm": 0.6, "w_star_fro": 6.5})


def test_skew_start_is_the_constructed_phase_one_start():
    d = 1500
    inst = Reslink(Reslink.make_params({"d": d, "n": 10, "n_test": 0, "w_star_norm": 0.0})).sample(
        _gens(1), DT
    )
    W = SkewStart(SkewStart.make_params({})).initialize(inst, _gens(1, 7), DT)
    W0 = W["W"][0]
    K = (W0 + 0.0125 * torch.eye(d, dtype=DT)) / 0.129
    torch.testing.assert_close(K, -K.T)  # skew-symmetric
    assert (K @ torch.ones(d, dtype=DT)).abs().max() < 1e-10  # K 1 = 0
    s = torch.linalg.svdvals(K)
    assert (s[:-2] - 1).abs().max() < 1e-10 and s[-2:].max() < 1e-10  # orthogonal off 1's span
    assert abs(torch.linalg.matrix_norm(W0, ord=2).item() - 0.1296) < 1e-3  # paper: ~0.15
    assert abs(W0.norm().item() - 5.02) < 0.01  # paper: ~5
    # the negative gradient points away from W* = 0 at the start (Phase I), g ~ 6.2
    inner = OnePointInner(OnePointInner.make_params({})).compute(inst, W, None)
    assert inner.item() / math.pi == pytest.approx(-8.95, abs=0.1)
    g = PotentialG(PotentialG.make_params({})).compute(inst, W, None)
    assert g.item() == pytest.approx(6.18, abs=0.05)


# --- the speed-ups of issue 17 (target 4): each equals the computation it replaced ---


def _reference_one_point_inner(inst, W):
    """The formula the metric used before: <-grad L(W), W* - W> from the full gradient."""
    delta = inst.truth["W"] - W["W"]
    return -(population.grad(inst, W) * delta).sum((-1, -2))


@pytest.mark.parametrize(
    ("vanilla", "w_star_norm"), [(False, 0.3), (True, 0.3), (False, 0.0), (True, 0.0)]
)
def test_one_point_inner_from_grams_equals_the_gradient_inner_product(vanilla, w_star_norm):
    # W* = 0 takes the diagonal-teacher path (one Gram product), W* != 0 the general one.
    inst = _reslink(B=3, d=9, vanilla=vanilla, w_star_norm=w_star_norm, input_scale=1.7)
    eye = torch.eye(9, dtype=DT) if vanilla else 0
    g = torch.Generator().manual_seed(7)
    for scale in (0.05, 0.5, 3.0):  # near W*, moderate, and columns pointing anywhere
        W = {"W": scale * torch.randn(3, 9, 9, generator=g, dtype=DT) + eye}
        ref = _reference_one_point_inner(inst, W)
        fast = population.one_point_inner(inst, W)
        assert torch.allclose(fast, ref, rtol=1e-11, atol=1e-11 * ref.abs().max().item())
    # At W* both are zero (the gradient vanishes); a zero column of the student.
    assert torch.allclose(population.one_point_inner(inst, inst.truth), torch.zeros(3, dtype=DT))
    W = {"W": inst.truth["W"].clone()}
    # Column 2 of the student is zero: w_2 = -e_2 (ResLink) or v_2 = 0 (Vanilla).
    W["W"][:, :, 2] = 0.0 if vanilla else -torch.eye(9, dtype=DT)[:, 2]
    assert torch.allclose(
        population.one_point_inner(inst, W), _reference_one_point_inner(inst, W), atol=1e-12
    )


def test_one_point_inner_metric_scale_and_normalization_unchanged():
    inst = _reslink(B=2, d=6)
    W = {"W": 0.4 * torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(3), dtype=DT)}
    ref = 2 * math.pi * _reference_one_point_inner(inst, W)  # Lemma 2.1's scale
    assert torch.allclose(OnePointInner().compute(inst, W, None), ref, rtol=1e-12)
    normalized = OnePointInner(OnePointInner.make_params({"normalize": True}))
    sq = (inst.truth["W"] - W["W"]).pow(2).sum((-1, -2))
    assert torch.allclose(normalized.compute(inst, W, None), ref / sq, rtol=1e-12)


def test_one_point_inner_refuses_a_teacher_of_another_width():
    from harness import Instance
    from plugins.common.models import OneHiddenModel

    inst = Instance(
        X=torch.zeros(1, 1, 4, dtype=DT), y=torch.zeros(1, 1, dtype=DT),
        model=OneHiddenModel(4, 3), truth={"W": torch.randn(1, 4, 2, dtype=DT)},
        extras={"input_std": 1.0},
    )  # fmt: skip
    with pytest.raises(ValueError, match="one shape"):
        population.one_point_inner(inst, {"W": torch.randn(1, 4, 3, dtype=DT)})


def test_identity_teacher_labels_are_bit_identical_to_the_product():
    # W* = 0: forward_at skips X @ I, which must not change a single label bit.
    inst = _reslink(B=2, d=40, n=50, w_star_norm=0.0)
    X, y = fresh_samples(inst, _gens(2, 5), 300)
    assert torch.equal(y, inst.model.forward(inst.truth, X))
    assert torch.equal(y, (X @ (inst.truth["W"] + torch.eye(40, dtype=DT))).clamp_min(0).sum(-1))
    # A non-identity teacher keeps the product.
    inst = _reslink(B=2, d=40, n=50, w_star_norm=0.2)
    X, y = fresh_samples(inst, _gens(2, 5), 300)
    assert torch.equal(y, inst.model.forward(inst.truth, X))


def test_zero_spectral_norm_teacher_skips_the_svd_but_draws_the_same_stream():
    gens = _gens(2, 11)
    W = spectral_scaled_gaussian(gens, 6, 0.0, DT)
    assert torch.equal(W, torch.zeros_like(W))
    # The generators advanced exactly as with a norm > 0 (the data drawn after are the same).
    again = _gens(2, 11)
    spectral_scaled_gaussian(again, 6, 0.5, DT)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(gens, again))


def test_three_block_training_labels_equal_the_frozen_teacher_forward():
    problem = ThreeBlock(ThreeBlock.make_params({"d": 7, "width": 13, "n": 500, "n_test": 20}))
    inst = problem.sample(_gens(2, 3), DT)
    assert torch.equal(inst.y, inst.extras["teacher"].forward(inst.truth, inst.X))
