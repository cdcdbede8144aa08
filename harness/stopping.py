"""Per-trial early stopping for solvers that step a batch of trials together.

A solver steps B trials as one batch; each trial stops on its own (converged, diverged,
...). :class:`TrialStopper` owns that bookkeeping: which trials still run, how many
iterations each ran, why each stopped, and which rows of the batch to keep when the
solver drops stopped trials from its tensors. The solver only owns "how to step"::

    stop = TrialStopper(B, max_iter, device=X.device)
    for t in stop:  # 1, 2, ..., max_iter; ends early once no trial runs
        W = stop.freeze(W - eta * grad(W), W)  # stopped trials keep their weights
        stop.update(converged=small_step, diverged=~finite)
    return SolveResult(W, stop.iterations)

Nothing here reads a value back to the host on every iteration: stop flags stay on the
device, and the stopper only looks at them every ``check_every`` iterations (a sync on a
GPU), so a trial's result and iteration count never depend on ``check_every``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import torch

T = TypeVar("T", torch.Tensor, dict[str, torch.Tensor])

RUNNING = "running"
"""The reason of a trial that has not stopped (while the solve is still going)."""

MAX_ITER = "max_iter"
"""The reason of a trial that never stopped on its own: it ran its whole budget."""

DIVERGED = "diverged"
"""A reason that wins over any other flagged for the same trial at the same time."""


class TrialStopper:
    """Which of ``trials`` batched trials still run, their iteration counts and stop reasons.

    ``trials``: the batch size B. ``max_iter``: the iteration budget that iterating over
    the stopper walks through (``None`` for a solver that keeps its own loop and calls
    :meth:`update` once per step). ``check_every``: iterations between two looks at the
    stop flags (each a host sync); only those looks end the loop early or let the
    solver compact its batch (:meth:`should_compact`). ``iterations``: counts the trials
    start from (default 0), for a solver that runs several phases with one stopper each.

    The running batch: at first, row ``i`` is trial ``i``. A solver that
    drops stopped trials from its tensors (:meth:`compact`) indexes them by row, and
    :attr:`index` maps rows to trials. Per-row state (:attr:`running`, the masks given
    to :meth:`update`) is over the rows of the running batch; :attr:`iterations` and
    :attr:`reasons` are over all B trials.

    A trial that stops never runs again: :meth:`update` and :meth:`halt` only clear
    :attr:`running`.
    """

    def __init__(
        self,
        trials: int,
        max_iter: int | None = None,
        *,
        device: torch.device | str | None = None,
        check_every: int = 8,
        iterations: torch.Tensor | None = None,
    ) -> None:
        if trials < 0:
            raise ValueError(f"trials must be >= 0, got {trials}")
        if max_iter is not None and max_iter < 0:
            raise ValueError(f"max_iter must be >= 0 or None, got {max_iter}")
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.trials, self.max_iter, self.check_every = trials, max_iter, check_every
        if iterations is None:
            iterations = torch.zeros(trials, dtype=torch.long, device=device)
        elif iterations.shape != (trials,):
            raise ValueError(
                f"iterations must have shape ({trials},), got {tuple(iterations.shape)}"
            )
        device = iterations.device
        self.t = 0
        """The current iteration (the last one the loop yielded)."""
        self.index = torch.arange(trials, device=device)
        """(b,) the trial of each row of the running batch."""
        self.running = torch.ones(trials, dtype=torch.bool, device=device)
        """(b,) whether each row of the running batch still runs."""
        self._its = iterations.to(torch.long).clone()  # (b,) counts of the rows
        self._codes = torch.zeros(trials, dtype=torch.long, device=device)  # (b,) 0: running
        self._all_its = self._its.clone()  # (B,) counts of every trial, as of the last compaction
        self._all_codes = self._codes.clone()
        self._names: list[str] = [RUNNING]  # reason code -> name
        self._code_tensors: dict[str, torch.Tensor] = {}
        self._zero = torch.tensor(0, device=device)
        self._ran = self.running  # rows running when the last update started
        self._alive: int | None = trials  # rows still running, when known without a sync

    # -- the loop --------------------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        """Iterations ``t = 1, ..., max_iter``; ends early, at a look, once no trial runs."""
        if self.max_iter is None:
            raise TypeError("TrialStopper(trials, max_iter=None) cannot be iterated over")
        for t in range(self.t + 1, self.max_iter + 1):
            if self.t and self._at_look() and self._count_alive() == 0:
                return
            if len(self.index) == 0 or self._alive == 0:
                return
            self.t = t
            yield t

    def update(self, **stopped: torch.Tensor | None) -> None:
        """End of an iteration: every running trial counts it; then the flagged ones stop.

        Each keyword names a stop reason and gives a (b,) bool mask over the rows of the
        running batch, e.g. ``update(converged=small, diverged=~finite)``; a mask may be
        None. A trial flagged by several masks gets ``diverged`` if that is one of them,
        else the first one named. Masks of rows already stopped are ignored.
        """
        self._ran = self.running
        self._its.add_(self.running)  # in place: _its is private (iterations copies it)
        if stopped:
            self.halt(**stopped)

    def halt(self, **stopped: torch.Tensor | None) -> None:
        """Stop the flagged trials now, without counting the current iteration for them
        (e.g. a check made before the step). Keywords as in :meth:`update`."""
        # One code per row, built from the last reason to the first so that the first
        # named wins, and diverged over all: a few elementwise ops, no host sync.
        code: torch.Tensor | None = None
        diverged = stopped.pop(DIVERGED, None)
        for name, mask in [*reversed(stopped.items()), (DIVERGED, diverged)]:
            if mask is not None:
                code = torch.where(mask, self._code(name), self._zero if code is None else code)
        if code is None:
            return
        self._codes = torch.where(self.running, code, self._codes)
        self.running = self._codes == 0  # a row runs exactly while it has no reason
        self._alive = None

    def fast_forward(self, rows: torch.Tensor, iterations: int) -> None:
        """Report ``iterations`` for the rows ``rows`` (a (b,) mask): for a solver that knows
        where a trial ends without running the steps in between (e.g. a detected cycle)."""
        self._its = torch.where(rows, iterations, self._its)

    # -- per-row helpers ----------------------------------------------------------------
    def freeze(self, new: T, old: T) -> T:
        """``new`` for the running rows, ``old`` for the stopped ones (a tensor (b, ...)
        or a dict of them): stopped trials keep their last iterate. Call it before this
        iteration's :meth:`update`, which may stop trials that still take this step."""
        if isinstance(new, dict):
            return {k: self._where(new[k], old[k]) for k in new}  # type: ignore[return-value]
        return self._where(new, old)  # type: ignore[arg-type]

    def scatter(self, full: T, part: T) -> T:
        """``full`` (B, ...) with the rows of the running batch replaced by ``part`` (b, ...)
        (a tensor or a dict of them), out of place: the batch written back to all trials."""
        if isinstance(full, dict):
            return {k: v.index_put((self.index,), part[k]) for k, v in full.items()}  # type: ignore[return-value]
        return full.index_put((self.index,), part)  # type: ignore[union-attr]

    # -- looks and compaction -----------------------------------------------------------
    def should_compact(self) -> bool:
        """At a look (every ``check_every`` iterations, and at ``max_iter``): whether some
        trials stopped since the last compaction while others still run. One host sync
        per look; False between looks. When no trial runs any more the loop ends instead."""
        if not self._at_look():
            return False
        alive = self._count_alive()
        return 0 < alive < len(self.index)

    def compact(self) -> torch.Tensor:
        """Drop the stopped rows from the running batch; return the rows kept (a (b',) index
        into the old batch) for the solver to compact its own tensors with (``Xa[rows]``).
        :attr:`index` then maps the new rows to trials."""
        self._all_its = self._all_its.index_put((self.index,), self._its)
        self._all_codes = self._all_codes.index_put((self.index,), self._codes)
        rows = self.running.nonzero().squeeze(1)
        self.index, self.running = self.index[rows], self.running[rows]
        self._its, self._codes, self._ran = self._its[rows], self._codes[rows], self._ran[rows]
        self._alive = len(rows)
        return rows

    # -- results ----------------------------------------------------------------------
    @property
    def iterations(self) -> torch.Tensor:
        """(B,) iterations each trial ran (long), for ``SolveResult.iterations``."""
        return self._all_its.index_put((self.index,), self._its)

    @property
    def reasons(self) -> list[str]:
        """Why each of the B trials stopped: the names given to :meth:`update`/:meth:`halt`,
        ``max_iter`` for trials still running once the loop is over (one host sync)."""
        codes = self._all_codes.index_put((self.index,), self._codes).tolist()
        names = [MAX_ITER, *self._names[1:]]
        return [names[c] for c in codes]

    @property
    def done(self) -> bool:
        """Whether no trial runs any more (a host sync unless a look already knows)."""
        return self._count_alive() == 0

    @property
    def any_ran(self) -> bool:
        """Whether some trial ran the current iteration (counted by the last
        :meth:`update`); a host sync. Solvers that record traces use it to record nothing
        past the last trial's own final iterate."""
        return bool(self._ran.any())

    # -- internals ------------------------------------------------------------------------
    def _at_look(self) -> bool:
        return self.t % self.check_every == 0 or self.t == self.max_iter

    def _count_alive(self) -> int:
        if self._alive is None:
            self._alive = int(self.running.sum())
        return self._alive

    def _code(self, name: str) -> torch.Tensor:
        """The reason's code as a 0-dim tensor on the device (no conversion per call)."""
        code = self._code_tensors.get(name)
        if code is None:
            if name == RUNNING:
                raise ValueError(f"{RUNNING!r} is not a stop reason")
            self._names.append(name)
            code = torch.tensor(len(self._names) - 1, device=self._zero.device)
            self._code_tensors[name] = code
        return code

    def _where(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        return torch.where(self.running.view(-1, *[1] * (new.dim() - 1)), new, old)
