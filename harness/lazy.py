"""Deferred imports of heavy optional modules (pandas, pyarrow): pay for them on first use.

``relubench list``, ``show`` and ``run --dry-run`` and the worker processes never touch a
DataFrame, and importing pandas and pyarrow costs about a third of importing torch
(benchmarks/bench_fixed_cost.py). A module that uses pandas only inside functions binds
``pd = lazy_module("pandas")`` instead of ``import pandas as pd``; the first attribute
read (``pd.Series``, ``pd.api``) imports it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    """A stand-in for a module that is imported on the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it when an attribute is first read."""
    return _LazyModule(name)
