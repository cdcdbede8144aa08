"""Conformance checks for components: scikit-learn's ``check_estimator`` for relubench.

A component that passes these checks can be trusted inside a suite: its trials
are independent, its numbers do not depend on the batch a trial runs in, it
draws randomness only from the generators it is given, it honours the dtype
and device of its inputs, and its parameters are documented and validated.

Each check runs the component on small instances of every model family it
declares (``"*"``: every family a registered problem poses), with companion
components found in the registry: for a solver, the first problem (by name)
that poses the family and the first initializer that supports it and draws
random weights. Sizes are shrunk through conventional parameter names
(:data:`SMALL`); a component sets other small values with the class attribute
``conformance_params = {"name": value}``.

A component that cannot meet a check declares the exception with its reason::

    class MySolver(Solver):
        conformance_exceptions = {"batch_invariance": "LAPACK rounds differently at B = 1"}

(``"*"`` waives every check that runs the component, e.g. for a problem that
needs a user's data file). The checks, by kind, are in :data:`CHECKS`.

Entry points: :func:`check_component` (one call, raises on failure),
:func:`run_checks` (results), :func:`conformance_tests` (a pytest test function
parametrized over every component and check; an author's whole test file is
two lines), and ``relubench check NAME|PATH.py|MODULE``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.components import (
    ANY_FAMILY,
    Component,
    Initializer,
    Instance,
    Metric,
    ParameterError,
    Problem,
    SolveContext,
    Solver,
    SolveResult,
    Weights,
)
from harness.errors import InputError

BATCH = 3
"""Trials in the batch of every check (trial 0 is the one corrupted by ``independence``)."""
DATA_SEEDS = (101, 102, 103)
INIT_SEEDS = (201, 202, 203)
SOLVER_SEEDS = (301, 302, 303)

RTOL = {torch.float64: 1e-7, torch.float32: 1e-4}
"""Tolerance of ``batch_invariance`` and ``independence``, relative to a trial's largest
entry: batched kernels may round differently from a B = 1 call, never more."""
TRUTH_ATOL = 1e-6
"""``truth``: an error metric of the ground truth itself is at most this (float64)."""
WILD = 1e3
"""``independence``: the corrupted trial's data and weights are scaled by this factor."""

SMALL: dict[str, Any] = {
    "d": 4,
    "k": 2,
    "k_out": 2,
    "n": 24,
    "n_train": 24,
    "n_test": 8,
    "width": 4,
    "hidden": "4",
    "max_iter": 4,
    "epochs": 1,
    "epochs_per_layer": 1,
    "rounds": 2,
    "batch_size": 8,
    "draws": 2,
}
"""Small values for conventional parameter names, used where the component has such a
parameter, the value is smaller than its default and the parameter accepts it (``n_test``
is always set, so that test-set metrics apply)."""


# --------------------------------------------------------------------------- results


class CheckFailed(AssertionError):
    """A broken rule: what was expected, what happened, and how to fix it."""

    def __init__(self, expected: str, got: str, fix: str) -> None:
        super().__init__(f"expected {expected}; got {got}. Fix: {fix}")
        self.expected, self.got, self.fix = expected, got, fix


class CheckSkipped(Exception):
    """A check that cannot run here (e.g. no ground truth to score); the reason says why."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one component."""

    kind: str
    component: str
    check: str
    status: str
    """``passed``, ``failed``, ``waived`` (the component declared an exception) or
    ``skipped`` (nothing to check here)."""
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def __str__(self) -> str:
        text = f"{self.kind} {self.component}: {self.check} {self.status}"
        return f"{text}: {self.message}" if self.message else text


