"""The lab of the conformance checks: small instances, companions, comparisons.

:class:`Lab` builds, for one component class, small instances of every family it
declares, with companion components from the registry, and runs the component the way
the runner does. The helpers compare outputs trial by trial and guard the global random
state.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Callable, Iterator, Sequence
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


class CheckFailed(AssertionError):
    """A broken rule: what was expected, what happened, and how to fix it."""

    def __init__(self, expected: str, got: str, fix: str) -> None:
        super().__init__(f"expected {expected}; got {got}. Fix: {fix}")
        self.expected, self.got, self.fix = expected, got, fix


class CheckSkipped(Exception):
    """A check that cannot run here (e.g. no ground truth to score); the reason says why."""


def gens(seeds: Sequence[int]) -> list[torch.Generator]:
    """One seeded ``torch.Generator`` per trial."""
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


def tensors_of(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of an instance, weights, result or value, by a readable path."""
    if isinstance(obj, torch.Tensor):
        return {prefix or "value": obj}
    if isinstance(obj, Instance):
        out = {"X": obj.X, "y": obj.y}
        for name in ("X_test", "y_test"):
            if isinstance(getattr(obj, name), torch.Tensor):
                out[name] = getattr(obj, name)
        out.update(tensors_of(obj.truth, "truth."))
        out.update(tensors_of(obj.extras, "extras."))
        return out
    if isinstance(obj, SolveResult):
        out = tensors_of(obj.weights, "weights.")
        out["iterations"] = obj.iterations
        out.update(tensors_of(obj.info, "info."))
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


def compare_trials(
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


def rng_state() -> tuple[Any, Any, Any]:
    """The global random states of torch, numpy and ``random``."""
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def changed_rng(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> list[str]:
    """Which of the global random states differ between two :func:`rng_state` snapshots."""
    changed = []
    if not torch.equal(a[0], b[0]):
        changed.append("torch")
    na, nb = a[1], b[1]
    if na[0] != nb[0] or not np.array_equal(na[1], nb[1]) or tuple(na[2:]) != tuple(nb[2:]):
        changed.append("numpy")
    if a[2] != b[2]:
        changed.append("random")
    return changed


def seed_globals(seed: int) -> None:
    """Seed torch's, numpy's and ``random``'s global generators."""
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
                        inst = p.sample(gens(DATA_SEEDS[:1]), torch.float64)
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
            self._samples[key] = problem.sample(gens(DATA_SEEDS), dtype)
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
                    w = init.initialize(inst, gens(INIT_SEEDS), torch.float64)
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
        return init.initialize(instance, gens(INIT_SEEDS[: instance.batch]), dtype)

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
                generators=gens([seeds[i] for i in index]),
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
            return comp.sample(gens(DATA_SEEDS[:B]), inst.X.dtype)
        if isinstance(comp, Initializer):
            return comp.initialize(inst, gens(kw.get("seeds", INIT_SEEDS)[:B]), inst.X.dtype)
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


def waivers(cls: type[Component]) -> dict[str, str]:
    return dict(getattr(cls, "conformance_exceptions", {}) or {})
