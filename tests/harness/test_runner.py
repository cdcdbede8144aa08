"""Batched solvers give the same answers as one trial at a time.

Covers the fast kernels of plugins/common/linalg.py (primal Cholesky, dual minimum-norm,
SVD fallback) against LAPACK's minimum-norm least squares, AltMin and GD batched against
B = 1 runs on trials that succeed, fail, cycle, diverge or hit a singular system
(n < d), AltMin's exact cycle jump against plain iteration, AltMin against a NumPy
reference loop (np.linalg.lstsq per iteration), and the runner end to end (one cell of
all trials vs. one unit per trial).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import SolveContext, load_results, run_suite
from plugins.common.gd import GD, GDParams
from plugins.common.linalg import MaskedLeastSquares, design, lstsq_min_norm
from plugins.common.models import OneHiddenModel
from plugins.common.problems import SingleNeuron, SingleNeuronParams
from plugins.jagatap_hegde.altmin import AltMin, AltMinParams
from plugins.jagatap_hegde.neuron_lapack import altmin_lstsq_reference

F64 = torch.float64
FIXTURE_PLUGINS = Path(__file__).parents[1] / "fixture_plugins"


def gens(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def ctx(B: int, record=None) -> SolveContext:
    return SolveContext(
        device=torch.device("cpu"), dtype=F64, generators=gens(range(B)), recorder=record
    )


def neuron(d: int, n: int, seeds) -> tuple:
    inst = SingleNeuron(SingleNeuronParams(d=d, n=n, input_scale="inv_sqrt_n")).sample(
        gens(seeds), F64
    )
    return inst, {"W": torch.zeros(len(seeds), d, 1, dtype=F64)}


def rel_err(W: torch.Tensor, W_star: torch.Tensor) -> torch.Tensor:
    return (W - W_star).flatten(1).norm(dim=1) / W_star.flatten(1).norm(dim=1)


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize(
    "n, d, k",
    [(120, 30, 1), (40, 30, 1), (25, 30, 1), (200, 8, 3), (20, 8, 3), (30, 8, 3)],
)
def test_masked_least_squares_is_lapack_min_norm(n, d, k):
    """Every path (primal, dual, fallback) equals gelsd's minimum-norm solution per trial."""
    g = torch.Generator().manual_seed(n * 100 + d + k)
    B = 16
    X = torch.randn(B, n, d, generator=g, dtype=F64)
    y = torch.randn(B, n, generator=g, dtype=F64)
    # per-trial activation rates from 5% to 95%, so trials take different paths
    rate = torch.linspace(0.05, 0.95, B, dtype=F64).reshape(B, 1, 1)
    P = torch.rand(B, n, k, generator=g, dtype=F64) < rate
    ls = MaskedLeastSquares(X, y)
    W = ls.solve(P)
    for i in range(B):
        ref = lstsq_min_norm(design(X[i : i + 1], P[i : i + 1].to(F64)), y[i : i + 1])
        ref = ref.reshape(k, d).T
        assert torch.allclose(W[i], ref, rtol=1e-8, atol=1e-8 * ref.abs().max()), i
    assert sum(ls.stats.values()) == B


