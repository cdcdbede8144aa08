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


def expand(suite: Suite, registry: Registry) -> tuple[list[Cell], list[Dropped]]:
    """Cross product of problems x initializers x solvers; incompatible combinations dropped."""
    src = str(suite.path)
    built = {
        section: [
            (entry.cls(params), component_spec(entry.cls, params, registry))
            for entry in suite.entries[section]
            for params in _grid_params(entry, src)
        ]
        for section in ("problems", "initializers", "solvers")
    }
    varying = _varying(suite, built)

    cells: list[Cell] = []
    dropped: list[Dropped] = []
    seen: set[str] = set()
    cell_id_of = _CellIds(suite)
    for (prob, pspec), (init, ispec), (solv, sspec) in itertools.product(
        built["problems"], built["initializers"], built["solvers"]
    ):
        reason = _incompatible(prob, init, solv)
        if reason:
            dropped.append(Dropped(pspec.label(), ispec.label(), sspec.label(), reason))
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
                trials=suite.trials,
                seed=suite.seed,
                cell_id=cell_id,
                varying=varying,
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


def _cell_id(suite: Suite, *specs: ComponentSpec) -> str:
    """Stable across processes and machines: names, parameters, source versions, seed, dtype,
    metrics and trace settings. Not the trial count, so more trials extend a cell."""
    blob = json.dumps(_cell_id_payload(suite, specs), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _spec_payload(s: ComponentSpec) -> list[Any]:
    return [s.kind, s.name, _jsonable(s.params), s.version]


def _cell_id_payload(suite: Suite, specs: tuple[ComponentSpec, ...]) -> dict[str, Any]:
    return {
        "components": [_spec_payload(s) for s in specs],
        "metrics": [[m.name, _jsonable(m.params), m.version] for m in suite.metrics],
        "trace": [list(suite.trace), suite.trace_every],
        "seed": suite.seed,
        "dtype": suite.dtype,
    }


class _CellIds:
    """:func:`_cell_id` for many cells of one suite: the same ids, with each component's
    JSON and the suite's part serialized once instead of once per cell (expanding 100,000
    cells spent most of its time there)."""

    def __init__(self, suite: Suite) -> None:
        rest = json.dumps(_cell_id_payload(suite, ()), sort_keys=True, default=str)
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
