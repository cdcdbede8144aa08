"""Tests of harness.declarations and the declared attributes of components."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.components import Metric, param
from harness.declarations import CLOCK_AXES, Declarations, declare, read_declarations
from harness.run import prepare
from harness.summary import summary_frame

SUITES = Path(__file__).resolve().parents[2] / "suites"


def test_metric_role_and_direction_defaults_and_validation() -> None:
    class Plain(Metric):
        name = "plain"

    class Err(Metric):
        name = "err"
        role = "error"

    class Acc(Metric):
        name = "acc"
        role = "score"
        direction = "higher"

    assert (Plain.role, Plain.better()) == ("score", "higher")
    assert Err.better() == "lower"  # the role's direction when none is declared
    assert Acc.better() == "higher"
    with pytest.raises(TypeError, match=r"role 'eror' is not one of 'success', 'error'"):

        class Typo(Metric):
            name = "typo"
            role = "eror"

    with pytest.raises(TypeError, match=r"direction 'down' is not one of 'lower', 'higher'"):

        class Down(Metric):
            name = "down"
            direction = "down"


def test_param_default_is_not_shared_between_instances() -> None:
    @dataclasses.dataclass
    class P:
        sizes: list = param([1, 2], "sizes")

    a, b = P(), P()
    a.sizes.append(3)
    assert b.sizes == [1, 2] and P().sizes == [1, 2]


def test_declare_records_the_metrics_and_solvers_of_the_cells() -> None:
    registry, _, cells, _ = prepare(SUITES / "quickstart.toml", profile="smoke")
    decl = declare(registry, cells)
    json.dumps(decl)  # goes into the Parquet metadata as JSON
    assert decl["metrics"] == {
        "param_error": {"role": "error", "direction": "lower"},
        "success": {"role": "success", "direction": "higher"},
        "train_loss": {"role": "loss", "direction": "lower"},
    }
    assert set(decl["solvers"]) == {c.solver.name for c in cells}
    assert all(v["budget_axes"] == list(CLOCK_AXES) for v in decl["solvers"].values())


def test_a_solver_budget_axis_is_declared() -> None:
    registry, _, cells, _ = prepare(SUITES / "dante-small.toml", profile="smoke")
    decl = Declarations.from_json(declare(registry, cells))
    dante = next(c.solver.name for c in cells if registry.get("solver", c.solver.name).budget_axes)
    assert decl.budget_axes(dante) == (*CLOCK_AXES, "weights_updated")
    assert decl.extra_axes(dante) == ("weights_updated",)
    assert decl.budget_axes("never-declared") == CLOCK_AXES


def _part(path: Path, declarations: dict | None) -> None:
    table = pa.table({"solver": ["s"], "metric.m": [1.0]})
    if declarations is not None:
        meta = {b"relubench": json.dumps({"declarations": declarations}).encode()}
        table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_read_declarations_newest_file_wins_and_registry_fills_gaps(tmp_path: Path) -> None:
    import os

    old = {"metrics": {"m": {"role": "loss", "direction": "lower"}}, "solvers": {}}
    new = {"metrics": {"m": {"role": "score", "direction": "higher"}}, "solvers": {}}
    _part(tmp_path / "runs" / "a.parquet", old)
    _part(tmp_path / "runs" / "b.parquet", new)
    _part(tmp_path / "runs" / "c.parquet", None)  # written before declarations existed
    os.utime(tmp_path / "runs" / "a.parquet", (1, 1))
    fallback = Declarations({"m2": {"role": "error", "direction": "lower"}}, {"s": ("iteration",)})
    decl = read_declarations(tmp_path, metrics=["m", "m2"], solvers=["s"], fallback=fallback)
    assert decl.role("m") == "score" and decl.direction("m") == "higher"
    assert decl.role("m2") == "error" and decl.budget_axes("s") == ("iteration",)
    assert decl.role("unknown") is None and decl.direction("unknown") is None


def test_summary_columns_follow_declared_roles() -> None:
    _, _, cells, _ = prepare(SUITES / "quickstart.toml", profile="smoke")
    rows = []
    for i, cell in enumerate(cells):
        for t in range(2):
            rows.append({
                "cell_id": cell.cell_id, "status": "ok", "time_s": 1.0,
                "metric.param_error": 0.1 * i, "metric.success": float(t),
                "metric.train_loss": 10.0 + i,
            })  # fmt: skip
    runs = pd.DataFrame(rows)
    frame = summary_frame(runs, cells)  # the installed plugins' declarations
    assert list(frame.columns[-3:]) == ["success", "median param_error", "median time_s"]
    assert frame["success"].tolist() == [0.5] * len(cells)
    assert frame["median param_error"].tolist() == pytest.approx(
        [0.1 * i for i in range(len(cells))]
    )

    # Declared otherwise, the same rows summarise otherwise: no name is special.
    decl = Declarations({"train_loss": {"role": "error"}, "success": {"role": "score"}})
    frame = summary_frame(runs, cells, decl)
    assert list(frame.columns[-2:]) == ["median train_loss", "median time_s"]
    assert "success" not in frame.columns
    assert frame["median train_loss"].tolist() == [10.0 + i for i in range(len(cells))]