def test_kernel_paths_are_all_exercised():
    """The cases above really reach the primal, the dual and the SVD fallback."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(3, 30, 8, generator=g, dtype=F64)
    y = torch.randn(3, 30, generator=g, dtype=F64)
    P = torch.zeros(3, 30, 2, dtype=torch.bool)
    P[0] = True  # every unit on every row: B = [X X] has rank d < dk -> fallback
    P[1, :6, 0] = True  # 6 + 4 rows <= dk = 16, each unit <= d: dual
    P[1, 10:14, 1] = True
    P[2, :20, 0] = True  # 20 and 18 rows per unit, 30 >= dk: primal
    P[2, 12:, 1] = True
    ls = MaskedLeastSquares(X, y)
    W = ls.solve(P)
    assert ls.stats == {"primal": 1, "dual": 1, "fallback": 1}
    for i in range(3):
        ref = lstsq_min_norm(design(X[i : i + 1], P[i : i + 1].to(F64)), y[i : i + 1])
        assert torch.allclose(W[i], ref.reshape(2, 8).T, atol=1e-9)


def test_non_finite_trial_leaves_the_others_alone():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(4, 50, 10, generator=g, dtype=F64)
    y = torch.randn(4, 50, generator=g, dtype=F64)
    P = torch.rand(4, 50, 1, generator=g) < 0.6
    clean = MaskedLeastSquares(X, y).solve(P)
    X2 = X.clone()
    X2[2, 3, 4] = torch.nan
    dirty = MaskedLeastSquares(X2, y).solve(P)
    assert torch.isnan(dirty[2]).all()
    keep = [0, 1, 3]
    assert torch.equal(dirty[keep], clean[keep])


# --------------------------------------------------------------------------- AltMin


# (d, n): recovery (n = 4d), the phase transition (wandering and cycling trials), and
# a singular system from the first iteration on (n < d).
CASES = [(20, 80), (20, 36), (24, 30), (30, 12)]


@pytest.mark.parametrize("d, n", CASES)
def test_altmin_batched_equals_one_trial_at_a_time(d, n):
    seeds = range(12)
    inst, w0 = neuron(d, n, seeds)
    batched = AltMin(AltMinParams(max_iter=60)).solve(inst, w0, ctx(12))
    e_b = rel_err(batched.weights["W"], inst.truth["W"])
    for i in range(12):
        one, w1 = inst.select([i]), {"W": w0["W"][i : i + 1]}
        alone = AltMin(AltMinParams(max_iter=60)).solve(one, w1, ctx(1))
        e_1 = rel_err(alone.weights["W"], one.truth["W"])[0]
        assert int(alone.iterations[0]) == int(batched.iterations[i])
        assert bool(e_1 < 0.01) == bool(e_b[i] < 0.01)
        assert abs(float(e_1 - e_b[i])) <= 1e-9 + 1e-7 * float(e_1)
        assert torch.allclose(alone.weights["W"][0], batched.weights["W"][i], atol=1e-9)


def test_altmin_cases_cover_success_failure_and_cycles():
    """The grid above is not vacuous: it has successes, failures and exact cycles."""
    outcomes = []
    for d, n in CASES:
        inst, w0 = neuron(d, n, range(12))
        r = AltMin(AltMinParams(max_iter=60)).solve(inst, w0, ctx(12))
        outcomes.append((rel_err(r.weights["W"], inst.truth["W"]) < 0.01).float().mean())
    assert outcomes[0] == 1.0 and outcomes[-1] == 0.0
    assert 0.0 < outcomes[1] < 1.0 or 0.0 < outcomes[2] < 1.0


@pytest.mark.parametrize("d, n", [(12, 12), (20, 30), (24, 30)])
def test_altmin_cycle_jump_is_exact(d, n):
    """Jumping to the end of a detected cycle gives what iterating to max_iter gives.

    A recorder turns the jump off (traces must show every iteration), which gives the
    plain iteration to compare with.
    """
    inst, w0 = neuron(d, n, range(16))
    solver = AltMin(AltMinParams(max_iter=70))
    jumped = solver.solve(inst, w0, ctx(16))
    plain = solver.solve(inst, w0, ctx(16, record=lambda *a: None))
    assert torch.equal(jumped.iterations, plain.iterations)
    assert torch.equal(jumped.weights["W"], plain.weights["W"])
    assert int((plain.iterations == 70).sum()) >= 1  # some trials run to max_iter


@pytest.mark.parametrize("d, n", [(20, 80), (20, 50), (30, 12)])
def test_altmin_agrees_with_a_numpy_lstsq_loop(d, n):
    """Same success decisions as the plain NumPy loop; same errors and iteration counts
    where the least squares is overdetermined (n = 4d). Below that the iterates
    interpolate y, the rows with y_i = 0 get x_i^T w at rounding level, and the sign
    test 1[x_i^T w >= 0] follows each library's rounding: only the outcome is shared."""
    inst, w0 = neuron(d, n, range(10))
    r = AltMin(AltMinParams(max_iter=40)).solve(inst, w0, ctx(10))
    e = rel_err(r.weights["W"], inst.truth["W"])
    for i in range(10):
        X, y = inst.X[i].numpy(), inst.y[i].numpy()
        w, it = altmin_lstsq_reference(X, y, 40, 1e-10)
        w_star = inst.truth["W"][i, :, 0].numpy()
        e_np = np.linalg.norm(w - w_star) / np.linalg.norm(w_star)
        assert bool(e_np < 0.01) == bool(e[i] < 0.01)
        if n >= 4 * d:
            assert abs(e_np - float(e[i])) <= 1e-8 + 1e-6 * e_np
            assert it == int(r.iterations[i])


