"""The Parquet results store of one suite: ``runs/`` (one row per trial) and ``traces/``.

Only this module knows how part files are named, buffered, written and read.
Each finished work unit (or a batch of small ones, see :class:`PartWriter`) is
written as its own part file: first under a hidden temporary name (readers skip
names starting with ``.``), then renamed into place, so a reader never sees half
a file and a killed run loses only the units in flight. Provenance (versions,
commit, CPU, threads) goes in the file metadata under the key ``relubench``, not
on every row. The row format itself is :mod:`harness.rows`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import InputError
from harness.lazy import lazy_module
from harness.rows import CREATED_AT, STATUSES, alias_type, empty_runs_columns, traces_schema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
else:  # a dry run, `relubench list` and the workers never read or write Parquet
    pd = lazy_module("pandas")
    pa = lazy_module("pyarrow")
    pq = lazy_module("pyarrow.parquet")

if TYPE_CHECKING:
    from harness.expand import Cell

STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}
INDEX_COLUMNS = ["cell_id", "trial", "status", "run_id"]

# A temporary part file older than this, or left by a process that no longer runs on
# this host, belongs to a killed run. Readers skip it anyway; removing it keeps the
# folder tidy. The age guard keeps a live writer on another host (shared filesystem) safe.
STALE_TEMPORARY_S = 600.0
DEAD_WRITER_GRACE_S = 60.0

# Part files are named part-<cell_id>-<first trial>-<run_id>[-u<units>]-<random>.parquet;
# one holding several units (-u<n>) may hold other cells' rows too.
_COALESCED = re.compile(r"-u\d+-[0-9a-f]{8}\.parquet$")
_STORE_NAME = re.compile(r"^part-[0-9a-f]{16}-\d{5}-.+-[0-9a-f]{8}\.parquet$")


def part_stem(cell_id: str, first_trial: int, run_id: str, units: int = 1) -> str:
    """The name of a part file without its random suffix."""
    stem = f"part-{cell_id}-{first_trial:05d}-{run_id}"
    return stem + (f"-u{units}" if units > 1 else "")


class Store:
    """The results folder of one suite (``RESULTS_DIR/<suite name>``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.traces_dir = self.root / "traces"

    def ensure(self) -> None:
        """Create ``runs/`` and ``traces/`` and check that a part file can be written
        there: an :class:`InputError` (exit 2) when a path that must be a folder is a
        file or a dangling link, an ``OSError`` naming the folder (exit 3) when the
        system refuses (read-only, permission, disk full)."""
        for folder in (self.root.parent, self.root, self.runs_dir, self.traces_dir):
            if folder.is_symlink() and not folder.exists():
                raise InputError(
                    f"{folder}: a dangling symbolic link (to {os.readlink(folder)}); remove it "
                    "or point it at a folder"
                )
            if folder.exists() and not folder.is_dir():
                raise InputError(f"{folder}: exists and is not a folder (results go in folders)")
        # traces/ is made by the first unit that has traces: an empty folder would make
        # DuckDB and polars fail on a glob that matches no file.
        for folder in (self.runs_dir,):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".write-probe-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot write the results folder: {exc.strerror}", str(folder)
                ) from exc

    # ------------------------------------------------------------------ reading
    def part_files(self, cell_id: str | None = None) -> list[str]:
        """Complete runs part files; with ``cell_id``, those that may hold that cell's rows
        (its own, and files that coalesce several units), so a reader of one cell reads a
        few files, not the whole store."""
        files = part_files(self.runs_dir)
        if cell_id is None:
            return files
        prefix = f"part-{cell_id}-"
        return [f for f in files if os.path.basename(f).startswith(prefix) or _COALESCED.search(f)]

    def completed(self) -> set[tuple[str, int]]:
        """(cell_id, trial) pairs stored with status ``ok``: the resume index. A corrupt
        part file is quarantined (:func:`read_part`), so its trials run again."""
        df = _read_files(self.part_files(), ["cell_id", "trial", "status"])
        if df is None:
            return set()
        ok = df[df["status"] == "ok"]
        return set(zip(ok["cell_id"].tolist(), ok["trial"].tolist()))

    def index(self, cell_id: str | None = None) -> pd.DataFrame:
        """``cell_id, trial, status, run_id`` of every stored row (of one cell), duplicates kept."""
        import pandas as pd

        df = _read_files(self.part_files(cell_id), INDEX_COLUMNS)
        if df is None:
            return pd.DataFrame(columns=INDEX_COLUMNS)
        return df if cell_id is None else df[df["cell_id"] == cell_id].reset_index(drop=True)

    def suite_rows(self, cells: Sequence[Cell]) -> pd.DataFrame:
        """The stored rows of exactly these cells and trials (after dedupe).

        Trials beyond a cell's count (stored by an earlier, larger profile) are left
        out, so a claim is judged on the trials the suite asked for.
        """
        if len(cells) == 1:  # one cell's part files, not the whole store
            df = _read_files(self.part_files(cells[0].cell_id))
            runs = dedupe_runs(df) if df is not None else _empty_runs()
        else:
            runs = load_results(self.root)
        if runs.empty:
            return runs
        trials = {c.cell_id: c.trials for c in cells}
        limit = runs["cell_id"].map(trials)
        return runs[limit.notna() & (runs["trial"] < limit.fillna(0))].reset_index(drop=True)

    # ------------------------------------------------------------------ writing
    def write(
        self,
        runs: list[dict[str, Any]],
        traces: list[dict[str, Any]],
        schema: pa.Schema,
        metadata: dict[str, Any],
        *,
        stem: str,
    ) -> Path:
        """Write rows as one part file atomically (temporary name, then rename)."""
        import pyarrow as pa

        self.ensure()
        provenance = {**metadata, "checksums": CHECKSUMS}
        meta = {b"relubench": json.dumps(provenance, default=str).encode()}
        extra = [c for c in {k for r in runs for k in r} if c not in schema.names]
        if extra:  # a metric or solver info column the schema did not foresee
            schema = pa.schema(list(schema) + [(c, pa.float64()) for c in sorted(extra)])
        table = _with_digest(pa.Table.from_pylist(runs, schema=schema), meta)
        name = f"{stem}-{uuid.uuid4().hex[:8]}.parquet"
        if traces:
            tt = _with_digest(pa.Table.from_pylist(traces, schema=traces_schema()), meta)
            self.traces_dir.mkdir(exist_ok=True)
            _atomic_write(tt, self.traces_dir / name)
        target = self.runs_dir / name
        _atomic_write(table, target)
        return target

    def writer(self, schema: pa.Schema, metadata: dict[str, Any], *, units: int) -> PartWriter:
        """A :class:`PartWriter` for a run of ``units`` work units."""
        return PartWriter(self, schema, metadata, coalesce=units > PartWriter.MIN_UNITS)

    def clean_stale_temporaries(self, now: float | None = None) -> list[Path]:
        """Remove temporary part files (``.NAME.tmp-PID``) that a killed run left behind."""
        now = time.time() if now is None else now
        removed = []
        for folder in (self.runs_dir, self.traces_dir):
            if not folder.is_dir():
                continue
            for tmp in folder.glob(".*.tmp-*"):
                try:
                    age = now - tmp.stat().st_mtime
                except FileNotFoundError:  # its writer just renamed it into place
                    continue
                pid = tmp.name.rpartition(".tmp-")[2]
                dead = pid.isdigit() and not _process_alive(int(pid))
                if age > STALE_TEMPORARY_S or (dead and age > DEAD_WRITER_GRACE_S):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
        return removed


