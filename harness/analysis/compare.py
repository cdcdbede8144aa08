"""What ``relubench compare`` computes: every section for one results folder, or two runs.

One folder: trial counts with failures, average ranks with the Friedman test,
pairwise paired tests, performance profiles and, where the suite traced a
compared metric, runtime-to-target ECDFs and ERT. Two folders: the regression
report of :mod:`harness.analysis.regression`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.anytime import Anytime, anytime, plot_ecdf
from harness.analysis.data import (
    OUTCOME_METRICS,
    MetricInfo,
    annotate,
    available_metrics,
    check_metrics,
    failure_counts,
    metric_info,
    suite_names,
    tuning_rows,
)
from harness.analysis.pairwise import PairSummary, compare_methods
from harness.analysis.profiles import COSTS, Profile, performance_profile, plot_profiles
from harness.analysis.ranking import Ranking, plot_cd_diagram, rank_methods
from harness.analysis.regression import RegressionReport, compare_runs
from harness.declarations import read_declarations
from harness.errors import InputError

PAIRING_COLUMNS = ("solver", "seed", "status")
"""Columns every comparison needs: who ran the trial, which trial it was, how it ended."""


UNUSED_COLUMNS = ("run_id", "created_at", "host", "harness_version", "error", "isolated")
"""Columns of the stored rows no comparison reads: left out when a folder is read, so that
millions of rows fit in memory."""


@dataclass
class FolderAnalysis:
    """Every section of ``relubench compare RESULTS`` for one suite's results."""

    suite: str
    alpha: float
    metrics: list[MetricInfo]
    methods: list[str]
    trials: pd.DataFrame
    rankings: list[Ranking] = field(default_factory=list)
    pairs: list[PairSummary] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    anytime: list[Anytime] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tuning_left_out: int = 0
    """Rows of a tuning split (``split == "tune"``) left out of every section."""


def read_folder(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, traces) of a suite's results folder; an error if it holds no runs."""
    from harness.store import load_traces, read_runs_frame

    folder = Path(folder)
    if not (folder / "runs").is_dir():
        inside = sorted(p.parent.name for p in folder.glob("*/runs"))
        hint = f" (suites inside: {', '.join(inside)})" if inside else ""
        raise InputError(f"{folder}: not a suite's results folder (no runs/ inside){hint}")
    runs = read_runs_frame(folder, leave_out=UNUSED_COLUMNS)
    if runs.empty:
        raise InputError(f"{folder}: no trials stored in runs/")
    return runs, load_traces(folder)


def _infos(
    runs: pd.DataFrame,
    metrics: Sequence[str] | None,
    directions: Mapping[str, str] | None,
    folder: str | Path,
    where: str | Path | None = None,
) -> list[MetricInfo]:
    """How to compare each metric: ``--direction`` first, then the folder's declarations."""
    names = check_metrics(runs, metrics, where or folder) if metrics else available_metrics(runs)
    for m in directions or {}:
        if m not in names:
            raise InputError(
                f"--direction {m}: not a compared metric (compared: {', '.join(names)})"
            )
    declared = read_declarations(folder, metrics=[m for m in names if m not in OUTCOME_METRICS])
    return list(metric_info(names, directions, declarations=declared).values())


def analyze_folder(
    folder: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    alpha: float = 0.05,
    directions: Mapping[str, str] | None = None,
    budget: str = "iteration",
    figures: str | Path | None = None,
) -> FolderAnalysis:
    """Compare the methods of one results folder; PNG figures go to ``figures`` if given."""
    raw, traces = read_folder(folder)
    return analyze_rows(
        raw, traces, folder, metrics=metrics, baseline=baseline, alpha=alpha,
        directions=directions, budget=budget, figures=figures,
    )  # fmt: skip