# --------------------------------------------------------------------------- GD


def test_gd_batched_equals_one_trial_at_a_time_including_divergence():
    """GD with per-trial input scales (some trials converge slowly, large steps kill the
    ReLUs of others) and one trial with a NaN label, which must diverge alone."""
    from harness import Instance

    d, k, n, B = 6, 2, 40, 6
    g = gens(range(B))
    X = torch.stack([torch.randn(n, d, generator=gi, dtype=F64) for gi in g])
    X = X * torch.linspace(0.3, 3.0, B, dtype=F64).reshape(B, 1, 1)  # per-trial scale
    model = OneHiddenModel(d, k)
    W_star = torch.stack([torch.randn(d, k, generator=gi, dtype=F64) for gi in g])
    y = model.forward({"W": W_star}, X)
    y[2, 5] = torch.nan
    inst = Instance(X=X, y=y, model=model, truth={"W": W_star})
    w0 = {"W": torch.stack([torch.randn(d, k, generator=gi, dtype=F64) for gi in g])}
    solver = GD(GDParams(step_size=1.0, max_iter=400))
    batched = solver.solve(inst, w0, ctx(B))
    finite = torch.isfinite(batched.weights["W"]).flatten(1).all(1)
    assert finite.tolist() == [True, True, False, True, True, True]
    assert len(set(batched.iterations.tolist())) >= 3  # trials stop at different times
    for i in range(B):
        alone = solver.solve(inst.select([i]), {"W": w0["W"][i : i + 1]}, ctx(1))
        assert int(alone.iterations[0]) == int(batched.iterations[i])
        a, b = alone.weights["W"][0], batched.weights["W"][i]
        assert torch.equal(torch.isfinite(a), torch.isfinite(b))
        assert torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- runner


def test_runner_cell_batch_equals_one_unit_per_trial(tmp_path):
    """End to end: the same suite as whole-cell units and as one unit per trial."""
    suite = tmp_path / "batching.toml"
    body = textwrap.dedent(
        """
        [suite]
        name = "batching"
        trials = 6
        seed = 3
        {chunk}

        [[problems]]
        name = "single_neuron"
        d = 16
        n = [8, 28, 64]
        input_scale = "inv_sqrt_n"

        [[initializers]]
        name = "zero"

        [[solvers]]
        name = "altmin"
        max_iter = 50

        [metrics]
        names = ["param_error", "success"]
        """
    )
    suite.write_text(body.format(chunk=""))
    whole = load_results(run_suite(suite, executor="serial", results=tmp_path / "a"))
    suite.write_text(body.format(chunk="chunk_trials = 1"))
    single = load_results(run_suite(suite, executor="serial", results=tmp_path / "b"))
    key = ["cell_id", "trial"]
    a = whole.sort_values(key).reset_index(drop=True)
    b = single.sort_values(key).reset_index(drop=True)
    assert len(a) == 18 and list(a["cell_id"]) == list(b["cell_id"])
    assert (a["status"] == b["status"]).all()
    assert (a["iterations"] == b["iterations"]).all()
    assert (a["metric.success"] == b["metric.success"]).all()
    assert np.allclose(a["metric.param_error"], b["metric.param_error"], rtol=1e-7, atol=1e-12)
    assert set(a["metric.success"]) == {0.0, 1.0}


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_vectorized_trial_seeds_equal_seed_sequence(tmp_path, seed):
    """The vectorized seeds are the integers one SeedSequence per trial gives."""
    from harness.run import prepare
    from harness.seeds import derive, derive_many, key_words, trial_seed, trial_seeds

    suite = tmp_path / "seeds.toml"
    suite.write_text(
        textwrap.dedent(
            f"""
            [suite]
            name = "seeds"
            trials = 3
            seed = {seed}

            [[problems]]
            name = "single_neuron"
            d = [3, 4]

            [[initializers]]
            name = "gaussian"

            [[solvers]]
            name = "altmin"
            """
        )
    )
    _, _, cells, _ = prepare(suite)
    trials = [0, 1, 2, 9, 31, 1000, 65536, 2**31 + 5]
    for cell in cells:
        pkey, ikey = cell.problem.key(), cell.initializer.key()
        scalar = [trial_seed(seed, pkey, ikey, t) for t in trials]
        assert trial_seeds(seed, pkey, ikey, trials) == scalar
        # the vectorized path itself (trial_seeds falls back to the scalar one on mismatch)
        pk, ik = key_words(pkey), key_words(ikey)
        assert derive_many([seed, *pk], trials, 0) == [s.data for s in scalar]
        assert derive_many([seed, *pk, *ik], trials, 2) == [s.solver for s in scalar]
        # the seeds a suite has always had: SeedSequence over (seed, keys, trial, stream)
        assert scalar[3].init == derive([seed, *pk, *ik, 9, 1])
    # pinned values (those the harness has always derived): a change here changes every
    # stored trial's data and initial weights
    assert trial_seed(0, "p", "i", 0) == (
        4036851899812845734,
        332046674940210061,
        4423371529877489640,
    )


