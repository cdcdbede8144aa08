"""What the summary and the report know about components: only what the components declare.

A metric declares its role and direction (:attr:`Metric.role`,
:meth:`Metric.better`); a solver declares the budget axes it records
(:attr:`Solver.budget_axes`; iteration and solver time are axes of every
solver). :func:`declare` turns the components of a run into a JSON dict that
the store records in every part file's metadata (under ``relubench`` ->
``declarations``)::

    {"metrics": {"<metric>": {"role": "error", "direction": "lower"}, ...},
     "solvers": {"<solver>": {"budget_axes": ["iteration", "time_s", ...]}, ...}}

:func:`read_declarations` reads them back from a results folder, so a report
of old results describes them as they were run; components the files do not
describe (folders written before declarations were recorded) are looked up in
the live registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.components import ROLE_DIRECTIONS, Metric, Solver

if TYPE_CHECKING:
    from harness.expand import Cell
    from harness.plugins import Registry

CLOCK_AXES = ("iteration", "time_s")
"""Budget axes of every solver: the ``iteration`` and ``time_s`` columns of the traces."""

METADATA_KEY = "declarations"
"""Key of the declarations inside the ``relubench`` JSON of a part file's metadata."""


@dataclass(frozen=True)
class Declarations:
    """Roles and directions of metrics, budget axes of solvers, by component name."""

    metrics: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    solvers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def role(self, metric: str) -> str | None:
        """The metric's declared role, or None for a metric nobody declared."""
        entry = self.metrics.get(metric)
        return entry.get("role") if entry else None

    def direction(self, metric: str) -> str | None:
        """``"lower"`` or ``"higher"`` (is better), or None for an undeclared metric."""
        entry = self.metrics.get(metric)
        if not entry:
            return None
        return entry.get("direction") or ROLE_DIRECTIONS.get(entry.get("role", ""))

    def with_role(self, role: str, names: Iterable[str]) -> list[str]:
        """The metric ``names`` (in their order) that declare ``role``."""
        return [n for n in names if self.role(n) == role]

    def budget_axes(self, solver: str) -> tuple[str, ...]:
        """The solver's budget axes; :data:`CLOCK_AXES` for a solver nobody declared."""
        return self.solvers.get(solver, CLOCK_AXES)

    def extra_axes(self, solver: str) -> tuple[str, ...]:
        """Budget axes the solver records as trace series (all but :data:`CLOCK_AXES`)."""
        return tuple(a for a in self.budget_axes(solver) if a not in CLOCK_AXES)

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": {k: dict(v) for k, v in sorted(self.metrics.items())},
            "solvers": {k: {"budget_axes": list(v)} for k, v in sorted(self.solvers.items())},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Declarations:
        metrics = {str(k): dict(v) for k, v in (obj.get("metrics") or {}).items()}
        solvers = {
            str(k): tuple(v.get("budget_axes", CLOCK_AXES))
            for k, v in (obj.get("solvers") or {}).items()
        }
        return cls(metrics, solvers)

    def fill(self, other: Declarations) -> Declarations:
        """These declarations, with ``other``'s for the components these lack."""
        return Declarations({**other.metrics, **self.metrics}, {**other.solvers, **self.solvers})


def of_classes(
    metrics: Iterable[type[Metric]] = (), solvers: Iterable[type[Solver]] = ()
) -> Declarations:
    """The declarations of these component classes."""
    return Declarations(
        {m.name: {"role": m.role, "direction": m.better()} for m in metrics},
        {
            s.name: (*CLOCK_AXES, *(a for a in s.budget_axes if a not in CLOCK_AXES))
            for s in solvers
        },
    )


def declare(registry: Registry, cells: Iterable[Cell]) -> dict[str, Any]:
    """The JSON dict of declarations of the metrics and solvers ``cells`` use.

    The run loop puts it in the part files' metadata:
    ``provenance({..., "declarations": declare(registry, cells)})``.
    """
    cells = list(cells)
    metric_names = dict.fromkeys(m.name for c in cells for m in c.metrics)
    solver_names = dict.fromkeys(c.solver.name for c in cells)
    return of_classes(
        [registry.get("metric", n) for n in metric_names],
        [registry.get("solver", n) for n in solver_names],
    ).to_json()


def of_registry(registry: Registry) -> Declarations:
    """The declarations of every metric and solver in ``registry``."""
    return of_classes(
        registry.components.get("metric", {}).values(),
        registry.components.get("solver", {}).values(),
    )


def live() -> Declarations:
    """The declarations of the default registry (built-in and installed plugins)."""
    from harness.plugins import get_registry

    return of_registry(get_registry())


def _file_declarations(path: Path) -> Declarations | None:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"relubench")
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    found = obj.get(METADATA_KEY) if isinstance(obj, dict) else None
    return Declarations.from_json(found) if isinstance(found, dict) else None


def read_declarations(
    results_dir: str | Path,
    *,
    metrics: Iterable[str] = (),
    solvers: Iterable[str] = (),
    fallback: Declarations | None = None,
) -> Declarations:
    """The declarations recorded in a suite's results folder (``runs/`` part files).

    Part files are read newest first (a newer run's declaration wins) until
    every name in ``metrics`` and ``solvers`` is declared; whatever the files
    leave undeclared is taken from ``fallback`` (default: :func:`live`, the
    installed plugins), which is how folders written before declarations were
    recorded are read.
    """
    want_m, want_s = set(metrics), set(solvers)
    files = sorted(
        Path(results_dir, "runs").rglob("*.parquet"),
        key=lambda f: (f.stat().st_mtime, f.name),
        reverse=True,
    )
    found = Declarations()
    for path in files:
        decl = _file_declarations(path)
        if decl is None:
            continue
        found = found.fill(decl)
        if want_m <= found.metrics.keys() and want_s <= found.solvers.keys():
            return found
    return found.fill(fallback if fallback is not None else live())
