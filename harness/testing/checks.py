"""The conformance checks, one function each, registered by name in :data:`CHECKS`.

A check takes a :class:`~harness.testing.lab.Lab` and returns ``None`` or a note when the
rule holds; it raises :class:`~harness.testing.lab.CheckFailed` (what was expected, what
happened, how to fix it) or :class:`~harness.testing.lab.CheckSkipped`.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.components import Component, Instance, ParameterError, Problem, Weights
from harness.testing.lab import (
    BATCH,
    DATA_SEEDS,
    INIT_SEEDS,
    RTOL,
    SOLVER_SEEDS,
    TRUTH_ATOL,
    WILD,
    CheckFailed,
    CheckSkipped,
    Lab,
    changed_rng,
    compare_trials,
    corrupt,
    gens,
    rng_state,
    seed_globals,
    tensors_of,
    waivers,
)


@dataclass(frozen=True)
class Check:
    """One named rule, the kinds it applies to, and the function that tests it."""

    name: str
    kinds: tuple[str, ...]
    doc: str
    func: Callable[[Lab], str | None] = field(repr=False)
    runs_component: bool = True
    """False for checks that only read the class (waived by ``"*"`` only if named)."""


CHECKS: dict[str, Check] = {}


def _check(
    name: str, *kinds: str, runs: bool = True
) -> Callable[[Callable[[Lab], str | None]], Callable[[Lab], str | None]]:
    def deco(func: Callable[[Lab], str | None]) -> Callable[[Lab], str | None]:
        doc = (inspect.getdoc(func) or "").splitlines()[0]
        CHECKS[name] = Check(name, kinds, doc, func, runs)
        return func

    return deco


def checks_for(cls: type[Component]) -> list[str]:
    """Names of the checks that apply to a component class, in the order they run."""
    return [c.name for c in CHECKS.values() if cls.kind in c.kinds]


@_check("documented", "problem", "initializer", "solver", "metric", runs=False)
def check_documented(lab: Lab) -> str | None:
    """The class has a name and a docstring; every parameter is documented; waivers are valid."""
    cls = lab.cls
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name or ""):
        raise CheckFailed(
            "a lowercase name matching [a-z][a-z0-9_]*",
            f"name = {cls.name!r}",
            "set the class attribute name, e.g. name = 'my_solver'",
        )
    if not (cls.__doc__ or "").strip():
        raise CheckFailed(
            "a class docstring (relubench list and show print it)",
            "none",
            "write one line saying what it is, then the paper and equation",
        )
    missing = [s.name for s in cls.param_specs() if not s.doc.strip()]
    if missing:
        raise CheckFailed(
            "every parameter documented",
            f"no doc for {', '.join(missing)}",
            "declare each field with param(default, 'what it means', ...)",
        )
    known = set(checks_for(cls)) | {"*"}
    for name, reason in waivers(cls).items():
        if name not in known:
            raise CheckFailed(
                f"conformance_exceptions to name checks of a {cls.kind}: "
                + ", ".join(sorted(known)),
                f"{name!r}",
                "spell the check as relubench check prints it",
            )
        if not isinstance(reason, str) or not reason.strip():
            raise CheckFailed(
                "a reason for every waived check",
                f"{name!r}: {reason!r}",
                "say why the component cannot meet the check",
            )
    return None


def _bad_values(f: dataclasses.Field, default: Any) -> list[Any]:
    meta = f.metadata
    bad: list[Any] = []
    lo, hi = meta.get("min"), meta.get("max")
    integral = isinstance(default, int) and not isinstance(default, bool)
    if lo is not None:
        bad.append(lo if meta.get("exclusive_min") else (lo - 1 if integral else lo - 1.0))
    if hi is not None:
        bad.append(hi + 1 if integral else hi + 1.0)
    if meta.get("choices"):
        bad.append("not-a-valid-choice")
    return bad


@_check("parameters", "problem", "initializer", "solver", "metric", runs=False)
def check_parameters(lab: Lab) -> str | None:
    """Defaults are valid; out-of-bounds values are rejected naming the parameter."""
    cls = lab.cls
    if not dataclasses.is_dataclass(cls.Params):
        raise CheckFailed(
            "Params to be a dataclass",
            repr(cls.Params),
            "decorate it with @dataclass(frozen=True)",
        )
    note = None
    try:
        defaults = cls.Params()
        values = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
        cls.make_params(values, cross_check=False)
        problem = cls.check_params(defaults)
    except (ParameterError, TypeError, ValueError) as exc:
        raise CheckFailed(
            "the default parameters to be valid",
            f"{type(exc).__name__}: {exc}",
            "give every field a default inside its bounds",
        ) from None
    if problem is not None:
        key, message = problem
        if getattr(defaults, key, None) not in ("", None):
            raise CheckFailed(
                "the default parameters to pass check_params",
                f"{key}: {message}",
                "choose defaults that work together",
            )
        note = f"{key} has no default (a suite must set it): {message}"
    for f in dataclasses.fields(cls.Params):
        for bad in _bad_values(f, getattr(defaults, f.name)):
            try:
                cls.make_params({f.name: bad})
            except ParameterError as exc:
                if exc.key != f.name:
                    raise CheckFailed(
                        f"the error for {f.name}={bad!r} to name {f.name!r}",
                        f"it names {exc.key!r}",
                        "return (key, message) with the offending key from check_params",
                    ) from None
                continue
            except (TypeError, ValueError) as exc:
                raise CheckFailed(
                    f"a ParameterError for {f.name}={bad!r}",
                    f"{type(exc).__name__}: {exc}",
                    "validate in check_params, not in __post_init__",
                ) from None
            raise CheckFailed(
                f"{f.name}={bad!r} rejected (declared {f.metadata})",
                "it was accepted",
                "do not override make_params; declare bounds with param(min=, max=, choices=)",
            )
    return note


@_check("families", "problem", "initializer", "solver", "metric")
def check_families(lab: Lab) -> str | None:
    """``families`` is a non-empty tuple of names and the component runs on each of them."""
    fams = lab.cls.families
    if not (isinstance(fams, tuple) and fams and all(isinstance(f, str) for f in fams)):
        raise CheckFailed(
            "families: a non-empty tuple of family names",
            repr(fams),
            'e.g. families = ("one_hidden",) or ("*",) for every family',
        )
    if issubclass(lab.cls, Problem):
        fam = lab.make().family()
        if fam not in fams:
            raise CheckFailed(
                f"family() to be one of the declared families {fams}",
                repr(fam),
                "list it in families",
            )
    unposed = [f for f in lab.declared() if f not in lab.families()]
    ran = []
    for fam in lab.each_family():
        try:
            lab.run(fam)
        except CheckSkipped:
            continue
        except Exception as exc:
            raise CheckFailed(
                f"to run on declared family {fam!r}",
                f"{type(exc).__name__}: {exc}",
                "fix the error, or remove the family from families",
            ) from exc
        ran.append(fam)
    if not ran:
        raise CheckSkipped(f"did not apply on any of {', '.join(lab.families())}")
    note = f"ran on {', '.join(ran)}"
    if unposed:
        note += f"; no registered problem poses {', '.join(unposed)} (not run)"
    return note


def _shape_problems(
    lab: Lab, fam: str, dtype: torch.dtype, inst: Instance, out: Any
) -> Iterator[str]:
    B = inst.batch
    kind = lab.cls.kind
    if kind == "problem":
        if out.X.dim() != 3 or out.X.shape[0] != B:
            yield f"X of shape (B={B}, n, d), got {tuple(out.X.shape)}"
        if out.y.shape[:2] != out.X.shape[:2] or out.y.dim() not in (2, 3):
            yield f"y of shape (B, n[, c]) with (B, n) = {tuple(out.X.shape[:2])}, got " + str(
                tuple(out.y.shape)
            )
        shapes = out.model.param_shapes()
        for name, t in tensors_of(out).items():
            if t.dim() == 0 or t.shape[0] != B:
                if name.startswith(("X", "y", "truth.")):
                    yield f"{name} with the trial dimension first (B={B}), got {tuple(t.shape)}"
                continue
            if t.is_floating_point() and t.dtype != dtype and not name.startswith("extras."):
                yield f"{name} of dtype {dtype}, got {t.dtype}"
            if t.device != out.X.device:
                yield f"{name} on {out.X.device}, got {t.device}"
        for k, t in out.truth.items():
            if k in shapes and tuple(t.shape) != (B, *shapes[k]):
                want = (B, *shapes[k])
                yield f"truth.{k} of shape (B, *param_shapes) = {want}, got {tuple(t.shape)}"
        return
    if kind == "metric":
        if not isinstance(out, torch.Tensor):
            yield f"a tensor of shape ({B},), got {type(out).__name__}"
        elif tuple(out.shape) != (B,):
            yield f"one value per trial, shape ({B},), got {tuple(out.shape)}"
        elif not out.is_floating_point():
            yield f"a floating tensor, got {out.dtype}"
        return
    shapes = inst.model.param_shapes()
    weights = out if kind == "initializer" else out.weights
    if set(weights) != set(shapes):
        yield f"weights named {sorted(shapes)} (model.param_shapes()), got {sorted(weights)}"
    for k, w in weights.items():
        if k in shapes and tuple(w.shape) != (B, *shapes[k]):
            yield f"weights[{k!r}] of shape {(B, *shapes[k])}, got {tuple(w.shape)}"
        if w.dtype != dtype:
            yield f"weights[{k!r}] of dtype {dtype}, got {w.dtype}"
        if w.device != inst.X.device:
            yield f"weights[{k!r}] on {inst.X.device}, got {w.device}"
    if kind == "solver":
        its = out.iterations
        if not isinstance(its, torch.Tensor) or tuple(its.shape) != (B,):
            yield f"iterations: a ({B},) tensor, got {getattr(its, 'shape', its)!r}"
        if out.status is not None and len(out.status) != B:
            yield f"status: a list of {B} strings, got {len(out.status)}"
        for k, v in out.info.items():
            if v.numel() != B:
                yield f"info[{k!r}] with one value per trial ({B}), got shape {tuple(v.shape)}"


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@_check("shapes", "problem", "initializer", "solver", "metric")
def check_shapes(lab: Lab) -> str | None:
    """Trials first; float32 and float64 both honoured; outputs on the instance's device."""
    for fam in lab.each_family():
        for dtype in (torch.float32, torch.float64):
            for device in _devices():
                inst = lab.instance(fam, dtype)
                w = None
                if lab.cls.kind in ("solver", "metric"):
                    w = lab.weights(fam, inst, dtype)
                    w = {k: v.to(device) for k, v in w.items()}
                inst = inst.to(device)
                try:
                    out = lab.run(fam, inst, w)
                except CheckSkipped:
                    break
                if lab.cls.kind == "problem" and device != "cpu":
                    break  # problems sample on the CPU; the runner moves the instance
                problems = list(_shape_problems(lab, fam, dtype, inst, out))
                if problems:
                    raise CheckFailed(
                        "outputs with the trial dimension first, in the dtype and on the "
                        "device of the inputs",
                        f"on family {fam!r}, {dtype}, {device}: " + "; ".join(problems),
                        "return one value per trial, a (B,) tensor"
                        if lab.cls.kind == "metric"
                        else "keep the trial dimension B first, create tensors with "
                        "dtype=instance.X.dtype and device=instance.X.device",
                    )
    return None