# --------------------------------------------------------------------------- k = 1 on LAPACK


def test_neuron_least_squares_is_min_norm_along_a_pattern_walk():
    """The per-trial kernel equals gelsd's minimum-norm solution on every path: a fresh
    primal Gram, a Gram updated from the previous pattern (a few rows join and leave), the
    dual form (fewer active rows than d) and no active row at all."""
    from plugins.jagatap_hegde.neuron_lapack import NeuronLeastSquares

    rng = np.random.default_rng(3)
    n, d = 90, 30
    X = rng.standard_normal((n, d)) / np.sqrt(n)
    y = np.maximum(X @ rng.standard_normal(d), 0)
    ls = NeuronLeastSquares(X, y)
    p = np.ones(n, dtype=bool)
    sizes = []
    for step in range(40):
        if step == 20:  # jump to an underdetermined pattern, then walk there too
            p = rng.random(n) < 0.25
        elif step == 35:
            p = np.zeros(n, dtype=bool)
        else:
            p = p.copy()
            p[rng.choice(n, 3, replace=False)] ^= True  # three rows flip
        w = ls.solve(p)
        ref = np.linalg.lstsq(p[:, None] * X, y, rcond=None)[0]
        assert np.allclose(w, ref, rtol=0, atol=1e-9 * max(1.0, np.abs(ref).max()))
        sizes.append(int(p.sum()))
    assert max(sizes) >= d and min(sizes[20:35]) < d and sizes[35] == 0  # every path ran


@pytest.mark.parametrize("d, n", CASES)
def test_altmin_neuron_kernel_agrees_with_the_batched_tensor_path(d, n, monkeypatch):
    """k = 1 on LAPACK and the trial-batched tensor path (used for float32, GPUs and k > 1)
    run the same algorithm: same success decision for every trial, same weights and
    iteration counts where the least squares is overdetermined (n >= 4d; below it the
    sign test reads rounding noise and only the outcome is shared)."""
    import plugins.jagatap_hegde.altmin as altmin

    inst, w0 = neuron(d, n, range(12))
    fast = AltMin(AltMinParams(max_iter=60)).solve(inst, w0, ctx(12))
    monkeypatch.setattr(altmin, "LAPACK_NEURON", False)
    tensor = AltMin(AltMinParams(max_iter=60)).solve(inst, w0, ctx(12))
    e_f = rel_err(fast.weights["W"], inst.truth["W"])
    e_t = rel_err(tensor.weights["W"], inst.truth["W"])
    assert torch.equal(e_f < 0.01, e_t < 0.01)
    if n >= 4 * d:
        assert torch.equal(fast.iterations, tensor.iterations)
        assert torch.allclose(fast.weights["W"], tensor.weights["W"], atol=1e-10)


