"""The row format of a results folder: columns, schemas, and how a trial becomes a row.

``runs`` has one row per trial: identity columns, one column per component
parameter (``problem.<p>``, ``initializer.<p>``, ``solver.<p>``), the outcome,
``metric.<name>`` columns and provenance (docs/results-schema.md). ``traces`` is
long format. Environment details go in each file's metadata (:func:`provenance`),
not on every row. The runner, the store and the pytest plugin all build rows here.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from harness.seeds import trial_seeds
from harness.version import __version__ as HARNESS_VERSION

if TYPE_CHECKING:
    from harness.expand import Cell

IDENTITY = [
    ("suite", pa.string()),
    ("run_id", pa.string()),
    ("cell_id", pa.string()),
    ("trial", pa.int64()),
    ("seed", pa.int64()),
    ("problem", pa.string()),
    ("initializer", pa.string()),
    ("solver", pa.string()),
]
OUTCOME = [
    ("status", pa.string()),
    ("error", pa.string()),
    ("iterations", pa.int64()),
    ("time_s", pa.float64()),
    ("time_mode", pa.string()),
    ("isolated", pa.bool_()),
]
PROVENANCE = [
    ("created_at", pa.string()),
    ("host", pa.string()),
    ("harness_version", pa.string()),
]
TRACES_SCHEMA = pa.schema(
    [
        ("cell_id", pa.string()),
        ("trial", pa.int64()),
        ("iteration", pa.int64()),
        ("time_s", pa.float64()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)
STATUSES = ("ok", "diverged", "timeout", "error")
"""Trial statuses, best first (a reader keeps the best row of a trial stored twice)."""
METRIC_PREFIX = "metric."


def param_value(v: Any) -> Any:
    """A parameter value as stored in Parquet (lists become their JSON text)."""
    if isinstance(v, (tuple, list)):
        return json.dumps(list(v))
    return v


def param_columns(cell: Cell) -> dict[str, Any]:
    """``problem.<p>``, ``initializer.<p>``, ``solver.<p>`` columns of a cell, defaults included."""
    return {
        f"{spec.kind}.{k}": param_value(v)
        for spec in (cell.problem, cell.initializer, cell.solver)
        for k, v in spec.params
    }


def cell_columns(cell: Cell) -> dict[str, Any]:
    """The columns of a runs row that are the same for every trial of a cell."""
    return {
        "suite": cell.suite,
        "cell_id": cell.cell_id,
        "problem": cell.problem.name,
        "initializer": cell.initializer.name,
        "solver": cell.solver.name,
        **param_columns(cell),
    }


def base_rows(
    cell: Cell,
    run_id: str,
    trials: Sequence[int],
    data_seeds: Sequence[int],
    *,
    created_at: str,
    host: str,
) -> list[dict[str, Any]]:
    """One ``ok`` row per trial with identity and parameter columns, outcome and metrics unset."""
    fixed = cell_columns(cell)
    tail: dict[str, Any] = {
        "status": "ok",
        "error": None,
        "iterations": None,
        "time_s": None,
        "time_mode": None,
        "isolated": False,
        "created_at": created_at,
        "host": host,
        "harness_version": HARNESS_VERSION,
        **{METRIC_PREFIX + m.name: None for m in cell.metrics},
    }
    return [
        {**fixed, "run_id": run_id, "trial": t, "seed": s, **tail}
        for t, s in zip(trials, data_seeds)
    ]


def failed_rows(
    cell: Cell,
    run_id: str,
    trials: Sequence[int],
    status: str,
    message: str,
    *,
    created_at: str,
    host: str,
) -> list[dict[str, Any]]:
    """Rows of trials that produced nothing (worker died, timeout): each gets ``status``."""
    seeds = trial_seeds(cell.seed, cell.problem.key(), cell.initializer.key(), trials)
    rows = base_rows(
        cell, run_id, trials, [s.data for s in seeds], created_at=created_at, host=host
    )
    for row in rows:
        row.update(status=status, error=message)
    return rows


def _arrow_type(values: list[Any]) -> pa.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def runs_schema(cells: Sequence[Cell], extra_metrics: tuple[str, ...] = ()) -> pa.Schema:
    """One schema for every part file of a run: the union of the cells' parameter columns.

    A fixed schema per run keeps plain ``pandas.read_parquet(folder)`` working
    (pyarrow takes the schema of the first file it sees).
    """
    columns: dict[str, list[Any]] = {}
    for cell in cells:
        for name, value in param_columns(cell).items():
            columns.setdefault(name, []).append(value)
    metric_names = list(
        dict.fromkeys([m.name for c in cells for m in c.metrics] + list(extra_metrics))
    )
    fields = list(IDENTITY)
    fields += [(name, _arrow_type(vals)) for name, vals in columns.items()]
    fields += OUTCOME
    fields += [(METRIC_PREFIX + m, pa.float64()) for m in metric_names]
    fields += PROVENANCE
    return pa.schema(fields)


def empty_runs_columns() -> list[str]:
    """The columns every runs table has, whatever the suite."""
    return [n for n, _ in IDENTITY + OUTCOME + PROVENANCE]


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Environment details recorded in every part file's metadata, plus ``extra``."""
    import numpy
    import torch

    info = {
        "harness_version": HARNESS_VERSION,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pa.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
    }
    info.update(extra or {})
    return info
