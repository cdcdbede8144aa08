"""gd, centered_pgd and sgd give the same answers batched as one trial at a time.

Each batch mixes trials that converge and stop early, trials that run to max_iter and
trials that diverge (a huge effective step, or a NaN label / teacher), so trials leave
the batch at different times; every trial must end with the weights (within float
tolerance), the iteration count and the finite/non-finite status it gets alone. Also:
the batch compaction interval changes no result, and traces show each trial frozen at
its own final iterate.
"""

from __future__ import annotations

import pytest
import torch

from harness import Instance, SolveContext, Solver, SolveResult
from plugins.common.gd import GD
from plugins.common.models import OneHiddenModel
from plugins.li_yuan.problems import Reslink
from plugins.li_yuan.sgd import SGD
from plugins.oymak_asif.centered_pgd import CenteredPGD
from plugins.oymak_asif.models import AdditiveModel

F64 = torch.float64


def gens(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def ctx(seeds, record=None) -> SolveContext:
    return SolveContext(
        device=torch.device("cpu"), dtype=F64, generators=gens(seeds), recorder=record
    )


def alone(solver: Solver, inst: Instance, w0: dict, i: int, record=None) -> SolveResult:
    """Trial i run by itself, with its own solver generator."""
    w = {k: v[i : i + 1] for k, v in w0.items()}
    return solver.solve(inst.select([i]), w, ctx([100 + i], record))


def finite(W: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(W.flatten(1)).all(1)


def assert_same_as_alone(solver: Solver, inst: Instance, w0: dict) -> SolveResult:
    """The batched run equals B one-trial runs: weights, iterations, finiteness."""
    B = inst.batch
    batched = solver.solve(inst, dict(w0), ctx(range(100, 100 + B)))
    for i in range(B):
        one = alone(solver, inst, w0, i)
        assert int(one.iterations[0]) == int(batched.iterations[i]), i
        for k in batched.weights:
            a, b = one.weights[k][0], batched.weights[k][i]
            assert torch.equal(torch.isfinite(a), torch.isfinite(b)), (i, k)
            ok = torch.isfinite(a)
            assert torch.allclose(a[ok], b[ok], rtol=1e-9, atol=1e-12), (i, k)
    return batched


# --------------------------------------------------------------------------- problems


def one_hidden(B: int = 6, d: int = 6, k: int = 2, n: int = 60):
    """Per-trial input scales: 0.3 converges slowly, 1 converges and stops early, 1e160
    makes the effective step eta ||x||^2 astronomically large (the first step overflows
    to inf; a merely too-large step kills the ReLUs instead); trial 2 has a NaN label."""
    g = gens(range(B))
    X = torch.stack([torch.randn(n, d, generator=gi, dtype=F64) for gi in g])
    scale = torch.tensor([0.3, 1.0, 1.0, 1e160, 1.0, 1.0], dtype=F64)[:B]
    X = X * scale.reshape(B, 1, 1)
    model = OneHiddenModel(d, k)
    W_star = torch.stack([torch.randn(d, k, generator=gi, dtype=F64) for gi in g])
    y = model.forward({"W": W_star}, X)
    y[2, 5] = torch.nan
    inst = Instance(X=X, y=y, model=model, truth={"W": W_star})
    w0 = {"W": W_star + 0.3 * torch.stack([torch.randn(d, k, generator=gi) for gi in g])}
    return inst, w0


def additive(B: int = 6, d: int = 20, n: int = 80):
    """Trials with different sample sizes' worth of signal (sigma), one NaN label (trial 1),
    one infinite input (trial 4)."""
    g = gens(range(B))
    sigma = torch.tensor([1.0, 1.0, 5.0, 0.5, 1.0, 2.0], dtype=F64)[:B]
    X = torch.stack([torch.randn(n, d, generator=gi, dtype=F64) for gi in g])
    X = X * sigma.reshape(B, 1, 1)
    w_star = torch.stack([2 * torch.rand(d, generator=gi, dtype=F64) - 1 for gi in g])
    model = AdditiveModel(d)
    y = model.forward({"w": w_star}, X)
    y[1, 3] = torch.nan
    X[4, 7, 2] = torch.inf
    return Instance(X=X, y=y, model=model, truth={"w": w_star}), {"w": torch.zeros(B, d, dtype=F64)}


def reslink(B: int = 5, fresh: bool = False):
    """ResLink. Dataset sampling: trial 3's inputs scaled by 1e100 (the step overflows
    after two steps), trial 1 a NaN label. Fresh sampling: trial 1 a NaN, trial 3 an
    infinite teacher entry."""
    inst = Reslink(Reslink.make_params({"d": 5, "n": 200, "n_test": 0})).sample(gens(range(B)), F64)
    if fresh:
        inst.truth["W"][1, 0, 0] = torch.nan
        inst.truth["W"][3, 2, 1] = torch.inf
    else:
        inst.X[3] *= 1e100
        inst.y = inst.model.forward(inst.truth, inst.X)
        inst.y[1, 4] = torch.nan
    w0 = {
        "W": 0.05
        * torch.stack([torch.randn(5, 5, generator=g, dtype=F64) for g in gens(range(50, 50 + B))])
    }
    return inst, w0


# --------------------------------------------------------------------------- gd


@pytest.mark.parametrize("batch_size", [0, 20])
def test_gd_batched_equals_alone(batch_size):
    inst, w0 = one_hidden()
    solver = GD(
        GD.make_params({"step_size": 1.0, "max_iter": 300, "tol": 1e-10, "batch_size": batch_size})
    )
    res = assert_same_as_alone(solver, inst, w0)
    fin = finite(res.weights["W"]).tolist()
    assert fin == [True, True, False, False, True, True]  # NaN label and huge step diverge
    its = res.iterations.tolist()
    assert its[2] <= 3 and its[3] <= 3  # diverged trials stop at once
    if batch_size == 0:  # full batch: converged trials stop early, the slow one does not
        assert its[0] == 300 and min(its[1], its[4], its[5]) < 300


def test_gd_compaction_interval_changes_nothing(monkeypatch):
    import plugins.common.gd as gd_module

    inst, w0 = one_hidden()
    solver = GD(GD.make_params({"step_size": 1.0, "max_iter": 300, "tol": 1e-10}))
    out = {}
    for every in (1, 8, 10**6):
        monkeypatch.setattr(gd_module, "CHECK_EVERY", every)
        out[every] = solver.solve(inst, dict(w0), ctx(range(100, 106)))
    for every in (8, 10**6):
        assert torch.equal(out[every].iterations, out[1].iterations)
        a, b = out[every].weights["W"], out[1].weights["W"]
        assert torch.equal(torch.isfinite(a), torch.isfinite(b))
        assert torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], rtol=1e-12)