def test_altmin_tensor_path_batched_equals_one_trial_at_a_time(monkeypatch):
    """The tensor path keeps its own guarantee (a trial's numbers do not depend on the batch)."""
    import plugins.jagatap_hegde.altmin as altmin

    monkeypatch.setattr(altmin, "LAPACK_NEURON", False)
    inst, w0 = neuron(24, 30, range(8))
    batched = AltMin(AltMinParams(max_iter=50)).solve(inst, w0, ctx(8))
    for i in range(8):
        alone = AltMin(AltMinParams(max_iter=50)).solve(
            inst.select([i]), {"W": w0["W"][i : i + 1]}, ctx(1)
        )
        assert int(alone.iterations[0]) == int(batched.iterations[i])
        assert torch.equal(alone.weights["W"][0], batched.weights["W"][i])


def test_altmin_neuron_kernel_traces_every_iteration_and_matches_the_untraced_run():
    """With a recorder the trials advance in lockstep and every iteration is recorded,
    holding each trial's iterate (or its final one once it stopped); the final state is
    bitwise the untraced run's (which may jump to the end of a cycle)."""
    inst, w0 = neuron(24, 30, range(10))
    solver = AltMin(AltMinParams(max_iter=40))
    seen: dict[int, torch.Tensor] = {}
    traced = solver.solve(inst, w0, ctx(10, record=lambda t, w, v: seen.update({t: w["W"]})))
    untraced = solver.solve(inst, w0, ctx(10))
    assert torch.equal(traced.iterations, untraced.iterations)
    assert torch.equal(traced.weights["W"], untraced.weights["W"])
    last = int(traced.iterations.max())
    assert sorted(seen) == list(range(1, last + 1))
    assert torch.equal(seen[last], traced.weights["W"])
    early = [i for i in range(10) if int(traced.iterations[i]) < last]
    assert early  # some trials stop before the others: they keep their final iterate
    for i in early:
        stop = int(traced.iterations[i])
        assert torch.equal(seen[last][i], seen[stop][i])
        assert stop == 1 or not torch.equal(seen[stop][i], seen[stop - 1][i])


def test_altmin_neuron_kernel_keeps_a_nan_trial_to_itself():
    inst, w0 = neuron(20, 60, range(6))
    clean = AltMin(AltMinParams(max_iter=30)).solve(inst, w0, ctx(6))
    inst.X[2, 5, 3] = float("nan")
    dirty = AltMin(AltMinParams(max_iter=30)).solve(inst, w0, ctx(6))
    others = [0, 1, 3, 4, 5]
    assert torch.isnan(dirty.weights["W"][2]).all()
    assert torch.equal(dirty.weights["W"][others], clean.weights["W"][others])
    assert torch.equal(dirty.iterations[others], clean.iterations[others])


def test_unit_blas_pools_follow_torch_threads():
    """Inside a unit numpy's and scipy's BLAS pools run with torch's thread count (one per
    worker), not one thread per core beside every worker; afterwards they are restored."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    from threadpoolctl import threadpool_info

    from harness.runner import _blas_threads

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_threads():
            inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    finally:
        torch.set_num_threads(saved)
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert inside and set(inside) == {1}
    assert after == before


# ------------------------------------------------------------- faults inside a unit

FAULTY_SUITE = """
[suite]
name = "faulty_unit"
trials = {trials}
seed = 3

[[problems]]
name = "one_hidden"
d = 10
k = 3
n = 30

[[initializers]]
name = "gaussian"

[[solvers]]
name = "faulty"
mode = {modes}