class ConformanceError(AssertionError):
    """Raised by :func:`check_component` when some check failed; lists every failure."""

    def __init__(self, results: Sequence[CheckResult]) -> None:
        self.results = list(results)
        failed = [r for r in self.results if r.failed]
        super().__init__(
            f"{len(failed)} conformance check(s) failed:\n" + "\n".join(f"  {r}" for r in failed)
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


# --------------------------------------------------------------------------- the lab


def _gens(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def small_params(cls: type[Component]) -> Any:
    """``cls``'s parameters for the checks: defaults, shrunk by :data:`SMALL`, then its own
    ``conformance_params``."""
    values: dict[str, Any] = {}
    defaults = cls.Params()
    for f in dataclasses.fields(cls.Params):
        if f.name not in SMALL:
            continue
        small, default = SMALL[f.name], getattr(defaults, f.name)
        if type(small) is str and not isinstance(default, str):
            continue
        if f.name == "n_test" or default is None or type(default) is str:
            ok = True
        else:
            ok = isinstance(default, (int, float)) and default > small
        if ok:
            try:
                cls.make_params({**values, f.name: small})
            except (ParameterError, TypeError, ValueError):
                continue
            values[f.name] = small
    values.update(getattr(cls, "conformance_params", {}) or {})
    return cls.make_params(values)


def _tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of an instance, weights, result or value, by a readable path."""
    if isinstance(obj, torch.Tensor):
        return {prefix or "value": obj}
    if isinstance(obj, Instance):
        out = {"X": obj.X, "y": obj.y}
        for name in ("X_test", "y_test"):
            if isinstance(getattr(obj, name), torch.Tensor):
                out[name] = getattr(obj, name)
        out.update(_tensors(obj.truth, "truth."))
        out.update(_tensors(obj.extras, "extras."))
        return out
    if isinstance(obj, SolveResult):
        out = _tensors(obj.weights, "weights.")
        out["iterations"] = obj.iterations
        out.update(_tensors(obj.info, "info."))
        return out
    if isinstance(obj, dict):
        return {f"{prefix}{k}": v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return {}


def _mismatch(a: torch.Tensor, b: torch.Tensor, rtol: float) -> str | None:
    """Why ``b`` is not ``a`` within ``rtol`` of ``a``'s largest entry (NaN equals NaN)."""
    if a.shape != b.shape:
        return f"shape {tuple(b.shape)} instead of {tuple(a.shape)}"
    if not a.is_floating_point():
        return None if torch.equal(a, b) else f"{b.tolist()} instead of {a.tolist()}"
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return "NaN where the reference has numbers (or the reverse)"
    fa, fb = torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0)
    if not torch.equal(torch.isinf(fa), torch.isinf(fb)):
        return "infinite in other entries"
    fin = torch.isfinite(fa)
    if not torch.equal(fa[~fin], fb[~fin]):
        return "infinities of other signs"
    if not fin.any():
        return None
    scale = float(fa[fin].abs().max())
    diff = float((fa[fin] - fb[fin]).abs().max())
    if diff > rtol * max(scale, 1e-30) and diff > 0:
        return f"differs by {diff:.3g} (largest entry {scale:.3g}, tolerance {rtol:g} of it)"
    return None


def _compare_trials(
    ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor], pairs, rtol: float
) -> list[str]:
    """Differences between trial ``i`` of ``ref`` and trial ``j`` of ``got`` for (i, j) pairs."""
    out = []
    for key, a in ref.items():
        b = got.get(key)
        if b is None:
            out.append(f"{key} missing")
            continue
        for i, j in pairs:
            why = _mismatch(a[i], b[j], rtol)
            if why:
                out.append(f"trial {i} {key}: {why}")
    return out


def _on_trial(value: Any, b: int, fn: Callable[[torch.Tensor], torch.Tensor], B: int) -> Any:
    if (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.dim() > 0
        and value.shape[0] == B
    ):
        value = value.clone()
        value[b] = fn(value[b])
    return value


def corrupt(instance: Instance, weights: Weights | None, b: int, mode: str):
    """Trial ``b`` of an instance (and weights) made NaN (``mode="nan"``) or scaled by
    :data:`WILD` (``"wild"``); every other trial's tensors are untouched copies."""
    B = instance.batch
    fn = (lambda t: torch.full_like(t, math.nan)) if mode == "nan" else (lambda t: t * WILD + 1.0)
    new = Instance(
        X=_on_trial(instance.X, b, fn, B),
        y=_on_trial(instance.y, b, fn, B),
        model=instance.model,
        X_test=_on_trial(instance.X_test, b, fn, B),
        y_test=_on_trial(instance.y_test, b, fn, B),
        truth={k: _on_trial(v, b, fn, B) for k, v in instance.truth.items()},
        extras={k: _on_trial(v, b, fn, B) for k, v in instance.extras.items()},
    )
    if weights is None:
        return new, None
    return new, {k: _on_trial(v, b, fn, B) for k, v in weights.items()}