def _batch_and_alone(lab: Lab, fam: str) -> tuple[dict, list[dict]]:
    """The component's output on the full batch, and on each trial run alone."""
    inst = lab.instance(fam)
    kind = lab.cls.kind
    if kind == "problem":
        comp = lab.make()
        full = comp.sample(gens(DATA_SEEDS), torch.float64)
        alone = [comp.sample(gens([s]), torch.float64) for s in DATA_SEEDS]
        return tensors_of(full), [tensors_of(a) for a in alone]
    if kind == "initializer":
        comp = lab.make()
        full = comp.initialize(inst, gens(INIT_SEEDS), torch.float64)
        alone = [
            comp.initialize(inst.select([b]), gens([INIT_SEEDS[b]]), torch.float64)
            for b in range(inst.batch)
        ]
        return tensors_of(full), [tensors_of(a) for a in alone]
    w = lab.weights(fam, inst)
    full = lab.run(fam, inst, w)
    alone = []
    for b in range(inst.batch):
        sub = inst.select([b])
        wb = {k: v[b : b + 1] for k, v in w.items()}
        if kind == "solver":
            alone.append(lab.solve(lab.make(), sub, wb, seeds=[SOLVER_SEEDS[b]]))
        else:
            alone.append(lab.run(fam, sub, wb))
    out = tensors_of(full)
    return out, [tensors_of(a) for a in alone]


