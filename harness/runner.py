"""Runs one work unit (a cell, or a chunk of its trials) and turns it into rows.

Everything here happens inside a worker: resolve the components by name from
the worker's own plugin registry, sample the data of every trial from its own
seed, initialize, solve (one batched call, or one call per trial for an
unbatched solver), classify each trial (``ok``, ``diverged``, ``error``), and
evaluate the metrics with the solver clock stopped. Failures are data: an
exception becomes ``error`` rows with the message and the head of the traceback.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch

from harness.components import Component, Instance, Metric, SolveContext, SolveResult, Weights
from harness.expand import Cell, ComponentSpec
from harness.plugins import get_registry
from harness.rows import base_rows, failed_rows
from harness.seeds import TrialSeeds, trial_seeds

TRACEBACK_LINES = 12


@dataclass(frozen=True)
class WorkUnit:
    """What a worker needs to run some trials of a cell; plain data, so it pickles."""

    cell: Cell
    trials: tuple[int, ...]
    run_id: str
    dtype: str = "float64"
    device: str = "cpu"
    trace: tuple[str, ...] = ()
    trace_every: Any = "log"
    plugins: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    timeout_s: float | None = None


@dataclass
class UnitResult:
    """Rows produced by a work unit: one ``runs`` row per trial, long-format ``traces`` rows."""

    unit: WorkUnit
    runs: list[dict[str, Any]]
    traces: list[dict[str, Any]] = field(default_factory=list)
    device: str | None = None
    """The device the unit's solver ran on (``cpu`` when CUDA was asked for but missing)."""


class DeviceFallbackWarning(UserWarning):
    """A suite asked for CUDA where no GPU is available; the unit runs on the CPU."""


_FALLBACK_WARNED: set[str] = set()


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA runs them asynchronously), so a clock
    read after it measures the work; nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(requested: str) -> torch.device:
    """The device a unit runs on: the suite's ``device``, or the CPU when it asks for CUDA
    and this process has none. The fallback warns once per process and requested device
    (a worker's warning reaches the terminal through its inherited stderr); results say
    what ran in :attr:`UnitResult.device`."""
    if requested.startswith("cuda") and not torch.cuda.is_available():
        if requested not in _FALLBACK_WARNED:
            _FALLBACK_WARNED.add(requested)
            warnings.warn(
                f"device = {requested!r} was requested but CUDA is not available on "
                f"{socket.gethostname()} (torch {torch.__version__}); running on cpu",
                DeviceFallbackWarning,
                stacklevel=2,
            )
        return torch.device("cpu")
    return torch.device(requested)


def _trace_schedule(every: Any):
    if every == "all":
        return lambda it: True
    if isinstance(every, int):
        return lambda it: it % every == 0
    # "log": every iteration up to 10, then about 20 points per decade.
    marks = {int(round(10 ** (j / 20))) for j in range(0, 200)}
    return lambda it: it <= 10 or it in marks


_PARAMS: dict[tuple[Any, ...], Any] = {}


def _instantiate(registry: Any, spec: ComponentSpec) -> Component:
    cls = registry.get(spec.kind, spec.name)
    # Validated Params are frozen: reuse them across the units of a worker (validation
    # with get_type_hints costs more than running a tiny unit).
    key = (cls, spec.params)
    try:
        params = _PARAMS.get(key)
    except TypeError:  # an unhashable parameter value
        return cls(cls.make_params(spec.param_dict))
    if params is None:
        params = _PARAMS[key] = cls.make_params(spec.param_dict)
    return cls(params)


def _generators(seeds: list[int]) -> list[torch.Generator]:
    gens = []
    for s in seeds:
        g = torch.Generator()
        g.manual_seed(s)
        gens.append(g)
    return gens


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        exc = ExitCalled(f"sys.exit({exc.code!r}) was called").with_traceback(exc.__traceback__)
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    head = "".join(tb[-TRACEBACK_LINES:])
    return f"{type(exc).__name__}: {exc}\n{head}"


class ExitCalled(BaseException):
    """``os._exit`` was called while :func:`contained_exits` was in force."""


CONTAINED = (Exception, SystemExit, ExitCalled)
"""What a unit turns into ``error`` rows: any exception, ``sys.exit()`` (``SystemExit``)
and, in the serial executor, ``os._exit()``. ``KeyboardInterrupt`` still stops the run."""


@contextlib.contextmanager
def contained_exits() -> Iterator[None]:
    """Make ``os._exit(code)`` raise :class:`ExitCalled` while units run in this process.

    The serial executor runs units in the driving process, where a solver calling
    ``os._exit`` would end the whole run (with that exit code, rows of finished units
    lost). Worker processes need no such guard: their death is charged to their unit.
    A crash below Python (a segfault, ``abort()``) is not contained here.
    """
    real = os._exit

    def _exit(code: int) -> None:
        raise ExitCalled(f"os._exit({code}) was called")

    os._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real