_RNG_NAMES = ("torch", "numpy", "random")


def _rng_state() -> tuple[Any, Any, Any]:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _same_state(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> list[str]:
    changed = []
    if not torch.equal(a[0], b[0]):
        changed.append("torch")
    na, nb = a[1], b[1]
    if na[0] != nb[0] or not np.array_equal(na[1], nb[1]) or tuple(na[2:]) != tuple(nb[2:]):
        changed.append("numpy")
    if a[2] != b[2]:
        changed.append("random")
    return changed


def _seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class Lab:
    """Small instances and companions for checking one component class.

    ``registry`` supplies the companions (problems per family, initializers). Instances
    are sampled once per family and dtype and handed out as deep copies, so a component
    that writes into its inputs cannot spoil another check.
    """

    def __init__(self, cls: type[Component], registry: Any) -> None:
        self.cls = cls
        self.registry = registry
        self._params: Any = None
        self._problems: dict[str, Problem | None] = {}
        self._inits: dict[str, Initializer | None] = {}
        self._samples: dict[tuple[str, torch.dtype], Instance] = {}
        self._family_map: dict[str, list[type[Problem]]] | None = None

    @property
    def params(self) -> Any:
        """The small parameters (computed on first use: a check that only reads the class
        works even when they are invalid)."""
        if self._params is None:
            self._params = small_params(self.cls)
        return self._params

    def make(self) -> Any:
        return self.cls(self.params)

    # -- families ----------------------------------------------------------
    def _families_posed(self) -> dict[str, list[type[Problem]]]:
        if self._family_map is None:
            table: dict[str, list[type[Problem]]] = {}
            for _, pcls in sorted(self.registry.components.get("problem", {}).items()):
                try:
                    fam = pcls(small_params(pcls)).family()
                except Exception:
                    continue
                table.setdefault(fam, []).append(pcls)
            self._family_map = table
        return self._family_map

    def declared(self) -> list[str]:
        """The families to check: the declared ones, every posed family for ``"*"``."""
        if isinstance(self.make(), Problem):
            return [self.make().family()]
        fams = list(self.cls.families)
        if ANY_FAMILY in fams:
            return sorted(self._families_posed())
        return fams

    def families(self) -> list[str]:
        """Declared families that some registered problem poses (those the checks run on)."""
        if isinstance(self.make(), Problem):
            return self.declared()
        return [f for f in self.declared() if self.problem(f) is not None]

    # -- companions --------------------------------------------------------
    def problem(self, family: str) -> Problem | None:
        """The first registered problem (by name) of ``family`` that samples at small size
        (for a metric, the first one it applies to, if any)."""
        if family not in self._problems:
            self._problems[family] = None
            if issubclass(self.cls, Problem):
                self._problems[family] = self.make()
            else:
                metric = self.make() if issubclass(self.cls, Metric) else None
                for pcls in self._families_posed().get(family, []):
                    try:
                        p = pcls(small_params(pcls))
                        inst = p.sample(_gens(DATA_SEEDS[:1]), torch.float64)
                    except Exception:
                        continue
                    if self._problems[family] is None:
                        self._problems[family] = p
                    if metric is None or metric.applies(inst):
                        self._problems[family] = p
                        break
        return self._problems[family]

    def instance(self, family: str, dtype: torch.dtype = torch.float64) -> Instance:
        key = (family, dtype)
        if key not in self._samples:
            problem = self.problem(family)
            assert problem is not None
            self._samples[key] = problem.sample(_gens(DATA_SEEDS), dtype)
        return copy.deepcopy(self._samples[key])

    def initializer(self, family: str) -> Initializer | None:
        """A registered initializer of ``family``: the first (by name) that draws different
        weights per trial, else the first that works."""
        if issubclass(self.cls, Initializer):
            return self.make()
        if family not in self._inits:
            self._inits[family] = None
            inst = self.instance(family)
            shapes = set(inst.model.param_shapes())
            fallback = None
            for _, icls in sorted(self.registry.components.get("initializer", {}).items()):
                if not icls.supports(family):
                    continue
                try:
                    init = icls(small_params(icls))
                    w = init.initialize(inst, _gens(INIT_SEEDS), torch.float64)
                except Exception:
                    continue
                if set(w) != shapes:
                    continue
                if any(not torch.equal(v[0], v[1]) for v in w.values()):
                    self._inits[family] = init
                    break
                fallback = fallback or init
            else:
                self._inits[family] = fallback
        return self._inits[family]

    def weights(self, family: str, instance: Instance, dtype=torch.float64) -> Weights:
        init = self.initializer(family)
        if init is None:
            raise CheckSkipped(f"no registered initializer supports family {family!r}")
        return init.initialize(instance, _gens(INIT_SEEDS[: instance.batch]), dtype)

    def solve(
        self,
        solver: Solver,
        instance: Instance,
        weights: Weights,
        seeds: Sequence[int] = SOLVER_SEEDS,
        recorder: Callable[[int, Weights, dict[str, Any]], None] | None = None,
        wants: Callable[[int], bool] | None = None,
    ) -> SolveResult:
        """Call ``solve`` the way the runner does (one call per trial when not batched)."""
        groups = (
            [list(range(instance.batch))]
            if getattr(solver, "batched", True)
            else [[i] for i in range(instance.batch)]
        )
        results = []
        for index in groups:
            if recorder is not None and hasattr(recorder, "start"):
                recorder.start()
            sub = instance if len(groups) == 1 else instance.select(index)
            w = weights if len(groups) == 1 else {k: v[index] for k, v in weights.items()}
            ctx = SolveContext(
                device=instance.X.device,
                dtype=instance.X.dtype,
                generators=_gens([seeds[i] for i in index]),
                recorder=recorder,
                wants=wants,
            )
            results.append(solver.solve(sub, dict(w), ctx))
        if len(results) == 1:
            return results[0]
        return SolveResult(
            {k: torch.cat([r.weights[k] for r in results]) for k in results[0].weights},
            torch.cat([r.iterations.reshape(-1) for r in results]),
            None
            if all(r.status is None for r in results)
            else [s for r in results for s in (r.status or ["ok"])],
            {k: torch.cat([r.info[k].reshape(-1) for r in results]) for k in results[0].info},
        )

    def run(
        self,
        family: str,
        instance: Instance | None = None,
        weights: Weights | None = None,
        *,
        fresh: bool = True,
        **kw: Any,
    ) -> Any:
        """Run the component under test once on ``family`` and return what it returns.

        ``weights`` are handed over as copies unless ``fresh=False``, so that a component
        writing into its inputs fails ``inputs_unchanged`` and nothing else.
        """
        comp = self.make()
        if weights is not None and fresh:
            weights = {k: v.clone() for k, v in weights.items()}
        inst = instance if instance is not None else self.instance(family)
        B = inst.batch
        if isinstance(comp, Problem):
            return comp.sample(_gens(DATA_SEEDS[:B]), inst.X.dtype)
        if isinstance(comp, Initializer):
            return comp.initialize(inst, _gens(kw.get("seeds", INIT_SEEDS)[:B]), inst.X.dtype)
        w = weights if weights is not None else self.weights(family, inst, inst.X.dtype)
        if isinstance(comp, Solver):
            return self.solve(comp, inst, w, **kw)
        assert isinstance(comp, Metric)
        if not comp.applies(inst):
            raise CheckSkipped(f"applies() is False on family {family!r}")
        return comp.compute(inst, w, SolveResult(w, torch.zeros(B, dtype=torch.long)))

    def each_family(self) -> Iterator[str]:
        fams = self.families()
        if not fams:
            raise CheckSkipped(
                f"no registered problem poses any declared family ({', '.join(self.declared())})"
            )
        yield from fams


def _waivers(cls: type[Component]) -> dict[str, str]:
    return dict(getattr(cls, "conformance_exceptions", {}) or {})


# --------------------------------------------------------------------------- the checks


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
    for name, reason in _waivers(cls).items():
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
        for name, t in _tensors(out).items():
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
        full = comp.sample(_gens(DATA_SEEDS), torch.float64)
        alone = [comp.sample(_gens([s]), torch.float64) for s in DATA_SEEDS]
        return _tensors(full), [_tensors(a) for a in alone]
    if kind == "initializer":
        comp = lab.make()
        full = comp.initialize(inst, _gens(INIT_SEEDS), torch.float64)
        alone = [
            comp.initialize(inst.select([b]), _gens([INIT_SEEDS[b]]), torch.float64)
            for b in range(inst.batch)
        ]
        return _tensors(full), [_tensors(a) for a in alone]
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
    out = _tensors(full)
    return out, [_tensors(a) for a in alone]


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
                for d in _compare_trials(ref, single, [(0, 0)], rtol)
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
            ref = _tensors(lab.run(fam, clean_inst, w))
        except CheckSkipped:
            continue
        for mode in ("nan", "wild"):
            inst, wb = corrupt(lab.instance(fam), w, 0, mode)
            what = "NaN" if mode == "nan" else f"scaled by {WILD:g}"
            try:
                got = _tensors(lab.run(fam, inst, wb))
            except CheckSkipped:
                continue
            except Exception as exc:
                raise CheckFailed(
                    f"the other trials to finish when trial 0's data and weights are {what}",
                    f"{type(exc).__name__}: {exc}",
                    "one bad trial must not fail the batch: let it carry NaN or mark it "
                    "with SolveResult.status = 'diverged' and go on with the others",
                ) from exc
            diffs = _compare_trials(ref, got, [(b, b) for b in range(1, BATCH)], rtol)
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
            a = _tensors(lab.run(fam, lab.instance(fam), w))
            b = _tensors(lab.run(fam, lab.instance(fam), w))
        except CheckSkipped:
            continue
        diffs = _compare_trials(a, b, [(i, i) for i in range(BATCH)], 0.0)
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
    saved = _rng_state()
    try:
        for fam in lab.each_family():
            inst = lab.instance(fam)
            w = lab.weights(fam, inst) if lab.cls.kind in ("solver", "metric") else None
            outs, changed = [], set()
            for seed in (1, 2):
                _seed_globals(seed)
                before = _rng_state()
                try:
                    outs.append(_tensors(lab.run(fam, lab.instance(fam), w)))
                except CheckSkipped:
                    break
                changed.update(_same_state(before, _rng_state()))
            if len(outs) < 2:
                continue
            diffs = _compare_trials(outs[0], outs[1], [(i, i) for i in range(BATCH)], 0.0)
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
        before = {**_tensors(inst), **(_tensors(w, "weights.") if w else {})}
        before = {k: v.clone() for k, v in before.items()}
        try:
            lab.run(fam, inst, w, fresh=False)
        except CheckSkipped:
            continue
        after = {**_tensors(inst), **(_tensors(w, "weights.") if w else {})}
        diffs = _compare_trials(before, after, [(i, i) for i in range(BATCH)], 0.0)
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
            "return each trial's real iteration count",
        )
    if every == 1 and top >= 1 and not its:
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
        plain = _tensors(lab.run(fam, inst, w))
        for every in (1, 2):
            rec = _Recorder()
            wants = lambda it, e=every: it % e == 0
            res = lab.run(fam, lab.instance(fam), w, recorder=rec, wants=wants)
            top = int(res.iterations.max()) if res.iterations.numel() else 0
            for failure in _trace_problems(rec, every, top, B):
                raise failure
            diffs = _compare_trials(plain, _tensors(res), [(i, i) for i in range(BATCH)], 0.0)
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