def analyze_rows(
    raw: pd.DataFrame,
    traces: pd.DataFrame | None,
    folder: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    baseline: str | None = None,
    alpha: float = 0.05,
    directions: Mapping[str, str] | None = None,
    budget: str = "iteration",
    figures: str | Path | None = None,
    svg: bool = False,
) -> FolderAnalysis:
    """:func:`analyze_folder` on rows already read (e.g. one profile's rows, for the report);
    ``folder`` is where they are stored (for the metric declarations); ``svg``: each
    figure also as SVG beside its PNG. Tuning rows (``split == "tune"``) are left out
    and counted in :attr:`FolderAnalysis.tuning_left_out`."""
    missing = [c for c in PAIRING_COLUMNS if c not in raw.columns]
    if missing:  # rows not written by relubench run (a hand-made or foreign table)
        raise InputError(
            f"{folder}: the rows have no {', '.join(missing)} column, so trials cannot be "
            "paired across solvers"
        )
    runs = annotate(raw)
    if runs.empty:
        raise InputError(
            f"{folder}: only tuning trials (split = tune) stored; nothing to compare"
            if tuning_rows(raw)
            else f"{folder}: no trials to compare"
        )
    traces = traces if traces is not None else pd.DataFrame(columns=["metric"])
    infos = _infos(runs, metrics, directions, folder)
    methods = list(dict.fromkeys(runs["method"]))
    out = FolderAnalysis(suite_names(runs), alpha, infos, methods, failure_counts(runs))
    out.tuning_left_out = tuning_rows(raw)
    out.rankings = [rank_methods(runs, i, alpha) for i in infos]
    out.pairs = compare_methods(runs, infos, alpha=alpha, baseline=baseline)
    success = next((i.name for i in infos if i.kind == "binary"), "success")
    out.profiles = [performance_profile(runs, c, success) for c in COSTS if runs[c].notna().any()]
    traced = set(traces["metric"]) if len(traces) else set()
    out.anytime = [
        anytime(runs, traces, i.name, budget=budget, direction=i.direction)
        for i in infos
        if i.name in traced
    ]
    if figures is not None:
        out.figures = [str(p) for p in write_figures(out, Path(figures), svg=svg)]
    return out


def write_figures(analysis: FolderAnalysis, folder: Path, *, svg: bool = False) -> list[Path]:
    """CD diagrams, performance profiles and ECDFs of an analysis as PNG files in ``folder``
    (with ``svg``, each also as an SVG file of the same stem)."""
    paths = [
        plot_cd_diagram(r, folder / f"cd-{r.metric}.png", svg=svg)
        for r in analysis.rankings
        if len(r.ranks) >= 2
    ]
    profiles = [p for p in analysis.profiles if p.problems]
    if profiles:
        paths.append(plot_profiles(profiles, folder / "performance-profiles.png", svg=svg))
    paths += [
        plot_ecdf(a, folder / f"ecdf-{a.metric}-{a.budget}.png", svg=svg) for a in analysis.anytime
    ]
    return paths


def analyze_runs(
    old: str | Path,
    new: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    alpha: float = 0.05,
    directions: Mapping[str, str] | None = None,
) -> tuple[RegressionReport, dict[str, MetricInfo]]:
    """The regression report of NEW against OLD and the metric information it used."""
    old_runs, _ = read_folder(old)
    new_runs, _ = read_folder(new)
    # which metrics have values in either run: the first row with a value of each column
    # of each run stands for it (not a copy of both runs)
    both = pd.concat([_witnesses(old_runs), _witnesses(new_runs)], ignore_index=True)
    infos = _infos(both, metrics, directions, new, f"{old} or {new}")
    report = compare_runs(old_runs, new_runs, infos, alpha=alpha)
    return report, {i.name: i for i in infos}


def _witnesses(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``runs`` that hold the first value of some column (every column that has
    a value keeps one, so :func:`available_metrics` answers as on all of ``runs``)."""
    first = {
        int(runs[c].notna().to_numpy().argmax()) for c in runs.columns if runs[c].notna().any()
    }
    return runs.iloc[sorted(first)]
