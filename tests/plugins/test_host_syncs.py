"""Batched solvers stay on the device: no host synchronization per iteration (issue 17).

On a GPU a read of a tensor's value on the host (``.item()``, ``bool(t)``, ``float(t)``,
a boolean mask's ``nonzero``) waits for every queued kernel. The solvers look at their
trials every ``check_every`` iterations (8), not every iteration. This counts, on the
CPU, the dispatched operations that would synchronize on a GPU while a whole work unit
runs (sampling, solver, metrics) at ``max_iter`` = T and 3T: the difference is what the
extra 2T iterations cost. ``.tolist()`` and ``.numpy()`` are not dispatched operations and
are not counted (the solvers call them only at a look, to compact their batch).
"""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils._python_dispatch import TorchDispatchMode

from harness.run import plan_units, prepare
from harness.runner import run_unit

# Operations whose result the host must wait for on a GPU.
SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal"}


class SyncCounter(TorchDispatchMode):
    """Counts dispatched operations that synchronize a GPU with its host."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


SUITES = {
    "gd": """
[[problems]]
name = "one_hidden"
d = 8
k = 3
n = 200
[[initializers]]
name = "gaussian"
scale = 1.0
[[solvers]]
name = "gd"
step_size = 0.01
tol = 0.0
max_iter = {T}
[metrics]
names = ["param_error", "train_loss"]
""",
    "centered_pgd": """
[[problems]]
name = "additive"
d = 10
n = 15
[[initializers]]
name = "zero"
[[solvers]]
name = "centered_pgd"
tol = 0.0
max_iter = {T}
[metrics]
names = ["rel_error_sq"]
""",
    "sgd": """
[[problems]]
name = "reslink"
d = 6
n = 400
n_test = 100
[[initializers]]
name = "gaussian"
scale = 0.05
[[solvers]]
name = "sgd"
step_size = 0.01
batch_size = 20
max_iter = {T}
[metrics]
names = ["distance"]
""",
}


def syncs(write_suite, solver: str, T: int) -> int:
    text = '[suite]\nname = "syncs"\ntrials = 6\nseed = 1\n' + SUITES[solver].format(T=T)
    _, suite, cells, _ = prepare(write_suite(text, f"{solver}-{T}.toml"))
    (unit,) = plan_units(suite, cells, set(), run_id="syncs")
    with SyncCounter() as counter:
        result = run_unit(unit)
    assert all(r["status"] == "ok" for r in result.runs), result.runs[0]["error"]
    assert all(r["iterations"] == T for r in result.runs)  # every trial ran every iteration
    return sum(counter.counts.values())


@pytest.mark.parametrize("solver", sorted(SUITES))
def test_batched_solver_does_not_synchronize_every_iteration(write_suite, solver):
    T = 24
    extra = syncs(write_suite, solver, 3 * T) - syncs(write_suite, solver, T)
    # At most one look per 8 iterations (each look may read a few values), never one a step.
    assert extra <= 2 * T / 8 * 2, f"{solver}: {extra} host syncs over {2 * T} more iterations"