# --------------------------------------------------------------------------- running


_LABS: dict[tuple[int, type], Lab] = {}


def _lab(cls: type[Component], registry: Any) -> Lab:
    key = (id(registry), cls)
    if key not in _LABS:
        _LABS[key] = Lab(cls, registry)
    return _LABS[key]


def _default_registry() -> Any:
    from harness.plugins import get_registry

    return get_registry()


def run_check(cls: type[Component], check: str, registry: Any = None) -> CheckResult:
    """Run one named check on a component class and return its outcome (never raises for
    a failing component)."""
    registry = registry if registry is not None else _default_registry()
    spec = CHECKS[check]
    waivers = _waivers(cls)
    reason = waivers.get(check) or (waivers.get("*") if spec.runs_component else None)
    if reason:
        return CheckResult(cls.kind, cls.name, check, "waived", reason)
    try:
        lab = _lab(cls, registry)
        note = spec.func(lab)
    except CheckSkipped as exc:
        return CheckResult(cls.kind, cls.name, check, "skipped", str(exc))
    except CheckFailed as exc:
        return CheckResult(cls.kind, cls.name, check, "failed", str(exc))
    except Exception as exc:
        return CheckResult(
            cls.kind,
            cls.name,
            check,
            "failed",
            f"expected the check to run; got {type(exc).__name__}: {exc}. Fix: the component "
            "raised on a small valid instance; run it alone to see the traceback",
        )
    return CheckResult(cls.kind, cls.name, check, "passed", note or "")