[metrics]
names = ["param_error", "train_loss"]
"""


def faulty_units(tmp_path, modes: str, trials: int = 4) -> dict:
    """One unit per mode of the faulty test plugin, keyed by mode."""
    from harness.run import plan_units, plugin_paths, prepare

    path = tmp_path / "faulty.toml"
    path.write_text(FAULTY_SUITE.format(modes=modes, trials=trials))
    plugins = plugin_paths([str(FIXTURE_PLUGINS / "faulty.py")])
    _, suite, cells, _ = prepare(path, plugins=plugins)
    units = plan_units(suite, cells, set(), run_id="t", plugins=plugins)
    return {dict(u.cell.solver.params)["mode"]: u for u in units}


def test_a_malformed_solver_result_becomes_error_rows_that_say_what_was_wrong(tmp_path):
    from harness.runner import run_unit

    units = faulty_units(tmp_path, '["dict", "bad_shape", "ok"]')
    rows = {mode: run_unit(unit).runs for mode, unit in units.items()}
    assert [r["status"] for r in rows["ok"]] == ["ok"] * 4
    for r in rows["dict"]:
        assert r["status"] == "error"
        assert (
            r["error"]
            == "solver faulty returned dict, expected a SolveResult (weights, iterations)"
        )
    for r in rows["bad_shape"]:
        assert r["status"] == "error"
        # W of one_hidden is (B, d, k) = (4, 10, 3); the solver returned (3, 3)
        assert r["error"] == (
            "solver faulty returned weights['W'] of shape (3, 3), expected "
            "(B, *param_shape) = (4, 10, 3)"
        )
    # A malformed result is the solver's bug, not one trial's: the batch is not split.
    assert not any(r["isolated"] for r in rows["dict"] + rows["bad_shape"])


def test_one_failing_trial_is_isolated_and_the_others_match_an_uninterrupted_batch(tmp_path):
    from harness.runner import run_unit

    units = faulty_units(tmp_path, '["poison", "ok"]', trials=12)
    poisoned = run_unit(units["poison"]).runs
    clean = run_unit(units["ok"]).runs  # same data and seeds: the seeds skip the solver
    # Which trials poison their batch: run each alone.
    alone = [run_unit(replace(units["poison"], trials=(t,))).runs[0] for t in range(12)]
    bad = [r["trial"] for r in alone if r["status"] == "error"]
    assert 0 < len(bad) < 6, "the test needs a few poisoned trials among healthy ones"
    assert [r["trial"] for r in poisoned if r["status"] == "error"] == bad
    for p, c in zip(poisoned, clean):
        assert p["isolated"] is True  # the batch failed and was split
        if p["trial"] in bad:
            assert p["error"].startswith("ValueError: poisoned trial in the batch")
            assert f"isolated: trial {p['trial']} fails on its own" in p["error"]
        else:
            assert p["status"] == "ok" and p["error"] is None
            assert p["metric.param_error"] == c["metric.param_error"]
            assert p["metric.train_loss"] == c["metric.train_loss"]
    assert not any(r["isolated"] for r in clean)


def test_sys_exit_and_os_exit_in_a_solver_become_error_rows_in_process(tmp_path):
    from harness.executors import SerialExecutor

    units = faulty_units(tmp_path, '["sys_exit", "exit0", "ok"]')
    ex = SerialExecutor()
    try:
        results = {dict(r.unit.cell.solver.params)["mode"]: r.runs for r in ex.run(units.values())}
    finally:
        ex.close()
    assert [r["status"] for r in results["ok"]] == ["ok"] * 4
    assert {r["status"] for r in results["sys_exit"]} == {"error"}
    assert results["sys_exit"][0]["error"].startswith("ExitCalled: sys.exit(3) was called")
    assert {r["status"] for r in results["exit0"]} == {"error"}
    assert results["exit0"][0]["error"].startswith("ExitCalled: os._exit(0) was called")
    import os

    assert os._exit.__module__ == "posix"  # the guard is lifted after the units


def test_a_unit_frees_its_data_when_it_returns_without_the_cyclic_collector(tmp_path):
    # The runner's retry closure calls itself (a reference cycle); before the fix it held
    # each unit's instance until the cyclic collector ran, and workers grew by a unit's
    # data per unit. With the collector off, nothing of the unit may stay alive.
    import gc

    from harness import Instance
    from harness.runner import run_unit

    unit = faulty_units(tmp_path, '["ok"]')["ok"]
    gc.collect()
    gc.disable()
    try:
        result = run_unit(unit)
        alive = [o for o in gc.get_objects() if isinstance(o, Instance)]
    finally:
        gc.enable()
    assert {row["status"] for row in result.runs} == {"ok"}
    assert alive == []