class PartWriter:
    """Finished units waiting to be written together as one part file.

    A unit of one tiny trial would otherwise pay for a Parquet file and an fsync of
    its own (about 10 ms, far more than running it). With ``coalesce``, units are
    written together once ``MAX_ROWS`` rows or ``MAX_AGE_S`` seconds have gathered,
    and at :meth:`flush` (the caller flushes at the end, also on an error or
    interrupt), so a killed run loses at most the units in flight and those finished
    in the last ``MAX_AGE_S`` seconds; writes stay atomic and resume reads the part
    files as before. Without it every unit is its own part file (what a reader of a
    small run expects to see).
    """

    MAX_ROWS = 4096
    MAX_AGE_S = 1.0
    MIN_UNITS = 256  # runs with fewer units write one part file per unit

    def __init__(
        self, store: Store, schema: pa.Schema, metadata: dict[str, Any], *, coalesce: bool
    ) -> None:
        self.store, self.schema, self.metadata = store, schema, metadata
        self.coalesce = coalesce
        self.first: tuple[str, int, str] | None = None  # the first unit's cell, trial, run
        self.units = 0
        self.runs: list[dict[str, Any]] = []
        self.traces: list[dict[str, Any]] = []
        self.since = 0.0

    def add(
        self,
        runs: list[dict[str, Any]],
        traces: list[dict[str, Any]],
        *,
        cell_id: str,
        first_trial: int,
        run_id: str,
    ) -> None:
        """Add one finished unit's rows; written now unless coalescing says wait."""
        if self.first is None:
            self.first = (cell_id, first_trial, run_id)
            self.since = time.perf_counter()
        self.units += 1
        self.runs.extend(runs)
        self.traces.extend(traces)
        if (
            not self.coalesce
            or len(self.runs) >= self.MAX_ROWS
            or time.perf_counter() - self.since >= self.MAX_AGE_S
        ):
            self.flush()

    def flush(self) -> None:
        """Write what is waiting (nothing if nothing is)."""
        if self.first is None:
            return
        stem = part_stem(*self.first, units=self.units)
        runs, traces = self.runs, self.traces
        self.first, self.units, self.runs, self.traces = None, 0, [], []
        self.store.write(runs, traces, self.schema, self.metadata, stem=stem)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _atomic_write(table: pa.Table, target: Path) -> None:
    import pyarrow.parquet as pq

    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, write_page_checksum=True)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:  # disk full, read-only: name the file, not pyarrow's internals
        cause = exc.strerror or " ".join(str(exc).split())
        raise OSError(exc.errno, f"cannot write a part file: {cause}", str(target)) from exc
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


