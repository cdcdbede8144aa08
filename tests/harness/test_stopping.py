"""TrialStopper: per-trial iteration counts, stop reasons, freezing and compaction."""

from __future__ import annotations

import pytest
import torch

from harness import TrialStopper


def mask(*bits: int) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.bool)


def flag(stop: TrialStopper, *trials: int) -> torch.Tensor:
    """A mask over the rows of the running batch, true on the rows of ``trials``."""
    return torch.isin(stop.index, torch.tensor(trials, dtype=torch.long))


def test_counts_and_reasons_without_compaction() -> None:
    stop = TrialStopper(4, 5)
    seen = []
    for t in stop:
        seen.append(t)
        # trial 1 converges after iteration 2, trial 3 diverges after iteration 3
        stop.update(converged=mask(0, t == 2, 0, 0), diverged=mask(0, 0, 0, t == 3))
    assert seen == [1, 2, 3, 4, 5]
    assert stop.iterations.tolist() == [5, 2, 5, 3]
    assert stop.reasons == ["max_iter", "converged", "max_iter", "diverged"]
    assert stop.iterations.dtype == torch.long


def test_a_stopped_trial_never_resumes() -> None:
    stop = TrialStopper(2, 6)
    for t in stop:
        # trial 0 is flagged once, then never again; it must stay stopped, counted at 1
        stop.update(converged=mask(t == 1, 0))
    assert stop.iterations.tolist() == [1, 6]
    assert stop.running.tolist() == [False, True]
    # flagging an already stopped trial again changes neither its count nor its reason
    stop.update(diverged=mask(1, 0))
    assert stop.iterations.tolist() == [1, 7]
    assert stop.reasons[0] == "converged"


def test_diverged_wins_then_first_reason_named() -> None:
    stop = TrialStopper(3, 1)
    for _ in stop:
        stop.update(converged=mask(1, 1, 0), tiny_step=mask(1, 0, 1), diverged=mask(1, 0, 0))
    assert stop.reasons == ["diverged", "converged", "tiny_step"]


def test_halt_does_not_count_the_current_iteration() -> None:
    stop = TrialStopper(2, 4)
    for t in stop:
        stop.halt(converged=mask(0, t == 3))  # a check before the step
        stop.update()
    assert stop.iterations.tolist() == [4, 2]
    assert stop.reasons == ["max_iter", "converged"]


def test_loop_ends_at_the_first_look_after_every_trial_stopped() -> None:
    stop = TrialStopper(3, 100, check_every=4)
    seen = []
    for t in stop:
        seen.append(t)
        stop.update(converged=mask(t == 2, t == 2, t == 5))
    # all stopped after t = 5; the next look is at t = 8, so iterations 6..8 still run
    assert seen == list(range(1, 9))
    assert stop.iterations.tolist() == [2, 2, 5]


def test_should_compact_only_at_looks_and_compact_returns_kept_rows() -> None:
    stop = TrialStopper(5, 20, check_every=3)
    looks = []
    kept = []
    for t in stop:
        stop.update(converged=flag(stop, *{1: [0], 2: [4], 4: [2]}.get(t, [])))
        if stop.should_compact():
            looks.append(t)
            kept.append((stop.compact().tolist(), stop.index.tolist()))
    assert looks == [3, 6]
    # at t = 3 rows 0 and 4 stopped; at t = 6 the row of trial 2 (row 1 of the new batch)
    assert kept == [([1, 2, 3], [1, 2, 3]), ([0, 2], [1, 3])]
    assert stop.iterations.tolist() == [1, 20, 4, 20, 2]
    assert stop.reasons == ["converged", "max_iter", "converged", "max_iter", "converged"]


def test_masks_are_over_the_rows_of_the_compacted_batch() -> None:
    stop = TrialStopper(4, 10, check_every=1)
    for t in stop:
        if t == 1:
            stop.update(converged=mask(1, 0, 1, 0))
        elif t == 2:
            assert stop.index.tolist() == [1, 3]
            stop.update(diverged=mask(0, 1))  # row 1 is trial 3
        else:
            stop.update()
        if stop.should_compact():
            stop.compact()
    assert stop.iterations.tolist() == [1, 10, 1, 2]
    assert stop.reasons == ["converged", "max_iter", "converged", "diverged"]


def test_freeze_and_scatter() -> None:
    stop = TrialStopper(3, 10, check_every=1)
    W = torch.zeros(3, 2)
    Wa = W.clone()
    for t in stop:
        Wa = stop.freeze(Wa + 1, Wa)
        stop.update(converged=flag(stop, *{1: [2], 2: [0]}.get(t, [])))
        if t == 3:
            stop.halt(converged=flag(stop, 1))
        if stop.should_compact():
            W = stop.scatter(W, Wa)
            Wa = Wa[stop.compact()]
    W = stop.scatter(W, Wa)
    assert W[:, 0].tolist() == [2.0, 3.0, 1.0]
    assert W[:, 1].tolist() == [2.0, 3.0, 1.0]
    assert stop.iterations.tolist() == [2, 3, 1]
    # dicts of tensors work the same
    stop = TrialStopper(2, 1)
    stop.update(converged=mask(1, 0))
    new = stop.freeze({"a": torch.ones(2, 3, 4)}, {"a": torch.zeros(2, 3, 4)})
    assert new["a"][0].sum() == 0 and new["a"][1].sum() == 12


def test_any_ran_tells_whether_some_trial_took_this_iteration() -> None:
    stop = TrialStopper(2, 10, check_every=5)
    ran = []
    for t in stop:
        stop.update(converged=mask(t == 1, t == 2))
        ran.append(stop.any_ran)
    assert ran == [True, True, False, False, False]


def test_fast_forward_and_starting_counts() -> None:
    stop = TrialStopper(3, 10, check_every=1)
    for t in stop:
        looped = flag(stop, 1) if t == 2 else flag(stop)
        stop.update(converged=flag(stop, 0, 2) if t == 3 else None, max_iter=looped)
        stop.fast_forward(looped, 10)
        if stop.should_compact():
            stop.compact()
    assert stop.iterations.tolist() == [3, 10, 3]
    assert stop.reasons == ["converged", "max_iter", "converged"]
    # a second phase continues the counts with every trial running again
    nxt = TrialStopper(3, iterations=stop.iterations)
    nxt.update()
    assert nxt.iterations.tolist() == [4, 11, 4]
    assert nxt.running.all()


def test_no_budget_and_bad_arguments() -> None:
    stop = TrialStopper(2)
    for _ in range(3):
        stop.update()
    assert stop.iterations.tolist() == [3, 3]
    with pytest.raises(TypeError, match="max_iter=None"):
        iter(stop).__next__()
    with pytest.raises(ValueError, match="check_every"):
        TrialStopper(2, 5, check_every=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        TrialStopper(2, 5, iterations=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="not a stop reason"):
        TrialStopper(2, 5).update(running=mask(1, 0))


def test_max_iter_zero_runs_nothing() -> None:
    stop = TrialStopper(2, 0)
    assert list(stop) == []
    assert stop.iterations.tolist() == [0, 0]
