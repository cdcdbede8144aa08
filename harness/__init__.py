"""relubench core: hooks, components, suites, runner, store. It knows no paper."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from harness.errors import InputError
from harness.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from harness.components import (
        Initializer,
        Instance,
        Metric,
        Model,
        Problem,
        SolveContext,
        Solver,
        SolveResult,
        Weights,
        batched_rand,
        batched_randn,
        param,
    )
    from harness.run import run_suite
    from harness.stopping import TrialStopper

# The component API imports torch (seconds). It loads on first use, so that
# `import harness` stays cheap: the pytest plugin (harness.pytest_plugin) is
# imported by every pytest session of an environment where relubench is installed.
_COMPONENTS = frozenset(
    {
        "Initializer",
        "Instance",
        "Metric",
        "Model",
        "Problem",
        "SolveContext",
        "Solver",
        "SolveResult",
        "Weights",
        "batched_rand",
        "batched_randn",
        "param",
    }
)


def __getattr__(name: str) -> Any:
    if name == "run_suite":  # harness.run imports the executors: loaded on first use
        from harness.run import run_suite

        globals()[name] = run_suite
        return run_suite
    if name == "TrialStopper":
        from harness.stopping import TrialStopper

        globals()[name] = TrialStopper
        return TrialStopper
    if name in _COMPONENTS:
        from harness import components

        value = getattr(components, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


PLUGIN_API_VERSION = (1, 0)
"""The plugin API this harness provides: the names in ``__all__`` and the component
contracts of ``harness.components``. A minor version only adds; a plugin declares the
version it was written for with ``RELUBENCH_PLUGIN_API = "1.0"`` and a newer one is refused
with a clear error."""

hookimpl = pluggy.HookimplMarker("relubench")
"""Marker for plugin hook implementations: ``@hookimpl def relubench_solvers(): ...``."""


def load_results(folder: Any, *, dedupe: bool = True) -> pd.DataFrame:
    """The ``runs`` rows of a results folder as a pandas DataFrame.

    ``folder`` is a suite's results folder (``results/<suite>``) or its ``runs``
    folder. Duplicate rows of a trial (two runs that computed the same cell)
    are resolved deterministically unless ``dedupe=False``.
    """
    from harness.store import load_results as _load

    return _load(folder, dedupe=dedupe)


__all__ = [
    "PLUGIN_API_VERSION",
    "Initializer",
    "InputError",
    "Instance",
    "Metric",
    "Model",
    "Problem",
    "SolveContext",
    "SolveResult",
    "Solver",
    "TrialStopper",
    "Weights",
    "batched_rand",
    "batched_randn",
    "hookimpl",
    "load_results",
    "param",
    "run_suite",
    "__version__",
]