def _read_files(files: list[str], columns: list[str] | None = None) -> pd.DataFrame | None:
    """Rows of some part files, their schemas unified (a column one file lacks is null).

    Every file is verified (:func:`read_part`); a corrupt one is quarantined with a
    warning and left out, so one bad file never blocks a whole suite.
    """
    table = _read_table(files, columns)
    return None if table is None else table.to_pandas()


def _read_table(files: list[str], columns: list[str] | None = None) -> pa.Table | None:
    """:func:`_read_files` as one Arrow table."""
    tables = [table for _, table in _readable_parts(files, columns)]
    if not tables:
        return None
    schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    if columns is not None:  # a projected read: a file without one of the columns gives nulls
        schema = pa.schema(
            [schema.field(c) if c in schema.names else (c, pa.null()) for c in columns]
        )
    aligned = [_align(t, schema) for t in tables]
    return pa.concat_tables(aligned, promote_options="permissive")


def _dictionary_encoded(table: pa.Table) -> pa.Table:
    """``table`` with its string columns dictionary-encoded (int32 indices)."""
    import pyarrow.compute as pc

    cols = [
        pc.dictionary_encode(c) if pa.types.is_string(c.type) or pa.types.is_large_string(c.type)
        else c
        for c in table.columns
    ]  # fmt: skip
    return pa.Table.from_arrays(cols, names=table.column_names)


def _current_table(table: pa.Table) -> pa.Table:
    """A part file's rows as this version writes them (``created_at`` was ISO 8601 text
    in folders written before it became a timestamp)."""
    i = table.schema.get_field_index("created_at")
    if i >= 0 and table.schema.field(i).type != alias_type(CREATED_AT):
        kind = alias_type(CREATED_AT)
        table = table.set_column(i, pa.field("created_at", kind), table.column(i).cast(kind))
    return table


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


# ---------------------------------------------------------------------------
# Integrity: page checksums, content digests, quarantine
# ---------------------------------------------------------------------------

DIGEST_KEY = b"relubench_digest"
"""File metadata key: a digest of every column (name, type, values) and of the
provenance. Parquet's page checksums cover the data pages only; a flipped byte in
the footer (a column name, a type, the metadata) would otherwise change what a
reader sees without an error."""
CHECKSUMS = "page-crc+digest-v1"
"""Recorded in a part file's provenance (``checksums``): the file has a digest."""
ARROW = b"ARROW:schema"
QUARANTINE = "quarantine"


class CorruptPartError(Exception):
    """A part file that cannot be read or does not match its checksums."""

    def __init__(self, path: str | Path, cause: object) -> None:
        super().__init__(f"{path}: corrupt part file: {cause}")
        self.path, self.cause = Path(path), cause


class CorruptPartWarning(UserWarning):
    """A corrupt part file was moved to the suite's ``quarantine/`` folder."""


def _column_digest(name: str, column: pa.ChunkedArray) -> str:
    """A digest of a column's name, type and values (the same on write and read)."""
    h = hashlib.sha256(f"{name}\0{column.type}\0{column.null_count}\0".encode())
    kind = column.type
    if column.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        h.update(column.to_numpy().tobytes())  # the common case, without pandas
        return h.hexdigest()[:16]
    if column.null_count == 0 and pa.types.is_string(kind):
        h.update(_joined_text(column))  # "\0".join(column.to_pylist()).encode(), from buffers
        return h.hexdigest()[:16]
    try:
        values = pd.util.hash_pandas_object(column.to_pandas(), index=False).to_numpy()
        h.update(values.tobytes())
    except TypeError:  # unhashable values (lists): their text
        h.update(repr(column.to_pylist()).encode())
    return h.hexdigest()[:16]


