"""The store's readers and its export: deduplicated rows that pandas, polars and DuckDB
read correctly after duplicates, and no empty ``traces/`` folder to trip them."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness import load_results
from harness.cli import main
from harness.rows import CREATED_AT_TYPE, TRACES_SCHEMA
from harness.run import execute
from harness.store import export, load_traces, read_metadata

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results-schema.md"

SUITE = """
[suite]
name = "store-test"
trials = 3
seed = 2

[[problems]]
name = "one_hidden"
d = 5
k = 2
n = [40, 80]

[[initializers]]
name = "gaussian"
scale = 0.1

[[solvers]]
name = "gd"
max_iter = 20

[metrics]
names = ["param_error", "train_loss"]
{trace}
"""


def _run_twice(write_suite, tmp_path: Path, trace: bool = True) -> Path:
    """A folder where every trial is stored twice (a run, then a --force run)."""
    path = write_suite(SUITE.format(trace='trace = ["train_loss"]' if trace else ""))
    kw = dict(results=tmp_path / "r", executor="serial")
    folder = execute(path, **kw).results_dir
    execute(path, force=True, **kw)
    assert len(load_results(folder, dedupe=False)) == 2 * len(load_results(folder)) == 12
    return folder


def _keys(frame: pd.DataFrame) -> set[tuple]:
    return set(zip(frame["cell_id"], frame["trial"], frame["run_id"]))


def test_export_parquet_has_one_row_per_trial_and_keeps_types(write_suite, tmp_path):
    folder = _run_twice(write_suite, tmp_path)
    runs_path, traces_path = export(folder, "parquet")
    assert runs_path == folder / "export" / "runs.parquet"
    exported = pd.read_parquet(runs_path)
    expected = load_results(folder)
    assert len(exported) == 6 and _keys(exported) == _keys(expected)
    assert list(exported.columns) == list(expected.columns)
    assert pq.read_schema(runs_path).field("created_at").type == CREATED_AT_TYPE
    assert read_metadata(runs_path)["declarations"]["metrics"]["train_loss"]["role"] == "loss"
    traces = pd.read_parquet(traces_path)
    # one curve per kept trial, not two
    assert not traces.duplicated(["cell_id", "trial", "iteration", "metric"]).any()
    assert set(zip(traces["cell_id"], traces["trial"])) == set(
        zip(expected["cell_id"], expected["trial"])
    )
    assert len(traces) == len(load_traces(folder))
    # the raw folder still counts each trial twice: that is what the export is for
    assert len(pd.read_parquet(folder / "runs")) == 12


def test_export_csv_from_the_cli(write_suite, tmp_path, capsys):
    folder = _run_twice(write_suite, tmp_path)
    out = tmp_path / "csv"
    assert main(["export", str(folder), "--format", "csv", "--out", str(out)]) == 0
    assert str(out / "runs.csv") in capsys.readouterr().out
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and not runs.duplicated(["cell_id", "trial"]).any()
    assert "problem.n" in runs.columns
    assert pd.to_datetime(runs["created_at"]).dt.tz is not None


def test_export_sql_names_need_no_quoting(write_suite, tmp_path):
    folder = _run_twice(write_suite, tmp_path)
    runs_path, _ = export(folder, "parquet", tmp_path / "x", sql_names=True)
    columns = pq.read_schema(runs_path).names
    assert "problem_n" in columns and "metric_param_error" in columns
    assert not [c for c in columns if "." in c]


def test_export_bad_input_exits_2_naming_the_folder(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the allowed formats
        main(["export", str(tmp_path), "--format", "xlsx"])


def test_a_run_without_traces_leaves_no_empty_traces_folder(write_suite, tmp_path):
    folder = _run_twice(write_suite, tmp_path, trace=False)
    assert not (folder / "traces").exists()
    _, traces_path = export(folder, "parquet")
    assert pq.read_schema(traces_path).remove_metadata() == TRACES_SCHEMA
    assert pq.read_metadata(traces_path).num_rows == 0


def _doc_blocks() -> list[str]:
    """The python blocks of the "Reading results" section of docs/results-schema.md."""
    text = DOCS.read_text()
    section = text.split("## Reading results", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("trace", [True, False])
def test_documented_reads_are_correct_after_duplicates(write_suite, tmp_path, trace):
    """Every one-line read the docs show gives the rows load_results gives, in pandas,
    polars and DuckDB (each reader only where it is installed)."""
    import harness

    folder = _run_twice(write_suite, tmp_path, trace=trace)
    export(folder, "parquet")
    expected = _keys(load_results(folder))
    blocks = _doc_blocks()
    assert len(blocks) == 2
    lines = [
        stmt
        for block in blocks
        for stmt in re.split(r"\n(?=runs = |rank = )", block.strip())
        if stmt.strip()
    ]
    assert any("duckdb" in s for s in lines) and any("pl." in s for s in lines)
    checked = set()
    env: dict = {"pd": pd, "harness": harness}
    for lib, name in (("polars", "pl"), ("duckdb", "duckdb")):
        try:
            env[name] = __import__(lib)
        except ImportError:
            continue
    for stmt in lines:
        needs = {n for n in ("pl", "duckdb") if f"{n}." in stmt}
        if not needs <= set(env):
            continue
        code = stmt.replace("results/quickstart", str(folder))
        exec(code, env)  # noqa: S102 - the documentation's own code, on a test folder
        if stmt.startswith("runs = "):
            runs = env["runs"]
            runs = runs.to_pandas() if hasattr(runs, "to_pandas") else runs
            assert len(runs) == len(expected) and _keys(runs) == expected, stmt
            checked.add(stmt)
    # load_results and pandas on the export at least; all six reads with both readers
    assert len(checked) == 2 + 2 * ("pl" in env) + 2 * ("duckdb" in env)
    for name in ("pl", "duckdb"):
        if name in env:  # an empty or absent traces/ does not break a reader of the export
            path = str(folder / "export" / "traces.parquet")
            n = (
                env[name].read_parquet(path).height
                if name == "pl"
                else env[name].sql(f"SELECT count(*) FROM '{path}'").fetchall()[0][0]
            )
            assert n == (len(load_traces(folder)) if trace else 0)


def test_export_in_chunks_writes_the_rows_of_one_conversion(write_suite, tmp_path, monkeypatch):
    """The export streams its rows in chunks; the files hold exactly what converting all the
    deduplicated rows at once gives (order, values, types), in both formats."""
    import harness.store as store

    folder = _run_twice(write_suite, tmp_path)
    whole = load_results(folder)
    monkeypatch.setattr(store, "EXPORT_CHUNK", 4)  # 6 rows: two chunks, the last short
    runs_path, _ = export(folder, "parquet", tmp_path / "pq")
    exported = pd.read_parquet(runs_path)
    pd.testing.assert_frame_equal(exported, whole.reset_index(drop=True), check_dtype=False)
    assert [exported[c].dtype.kind for c in exported] == [whole[c].dtype.kind for c in whole]
    csv_path, _ = export(folder, "csv", tmp_path / "csv")
    assert csv_path.read_text() == whole.to_csv(index=False)


def test_read_runs_frame_is_load_results_with_text_as_categories(write_suite, tmp_path):
    """The reader of millions of rows keeps load_results's rows, order and values; text
    columns are categorical with categories sorted as text."""
    from harness.store import read_runs_frame

    folder = _run_twice(write_suite, tmp_path)
    whole = load_results(folder)
    compact = read_runs_frame(folder, leave_out=("host", "error"))
    assert list(compact.columns) == [c for c in whole.columns if c not in ("host", "error")]
    for column in compact.columns:
        values = compact[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            assert list(values.cat.categories) == sorted(values.cat.categories)
            values = values.astype(object)
        pd.testing.assert_series_equal(values, whole[column], check_dtype=False)


def test_string_digest_from_buffers_equals_the_joined_text():
    """Digests of text columns are computed from Arrow buffers: the bytes must be those of
    the original definition (files written before must still verify)."""
    import pyarrow as pa

    from harness.store import _joined_text

    values = ["", "a", "é€😀", "x\x00y", "", "last"]
    column = pa.chunked_array(
        [pa.array(values[:2]), pa.array([], pa.string()), pa.array(values[2:])]
    )
    for c in (column, column.slice(1, 4), column.slice(5), column.slice(0, 0)):
        assert _joined_text(c) == "\0".join(c.to_pylist()).encode()