@_check("batch_invariance", "problem", "initializer", "solver", "metric")
def check_batch_invariance(lab: Lab) -> str | None:
    """A trial's result is the same (within RTOL) alone as in a batch of several."""
    rtol = RTOL[torch.float64]
    for fam in lab.each_family():
        try:
            full, alone = _batch_and_alone(lab, fam)
        except CheckSkipped:
            continue
        diffs = []
        for b, single in enumerate(alone):
            ref = {k: v[b : b + 1] for k, v in full.items() if v.dim() and v.shape[0] == BATCH}
            diffs += [
                d.replace("trial 0", f"trial {b}")
                for d in compare_trials(ref, single, [(0, 0)], rtol)
            ]
        if diffs:
            raise CheckFailed(
                f"each trial's numbers equal alone (B=1) and in a batch of {BATCH} "
                f"(relative tolerance {rtol:g}) on family {fam!r}",
                "; ".join(diffs[:4]),
                "draw trial b's randomness only from generators[b], and never reduce over the "
                "trial dimension (a sum, mean, norm or stopping test over all trials); if a "
                "kernel rounds differently at B = 1, declare "
                "conformance_exceptions = {'batch_invariance': 'why'}",
            )
    return f"relative tolerance {rtol:g}"


@_check("independence", "initializer", "solver", "metric")
def check_independence(lab: Lab) -> str | None:
    """A NaN or wildly scaled trial 0 does not change any other trial's result."""
    rtol = RTOL[torch.float64]
    for fam in lab.each_family():
        clean_inst = lab.instance(fam)
        w = None if lab.cls.kind == "initializer" else lab.weights(fam, clean_inst)
        try:
            ref = tensors_of(lab.run(fam, clean_inst, w))
        except CheckSkipped:
            continue
        for mode in ("nan", "wild"):
            inst, wb = corrupt(lab.instance(fam), w, 0, mode)
            what = "NaN" if mode == "nan" else f"scaled by {WILD:g}"
            try:
                got = tensors_of(lab.run(fam, inst, wb))
            except CheckSkipped:
                continue
            except Exception as exc:
                raise CheckFailed(
                    f"the other trials to finish when trial 0's data and weights are {what}",
                    f"{type(exc).__name__}: {exc}",
                    "one bad trial must not fail the batch: let it carry NaN or mark it "
                    "with SolveResult.status = 'diverged' and go on with the others",
                ) from exc
            diffs = compare_trials(ref, got, [(b, b) for b in range(1, BATCH)], rtol)
            if diffs:
                raise CheckFailed(
                    f"trials 1..{BATCH - 1} unchanged when trial 0's data and weights are "
                    f"{what} (family {fam!r})",
                    "; ".join(diffs[:4]),
                    "no operation may mix trials: no sum/mean/max over dim 0, no shared step "
                    "size or stopping test over the batch, no early exit when any trial "
                    "is non-finite (use a per-trial mask, e.g. harness.stopping)",
                )
    return None