def _joined_text(column: pa.ChunkedArray) -> bytes:
    """The UTF-8 text of a string column without nulls, values joined by NUL bytes: equal to
    ``"\0".join(column.to_pylist()).encode()``, taken from the Arrow buffers without a
    Python string a row."""
    import numpy as np

    parts = []
    for chunk in column.chunks:
        if not len(chunk):
            continue
        wide = pa.types.is_large_string(chunk.type)
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype="int64" if wide else "int32")
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1].astype("int64")
        text = np.frombuffer(data, dtype="uint8") if data is not None else np.zeros(0, "uint8")
        text = text[offsets[0] : offsets[-1]]
        parts.append(np.insert(text, offsets[1:-1] - offsets[0], 0).tobytes())
    return b"\0".join(parts)


def _metadata_digest(meta: dict[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for key, value in sorted(meta.items()):
        if key not in (DIGEST_KEY, ARROW):
            h.update(key + b"\0" + value + b"\0")
    return h.hexdigest()[:16]


def _with_digest(table: pa.Table, meta: dict[bytes, bytes]) -> pa.Table:
    """``table`` with ``meta`` and the digest of each column and of ``meta``."""
    digest = {name: _column_digest(name, table.column(name)) for name in table.column_names}
    digest[""] = _metadata_digest(meta)
    return table.replace_schema_metadata({**meta, DIGEST_KEY: json.dumps(digest).encode()})


def read_part(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One part file (``columns`` of it), its page checksums and content digests
    verified; a :class:`CorruptPartError` naming the file and the cause when they do
    not hold or the file cannot be read as Parquet. Files written before digests
    existed are read with page checksums only."""
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        meta = pf.metadata.metadata or {}  # the footer's key-value metadata
        present = [c for c in columns if c in pf.schema_arrow.names] if columns else None
        table = pf.read(columns=present)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt file makes the reader raise
        raise CorruptPartError(path, f"{type(exc).__name__}: {exc}") from exc
    raw = meta.get(DIGEST_KEY)
    try:
        # pyarrow hands back the table with the copy of the metadata kept inside its
        # serialized Arrow schema; a flip may hit that copy rather than the footer's.
        if (table.schema.metadata or {}) != {k: v for k, v in meta.items() if k != ARROW}:
            raise ValueError("the metadata copies in the file differ")
        if raw is None:
            # Files written before digests existed have provenance without the mark; a
            # file whose footer lost its digest (or all its metadata) does not.
            # or (in a file named as the store names its files) all its metadata does
            # not. Other files (written by hand, by another tool) are read as they are.
            if b"relubench" not in meta:
                if _STORE_NAME.match(Path(path).name):
                    raise ValueError("the file metadata of relubench is missing")
                return table
            if json.loads(meta[b"relubench"]).get("checksums"):
                raise ValueError("the content digest is missing")
            return table
        digest = json.loads(raw)
        names = pf.schema_arrow.names
        if sorted(digest) != sorted(["", *names]):
            raise ValueError("the columns differ from those the file was written with")
        if _metadata_digest(meta) != digest[""]:
            raise ValueError("the file metadata does not match its digest")
        for name in table.column_names:
            if _column_digest(name, table.column(name)) != digest[name]:
                raise ValueError(f"column {name!r} does not match its digest")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptPartError(path, exc) from exc
    return table


def quarantine(path: Path, cause: str) -> Path | None:
    """Move a corrupt part file (and its twin in ``runs/`` or ``traces/``) to the
    suite's ``quarantine/`` folder, with a :class:`CorruptPartWarning` naming it. The
    next run recomputes its trials. Returns the new place, or None when the file is
    not in a results folder or could not be moved (it is then only left out)."""
    folder = path.parent
    if folder.name not in ("runs", "traces"):
        warnings.warn(f"{path}: corrupt part file, left out: {cause}", CorruptPartWarning, 2)
        return None
    root = folder.parent
    moved = None
    for kind in ("runs", "traces"):
        source = root / kind / path.name
        target = root / QUARANTINE / kind / path.name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        except FileNotFoundError:  # no twin, or another reader moved it first
            continue
        except OSError as exc:
            warnings.warn(
                f"{source}: corrupt part file, left out (could not move it to "
                f"{target.parent}: {exc.strerror}): {cause}",
                CorruptPartWarning,
                2,
            )
            return None
        if source.parent == folder:
            moved = target
    warnings.warn(
        f"{path}: corrupt part file moved to {root / QUARANTINE}; its trials run again on "
        f"the next run: {cause}",
        CorruptPartWarning,
        2,
    )
    return moved


def _current(schema: pa.Schema) -> pa.Schema:
    """A part file's schema as this version writes it: ``created_at`` was ISO 8601 text in
    folders written before it became a timestamp; the dataset scan casts it."""
    i = schema.get_field_index("created_at")
    if i >= 0 and schema.field(i).type != alias_type(CREATED_AT):
        schema = schema.set(i, pa.field("created_at", alias_type(CREATED_AT)))
    return schema


def unified_schema(files: Sequence[str]) -> pa.Schema:
    """One schema for part files written by different runs and versions (a column one
    file lacks is null in its rows)."""
    schemas = [_current(pq.read_schema(f)) for f in files]
    return pa.unify_schemas(schemas, promote_options="permissive")


def _runs_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder if folder.name == "runs" or not (folder / "runs").is_dir() else folder / "runs"


def _empty_runs() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=empty_runs_columns())


def dedupe_runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell_id, trial): an ``ok`` row if any, then the earliest written.

    Two runs that computed the same trial (concurrent runs, xdist workers)
    give identical numbers, so which one is kept changes nothing but ``run_id``;
    the order is fixed so every reader keeps the same row.
    """
    if df.empty:
        return df
    return df.iloc[dedupe_positions(df)].reset_index(drop=True)


DEDUPE_COLUMNS = ["cell_id", "trial", "status", "created_at", "run_id"]
"""The columns :func:`dedupe_positions` reads."""


def dedupe_positions(index: pd.DataFrame) -> np.ndarray:
    """Positions of the rows :func:`dedupe_runs` keeps, in its order (by cell_id, trial):
    computed from the :data:`DEDUPE_COLUMNS` alone, as small integer sort keys, so a reader
    of millions of rows can dedupe a narrow index and take the kept rows from an Arrow
    table. Text (categorical or not) sorts as text, missing values last."""
    import numpy as np

    cell, trial = _sort_codes(index["cell_id"]), index["trial"].to_numpy()
    rank = index["status"].map(STATUS_RANK).astype("float64").fillna(9).to_numpy("int8")
    keys = (_sort_codes(index["run_id"]), _sort_codes(index["created_at"]), rank, trial, cell)
    order = np.lexsort(keys)  # stable; the last key is the first sorted on
    cell, trial = cell[order], trial[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (cell[1:] != cell[:-1]) | (trial[1:] != trial[:-1])
    return order[first]


def _sort_codes(values: pd.Series) -> np.ndarray:
    """Integers that sort as ``values`` do (missing last), for :func:`numpy.lexsort`."""
    import numpy as np
    import pandas as pd

    if isinstance(values.dtype, pd.CategoricalDtype):  # rank the categories once
        cats = np.asarray(values.cat.categories, dtype=object)
        rank = np.empty(len(cats) + 1, dtype="int32")
        rank[np.argsort(cats, kind="stable")] = np.arange(len(cats), dtype="int32")
        rank[-1] = len(cats)  # code -1: missing
        return rank[values.cat.codes.to_numpy()]
    codes, uniques = pd.factorize(values, sort=True)
    return np.where(codes < 0, len(uniques), codes).astype("int32")


def _readable_parts(
    files: list[str], columns: list[str] | None = None
) -> Iterator[tuple[str, pa.Table]]:
    """Each part file that reads (only ``columns``, if given), with its table in the current
    schema; a corrupt one is quarantined, one quarantined or replaced by another process
    meanwhile is skipped."""
    for f in files:
        try:
            table = _current_table(read_part(f, columns))
        except CorruptPartError as exc:
            quarantine(Path(f), str(exc.cause))
            continue
        except FileNotFoundError:
            continue
        yield f, table


class ColumnReader:
    """The ``runs`` rows of some part files read one column at a time, so that a folder of
    millions of rows never holds two copies of them (an Arrow table and a pandas frame):
    the first pass verifies every file and keeps a narrow index (:data:`DEDUPE_COLUMNS`,
    text dictionary-encoded); :meth:`frame` then reads each column from every file, takes
    the chosen rows and converts it, text to categorical (a code a row). Schemas are
    unified as :func:`load_results` unifies them (a column a file lacks is null)."""

    def __init__(self, files: list[str]) -> None:
        self.files: list[str] = []
        schemas, index = [], []
        for f, table in _readable_parts(files):
            self.files.append(f)
            schemas.append(table.schema)
            index.append(_dictionary_encoded(table.select(DEDUPE_COLUMNS)))
            del table
        self.schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        if index:
            kinds = pa.unify_schemas([t.schema for t in index], promote_options="permissive")
            self.index = pa.concat_tables([_align(t, kinds) for t in index]).to_pandas()
        else:
            self.index = None
        self.rows = 0 if self.index is None else len(self.index)

    def pop_index(self) -> pd.DataFrame:
        """The index (:data:`DEDUPE_COLUMNS` of every row, in file order), which the reader
        then lets go of: choose the rows with it, drop it, then read the :meth:`frame`."""
        index, self.index = self.index, None
        return index

    def column(self, name: str) -> pa.ChunkedArray:
        """Column ``name`` of every row, in file order (verified again as it is read)."""
        kind = self.schema.field(name).type
        chunks = []
        for f in self.files:
            part = _current_table(read_part(f, [name]))
            if name in part.column_names:
                column = part.column(name).cast(kind)
            else:
                column = pa.chunked_array([pa.nulls(part.num_rows, kind)], kind)
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                column = _dictionary_encoded(pa.table({name: column})).column(0)
            chunks += column.chunks
        if not chunks:
            return pa.chunked_array([], kind)
        return pa.chunked_array(chunks)

    def frame(
        self,
        positions: np.ndarray,
        *,
        leave_out: Sequence[str] = (),
        sort_categories: bool = True,
    ) -> pd.DataFrame:
        """The rows at ``positions`` (of the rows in file order) without the columns
        ``leave_out``; with ``sort_categories`` the categories of text columns are sorted
        as text, so that sorting and grouping order rows as plain text does."""
        import numpy as np
        import pandas as pd

        every = len(positions) == self.rows and np.array_equal(positions, np.arange(len(positions)))
        out = pd.DataFrame(index=pd.RangeIndex(len(positions)))
        for name in self.schema.names:
            if name in leave_out:
                continue
            column = self.column(name)
            if not every:
                column = column.take(positions)
            values = pa.table({name: column}).to_pandas(self_destruct=True)[name]
            del column
            if sort_categories and isinstance(values.dtype, pd.CategoricalDtype):
                values = values.cat.reorder_categories(sorted(values.cat.categories))
            out[name] = values
            del values
        return out


def runs_reader(folder: str | Path) -> ColumnReader:
    """A :class:`ColumnReader` of a results folder's ``runs`` part files."""
    return ColumnReader(part_files(_runs_folder(folder)))


def read_runs_frame(folder: str | Path, *, leave_out: Sequence[str] = ()) -> pd.DataFrame:
    """:func:`load_results`'s rows (deduplicated, in its order) without the columns
    ``leave_out``, read so that memory grows with cells, not rows (:class:`ColumnReader`)."""
    reader = runs_reader(folder)
    if reader.index is None:
        return _empty_runs().drop(columns=list(leave_out), errors="ignore")
    positions = dedupe_positions(reader.pop_index())
    return reader.frame(positions, leave_out=leave_out)


def load_results(folder: str | Path, *, dedupe: bool = True) -> pd.DataFrame:
    """The ``runs`` table of a results folder (see :func:`harness.load_results`)."""
    df = _read_files(part_files(_runs_folder(folder)))
    if df is None:
        return _empty_runs()
    return dedupe_runs(df) if dedupe else df


def load_traces(folder: str | Path) -> pd.DataFrame:
    """The ``traces`` table (long format) of a suite's results folder."""
    import pandas as pd

    folder = Path(folder)
    traces = folder / "traces" if (folder / "traces").is_dir() else folder
    df = _read_files(part_files(traces))
    if df is None:
        return pd.DataFrame(columns=traces_schema().names)
    # A trial computed twice (concurrent runs) has the same curve twice; keep one.
    return df.drop_duplicates(["cell_id", "trial", "iteration", "metric"]).reset_index(drop=True)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The provenance dict stored in a part file's metadata."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(b"relubench", b"{}"))


EXPORT_FORMATS = ("parquet", "csv")


def export(
    folder: str | Path,
    fmt: str = "parquet",
    out: str | Path | None = None,
    *,
    sql_names: bool = False,
) -> list[Path]:
    """Write a suite folder's deduplicated ``runs`` (as :func:`load_results` reads them) and
    ``traces`` as one file each, ``runs.<fmt>`` and ``traces.<fmt>``, into ``out`` (default
    ``<folder>/export``); return the paths.

    Any reader then sees one row per (cell_id, trial) without a dedupe query, and one
    schema. ``traces`` is written even when empty (with its columns), so a reader never
    meets a missing file. Parquet files carry the newest part file's ``relubench``
    metadata (environment, declarations). ``sql_names`` writes ``problem_d`` for
    ``problem.d`` (names that need no quoting in SQL); the names must stay distinct.
    """
    folder = Path(folder)
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format {fmt!r}: unknown; allowed: {', '.join(EXPORT_FORMATS)}")
    files = part_files(_runs_folder(folder))
    if not files:
        raise InputError(
            f"{folder}: no results to export (no part files in {_runs_folder(folder)}); give "
            "a suite's results folder (RESULTS_DIR/<suite name>, as printed by 'relubench run')"
        )
    target = Path(out) if out is not None else folder / "export"
    target.mkdir(parents=True, exist_ok=True)
    meta = pq.read_schema(files[-1]).metadata or {}
    meta = {k: v for k, v in meta.items() if k == b"relubench"}
    rows = _ExportRows(files)
    keys = rows.keys()  # (cell_id, trial) of the kept rows, for the traces
    traces = load_traces(folder)
    if traces.empty:
        keys = keys.iloc[:0]
    keys["cell_id"] = keys["cell_id"].astype("str")
    traces = traces.merge(keys, on=["cell_id", "trial"], how="inner")
    del keys
    if sql_names:
        traces = _sql_names(traces, folder)
    written = [target / f"runs.{fmt}"]
    rows.write(
        written[0], fmt, meta, lambda frame: _sql_names(frame, folder) if sql_names else frame
    )
    path = target / f"traces.{fmt}"
    if fmt == "csv":
        traces.to_csv(path, index=False)
    else:
        schema = traces_schema() if not sql_names else None
        table = pa.Table.from_pandas(traces, schema=schema, preserve_index=False)
        _atomic_write(table.replace_schema_metadata(meta), path)
    written.append(path)
    return written


EXPORT_CHUNK = 1 << 18
"""Rows an export converts and writes at a time."""


class _ExportRows:
    """The deduplicated ``runs`` rows of some part files, written in chunks: what
    :func:`load_results` reads, without holding every row at once. The first pass verifies
    every file and keeps the dedupe index (a few bytes a row); the second reads the files
    again, chunk by chunk, in the order :func:`dedupe_runs` keeps the rows. A chunk is
    converted to pandas with the dtypes the whole table would get (an integer column with
    a missing value anywhere becomes float), so the files equal those of one conversion."""

    def __init__(self, files: list[str]) -> None:
        import numpy as np

        self.files: list[str] = []
        sizes, index, schemas = [], [], []
        nullable: set[str] = set()
        for f, table in _readable_parts(files):
            self.files.append(f)
            sizes.append(table.num_rows)
            schemas.append(table.schema)
            nullable |= {n for n, c in zip(table.column_names, table.columns) if c.null_count}
            index.append(_dictionary_encoded(table.select(DEDUPE_COLUMNS)))
            del table
        if not self.files:
            raise InputError(f"{Path(files[0]).parent}: every part file is corrupt")
        self.schema = pa.unify_schemas(schemas, promote_options="permissive")
        self.floats = {  # integer columns pandas turns into float: a value missing somewhere
            f.name
            for f in self.schema
            if pa.types.is_integer(f.type)
            and (f.name in nullable or any(f.name not in s.names for s in schemas))
        }
        self.offsets = np.cumsum([0, *sizes])
        aligned = [_align(t, pa.unify_schemas([i.schema for i in index])) for t in index]
        self.index = pa.concat_tables(aligned).to_pandas()
        self.positions = dedupe_positions(self.index)

    def keys(self) -> pd.DataFrame:
        """``cell_id`` (categorical) and ``trial`` of the kept rows, in their order."""
        return self.index[["cell_id", "trial"]].iloc[self.positions].reset_index(drop=True)

    def chunks(self) -> Iterator[pa.Table]:
        import numpy as np

        if not len(self.positions):  # no rows: the columns alone
            yield self._floats(self.schema.empty_table())
            return
        which = np.searchsorted(self.offsets, self.positions, side="right") - 1
        cache: dict[int, pa.Table] = {}
        for start in range(0, len(self.positions), EXPORT_CHUNK):
            stop = start + EXPORT_CHUNK
            files = np.unique(which[start:stop])
            cache = {i: cache[i] if i in cache else self._read(i) for i in files}
            parts = [cache[i] for i in files]
            base = np.cumsum([0, *(t.num_rows for t in parts)])
            local = base[np.searchsorted(files, which[start:stop])]
            local += self.positions[start:stop] - self.offsets[which[start:stop]]
            yield pa.concat_tables(parts).take(local)

    def _read(self, i: int) -> pa.Table:
        return self._floats(_align(_current_table(read_part(self.files[i])), self.schema))

    def _floats(self, table: pa.Table) -> pa.Table:
        for name in self.floats:
            j = table.schema.get_field_index(name)
            table = table.set_column(j, name, table.column(j).cast(pa.float64()))
        return table

    def write(self, path: Path, fmt: str, meta: dict[bytes, bytes], rename) -> None:
        """The rows into ``path`` (``csv`` or ``parquet`` with ``meta``), chunk by chunk."""
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        writer = None
        try:
            for i, chunk in enumerate(self.chunks()):
                frame = rename(chunk.to_pandas())
                if fmt == "csv":
                    frame.to_csv(tmp, index=False, header=i == 0, mode="w" if i == 0 else "a")
                    continue
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    schema = table.schema.with_metadata(meta)
                    writer = pq.ParquetWriter(tmp, schema, write_page_checksum=True)
                writer.write_table(table.cast(schema))
            if writer is not None:
                writer.close()
                writer = None
            os.replace(tmp, path)
        finally:
            if writer is not None:
                writer.close()
            if tmp.exists():
                tmp.unlink()


def _sql_names(frame: pd.DataFrame, folder: Path) -> pd.DataFrame:
    names = {c: c.replace(".", "_") for c in frame.columns}
    if len(set(names.values())) < len(names):
        clash = sorted(c for c in names if list(names.values()).count(names[c]) > 1)
        raise InputError(f"{folder}: --sql-names would merge columns {', '.join(clash)}")
    return frame.rename(columns=names)


# ------------------------------------------------------------------------- leases

LEASE_TTL_S = 60.0
"""How long a run's leases hold without a heartbeat. A run renews its heartbeat every
third of this; a run that died stops, and its leases are taken over when it expires (at
once when its process is seen dead on this host)."""


@dataclass(frozen=True)
class Lease:
    """Who computes a cell's trials now: the run id, and the host and pid of its driver."""

    key: str
    run_id: str
    host: str
    pid: int


class Leases:
    """Leases on work in one results folder (``.leases/``), so two runs on one folder
    compute each trial once: a run leases what it will compute, a second run skips
    leased work and waits for its rows, and takes over the leases of a run that died.

    A lease is one file, ``<key>.json`` (run id, host, pid), created atomically
    (``O_CREAT | O_EXCL``). Its expiry is the holder's heartbeat, one file per run
    (``run-<run_id>.json``, renewed every ``ttl_s / 3``), so renewing costs one write
    however many leases a run holds. Judging and taking over a lease happens under an
    exclusive ``flock`` of ``.leases/.lock`` (POSIX), so two runs never both take
    over the same lease.
    """

    CREATING_S = 10.0  # a lease file still empty this long after creation is abandoned

    def __init__(self, root: str | Path, run_id: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.folder = Path(root) / ".leases"
        self.run_id, self.ttl_s = run_id, ttl_s
        self.held: set[str] = set()
        self._beating = False

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def _heartbeat_path(self, run_id: str) -> Path:
        return self.folder / f"run-{run_id}.json"

    def renew(self) -> None:
        """Push this run's expiry ``ttl_s`` into the future (every lease it holds)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(self._heartbeat_path(self.run_id), {"expires": time.time() + self.ttl_s})
        self._beating = True

    def read(self, key: str) -> Lease | None:
        """The lease on ``key``, or ``None`` (none, or a file not yet written)."""
        try:
            data = json.loads(self._path(key).read_text())
            return Lease(key, data["run_id"], data["host"], int(data["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self, lease: Lease, now: float | None = None) -> bool:
        """Its run's heartbeat has not expired, and (on this host) its process runs."""
        now = time.time() if now is None else now
        try:
            expires = json.loads(self._heartbeat_path(lease.run_id).read_text())["expires"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # the run ended (it removes its heartbeat) or never began
        if expires < now:
            return False
        return lease.host != socket.gethostname() or _process_alive(lease.pid)

    def acquire(self, key: str) -> Lease | None:
        """Lease ``key`` for this run; return the other run's live lease if it holds it."""
        if not self._beating:
            self.renew()
        body = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid()}
        try:
            fd = os.open(self._path(key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with self._locked():
                other = self.read(key)
                if other is None and self._fresh(key):  # its creator is still writing it
                    return Lease(key, "(being created)", "", 0)
                if other is not None and other.run_id != self.run_id and self.alive(other):
                    return other
                self._write(self._path(key), body)  # its run died or ended: take over
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(body, fh)
        self.held.add(key)
        return None

    def release(self, key: str) -> None:
        """Give up ``key`` (its rows are on disk)."""
        if key not in self.held:
            return
        self.held.discard(key)
        with self._locked():
            other = self.read(key)
            if other is None or other.run_id == self.run_id:
                self._path(key).unlink(missing_ok=True)

    def release_all(self) -> None:
        """Give up every lease and stop the heartbeat (the run is over)."""
        for key in list(self.held):
            self.release(key)
        if self._beating:
            self._heartbeat_path(self.run_id).unlink(missing_ok=True)
            self._beating = False

    def _fresh(self, key: str) -> bool:
        try:
            return time.time() - self._path(key).stat().st_mtime < self.CREATING_S
        except OSError:
            return False

    def _write(self, path: Path, body: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): a rare double take-over is deduplicated
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
