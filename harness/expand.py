"""Expansion: a validated :class:`~harness.suite.Suite` -> :class:`Cell` cross product.

Every grid point of every ``[[problems]]``, ``[[initializers]]`` and
``[[solvers]]`` entry becomes a :class:`ComponentSpec` (a component with all
its parameter values, defaults included, and its source version); the cross
product of problems x initializers x solvers becomes cells, except the
combinations whose model families do not match or that a solver skips, which
are reported as :class:`Dropped`. Each cell id is a stable hash of the
component names, parameters and source versions, the metrics, the seed and
the dtype (not the trial count, so more trials extend a cell).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.components import Component, ParameterError
from harness.errors import InputError

if TYPE_CHECKING:
    from harness.plugins import Registry
    from harness.suite import Suite, SuiteEntry


@dataclass(frozen=True)
class ComponentSpec:
    """One component with concrete parameter values (all of them, defaults included)."""

    kind: str
    name: str
    params: tuple[tuple[str, Any], ...]
    version: str

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def key(self) -> str:
        """Name and parameters as canonical JSON (no version): what seeds are derived from."""
        return json.dumps([self.name, _jsonable(self.params)], sort_keys=True)

    def label(self) -> str:
        """Name and every parameter, e.g. ``single_neuron d=50 n=300``."""
        shown = [f"{k}={_fmt(v)}" for k, v in self.params]
        return f"{self.name} {' '.join(shown)}".strip()


@dataclass(frozen=True)
class Cell:
    """One point of the cross product with its trials.

    ``varying`` lists the parameters that take more than one value in the
    suite, so labels show what distinguishes this cell from its neighbours.
    """

    suite: str
    problem: ComponentSpec
    initializer: ComponentSpec
    solver: ComponentSpec
    metrics: tuple[ComponentSpec, ...]
    trials: int
    seed: int
    cell_id: str
    varying: tuple[str, ...] = ()
    split: str = "test"
    """``test`` (a reported cell) or ``tune`` (a tuning trial of a tuning axis value)."""
    tuned: tuple[str, ...] = ()
    """The solver parameters that are tuning axes (``{ tune = [...] }``) in the suite."""

    @property
    def label(self) -> str:
        """Readable id, e.g. ``altmin[single_neuron d=50 n=300]``."""

        def part(spec: ComponentSpec, prefix: str) -> str:
            vals = [f"{k}={_fmt(v)}" for k, v in spec.params if f"{prefix}.{k}" in self.varying]
            return " ".join(vals)

        prob = " ".join(x for x in [self.problem.name, part(self.problem, "problem")] if x)
        init = part(self.initializer, "initializer")
        init = self.initializer.name + (f" {init}" if init else "")
        solv = part(self.solver, "solver")
        inner = f"{prob}, {init}" + (f", {solv}" if solv else "")
        return f"{self.solver.name}[{inner}]"


@dataclass(frozen=True)
class Dropped:
    """A combination left out at expansion, and why."""

    problem: str
    initializer: str
    solver: str
    reason: str


def make_params(
    cls: type[Component], values: dict[str, Any], src: str, where: str, only_key: str | None = None
) -> Any:
    """``cls``'s parameters from suite values; an :class:`InputError` naming file and key.

    With ``only_key``, one value is checked alone (no cross-parameter checks).
    """
    try:
        return cls.make_params(values, cross_check=only_key is None)
    except ParameterError as exc:
        raise InputError(f"{src}: key '{where}.{exc.key}': {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{src}: key '{where}': {exc}") from None


def component_spec(cls: type[Component], params: Any, registry: Registry) -> ComponentSpec:
    """The spec of ``cls`` with ``params``: every value and the source version (and
    the distribution that registered it, if any), which enters the cell id."""
    items = tuple((s.name, getattr(params, s.name)) for s in cls.param_specs())
    dist = registry.distribution_of(cls.kind, cls.name)
    version = cls.source_version() + (f"+{dist}" if dist else "")
    return ComponentSpec(cls.kind, cls.name, items, version)


def tuning_key(problem: ComponentSpec, initializer: ComponentSpec, solver: ComponentSpec,
               tuned: tuple[str, ...]) -> str:  # fmt: skip
    """What one tuning selection is for: a reported cell without its tuned parameters."""
    fixed = [(k, v) for k, v in solver.params if k not in tuned]
    return json.dumps(
        [problem.key(), initializer.key(), solver.name, _jsonable(tuple(fixed))], sort_keys=True
    )


MAX_CELLS = 10_000
"""Default limit on a suite's cells (``--max-cells``); the largest shipped suite has 320."""
MAX_TRIALS = 1_000_000
"""Default limit on a suite's trials, cells x trials (``--max-trials``)."""