@_check("determinism", "problem", "initializer", "solver", "metric")
def check_determinism(lab: Lab) -> str | None:
    """The same seeds give the same numbers, bit for bit."""
    for fam in lab.each_family():
        try:
            inst = lab.instance(fam)
            w = lab.weights(fam, inst) if lab.cls.kind in ("solver", "metric") else None
            a = tensors_of(lab.run(fam, lab.instance(fam), w))
            b = tensors_of(lab.run(fam, lab.instance(fam), w))
        except CheckSkipped:
            continue
        diffs = compare_trials(a, b, [(i, i) for i in range(BATCH)], 0.0)
        if diffs:
            raise CheckFailed(
                f"two runs with the same seeds to give identical numbers (family {fam!r})",
                "; ".join(diffs[:4]),
                "draw randomness only from the torch.Generator objects you are given "
                "(generators / ctx.generators), never from an unseeded numpy or Python RNG",
            )
    return None


@_check("global_rng", "problem", "initializer", "solver", "metric")
def check_global_rng(lab: Lab) -> str | None:
    """The global random state (torch, numpy, random) is neither used nor changed."""
    saved = rng_state()
    try:
        for fam in lab.each_family():
            inst = lab.instance(fam)
            w = lab.weights(fam, inst) if lab.cls.kind in ("solver", "metric") else None
            outs, changed = [], set()
            for seed in (1, 2):
                seed_globals(seed)
                before = rng_state()
                try:
                    outs.append(tensors_of(lab.run(fam, lab.instance(fam), w)))
                except CheckSkipped:
                    break
                changed.update(changed_rng(before, rng_state()))
            if len(outs) < 2:
                continue
            diffs = compare_trials(outs[0], outs[1], [(i, i) for i in range(BATCH)], 0.0)
            if changed or diffs:
                got = []
                if changed:
                    got.append(f"the global {', '.join(sorted(changed))} random state changed")
                if diffs:
                    got.append("results depend on the global seed: " + "; ".join(diffs[:2]))
                raise CheckFailed(
                    f"the global random state neither used nor changed (family {fam!r})",
                    "; ".join(got),
                    "pass generator=generators[b] (solvers: ctx.generators[b]) to every "
                    "torch.rand*/randperm call; never call torch.manual_seed, np.random.* or "
                    "random.*",
                )
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
    return None


