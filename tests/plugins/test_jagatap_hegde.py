"""Jagatap & Hegde: skip and two-hidden-layer teachers, identity init, AltMin, AltMin2."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import Instance, SolveContext, load_results
from harness.run import execute
from plugins.common.initializers import Perturbed
from plugins.common.metrics import FunctionError, relative_error
from plugins.common.models import relu
from plugins.jagatap_hegde.altmin import AltMin
from plugins.jagatap_hegde.altmin2 import AltMin2
from plugins.jagatap_hegde.initializers import EffectiveGaussian, Identity
from plugins.jagatap_hegde.problems import SkipOneHidden, TwoHidden, dead_second_layer_units

F64 = torch.float64


def _gens(B: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + b) for b in range(B)]


def _ctx(B: int, recorder=None) -> SolveContext:
    return SolveContext(
        device=torch.device("cpu"), dtype=F64, generators=_gens(B, 99), recorder=recorder
    )


def _skip(B: int, seed: int = 0, **params) -> Instance:
    return SkipOneHidden(SkipOneHidden.make_params(params)).sample(_gens(B, seed), F64)


def _two(B: int, seed: int = 0, **params) -> Instance:
    return TwoHidden(TwoHidden.make_params(params)).sample(_gens(B, seed), F64)


# ---------------------------------------------------------------------------
# Teachers
# ---------------------------------------------------------------------------


def test_skip_teacher_matches_eq_7():
    B, d, k, n, gamma = 6, 12, 4, 300, 3.0
    inst = _skip(B, d=d, k=k, n=n, gamma=gamma)
    S = inst.model.S
    assert S.shape == (B, k)
    assert all(len(set(s.tolist())) == k for s in S)  # k distinct support indices
    I_S = torch.zeros(B, d, k, dtype=F64)
    for b in range(B):
        for q in range(k):
            I_S[b, S[b, q], q] = 1.0
    # y = sum_q relu(x^T (w*_q + e_{S_q})), inputs N(0, 1/n)
    expected = relu(inst.X @ (inst.truth["W"] + I_S)).sum(-1)
    torch.testing.assert_close(inst.y, expected)
    # W* entries gamma N(0, 1/n): the sample variance of B d k = 288 entries has a
    # relative standard error sqrt(2/288) = 0.083; allow 4 of them.
    var = inst.truth["W"].pow(2).mean().item()
    assert abs(var / (gamma**2 / n) - 1) < 4 * math.sqrt(2 / (B * d * k))
    x_var = inst.X.pow(2).mean().item()
    assert abs(x_var * n - 1) < 4 * math.sqrt(2 / inst.X.numel())


def test_skip_param_error_is_on_effective_weights():
    inst = _skip(4, d=10, k=3, n=200)
    W0 = Identity().initialize(inst, _gens(4), F64)
    assert (W0["W"] == 0).all()
    eff_star = inst.truth["W"] + inst.model.identity_part(F64)
    # from the identity start the error is ||W*|| / ||W* + I_S||, eq. (8), not 1
    expected = inst.truth["W"].flatten(1).norm(dim=1) / eff_star.flatten(1).norm(dim=1)
    torch.testing.assert_close(relative_error(inst, W0), expected)
    # a column permutation of the effective weights is the same network
    perm = torch.tensor([2, 0, 1])
    shuffled = {"W": eff_star[:, :, perm] - inst.model.identity_part(F64)}
    assert relative_error(inst, shuffled).max() < 1e-12


def test_two_hidden_teacher_and_its_symmetries():
    B, d, k, ko, n = 3, 8, 3, 2, 100
    inst = _two(B, d=d, k=k, k_out=ko, n=n)
    W1, W2 = inst.truth["W1"], inst.truth["W2"]
    torch.testing.assert_close(inst.y, relu(relu(inst.X @ W1) @ W2).sum(-1))
    # Rescale first-layer units by c > 0 (W2 rows by 1/c), permute both layers: same
    # function, and param_error sees through it.
    c = torch.tensor([0.5, 2.0, 3.0], dtype=F64)
    p1, p2 = torch.tensor([2, 0, 1]), torch.tensor([1, 0])
    W1g = (W1 * c)[:, :, p1]
    W2g = (W2 / c.unsqueeze(1))[:, p1][:, :, p2]
    same = {"W1": W1g, "W2": W2g}
    torch.testing.assert_close(inst.model.forward(same, inst.X), inst.y)
    assert relative_error(inst, same).max() < 1e-12
    # a genuinely different network is not hidden by the alignment
    other = {"W1": W1 + 0.1 * torch.randn(W1.shape, dtype=F64), "W2": W2}
    assert relative_error(inst, other).min() > 0.01


def test_two_hidden_redraws_teachers_with_a_dead_unit_unless_told_to_keep_them():
    B = 40  # at k = 3, k_out = 2 about 23% of first draws have a dead unit
    kept = _two(B, k=3, k_out=2, n=50, dead_units="keep")
    redrawn = _two(B, k=3, k_out=2, n=50)  # the default
    dead_kept = dead_second_layer_units(kept.truth["W2"]).any(-1)
    assert 2 <= int(dead_kept.sum()) < B
    assert not dead_second_layer_units(redrawn.truth["W2"]).any()
    # a dead unit really is identically zero: its pre-activation is never positive
    b = int(dead_kept.nonzero()[0])
    h = relu(relu(kept.X[b] @ kept.truth["W1"][b]) @ kept.truth["W2"][b])
    q = int(dead_second_layer_units(kept.truth["W2"][b]).nonzero()[0])
    assert torch.all(h[:, q] == 0)
    # trials without a dead unit keep their first draw, so their data are unchanged
    alive = int((~dead_kept).nonzero()[0])
    torch.testing.assert_close(redrawn.truth["W1"][alive], kept.truth["W1"][alive])
    torch.testing.assert_close(redrawn.X[alive], kept.X[alive])


def test_function_error_sees_a_recovered_function_whatever_its_weights():
    inst = _two(30, k=3, k_out=2, n=50, n_test=200, dead_units="keep")
    W1, W2 = inst.truth["W1"], inst.truth["W2"]
    dead = dead_second_layer_units(W2).any(-1)
    b = int(dead.nonzero()[0])
    # change the weights into the dead unit's column: same function, other parameters
    q = int(dead_second_layer_units(W2[b]).nonzero()[0])
    W2x = W2.clone()
    W2x[b, :, q] = -5.0 * torch.rand(W2.shape[1], dtype=F64)
    other = {"W1": W1, "W2": W2x}
    fe = FunctionError(FunctionError.make_params({}))
    err = fe.compute(inst, other, None)
    assert err[b] < 1e-12 and relative_error(inst, other)[b] > 0.01
    assert err.max() < 1e-12
    # a genuinely different network has a function error of its size
    far = {"W1": W1 + 0.3 * torch.randn(W1.shape, dtype=F64), "W2": W2}
    assert fe.compute(inst, far, None).min() > 0.01
    # without a test split the metric does not apply
    assert not fe.applies(_two(2, n=50))


# ---------------------------------------------------------------------------
# Initializers
# ---------------------------------------------------------------------------


def test_effective_gaussian_starts_the_effective_weights_near_zero():
    inst = _skip(3, d=10, k=4, n=100)
    W0 = EffectiveGaussian(EffectiveGaussian.make_params({"scale": 1e-4})).initialize(
        inst, _gens(3), F64
    )
    eff = inst.model.effective(W0)
    assert eff.abs().max() < 1e-3 and eff.abs().max() > 0


@pytest.mark.parametrize("norm", ["fro", "spectral"])
def test_perturbed_is_exact_per_layer_in_either_norm(norm):
    inst = _two(4, d=20, k=3, k_out=2, n=50)
    init = Perturbed(Perturbed.make_params({"relative_distance": 0.2, "norm": norm}))
    W0 = init.initialize(inst, _gens(4), F64)
    for key in ("W1", "W2"):
        E, W = W0[key] - inst.truth[key], inst.truth[key]
        if norm == "spectral":
            ratio = torch.linalg.matrix_norm(E, ord=2) / torch.linalg.matrix_norm(W, ord=2)
        else:
            ratio = E.flatten(1).norm(dim=1) / W.flatten(1).norm(dim=1)
        torch.testing.assert_close(ratio, torch.full((4,), 0.2, dtype=F64))


def test_perturbed_on_skip_is_relative_to_the_effective_weights():
    inst = _skip(4, d=10, k=3, n=100)
    W0 = Perturbed(Perturbed.make_params({"relative_distance": 0.3})).initialize(
        inst, _gens(4), F64
    )
    # param_error of the start is exactly 0.3 unless matching finds a closer permutation
    assert torch.allclose(relative_error(inst, W0), torch.full((4,), 0.3, dtype=F64))


# ---------------------------------------------------------------------------
# AltMin on the skip model, AltMin2
# ---------------------------------------------------------------------------


def test_altmin_from_the_truth_stays_there_on_skip():
    # With the true activation patterns, the least squares on the effective weights
    # has the truth as its exact solution: one step from W* must return W*.
    inst = _skip(3, d=10, k=3, n=100)
    res = AltMin(AltMin.make_params({"max_iter": 1})).solve(
        inst, {"W": inst.truth["W"].clone()}, _ctx(3)
    )
    torch.testing.assert_close(res.weights["W"], inst.truth["W"])


def test_altmin_with_identity_init_recovers_the_skip_model():
    # Fig. 3b setting (d = 20, gamma = 3) at k = 5, n = 400: measured 10/10 trials
    # recovered to ~1e-14 in 5-8 iterations (and 10/10 at n = 300).
    B = 6
    inst = _skip(B, seed=1, d=20, k=5, n=400, gamma=3.0)
    W0 = Identity().initialize(inst, _gens(B), F64)
    assert relative_error(inst, W0).min() > 0.3  # the start is far from W* + I_S
    res = AltMin().solve(inst, W0, _ctx(B))
    assert relative_error(inst, res.weights).max() < 1e-8
    assert res.iterations.max() <= 20


def test_altmin2_from_the_truth_stays_there():
    inst = _two(3, d=10, k=3, k_out=2, n=200)
    truth = {k: v.clone() for k, v in inst.truth.items()}
    res = AltMin2(AltMin2.make_params({"max_iter": 1})).solve(inst, truth, _ctx(3))
    torch.testing.assert_close(res.weights["W1"], inst.truth["W1"])
    torch.testing.assert_close(res.weights["W2"], inst.truth["W2"])


def test_altmin2_drives_two_hidden_training_loss_to_zero():
    # Fig. 4 setting: d = 20, k = 3, k_out = 2, init W* + E with ||E||_2 = 0.2 ||W*||_2
    # per layer. Measured over 40 trials (200 iterations): the loss ends below 1e-8 in
    # 88% of trials at n = 1000 and 95% at n = 2000, at ~1e-22 where it does. The rest
    # stall near 1e-6: mostly a second-layer unit the perturbation leaves active on no
    # sample, which carries no information to either least-squares step.
    B, n = 8, 1000
    inst = _two(B, seed=2, d=20, k=3, k_out=2, n=n)
    init = Perturbed(Perturbed.make_params({"relative_distance": 0.2, "norm": "spectral"}))
    W0 = init.initialize(inst, _gens(B), F64)
    start = inst.model.loss(W0, inst.X, inst.y)
    res = AltMin2(AltMin2.make_params({"max_iter": 200})).solve(inst, W0, _ctx(B))
    loss = inst.model.loss(res.weights, inst.X, inst.y)
    assert (loss < 1e-8).sum() >= 6, loss
    assert (loss <= start * (1 + 1e-9)).all()  # no trial ends worse than it started
    # most trials also recover the weights up to the network's symmetries
    assert (relative_error(inst, res.weights) < 1e-6).sum() >= B // 2


def test_altmin2_trials_are_independent():
    B = 4
    inst = _two(B, seed=3, d=10, k=3, k_out=2, n=300)
    init = Perturbed(Perturbed.make_params({"relative_distance": 0.2, "norm": "spectral"}))
    W0 = init.initialize(inst, _gens(B), F64)
    solver = AltMin2(AltMin2.make_params({"max_iter": 10}))
    full = solver.solve(inst, W0, _ctx(B)).weights
    bad = {k: v.clone() for k, v in W0.items()}
    bad["W1"][0] = float("nan")
    poisoned = solver.solve(inst, bad, _ctx(B)).weights
    for key in ("W1", "W2"):
        torch.testing.assert_close(poisoned[key][1:], full[key][1:])
    assert not torch.isfinite(poisoned["W1"][0]).all()


def test_altmin_nan_trial_leaves_the_others_alone():
    # LAPACK's least squares aborts a whole batched call on a NaN; the solver must
    # keep a NaN to the trial that has it.
    B = 3
    solver = AltMin(AltMin.make_params({"max_iter": 5}))
    for n, exact in ((80, True), (25, False)):
        inst = _skip(B, seed=4, d=10, k=3, n=n)
        W0 = Identity().initialize(inst, _gens(B), F64)
        clean = solver.solve(inst, W0, _ctx(B)).weights["W"]
        inst.X = inst.X.clone()
        inst.X[0, 0, 0] = float("nan")  # NaN inside the least-squares matrix of trial 0
        dirty = solver.solve(inst, W0, _ctx(B)).weights["W"]
        assert not torch.isfinite(dirty[0]).all()
        assert torch.isfinite(dirty[1:]).all()
        if exact:  # well-posed (n >= dk): the other trials' numbers are unchanged
            torch.testing.assert_close(dirty[1:], clean[1:])
        # with n < dk every solve takes the minimum-norm fallback, whose iterates
        # amplify last-bit differences of batched matmuls: only finiteness is asked


def test_jagatap_small_smoke_profile_runs_and_its_claims_hold(tmp_path):
    suite = Path(__file__).resolve().parents[2] / "suites" / "jagatap-small.toml"
    report = execute(suite, profile="smoke", executor="serial", results=tmp_path)
    # 9 compatible cells x 4 trials: altmin on 2 dense + 6 skip cells, altmin2 on 1
    assert report.failed_trials == 0 and report.trials_run == 36
    outcomes = [o for o in report.outcomes if o.expectation.applies("smoke")]
    assert len(outcomes) >= 4 and all(o.held for o in outcomes), [o.describe() for o in outcomes]
    runs = load_results(report.results_dir)
    assert set(runs["problem"]) == {"one_hidden", "skip_one_hidden", "two_hidden"}
    assert set(runs.loc[runs["problem"] == "two_hidden", "solver"]) == {"altmin2"}


def test_altmin_single_neuron_declares_batch_invariance_only_on_the_lapack_path():
    p = AltMin.Params()
    assert AltMin.batch_invariant(p, {"d": 10}, dtype="float64", device="cpu")
    assert not AltMin.batch_invariant(p, {"d": 10, "k": 3}, dtype="float64", device="cpu")
    assert not AltMin.batch_invariant(p, {"d": 10}, dtype="float32", device="cpu")
    assert not AltMin.batch_invariant(p, {"d": 10}, dtype="float64", device="cuda")


def test_altmin_cell_split_across_workers_is_bitwise_identical_to_one_unit(tmp_path):
    # n = 1.5 d to 2 d: below and at the transition, where AltMin's sign test reads
    # rounding noise, so any batch-dependent rounding would show.
    suite = tmp_path / "split.toml"
    suite.write_text(
        '[suite]\nname = "split"\ntrials = 12\nseed = 5\n'
        '[[problems]]\nname = "single_neuron"\nd = 40\nn = [60, 80]\n'
        'input_scale = "inv_sqrt_n"\n'
        '[[initializers]]\nname = "gaussian"\nscale = 0.1\n'
        '[[solvers]]\nname = "altmin"\nmax_iter = 100\n'
        '[metrics]\nnames = ["param_error", "train_loss"]\n'
    )
    split = execute(suite, results=tmp_path / "a", workers=4)
    whole = execute(suite, results=tmp_path / "b", executor="serial")
    assert (split.units_run, whole.units_run) == (4, 2)
    cols = ["cell_id", "trial", "seed", "iterations", "metric.param_error", "metric.train_loss"]

    def rows(report):
        return report.runs.sort_values(["cell_id", "trial"])[cols].reset_index(drop=True)

    assert rows(split).equals(rows(whole))


def test_neuron_lapack_calls_scipys_lapack_without_importing_scipy_linalg():
    # scipy.linalg costs ~0.4 s to import; the f2py modules alone are the same functions.
    code = (
        "import sys\n"
        "import plugins.jagatap_hegde.neuron_lapack as m\n"
        "assert 'scipy.linalg' not in sys.modules, 'scipy.linalg imported'\n"
        "import scipy.linalg\n"
        "assert scipy.linalg.lapack.dposv is m.lapack.dposv\n"
        "assert scipy.linalg.lapack._flapack is m.lapack\n"
        "assert scipy.linalg.blas.dsyrk is m.dsyrk\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