@dataclass(frozen=True)
class Limits:
    """How large a suite may be before it is refused (``--max-cells``, ``--max-trials``)."""

    max_cells: int = MAX_CELLS
    max_trials: int = MAX_TRIALS


def count_cells(suite: Suite) -> dict[str, int]:
    """Grid points per section (``problems``, ``initializers``, ``solvers``), by
    arithmetic: the sum over a section's entries of the product of their axis lengths.
    The product of the three bounds the cells (before incompatible ones are dropped)."""
    return {
        section: sum(math.prod(len(axis) for axis in entry.grid.values()) for entry in entries)
        for section, entries in suite.entries.items()
    }


def check_size(suite: Suite, limits: Limits | None = None) -> tuple[int, int]:
    """``(cells, trials)`` the suite asks for, counted before anything is built; an
    :class:`InputError` when either is above ``limits`` (the limit and how to raise it)."""
    limits = limits or Limits()
    counts = count_cells(suite)
    cells = math.prod(counts.values())
    trials = cells * suite.trials
    parts = " x ".join(f"{n:,} {section}" for section, n in counts.items())
    src = str(suite.path)
    if cells > limits.max_cells:
        raise InputError(
            f"{src}: the suite has {cells:,} cells ({parts}), more than the limit of "
            f"{limits.max_cells:,}; shrink the grids, or raise the limit with "
            f"--max-cells {cells} if you mean it"
        )
    if trials > limits.max_trials:
        raise InputError(
            f"{src}: the suite has {trials:,} trials ({cells:,} cells x {suite.trials:,} "
            f"trials), more than the limit of {limits.max_trials:,}; lower suite.trials, or "
            f"raise the limit with --max-trials {trials} if you mean it"
        )
    return cells, trials


def expand(
    suite: Suite,
    registry: Registry,
    selected: dict[str, dict[str, Any]] | None = None,
    limits: Limits | None = None,
) -> tuple[list[Cell], list[Dropped]]:
    """Cross product of problems x initializers x solvers; incompatible combinations dropped.

    The size is checked first (:func:`check_size`), so a suite of 10**9 cells is refused
    at once instead of being built until memory runs out.

    A suite with tuning axes (``{ tune = [...] }``) expands, without ``selected``, to its
    tuning cells: every tuning value, ``suite.tuning.trials`` trials, the tuning seed
    (:func:`harness.seeds.tuning_seed`), ``split = "tune"``. With ``selected`` (tuning key
    -> {parameter: chosen value}, see :func:`tuning_key`) it expands to the reported
    cells, each keeping only its selected values.
    """
    check_size(suite, limits)
    src = str(suite.path)
    built = {
        section: [
            (entry.cls(params), component_spec(entry.cls, params, registry))
            for entry in suite.entries[section]
            for params in _grid_params(entry, src)
        ]
        for section in ("problems", "initializers", "solvers")
    }
    tuned_of = {
        id(spec): entry.tuned
        for entry, (_, spec) in zip(
            [e for e in suite.entries["solvers"] for _ in _grid_params(e, src)],
            built["solvers"],
        )
    }
    tuning = suite.tuning if any(tuned_of.values()) else None
    split, seed, trials = "test", suite.seed, suite.trials
    if tuning is not None and selected is None:
        from harness.seeds import tuning_seed

        split, seed, trials = "tune", tuning_seed(suite.seed), tuning.trials
    varying = _varying(suite, built)

    cells: list[Cell] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    cell_id_of = _CellIds(suite, seed)
    for (prob, pspec), (init, ispec), (solv, sspec) in itertools.product(
        built["problems"], built["initializers"], built["solvers"]
    ):
        reason = _incompatible(prob, init, solv)
        if reason:
            dropped.append(Dropped(pspec.label(), ispec.label(), sspec.label(), reason))
            continue
        tuned = tuned_of[id(sspec)]
        if split == "tune" and not tuned:
            continue  # a solver without tuning axes has nothing to tune
        if tuned and selected is not None:
            chosen = selected.get(tuning_key(pspec, ispec, sspec, tuned))
            params = sspec.param_dict
            if chosen is None or any(params[k] != chosen[k] for k in tuned):
                continue
        cell_id = cell_id_of(pspec, ispec, sspec)
        if cell_id in seen:
            continue
        seen.add(cell_id)
        cells.append(
            Cell(
                suite=suite.name,
                problem=pspec,
                initializer=ispec,
                solver=sspec,
                metrics=tuple(suite.metrics),
                trials=trials,
                seed=seed,
                cell_id=cell_id,
                varying=varying,
                split=split,
                tuned=tuned,
            )
        )
    if not cells:
        raise InputError(
            f"{src}: the suite expands to no runnable cell "
            f"({len(dropped)} combinations dropped as incompatible)"
        )
    return cells, dropped


