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

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.components import Component
from harness.errors import InputError
from harness.testing.checks import CHECKS, Check, checks_for
from harness.testing.lab import (
    BATCH,
    RTOL,
    SMALL,
    TRUTH_ATOL,
    WILD,
    CheckFailed,
    CheckSkipped,
    Lab,
    corrupt,
    small_params,
    waivers,
)

__all__ = [
    "BATCH",
    "CHECKS",
    "RTOL",
    "SMALL",
    "TRUTH_ATOL",
    "WILD",
    "Check",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "ConformanceError",
    "Lab",
    "check_component",
    "checks_for",
    "conformance_tests",
    "corrupt",
    "format_results",
    "resolve",
    "run_check",
    "run_checks",
    "small_params",
]


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
    declared = waivers(cls)
    reason = declared.get(check) or (declared.get("*") if spec.runs_component else None)
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