def result_problem(result: Any, instance: Instance, solver: str) -> str | None:
    """What is wrong with what a solver returned for ``instance`` (``None`` if nothing):
    a :class:`SolveResult` with one weight tensor per model parameter, each of shape
    (B, *param_shape), and B iterations, statuses and info values."""
    B = instance.batch
    if not isinstance(result, SolveResult):
        return (
            f"solver {solver} returned {type(result).__name__}, expected a SolveResult "
            "(weights, iterations)"
        )
    if not isinstance(result.weights, dict):
        kind = type(result.weights).__name__
        return f"solver {solver} returned weights of type {kind}, expected a dict of tensors"
    try:
        shapes: dict[str, tuple[int, ...]] | None = instance.model.param_shapes()
    except NotImplementedError:
        shapes = None
    if shapes is not None:
        missing = [k for k in shapes if k not in result.weights]
        if missing:
            return f"solver {solver} returned no weights {missing}; the model has {sorted(shapes)}"
    for name, w in result.weights.items():
        if not isinstance(w, torch.Tensor):
            kind = type(w).__name__
            return f"solver {solver} returned weights[{name!r}] of type {kind}, expected a tensor"
        want = (B, *shapes[name]) if shapes is not None and name in shapes else None
        if want is not None and tuple(w.shape) != want:
            return (
                f"solver {solver} returned weights[{name!r}] of shape {tuple(w.shape)}, expected "
                f"(B, *param_shape) = {want}"
            )
        if want is None and (w.dim() == 0 or w.shape[0] != B):
            return (
                f"solver {solver} returned weights[{name!r}] of shape {tuple(w.shape)}, expected "
                f"B = {B} trials first"
            )
    its = result.iterations
    if not isinstance(its, torch.Tensor) or its.numel() != B:
        got = tuple(its.shape) if isinstance(its, torch.Tensor) else type(its).__name__
        return f"solver {solver} returned iterations {got}, expected one per trial (B = {B})"
    if result.status is not None and len(result.status) != B:
        return f"solver {solver} returned {len(result.status)} statuses, expected B = {B}"
    for name, v in result.info.items():
        if not isinstance(v, torch.Tensor) or v.numel() != B:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            return (
                f"solver {solver} returned info[{name!r}] {got}, expected one value per trial "
                f"(B = {B})"
            )
    return None


def failed_result(unit: WorkUnit, status: str, message: str) -> UnitResult:
    """The result of a unit that produced nothing (worker died, timeout): every trial
    gets ``status`` and ``message``."""
    rows = failed_rows(
        unit.cell,
        unit.run_id,
        unit.trials,
        status,
        message,
        created_at=datetime.now(UTC).isoformat(),
        host=socket.gethostname(),
    )
    return UnitResult(unit, rows, [])


def unit_seeds(unit: WorkUnit) -> list[TrialSeeds]:
    """(data, init, solver) seeds of each trial of ``unit``."""
    cell = unit.cell
    return trial_seeds(cell.seed, cell.problem.key(), cell.initializer.key(), unit.trials)


def _finite(weights: Weights) -> torch.Tensor:
    oks = [torch.isfinite(w.reshape(w.shape[0], -1)).all(1) for w in weights.values()]
    return torch.stack(oks).all(0) if oks else torch.ones(0, dtype=torch.bool)


_BLAS_POOLS: Any = None


def _blas_threads() -> Any:
    """Limit numpy's and scipy's BLAS pools to torch's thread count for one unit.

    The executors give every solver torch's thread count (one by default); a plugin
    calling BLAS or LAPACK through numpy or scipy would otherwise start a thread per
    core beside every worker, and small factorizations slow down many times over. The
    pools are found once per process, after the plugins (and their libraries) loaded.
    """
    global _BLAS_POOLS
    if _BLAS_POOLS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_POOLS = ThreadpoolController()
    return _BLAS_POOLS.limit(limits=torch.get_num_threads(), user_api="blas")


def run_unit(unit: WorkUnit) -> UnitResult:
    """Run the trials of ``unit``; never raises for a solver/problem failure."""
    registry = get_registry(unit.plugins, unit.blocked)
    with _blas_threads():
        return _run_unit(unit, registry)


