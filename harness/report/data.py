"""Read a results folder and work out, from the columns alone, what to draw.

The report knows no paper. It looks at which ``problem.*`` parameters vary:
the sample size ``n`` is the x-axis of success curves; ``d`` and ``k`` are the
sizes a phase-transition boundary is measured against; every other problem
parameter that varies independently of those (a noise level, an input
distribution, a dataset) splits the results into *facets*. Solver and
initializer parameters that vary name the *series* (``<solver>[step_size=0.5]
/ <initializer>``), so two settings of one solver are two curves. What a
metric is (the success metric, an error) and which trace series are budget
axes come from the components' declarations (:mod:`harness.declarations`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.declarations import Declarations, live, read_declarations
from harness.errors import InputError
from harness.profiles import ProfileRows

# The problem parameters the report gives a role, by the naming convention of
# docs/writing-a-plugin.md: the sample size is ``n`` (``n_train`` for a dataset
# split), the sizes a boundary is measured against are ``d`` (input dimension)
# and ``k`` (hidden units). In order of preference.
SAMPLE_SIZE_COLUMNS = ("problem.n", "problem.n_train")
SIZE_COLUMNS = {"d": ("problem.d",), "k": ("problem.k",)}

# Statuses that count as a trial of a success curve: a diverged or timed-out
# trial is a failure to recover; an ``error`` trial (a crash) says nothing
# about recovery and is reported separately.
COUNTED_STATUSES = ("ok", "diverged", "timeout")


def canon(value: Any) -> Any:
    """A hashable, printable form of a parameter value (lists become ``a-b-c``)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "-".join(str(canon(v)) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    if isinstance(value, np.generic):
        return canon(value.item())
    return value


def fmt(value: Any) -> str:
    """Short text for a number or parameter value in labels and tables."""
    value = canon(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def curve_key(facet: str, series: str, d: Any, k: Any) -> tuple:
    """Dictionary key of one success curve; NaN sizes become None so keys compare equal."""

    def num(v: Any) -> float | None:
        return None if v is None or pd.isna(v) else float(v)

    return (facet, series, num(d), num(k))


def _read_parquet_folder(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder)


def load_runs(results_dir: Path) -> pd.DataFrame:
    """The ``runs`` rows: through ``harness.store.load_results`` when the core has it."""
    runs_dir = results_dir / "runs"
    if not runs_dir.is_dir():
        raise InputError(
            f"{results_dir}: no 'runs' folder; give a suite's results folder "
            "(RESULTS_DIR/<suite name>, as printed by 'relubench run')"
        )
    try:
        from harness.store import load_results
    except ImportError:  # the store is not there yet: the Parquet layout is the contract
        return _read_parquet_folder(runs_dir)
    return load_results(results_dir)


def load_traces(results_dir: Path) -> pd.DataFrame | None:
    """The ``traces`` rows, or None when the run kept none."""
    folder = results_dir / "traces"
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return None
    from harness.store import load_traces as read_traces  # verified; corrupt files quarantined

    traces = read_traces(results_dir)
    if traces.empty:
        return None
    # A trial stored twice (a forced rerun) would double its curve.
    key = ["cell_id", "trial", "metric", "iteration"]
    return traces.drop_duplicates(key, keep="last").reset_index(drop=True)


def load_declarations(results_dir: Path, runs: pd.DataFrame) -> Declarations:
    """What the metrics and solvers of ``runs`` declared, as the store recorded it.

    Components the part files do not describe (results written before
    declarations were recorded) are looked up in the installed plugins.
    """
    metrics = [c.removeprefix("metric.") for c in runs.columns if c.startswith("metric.")]
    solvers = runs["solver"].dropna().astype(str).unique() if "solver" in runs.columns else ()
    return read_declarations(results_dir, metrics=metrics, solvers=solvers)


# Entries of the ``relubench`` metadata that describe the components, not the
# environment: the report reads them, the environment table leaves them out.
_NOT_ENVIRONMENT = ("declarations",)


def file_metadata(results_dir: Path) -> dict[str, str]:
    """Key/value metadata the store wrote into the newest runs part file (environment)."""
    import pyarrow.parquet as pq

    files = list((results_dir / "runs").rglob("*.parquet"))
    if not files:
        return {}
    newest = max(files, key=lambda f: (f.stat().st_mtime, f.name))
    meta = pq.read_schema(newest).metadata or {}
    out: dict[str, str] = {}
    for k, v in meta.items():
        key = k.decode(errors="replace")
        if key in ("pandas", "ARROW:schema"):
            continue
        text = v.decode(errors="replace")
        try:  # flatten one level of JSON so the table reads well
            obj = json.loads(text)
        except ValueError:
            out[key] = text
            continue
        if isinstance(obj, dict):
            for k2, v2 in obj.items():
                if k2 in _NOT_ENVIRONMENT:
                    continue
                out[f"{key}.{k2}"] = v2 if isinstance(v2, str) else json.dumps(v2)
        else:
            out[key] = text
    return out


@dataclass
class Layout:
    """The runs with helper columns, and the roles the report gave each column.

    Helper columns: ``_problem``, ``_solver``, ``_init`` (labels with the
    varying parameters), ``_series`` (solver / initializer), ``_facet``
    (problem name and the values of ``facets``), ``_n`` (sample size, NaN
    when none), ``_d``/``_k`` (NaN when absent), ``_counted`` (the row is a
    trial of a success curve) and ``_success`` (0/1 or fraction; failed
    counted trials are 0). ``success`` is the ``metric.<name>`` column of the
    metric that declares the role ``success`` (the first, by name), or None.
    """

    runs: pd.DataFrame
    has_n: bool
    sizes: list[str]  # "d" and/or "k" when they vary
    facets: list[str]  # problem columns that split the results
    metrics: list[str]  # metric.<name> columns, sorted
    suite: str
    declarations: Declarations
    success: str | None

    @property
    def has_success(self) -> bool:
        return self.success is not None and bool(self.runs["_counted"].any())

    def config_columns(self) -> list[str]:
        """Columns that identify a problem configuration (one point of a curve)."""
        cols = ["_facet"]
        if self.has_n:
            cols.append("_n")
        cols += [f"_{s}" for s in self.sizes]
        return cols


def _component_labels(runs: pd.DataFrame, kind: str) -> pd.Series:
    """``name[p=v, ...]`` with the parameters that vary among that component's rows
    (categorical: worked out once per distinct component, not once per row)."""
    prefix = f"{kind}."
    cols = [c for c in runs.columns if c.startswith(prefix)]
    codes, combos = _distinct(runs, [kind, *cols])
    labels = combos[kind].astype(str)
    for name, idx in combos.groupby(kind, sort=False).groups.items():
        rows = combos.loc[idx, cols]
        varying = [c for c in cols if rows[c].map(canon).nunique(dropna=True) > 1]
        if not varying:
            continue
        parts = rows[varying].apply(
            lambda r, vs=varying: ", ".join(f"{c[len(prefix) :]}={fmt(r[c])}" for c in vs), axis=1
        )
        labels.loc[idx] = f"{name}[" + parts + "]"
    return _categorical(labels.to_numpy(dtype=object), codes, runs.index)


def _distinct(runs: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's number among the distinct combinations of ``columns`` (missing values
    included), and those combinations (one row each, in that numbering)."""
    if not len(runs):
        return np.zeros(0, dtype="int64"), runs[columns].iloc[:0]
    codes = runs.groupby(columns, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    first = np.full(int(codes.max()) + 1, -1, dtype="int64")
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # first row of each combination
    return codes, runs[columns].iloc[first].reset_index(drop=True)


def _categorical(values: np.ndarray, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """``values[codes]`` as a categorical column (categories sorted as text sorts), so a
    label repeated on millions of rows costs a code a row."""
    categories = sorted(set(values))
    position = {v: i for i, v in enumerate(categories)}
    remap = np.array([position[v] for v in values], dtype="int32")
    return pd.Series(
        pd.Categorical.from_codes(remap[codes], categories=categories), index=index, copy=False
    )


def _text(values: pd.Series) -> pd.Series:
    """``values.astype(str)`` (missing is ``nan``) as a categorical column."""
    codes, combos = _distinct(values.to_frame("v"), ["v"])
    return _categorical(combos["v"].astype(str).to_numpy(dtype=object), codes, values.index)


def _canonical_codes(values: pd.Series) -> pd.Series:
    """A number per row that is equal where ``values.map(canon)`` is (NaN where missing),
    with :func:`canon` called once per distinct value, not once per row."""
    if values.dtype == object:  # lists, mixed values: canon each row
        return values.map(canon)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    canonical, _ = pd.factorize(pd.Series([canon(u) for u in uniques], dtype=object))
    numbers = np.append(canonical, -1)[codes].astype("float64")  # code -1: missing
    numbers[codes < 0] = np.nan
    return pd.Series(numbers, index=values.index)


def _first_present(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    return next((c for c in names if c in columns), None)


def build_layout(runs: pd.DataFrame, declarations: Declarations | None = None) -> Layout:
    """Assign every column a role and add the helper columns (see :class:`Layout`).

    ``declarations`` say what each metric and solver is (default: the
    installed plugins' declarations, :func:`harness.declarations.live`).
    """
    required = ["problem", "initializer", "solver"]
    missing = [c for c in required if c not in runs.columns]
    if missing:
        raise InputError(
            f"results have no column(s) {', '.join(missing)}: not a relubench runs table"
        )
    runs = runs.reset_index(drop=True)  # a lazy copy (copy-on-write): helpers added to it
    suite = str(runs["suite"].iloc[0]) if "suite" in runs.columns and len(runs) else "results"

    # Text helpers are categorical, worked out per distinct value, so the layout grows
    # with cells, not rows (a folder of millions of trials of a few thousand cells).
    runs["_problem"] = _text(runs["problem"])
    runs["_solver"] = _component_labels(runs, "solver")
    runs["_init"] = _component_labels(runs, "initializer")
    codes, combos = _distinct(runs, ["_solver", "_init"])
    series = (combos["_solver"].astype(str) + " / " + combos["_init"].astype(str)).to_numpy(object)
    runs["_series"] = _categorical(series, codes, runs.index)

    def numeric(col: str | None) -> pd.Series:
        if col is None:
            return pd.Series(np.nan, index=runs.index)
        return pd.to_numeric(runs[col], errors="coerce").astype(float)

    role_cols: set[str] = set()
    for name, aliases in SIZE_COLUMNS.items():
        col = _first_present(runs.columns, aliases)
        runs[f"_{name}"] = numeric(col)
        if col:
            role_cols.add(col)
    n_col = _first_present(runs.columns, SAMPLE_SIZE_COLUMNS)
    runs["_n"] = numeric(n_col)
    if n_col:
        role_cols.add(n_col)
    has_n = runs["_n"].nunique() > 1
    sizes = [s for s in SIZE_COLUMNS if runs[f"_{s}"].nunique() > 1]

    # A problem parameter is a facet when it varies among rows that share
    # the problem, n and sizes (a noise level, a dataset); one that is a
    # function of those (n_test = n) is not, or every point would be its own
    # facet.
    grid = ["_problem", "_n"] + [f"_{s}" for s in SIZE_COLUMNS]
    keyed = runs[grid].fillna(-1.0)
    facets = []
    for col in sorted(c for c in runs.columns if c.startswith("problem.") and c not in role_cols):
        values = _canonical_codes(runs[col])
        if values.nunique(dropna=True) <= 1:
            continue
        per_point = values.groupby([keyed[g] for g in grid], dropna=False).nunique(dropna=True)
        if (per_point > 1).any():
            facets.append(col)
    several_problems = runs["_problem"].nunique() > 1

    def facet_label(row: pd.Series) -> str:
        parts = [f"{c[len('problem.') :]}={fmt(row[c])}" for c in facets if fmt(row[c]) != ""]
        head = row["_problem"] if several_problems or not parts else ""
        return (head + (" " if head and parts else "") + ", ".join(parts)).strip()

    if facets or several_problems:
        codes, combos = _distinct(runs, ["_problem", *facets])
        labels = combos.apply(facet_label, axis=1).to_numpy(dtype=object)
        runs["_facet"] = _categorical(labels, codes, runs.index)
    else:
        runs["_facet"] = ""

    if declarations is None:
        declarations = live()
    metrics = sorted(c for c in runs.columns if c.startswith("metric."))
    success = next(
        (f"metric.{m}" for m in declarations.with_role("success", _names(metrics))), None
    )
    runs["_status"] = _text(runs["status"]) if "status" in runs.columns else "ok"
    runs["_counted"] = runs["_status"].isin(COUNTED_STATUSES)
    if success is not None:
        succ = pd.to_numeric(runs[success], errors="coerce").astype(float)
        ok = runs["_status"] == "ok"
        # A trial that diverged or timed out did not recover; an ok trial
        # whose success metric is missing does not apply and is not counted.
        runs["_success"] = np.where(ok, succ, 0.0)
        runs.loc[ok & succ.isna(), "_counted"] = False
    else:
        runs["_success"] = np.nan
        runs["_counted"] = False

    return Layout(runs, has_n, sizes, facets, metrics, suite, declarations, success)


def _names(columns: list[str]) -> list[str]:
    return [c.removeprefix("metric.") for c in columns]


@dataclass
class ReportRows:
    """The rows a report is built from, and the line that says which they are."""

    runs: pd.DataFrame
    profile: str
    note: str
    only: tuple[str, ...] = ()


def select_rows(
    results_dir: Path, profile: str | None = None, only: tuple[str, ...] | list[str] = ()
) -> ReportRows:
    """The rows of one profile (default: the most recent; ``all``: every row), then
    of the ``--only`` terms (:mod:`harness.selection`). Scales are never mixed
    silently: the note names the profile used and what was left out."""
    from harness.selection import Selection

    if not (results_dir / "runs").is_dir():
        load_runs(results_dir)  # raises the error that names what to give instead
    chosen = read_profile_rows(results_dir, profile)
    note = chosen.describe()
    runs = chosen.runs
    selection = Selection.parse(only)
    if selection and not runs.empty:
        runs = selection.rows(runs, where=f"{results_dir} (profile {chosen.profile})")
        note += f"; --only {selection.describe()}: {len(runs)} rows"
    return ReportRows(runs, chosen.profile, note, tuple(only))


def read_profile_rows(results_dir: Path, profile: str | None = None) -> ProfileRows:
    """:func:`harness.profiles.profile_rows` (the same rows, in the same order) read so that
    memory grows with cells, not rows: the profile and the dedupe are worked out on the
    index columns alone, and the kept rows are read one column at a time into a pandas
    frame whose text columns are categorical (:class:`harness.store.ColumnReader`)."""
    from harness.profiles import choose_profile, profile_rows, with_profiles
    from harness.store import runs_reader

    reader = runs_reader(results_dir)
    if reader.index is None:
        return profile_rows(results_dir, profile)  # nothing stored: its empty answer
    index = with_profiles(results_dir, reader.pop_index())
    positions, wanted, chosen, left_out = choose_profile(results_dir, index, profile)
    del index
    runs = reader.frame(positions, sort_categories=False)
    return ProfileRows(runs, wanted, chosen, left_out)