def _grid_params(entry: SuiteEntry, src: str) -> Iterator[Any]:
    """The parameters of every point of an entry's grid, in grid order."""
    keys = list(entry.grid)
    for combo in itertools.product(*(entry.grid[k] for k in keys)):
        yield make_params(entry.cls, dict(zip(keys, combo)), src, entry.where)


def _varying(
    suite: Suite, built: dict[str, list[tuple[Component, ComponentSpec]]]
) -> tuple[str, ...]:
    """``kind.param`` of every parameter that takes more than one value in the suite."""
    varying: set[str] = set()
    for entries in suite.entries.values():
        for entry in entries:
            varying.update(f"{entry.kind}.{k}" for k, v in entry.grid.items() if len(v) > 1)
    for specs in built.values():
        # A parameter that differs between two entries of one component distinguishes cells too.
        by_name: dict[tuple[str, str, str], set[str]] = {}
        for _, spec in specs:
            for k, v in spec.params:
                by_name.setdefault((spec.kind, spec.name, k), set()).add(repr(v))
        varying.update(f"{kind}.{k}" for (kind, _, k), vals in by_name.items() if len(vals) > 1)
    return tuple(sorted(varying))


def _incompatible(prob: Component, init: Component, solv: Component) -> str | None:
    """Why this combination cannot run (families differ, or the solver skips it), else None."""
    family = prob.family()
    if not init.supports(family):
        return (
            f"initializer {init.name} supports {', '.join(init.families)}, "
            f"not {prob.name}'s family {family}"
        )
    if not solv.supports(family):
        return (
            f"solver {solv.name} supports {', '.join(solv.families)}, "
            f"not {prob.name}'s family {family}"
        )
    return solv.skip(prob, init)


def _cell_id(suite: Suite, *specs: ComponentSpec, seed: int | None = None) -> str:
    """Stable across processes and machines: names, parameters, source versions, seed, dtype,
    metrics and trace settings. Not the trial count, so more trials extend a cell."""
    blob = json.dumps(_cell_id_payload(suite, specs, seed), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _spec_payload(s: ComponentSpec) -> list[Any]:
    return [s.kind, s.name, _jsonable(s.params), s.version]


def _cell_id_payload(
    suite: Suite, specs: tuple[ComponentSpec, ...], seed: int | None = None
) -> dict[str, Any]:
    return {
        "components": [_spec_payload(s) for s in specs],
        "metrics": [[m.name, _jsonable(m.params), m.version] for m in suite.metrics],
        "trace": [list(suite.trace), suite.trace_every],
        "seed": suite.seed if seed is None else seed,
        "dtype": suite.dtype,
    }


class _CellIds:
    """:func:`_cell_id` for many cells of one suite: the same ids, with each component's
    JSON and the suite's part serialized once instead of once per cell (expanding 100,000
    cells spent most of its time there)."""

    def __init__(self, suite: Suite, seed: int | None = None) -> None:
        rest = json.dumps(_cell_id_payload(suite, (), seed), sort_keys=True, default=str)
        head, empty, tail = rest.partition('"components": []')
        assert head == "{" and empty, rest  # "components" sorts first
        self.tail = tail
        self.specs: dict[int, tuple[ComponentSpec, str]] = {}

    def _json(self, spec: ComponentSpec) -> str:
        hit = self.specs.get(id(spec))
        if hit is None or hit[0] is not spec:
            text = json.dumps(_spec_payload(spec), sort_keys=True, default=str)
            self.specs[id(spec)] = hit = (spec, text)
        return hit[1]

    def __call__(self, *specs: ComponentSpec) -> str:
        blob = '{"components": [' + ", ".join(self._json(s) for s in specs) + "]" + self.tail
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "-".join(_fmt(x) for x in v)
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v