def _run_unit(unit: WorkUnit, registry: Any) -> UnitResult:
    cell = unit.cell
    seeds = unit_seeds(unit)
    rows = base_rows(
        cell,
        unit.run_id,
        unit.trials,
        [s.data for s in seeds],
        created_at=datetime.now(UTC).isoformat(),
        host=socket.gethostname(),
    )
    traces: list[dict[str, Any]] = []
    dtype = getattr(torch, unit.dtype)
    B = len(unit.trials)

    device = None
    try:
        device = resolve_device(unit.device)
        problem = _instantiate(registry, cell.problem)
        init = _instantiate(registry, cell.initializer)
        solver = _instantiate(registry, cell.solver)
        metrics: list[Metric] = [_instantiate(registry, m) for m in cell.metrics]  # type: ignore[misc]
        instance = problem.sample(_generators([s.data for s in seeds]), dtype)
        weights0 = init.initialize(instance, _generators([s.init for s in seeds]), dtype)
        instance = instance.to(device)
        weights0 = {k: v.to(device) for k, v in weights0.items()}
    except CONTAINED as exc:  # setup failed: every trial of the unit is an error
        msg = "setup failed: " + _error_text(exc)
        for row in rows:
            row.update(status="error", error=msg)
        return UnitResult(unit, rows, traces, device=None if device is None else str(device))

    trace_metrics = [m for m in metrics if m.name in unit.trace]
    wants = _trace_schedule(unit.trace_every)
    solver_gens = [s.solver for s in seeds]
    batched = getattr(solver, "batched", True)
    time_mode = "batched" if batched and B > 1 else "per_trial"

    def solve_batch(index: list[int]) -> tuple[SolveResult | None, float, str | None, list, bool]:
        """One solver call on the trials ``index``: its checked result (or ``None`` and the
        error text), its solver time, the trace rows it recorded, and whether the failure
        may be one trial's (an exception, not a malformed result)."""
        sub = instance if len(index) == B else instance.select(index)
        w0 = weights0 if len(index) == B else {k: v[index] for k, v in weights0.items()}
        recorded: list[dict[str, Any]] = []
        paused = [0.0]
        _synchronize(device)  # the data's copy to the device is not the solver's time
        start = time.perf_counter()

        def recorder(iteration: int, weights: Weights, values: dict[str, Any]) -> None:
            _synchronize(device)
            t0 = time.perf_counter()
            elapsed = t0 - start - paused[0]
            _record(
                recorded,
                cell.cell_id,
                [unit.trials[i] for i in index],
                iteration,
                elapsed,
                sub,
                weights,
                values,
                trace_metrics,
            )
            paused[0] += time.perf_counter() - t0

        ctx = SolveContext(
            device=device,
            dtype=dtype,
            generators=_generators([solver_gens[i] for i in index]),
            recorder=recorder if unit.trace else None,
            wants=wants,
        )
        try:
            result = solver.solve(sub, dict(w0), ctx)
            _synchronize(device)  # kernels still queued are the solver's time too
        except CONTAINED as exc:
            # An exception may be one trial's doing (retry in halves); an exit is not.
            split = isinstance(exc, Exception)
            return None, time.perf_counter() - start - paused[0], _error_text(exc), recorded, split
        elapsed = time.perf_counter() - start - paused[0]
        problem = result_problem(result, sub, cell.solver.name)
        if problem is not None:
            return None, elapsed, problem, recorded, False
        return result, elapsed, None, recorded, False

    def run_group(index: list[int], split: bool) -> None:
        """Solve ``index``; if a batch of several trials fails, retry it in halves until
        the failing trials are found (only they get ``error`` rows)."""
        result, elapsed, error, recorded, splittable = solve_batch(index)
        if result is None and split and splittable and len(index) > 1:
            for i in index:
                rows[i]["isolated"] = True
            half = len(index) // 2
            run_group(index[:half], split)
            run_group(index[half:], split)
            return
        per_trial_time = elapsed / len(index)
        if result is None:
            if rows[index[0]]["isolated"] and len(index) == 1:
                error = (
                    f"{error.rstrip()}\n(isolated: trial {unit.trials[index[0]]} fails on its "
                    f"own; its batch of {B} trials failed and was retried in halves)"
                )
            for i in index:
                rows[i].update(
                    status="error", error=error, time_s=per_trial_time, time_mode=time_mode
                )
            return
        traces.extend(recorded)
        try:
            _finish(
                rows,
                index,
                result,
                per_trial_time,
                time_mode,
                instance,
                metrics,
                traces,
                cell,
                unit,
                trace_metrics,
            )
        except CONTAINED as exc:  # the result passed the checks but could not be evaluated
            for i in index:
                rows[i].update(
                    status="error",
                    error="evaluating the solver's result failed: " + _error_text(exc),
                    time_s=per_trial_time,
                    time_mode=time_mode,
                )

    try:
        if batched:
            run_group(list(range(B)), split=True)
        else:
            for i in range(B):
                run_group([i], split=False)
    finally:
        # run_group calls itself, so its closure is a reference cycle that would hold the
        # unit's data (instance, weights0) until the cyclic collector runs: a worker grew
        # by about one unit's data per unit (J1's workers to ~430 MB). Free it now.
        instance = weights0 = None  # noqa: F841
    return UnitResult(unit, rows, traces, device=str(device))


