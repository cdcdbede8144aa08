"""The Parquet results store of one suite: ``runs/`` (one row per trial) and ``traces/``.

Each finished work unit is written as its own part file: first under a
hidden temporary name (readers skip names starting with ``.``), then renamed
into place, so a reader never sees half a file and a killed run loses only
the units in flight. Provenance (versions, commit, CPU, threads) goes in the
file metadata under the key ``relubench``, not on every row.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.suite import Cell

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
]
PROVENANCE = [
    ("created_at", pa.string()),
    ("host", pa.string()),
    ("harness_version", pa.string()),
]
TRACE_SCHEMA = pa.schema(
    [
        ("cell_id", pa.string()),
        ("trial", pa.int64()),
        ("iteration", pa.int64()),
        ("time_s", pa.float64()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)
STATUS_RANK = {"ok": 0, "diverged": 1, "timeout": 2, "error": 3}


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


def runs_schema(cells: list[Cell], extra_metrics: tuple[str, ...] = ()) -> pa.Schema:
    """One schema for every part file of a run: the union of the cells' parameter columns.

    A fixed schema per run keeps plain ``pandas.read_parquet(folder)`` working
    (pyarrow takes the schema of the first file it sees).
    """
    from harness.runner import param_value

    columns: dict[str, list[Any]] = {}
    for cell in cells:
        for spec, prefix in (
            (cell.problem, "problem"),
            (cell.initializer, "initializer"),
            (cell.solver, "solver"),
        ):
            for k, v in spec.params:
                columns.setdefault(f"{prefix}.{k}", []).append(param_value(v))
    metric_names = list(
        dict.fromkeys([m.name for c in cells for m in c.metrics] + list(extra_metrics))
    )
    fields = list(IDENTITY)
    fields += [(name, _arrow_type(vals)) for name, vals in columns.items()]
    fields += OUTCOME
    fields += [(f"metric.{m}", pa.float64()) for m in metric_names]
    fields += PROVENANCE
    return pa.schema(fields)


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
    """Environment details recorded in every part file's metadata."""
    import numpy
    import torch

    info = {
        "harness_version": __import__("harness").__version__,
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


class Store:
    """The results folder of one suite (``RESULTS_DIR/<suite name>``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.traces_dir = self.root / "traces"

    def ensure(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.traces_dir.mkdir(parents=True, exist_ok=True)

    def completed(self) -> set[tuple[str, int]]:
        """(cell_id, trial) pairs stored with status ``ok``: the resume index."""
        files = part_files(self.runs_dir)
        if not files:
            return set()
        table = ds.dataset(files, format="parquet").to_table(
            columns=["cell_id", "trial", "status"], filter=ds.field("status") == "ok"
        )
        return set(zip(table.column("cell_id").to_pylist(), table.column("trial").to_pylist()))

    def write(
        self,
        runs: list[dict[str, Any]],
        traces: list[dict[str, Any]],
        schema: pa.Schema,
        metadata: dict[str, Any],
        *,
        stem: str,
    ) -> Path:
        """Write one work unit's rows atomically (temporary name, then rename)."""
        self.ensure()
        meta = {b"relubench": json.dumps(metadata, default=str).encode()}
        extra = [c for c in {k for r in runs for k in r} if c not in schema.names]
        if extra:  # a metric or solver info column the schema did not foresee
            schema = pa.schema(list(schema) + [(c, pa.float64()) for c in sorted(extra)])
        table = pa.Table.from_pylist(runs, schema=schema).replace_schema_metadata(meta)
        name = f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
        if traces:
            tt = pa.Table.from_pylist(traces, schema=TRACE_SCHEMA).replace_schema_metadata(meta)
            _atomic_write(tt, self.traces_dir / name)
        target = self.runs_dir / name
        _atomic_write(table, target)
        return target


def _atomic_write(table: pa.Table, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def part_files(folder: Path) -> list[str]:
    """Complete part files of a folder (temporary and hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        str(p)
        for p in folder.iterdir()
        if p.suffix == ".parquet" and not p.name.startswith((".", "_"))
    )


def _read_folder(folder: Path) -> pd.DataFrame | None:
    files = part_files(folder)
    if not files:
        return None
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    return ds.dataset(files, schema=schema, format="parquet").to_table().to_pandas()


def _runs_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder if folder.name == "runs" or not (folder / "runs").is_dir() else folder / "runs"


def dedupe_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell_id, trial): an ``ok`` row if any, then the earliest written.

    Two runs that computed the same trial (concurrent runs, xdist workers)
    give identical numbers, so which one is kept changes nothing but ``run_id``;
    the order is fixed so every reader keeps the same row.
    """
    if df.empty:
        return df
    rank = df["status"].map(STATUS_RANK).fillna(9)
    order = df.assign(_rank=rank).sort_values(
        ["cell_id", "trial", "_rank", "created_at", "run_id"], kind="mergesort"
    )
    out = order.drop_duplicates(["cell_id", "trial"], keep="first").drop(columns="_rank")
    return out.reset_index(drop=True)


def load_results(folder: str | Path, *, dedupe: bool = True) -> pd.DataFrame:
    """The ``runs`` table of a results folder (see :func:`harness.load_results`)."""
    runs = _runs_folder(folder)
    df = _read_folder(runs)
    if df is None:
        return pd.DataFrame(columns=[n for n, _ in IDENTITY + OUTCOME + PROVENANCE])
    return dedupe_runs(df) if dedupe else df


def load_traces(folder: str | Path) -> pd.DataFrame:
    """The ``traces`` table (long format) of a suite's results folder."""
    folder = Path(folder)
    traces = folder / "traces" if (folder / "traces").is_dir() else folder
    df = _read_folder(traces)
    if df is None:
        return pd.DataFrame(columns=TRACE_SCHEMA.names)
    # A trial computed twice (concurrent runs) has the same curve twice; keep one.
    return df.drop_duplicates(["cell_id", "trial", "iteration", "metric"]).reset_index(drop=True)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance dict stored in a part file's metadata."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"relubench", b"{}"))