def test_gd_trace_freezes_each_trial_at_its_own_last_iterate():
    """Recorded iterates of the batched run equal each trial's own run at min(t, its stop)."""
    inst, w0 = one_hidden()
    solver = GD(GD.make_params({"step_size": 1.0, "max_iter": 120, "tol": 1e-10}))
    seen: dict[int, torch.Tensor] = {}
    res = solver.solve(
        inst, dict(w0), ctx(range(100, 106), lambda t, W, v: seen.__setitem__(t, W["W"].clone()))
    )
    for i in (0, 1, 3):
        mine: dict[int, torch.Tensor] = {}

        def keep(t, W, v, mine=mine):
            mine[t] = W["W"][0].clone()

        alone(solver, inst, w0, i, keep)
        stop = int(res.iterations[i])
        for t in (1, 5, 40, 120):
            if t in seen:
                ref = mine[min(t, stop)]
                got = seen[t][i]
                assert torch.equal(torch.isfinite(ref), torch.isfinite(got))
                ok = torch.isfinite(ref)
                assert torch.allclose(got[ok], ref[ok], rtol=1e-9, atol=1e-12), (i, t)


# --------------------------------------------------------------------------- centered_pgd


@pytest.mark.parametrize("batches", [1, 2])
def test_centered_pgd_batched_equals_alone(batches):
    inst, w0 = additive()
    solver = CenteredPGD(
        CenteredPGD.make_params({"max_iter": 200, "tol": 1e-10, "batches": batches})
    )
    res = assert_same_as_alone(solver, inst, w0)
    assert finite(res.weights["w"]).tolist() == [True, False, True, True, False, True]
    its = res.iterations.tolist()
    assert its[1] == 1 and its[4] == 1  # non-finite at the first step: out at once
    converged = [its[i] for i in (0, 2, 3, 5)]
    assert min(converged) < 200  # some trial converges and stops early
    assert len(set(its)) >= 3


def test_centered_pgd_compaction_interval_changes_nothing(monkeypatch):
    import plugins.oymak_asif.centered_pgd as module

    inst, w0 = additive()
    solver = CenteredPGD(CenteredPGD.make_params({"max_iter": 200, "tol": 1e-10}))
    out = {}
    for every in (1, 10**6):
        monkeypatch.setattr(module, "CHECK_EVERY", every)
        out[every] = solver.solve(inst, dict(w0), ctx(range(100, 106)))
    assert torch.equal(out[1].iterations, out[10**6].iterations)
    a, b = out[1].weights["w"], out[10**6].weights["w"]
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    assert torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], rtol=1e-12)


# --------------------------------------------------------------------------- sgd


@pytest.mark.parametrize("sampling", ["dataset", "fresh"])
def test_sgd_batched_equals_alone(sampling):
    inst, w0 = reslink(fresh=sampling == "fresh")
    solver = SGD(
        SGD.make_params({"step_size": 0.2, "batch_size": 50, "max_iter": 150, "sampling": sampling})
    )
    res = assert_same_as_alone(solver, inst, w0)
    assert finite(res.weights["W"]).tolist() == [True, False, True, False, True]
    its = res.iterations.tolist()
    assert [its[i] for i in (0, 2, 4)] == [150, 150, 150]
    assert its[1] < 150 and its[3] < 150  # diverged trials stop at their first non-finite step


@pytest.mark.parametrize("name", ["gd", "centered_pgd"])
def test_no_trace_point_after_the_last_trial_stops(name):
    """Stopped trials are checked only every few iterations; the trace must still end at
    the last trial's own final iteration, not at the next check."""
    if name == "gd":
        inst, w0 = one_hidden()
        solver = GD(GD.make_params({"step_size": 1.0, "max_iter": 500, "tol": 1e-4}))
    else:
        inst, w0 = additive()
        solver = CenteredPGD(CenteredPGD.make_params({"max_iter": 500, "tol": 1e-6}))
    seen: list[int] = []
    res = solver.solve(inst, dict(w0), ctx(range(100, 106), lambda t, W, v: seen.append(t)))
    last = int(res.iterations.max())
    assert last < 500 and last % 8 != 0  # every trial stopped early, between two checks
    assert max(seen) == last and seen == sorted(set(seen))