def _finish(
    rows: list[dict[str, Any]],
    index: list[int],
    result: SolveResult,
    per_trial_time: float,
    time_mode: str,
    instance: Instance,
    metrics: list[Metric],
    traces: list[dict[str, Any]],
    cell: Cell,
    unit: WorkUnit,
    trace_metrics: list[Metric],
) -> None:
    """Classify trials and evaluate metrics (outside the solver clock)."""
    sub = instance if len(index) == instance.batch else instance.select(index)
    weights = result.weights
    iterations = result.iterations.reshape(-1).tolist()
    finite = _finite(weights).tolist()
    try:
        loss = sub.model.loss(weights, sub.X, sub.y)
        finite_loss = torch.isfinite(loss).tolist()
    except Exception:  # a model without a usable loss: judge by weights alone
        finite_loss = [True] * len(index)
    values: dict[str, list[Any]] = {}
    metric_errors: dict[int, str] = {}
    for m in metrics:
        if not m.applies(sub):
            continue
        try:
            v = m.compute(sub, weights, result).detach().reshape(-1).double().cpu().tolist()
        except Exception as exc:
            for j in range(len(index)):
                metric_errors[j] = f"metric {m.name} failed: " + _error_text(exc)
            continue
        values[m.name] = v
    for name, t in result.info.items():
        values.setdefault(name, t.detach().reshape(-1).double().cpu().tolist())
    for j, i in enumerate(index):
        row = rows[i]
        row.update(iterations=int(iterations[j]), time_s=per_trial_time, time_mode=time_mode)
        status = result.status[j] if result.status is not None else "ok"
        if status == "ok" and not (finite[j] and finite_loss[j]):
            status = "diverged"
        row["status"] = status
        if status == "diverged":
            row["error"] = "non-finite weights or loss"
        if j in metric_errors and status == "ok":
            row.update(status="error", error=metric_errors[j])
        for name, v in values.items():
            x = v[j]
            row[f"metric.{name}"] = (
                None if x is None or (isinstance(x, float) and math.isnan(x)) else x
            )
    if trace_metrics:
        _final_trace_points(
            traces,
            rows,
            index,
            iterations,
            per_trial_time * len(index),
            result,
            cell,
            unit,
            trace_metrics,
        )


def _final_trace_points(
    traces: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    index: list[int],
    iterations: list[int],
    elapsed: float,
    result: SolveResult,
    cell: Cell,
    unit: WorkUnit,
    trace_metrics: list[Metric],
) -> None:
    """Close each trial's curves at its own final iteration, unless the solver recorded it.

    Series the solver reports itself (e.g. ``weights_updated``) get a final
    point too when the solver returns their final value in ``SolveResult.info``.
    """
    last: dict[tuple[int, str], int] = {}
    for r in traces:
        key = (r["trial"], r["metric"])
        last[key] = max(last.get(key, -1), r["iteration"])
    own = {r["metric"] for r in traces} - {m.name for m in trace_metrics}
    for j, i in enumerate(index):
        trial, final = unit.trials[i], int(iterations[j])
        values = {m.name: rows[i].get(f"metric.{m.name}") for m in trace_metrics}
        for name in own & set(result.info):
            values[name] = float(result.info[name].reshape(-1)[j])
        for name, v in values.items():
            if v is None or last.get((trial, name), -1) >= final:
                continue
            traces.append(
                {
                    "cell_id": cell.cell_id,
                    "trial": trial,
                    "iteration": final,
                    "time_s": elapsed,
                    "metric": name,
                    "value": float(v),
                }
            )


def _record(
    traces: list[dict[str, Any]],
    cell_id: str,
    trials: list[int],
    iteration: int,
    elapsed: float,
    instance: Instance,
    weights: Weights,
    values: dict[str, Any],
    trace_metrics: list[Metric],
) -> None:
    series: dict[str, list[float]] = {}
    with torch.no_grad():
        for m in trace_metrics:
            if m.applies(instance):
                series[m.name] = (
                    m.compute(instance, weights, None).reshape(-1).double().cpu().tolist()
                )
    for name, v in values.items():
        if isinstance(v, torch.Tensor):
            vals = v.detach().reshape(-1).double().cpu().tolist()
            series[name] = vals if len(vals) == len(trials) else vals[:1] * len(trials)
        else:
            series[name] = [float(v)] * len(trials)
    for name, vals in series.items():
        for t, x in zip(trials, vals):
            traces.append(
                {
                    "cell_id": cell_id,
                    "trial": t,
                    "iteration": int(iteration),
                    "time_s": elapsed,
                    "metric": name,
                    "value": float(x),
                }
            )