@_check("inputs_unchanged", "initializer", "solver", "metric")
def check_inputs_unchanged(lab: Lab) -> str | None:
    """The instance and the weights passed in are not modified in place."""
    for fam in lab.each_family():
        inst = lab.instance(fam)
        w = lab.weights(fam, inst) if lab.cls.kind != "initializer" else None
        before = {**tensors_of(inst), **(tensors_of(w, "weights.") if w else {})}
        before = {k: v.clone() for k, v in before.items()}
        try:
            lab.run(fam, inst, w, fresh=False)
        except CheckSkipped:
            continue
        after = {**tensors_of(inst), **(tensors_of(w, "weights.") if w else {})}
        diffs = compare_trials(before, after, [(i, i) for i in range(BATCH)], 0.0)
        if diffs:
            raise CheckFailed(
                f"inputs unchanged (family {fam!r})",
                "; ".join(diffs[:4]),
                "clone before writing in place (W = weights['W'].clone())",
            )
    return None


def _max_iter(lab: Lab) -> int | None:
    value = getattr(lab.params, "max_iter", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@_check("iterations", "solver")
def check_iterations(lab: Lab) -> str | None:
    """Iteration counts are per trial, whole numbers, and within ``max_iter``."""
    cap = _max_iter(lab)
    for fam in lab.each_family():
        res = lab.run(fam)
        its = res.iterations.reshape(-1)
        if its.is_floating_point() and not torch.equal(its, its.round()):
            raise CheckFailed(
                "whole iteration counts", str(its.tolist()), "count iterations in a long tensor"
            )
        if (its < 0).any() or (cap is not None and (its > cap).any()):
            raise CheckFailed(
                f"0 <= iterations <= max_iter = {cap} per trial (family {fam!r})",
                str(its.tolist()),
                "count each trial's own steps (a stopped trial stops counting)",
            )
    return None if cap is not None else "no max_iter parameter: upper bound not checked"


class _Recorder:
    """What ``ctx.record`` hands the runner, kept per solve call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Weights, dict[str, Any]]] = []
        self.seqs: list[list[int]] = []

    def start(self) -> None:  # a new solve call (one per trial when unbatched)
        self.seqs.append([])

    def __call__(self, it: int, weights: Weights, values: dict[str, Any]) -> None:
        self.calls.append((it, weights, values))
        self.seqs[-1].append(it)


def _trace_problems(rec: _Recorder, every: int, top: int, B: int) -> Iterator[CheckFailed]:
    its = [c[0] for c in rec.calls]
    for seq in rec.seqs:
        if any(b <= a for a, b in zip(seq, seq[1:])):
            yield CheckFailed(
                "ctx.record called with strictly increasing iterations",
                f"iterations {seq[:12]}",
                "record each iteration once, after the step, with its number",
            )
    bad = [it for it in its if it % every]
    if bad:
        yield CheckFailed(
            f"only iterations the schedule wants (every {every})",
            f"recorded {bad[:6]}",
            "report iterates only through ctx.record (it applies the schedule)",
        )
    if its and max(its) > top:
        yield CheckFailed(
            f"no recorded iteration beyond the largest returned count ({top})",
            f"recorded up to {max(its)}",
            "record only while some trial still runs (with harness.TrialStopper: "
            "if stop.any_ran: ctx.record(t, W)), and return each trial's own count",
        )
    if every == 1 and top >= 2 and not its:  # a one-step (closed-form) solver has no curve
        yield CheckFailed(
            "ctx.record(iteration, weights) called while iterating",
            f"no call in {top} iterations",
            "call ctx.record(t, W) after each step so that traces have curves",
        )
    for it, weights, values in rec.calls:
        for k, v in weights.items():
            if v.dim() == 0 or v.shape[0] != B:
                yield CheckFailed(
                    f"recorded weights with the trial dimension first (B={B})",
                    f"iteration {it}: {k} of shape {tuple(v.shape)}",
                    "record the whole batch's weights, stopped trials included",
                )
        for k, v in values.items():
            if isinstance(v, torch.Tensor) and v.numel() not in (1, B):
                yield CheckFailed(
                    f"recorded values with one number per trial (B={B})",
                    f"iteration {it}: {k} of shape {tuple(v.shape)}",
                    "pass a (B,) tensor or a plain number",
                )


@_check("traces", "solver")
def check_traces(lab: Lab) -> str | None:
    """``ctx.record`` gets increasing iterations of trial-first weights, only when wanted;
    tracing does not change the result."""
    B = BATCH if getattr(lab.cls, "batched", True) else 1
    for fam in lab.each_family():
        inst = lab.instance(fam)
        w = lab.weights(fam, inst)
        plain = tensors_of(lab.run(fam, inst, w))
        for every in (1, 2):
            rec = _Recorder()
            wants = lambda it, e=every: it % e == 0
            res = lab.run(fam, lab.instance(fam), w, recorder=rec, wants=wants)
            top = int(res.iterations.max()) if res.iterations.numel() else 0
            for failure in _trace_problems(rec, every, top, B):
                raise failure
            diffs = compare_trials(plain, tensors_of(res), [(i, i) for i in range(BATCH)], 0.0)
            if diffs:
                raise CheckFailed(
                    "the same result with and without tracing",
                    "; ".join(diffs[:3]),
                    "ctx.wants()/ctx.record() may only decide what is reported, not change "
                    "the computation",
                )
    return None


@_check("applies", "metric")
def check_applies(lab: Lab) -> str | None:
    """``applies`` returns a bool that does not depend on the batch or on repeated calls."""
    applied = []
    for fam in lab.each_family():
        inst = lab.instance(fam)
        m = lab.make()
        first = m.applies(inst)
        if not isinstance(first, (bool, np.bool_)):
            raise CheckFailed("applies() to return a bool", repr(first), "return True or False")
        again = [m.applies(inst)] + [m.applies(inst.select([b])) for b in range(BATCH)]
        if any(bool(a) != bool(first) for a in again):
            raise CheckFailed(
                f"applies() the same on the batch, on each single trial and on repeated calls "
                f"(family {fam!r})",
                f"{first} on the batch, {again} after",
                "decide from the kind of instance (has a truth, has a test split), not from "
                "the numbers of some trial",
            )
        if first:
            applied.append(fam)
    if not applied:
        return "applies() is False on every family's problem: value checks were skipped"
    return f"applies on {', '.join(applied)}"


def _truth_weights(inst: Instance) -> Weights | None:
    shapes = inst.model.param_shapes()
    if not inst.truth or set(shapes) != set(inst.truth):
        return None
    return dict(inst.truth)


@_check("truth", "metric")
def check_truth(lab: Lab) -> str | None:
    """Scored on the ground truth itself (a noiseless teacher), an error or loss metric is 0
    and a success metric is 1."""
    role = getattr(lab.cls, "role", None)
    if role not in ("error", "loss", "success"):
        raise CheckSkipped(
            f"role {role!r}: only 'error', 'loss' and 'success' metrics have a known value"
        )
    scored = []
    for fam in lab.each_family():
        inst = lab.instance(fam)
        truth = _truth_weights(inst)
        if truth is None:
            continue
        try:
            v = lab.run(fam, inst, truth).detach().double().reshape(-1)
        except CheckSkipped:
            continue
        want = 1.0 if role == "success" else 0.0
        if not ((v - want).abs() <= TRUTH_ATOL).all():
            raise CheckFailed(
                f"an {role!r} metric of the ground truth to be {want:g} (within {TRUTH_ATOL:g}) "
                f"on family {fam!r}",
                str(v.tolist()),
                "compare against instance.truth after the model's align/recovery_view, or "
                "declare the right role",
            )
        scored.append(fam)
    if not scored:
        raise CheckSkipped("no family's problem has a ground truth for every weight")
    return f"checked on {', '.join(scored)}"