def run_checks(
    cls: type[Component], registry: Any = None, checks: Sequence[str] | None = None
) -> list[CheckResult]:
    """Every check (or the named ones) of a component class."""
    names = checks_for(cls) if checks is None else [c for c in checks if c in checks_for(cls)]
    return [run_check(cls, name, registry) for name in names]


def check_component(cls: type[Component], registry: Any = None) -> list[CheckResult]:
    """Run every check on ``cls``; raise :class:`ConformanceError` listing what failed."""
    results = run_checks(cls, registry)
    if any(r.failed for r in results):
        raise ConformanceError(results)
    return results


def resolve(
    target: str, plugins: Sequence[str] = (), blocked: Sequence[str] = ()
) -> tuple[Any, list[type[Component]]]:
    """The registry and the component classes a ``relubench check`` target names.

    ``target`` is a component name (of any kind; ``kind:name`` picks one kind), the name
    of a registered plugin, a path to a ``.py`` plugin file, or an importable module.
    """
    import sys

    from harness.plugins import file_plugin_name, get_registry

    registry = get_registry(tuple(plugins), tuple(blocked))
    kind, _, name = target.rpartition(":")
    found = [
        table[name]
        for k, table in registry.components.items()
        if name in table and (not kind or k == kind)
    ]
    if found:
        return registry, found
    if _of_plugin(registry, target):
        return registry, _of_plugin(registry, target)
    is_file = target.endswith(".py") or Path(target).is_file()
    if not is_file and not _importable(target):
        known = sorted({n for t in registry.components.values() for n in t})
        raise InputError(
            f"relubench check {target}: no component, plugin, .py file or importable module "
            f"of that name; registered components: {', '.join(known)}"
        )
    registry = get_registry((*plugins, target), tuple(blocked))
    fallback = file_plugin_name(Path(target)) if is_file else target
    module = sys.modules.get(f"relubench_plugin_{fallback}" if is_file else target)
    plugin = registry.manager.get_name(module) if module is not None else None
    own = _of_plugin(registry, plugin or fallback)
    if not own:
        raise InputError(f"relubench check {target}: the plugin registers no component")
    return registry, own


