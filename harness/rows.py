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
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.seeds import trial_seeds
from harness.version import __version__ as HARNESS_VERSION

if TYPE_CHECKING:
    import pyarrow as pa

    from harness.expand import Cell

# Column types by pyarrow alias: pyarrow is imported only when a schema is built (a dry
# run, `relubench list` and the workers never need it).
IDENTITY = [
    ("suite", "string"),
    ("run_id", "string"),
    ("cell_id", "string"),
    ("trial", "int64"),
    ("seed", "int64"),
    ("problem", "string"),
    ("initializer", "string"),
    ("solver", "string"),
    ("split", "string"),
]
OUTCOME = [
    ("status", "string"),
    ("error", "string"),
    ("iterations", "int64"),
    ("time_s", "float64"),
    ("time_mode", "string"),
    ("isolated", "bool"),
]
CREATED_AT = "timestamp[us, tz=UTC]"
"""``created_at`` is a UTC timestamp (``CREATED_AT_TYPE`` is its pyarrow type); folders
written before it was one hold ISO 8601 text, and :mod:`harness.store` reads both."""
PROVENANCE = [
    ("created_at", CREATED_AT),
    ("host", "string"),
    ("harness_version", "string"),
]
SPLITS = ("test", "tune")
"""``split`` of a row: a reported trial (``test``) or a tuning trial (``tune``)."""
TRACES_COLUMNS = [
    ("cell_id", "string"),
    ("trial", "int64"),
    ("iteration", "int64"),
    ("time_s", "float64"),
    ("metric", "string"),
    ("value", "float64"),
]


def arrow_schema(fields: Sequence[tuple[str, str]]) -> pa.Schema:
    """A pyarrow schema from (name, type alias) pairs."""
    import pyarrow as pa

    return pa.schema([(name, alias_type(alias)) for name, alias in fields])


def alias_type(alias: str) -> pa.DataType:
    """The pyarrow type of a type alias of this module (``CREATED_AT`` included)."""
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC") if alias == CREATED_AT else pa.type_for_alias(alias)


@lru_cache(maxsize=1)
def traces_schema() -> pa.Schema:
    """The schema of ``traces`` part files."""
    return arrow_schema(TRACES_COLUMNS)


def __getattr__(name: str) -> Any:  # TRACES_SCHEMA, built on first use
    if name == "TRACES_SCHEMA":
        return traces_schema()
    if name == "CREATED_AT_TYPE":  # the pyarrow type of ``created_at``
        return alias_type(CREATED_AT)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STATUSES = ("ok", "diverged", "timeout", "error")
"""Trial statuses, best first (a reader keeps the best row of a trial stored twice)."""
METRIC_PREFIX = "metric."


def timestamp(value: datetime | str) -> datetime:
    """A ``created_at`` value as an aware UTC datetime (from a datetime or ISO 8601 text)."""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


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
        "split": cell.split,
        **param_columns(cell),
    }


def base_rows(
    cell: Cell,
    run_id: str,
    trials: Sequence[int],
    data_seeds: Sequence[int],
    *,
    created_at: datetime | str,
    host: str,
) -> list[dict[str, Any]]:
    """One ``ok`` row per trial with identity and parameter columns, outcome and metrics unset.

    ``created_at`` is a timezone-aware datetime (ISO 8601 text is parsed; a naive time
    is taken as UTC).
    """
    fixed = cell_columns(cell)
    tail: dict[str, Any] = {
        "status": "ok",
        "error": None,
        "iterations": None,
        "time_s": None,
        "time_mode": None,
        "isolated": False,
        "created_at": timestamp(created_at),
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
    created_at: datetime | str,
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


def arrow_type(values: list[Any]) -> str:
    """The pyarrow type alias of a parameter column."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return "string"
    if kinds == {bool}:
        return "bool"
    if kinds == {int}:
        return "int64"
    if kinds <= {int, float}:
        return "float64"
    return "string"


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
    fields += [(name, arrow_type(vals)) for name, vals in columns.items()]
    fields += OUTCOME
    fields += [(METRIC_PREFIX + m, "float64") for m in metric_names]
    fields += PROVENANCE
    return arrow_schema(fields)


def empty_runs_columns() -> list[str]:
    """The columns every runs table has, whatever the suite."""
    return [n for n, _ in IDENTITY + OUTCOME + PROVENANCE]


def source_tree() -> Path:
    """The folder the running ``harness`` package was imported from, one level up: the
    source tree of an editable install or a checkout (not the current directory)."""
    return Path(__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _installed_commit() -> str | None:
    """The commit pip recorded when relubench was installed from a git URL (PEP 610)."""
    from importlib import metadata

    try:
        text = metadata.distribution("relubench").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    info = json.loads(text or "{}").get("vcs_info", {})
    return info.get("commit_id")


@lru_cache(maxsize=4)
def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"git_commit": sha | None, "git_dirty": bool | None}`` of the installed source tree.

    Read from the git work tree whose top level is ``root`` (default
    :func:`source_tree`), whatever the current directory; a copy installed into
    site-packages is not that top level and reports the commit pip recorded, if
    any, with ``git_dirty`` None (unknown). Dirty means tracked files differ from
    the commit (untracked files do not count).
    """
    root = (root or source_tree()).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return {"git_commit": _installed_commit(), "git_dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or None, "git_dirty": None if status is None else bool(status)}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC 7763 64-Core Processor``), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            # x86: "model name"; some ARM kernels: "Hardware" or "Processor"
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def provenance(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Environment details recorded in every part file's metadata, plus ``extra``."""
    import numpy
    import pyarrow as pa
    import torch

    info = {
        "harness_version": HARNESS_VERSION,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pa.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        **git_state(),
        "source_dir": str(source_tree()),
    }
    info.update(extra or {})
    return info
