"""Two runs of one suite: what got better, worse or stayed the same, cell by cell.

Cells are matched by their parameters (component names and every parameter
value), not by ``cell_id``: a cell id changes whenever a component's source
changes, which is exactly the change a regression check looks at. Trials are
paired by seed. ``--fail-on`` specs say which significant changes fail a CI job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from harness.analysis.data import MetricInfo, annotate, joined, suite_names, tuning_rows
from harness.analysis.pairwise import CellComparison, across_cells, compare_cells
from harness.errors import InputError

_SPEC = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.]*)\s*"
    r"(?:(?P<op>[<>])\s*(?P<value>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<x>x)?)?\s*$"
)


@dataclass(frozen=True)
class FailSpec:
    """One ``--fail-on`` condition: a metric, and optionally how large a worsening must be.

    ``success``: any significant worsening. ``time_s>1.10x``: significant and
    the new/old ratio above 1.10. ``param_error>0.01``: significant and the
    change (new - old) above 0.01. The operator points the way the metric gets
    worse (``>`` for a metric to minimise, ``<`` to maximise: ``success<-0.1``).
    """

    text: str
    metric: str
    op: str | None = None
    threshold: float | None = None
    relative: bool = False

    def triggered(self, c: CellComparison) -> bool:
        """Whether this cell's comparison is a regression under this spec."""
        if c.metric != self.metric or c.verdict != "worse":
            return False
        if self.op is None or self.threshold is None:
            return True
        if self.relative:
            size = c.test.estimate if c.test.effect == "ratio" else _ratio(c.b_center, c.a_center)
        else:
            size = c.test.estimate if c.test.effect == "difference" else c.b_center - c.a_center
        return size > self.threshold if self.op == ">" else size < self.threshold


def _ratio(new: float, old: float) -> float:
    if old == 0:
        return math.inf if new > 0 else -math.inf if new < 0 else 1.0
    return new / old


def parse_fail_on(specs: Iterable[str], infos: Mapping[str, MetricInfo]) -> list[FailSpec]:
    """``--fail-on`` values (each may hold specs separated by commas) as :class:`FailSpec`."""
    out = []
    for raw in specs:
        for text in filter(None, (t.strip() for t in raw.split(","))):
            m = _SPEC.match(text)
            if not m:
                raise InputError(
                    f"--fail-on {text!r}: expected METRIC, METRIC>FACTORx or METRIC>DELTA "
                    "(e.g. success, time_s>1.10x, param_error>0.01)"
                )
            metric, op = m["metric"], m["op"]
            if metric not in infos:
                raise InputError(
                    f"--fail-on {text!r}: metric {metric!r} is not compared "
                    f"(compared: {', '.join(infos)})"
                )
            info = infos[metric]
            threshold = float(m["value"]) if m["value"] is not None else None
            if op is not None:
                worse = ">" if info.direction == "min" else "<"
                if op != worse:
                    raise InputError(
                        f"--fail-on {text!r}: {metric} is better when "
                        f"{'lower' if info.direction == 'min' else 'higher'}, so a worsening "
                        f"is written {metric}{worse}..."
                    )
                if m["x"] and threshold is not None and threshold <= 0:
                    raise InputError(f"--fail-on {text!r}: a factor must be positive")
            out.append(FailSpec(text, metric, op, threshold, bool(m["x"])))
    return out


@dataclass
class RegressionReport:
    """Every matched cell and metric of OLD (A) against NEW (B), plus what did not match."""

    old_suite: str
    new_suite: str
    cells: list[CellComparison] = field(default_factory=list)
    overall: list[CellComparison] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    tuning_left_out: int = 0
    """Rows of a tuning split (``split == "tune"``) left out of both runs."""

    def changed(self) -> list[CellComparison]:
        """Significant changes: per cell, then over all cells."""
        return [c for c in self.cells + self.overall if c.verdict != "same"]

    def regressions(self, specs: Sequence[FailSpec]) -> list[tuple[FailSpec, CellComparison]]:
        """Each significant worsening that a ``--fail-on`` spec names (cells and all cells)."""
        return [(s, c) for c in self.cells + self.overall for s in specs if s.triggered(c)]


def compare_runs(
    old: pd.DataFrame, new: pd.DataFrame, infos: Sequence[MetricInfo], *, alpha: float = 0.05
) -> RegressionReport:
    """Match the cells of two runs by parameters, pair trials by seed, test each metric.

    The Holm correction runs over the matched cells of one metric; ``overall``
    holds one test per metric over the cells (:func:`across_cells`).
    """
    both = annotate(
        pd.concat([old.assign(_side="old"), new.assign(_side="new")], ignore_index=True)
    )
    both["_cell"] = joined(both, "method_key", "|", "point_key")
    both["_label"] = joined(both, "method", " @ ", "point")
    sides = {s: dict(tuple(g.groupby("_cell", sort=False))) for s, g in both.groupby("_side")}
    o, n = sides.get("old", {}), sides.get("new", {})
    report = RegressionReport(suite_names(old), suite_names(new))
    report.tuning_left_out = tuning_rows(old) + tuning_rows(new)
    report.only_old = [g["_label"].iloc[0] for k, g in o.items() if k not in n]
    report.only_new = [g["_label"].iloc[0] for k, g in n.items() if k not in o]
    groups = [(o[k]["_label"].iloc[0], o[k], n[k]) for k in o if k in n]
    for info in infos:
        cells = compare_cells(groups, info, alpha, "old", "new")
        report.cells += cells
        overall = across_cells(cells, info, alpha)
        if overall is not None:
            report.overall.append(overall)
    return report