def _importable(name: str) -> bool:
    import importlib.util

    if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _of_plugin(registry: Any, plugin: str) -> list[type[Component]]:
    return [
        table[name]
        for kind, table in registry.components.items()
        for name in sorted(table)
        if registry.plugin_of(kind, name) == plugin
    ]


def conformance_tests(
    *targets: str | type[Component], plugins: Sequence[str] = (), blocked: Sequence[str] = ()
) -> Callable[..., None]:
    """A pytest test function parametrized over every check of every component of
    ``targets`` (component classes, or what ``relubench check`` accepts). Usage::

        from harness.testing import conformance_tests
        test_conformance = conformance_tests("my_package.solvers")
    """
    import pytest

    from harness.plugins import get_registry

    cases = []
    for target in targets:
        if isinstance(target, str):
            registry, classes = resolve(target, plugins, blocked)
        else:
            registry, classes = get_registry(tuple(plugins), tuple(blocked)), [target]
        for cls in classes:
            cases += [
                pytest.param(cls, name, registry, id=f"{cls.kind}:{cls.name}:{name}")
                for name in checks_for(cls)
            ]

    @pytest.mark.parametrize("component, check, registry", cases)
    def test_conformance(component: type[Component], check: str, registry: Any) -> None:
        result = run_check(component, check, registry)
        if result.failed:
            pytest.fail(str(result), pytrace=False)
        if result.status in ("waived", "skipped"):
            pytest.skip(f"{result.status}: {result.message}")

    return test_conformance


def format_results(results: Sequence[CheckResult]) -> str:
    """Plain text: one line per check, failures with their message."""
    lines = []
    for r in results:
        mark = {"passed": "ok  ", "failed": "FAIL", "waived": "wvd ", "skipped": "skip"}[r.status]
        line = f"{mark} {r.kind} {r.component}: {r.check}"
        if r.message and r.status != "passed":
            line += f"\n       {r.message}"
        lines.append(line)
    return "\n".join(lines)
