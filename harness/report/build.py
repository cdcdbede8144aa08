"""Assemble the report: aggregate tables, boundary fits, figures, summary.md, index.html."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import InputError
from harness.profiles import ALL, DEFAULT
from harness.report import figures
from harness.report.boundary import ExponentFit, N50Fit, fit_exponent, fit_n50
from harness.report.data import (
    Layout,
    ReportRows,
    build_layout,
    curve_key,
    file_metadata,
    fmt,
    load_declarations,
    load_traces,
    select_rows,
)
from harness.report.document import Document
from harness.report.stats import wilson_interval

CURVE_KEY = ["_facet", "_series", "_d", "_k"]


def success_table(layout: Layout) -> pd.DataFrame:
    """One row per (facet, series, n, d, k): successes, trials, rate and its Wilson 95% interval."""
    keys = ["_facet", "_series", "_solver", "_init", "_n", "_d", "_k"]
    runs = layout.runs.loc[layout.runs["_counted"], [*keys, "_success"]]  # not every column
    table = (
        runs.groupby(keys, dropna=False, sort=True)["_success"]
        .agg(successes="sum", trials="count")
        .reset_index()
    )
    table["rate"] = table["successes"] / table["trials"]
    table["low"], table["high"] = wilson_interval(table["successes"], table["trials"])
    return table


def _curve_seed(seed: int, key: tuple) -> int:
    # Each curve gets its own bootstrap stream (stable across runs): common
    # random numbers across d would correlate the n50 replicates that the
    # exponent's interval treats as independent.
    return seed + zlib.crc32(repr(key).encode())


def boundary_fits(
    layout: Layout, table: pd.DataFrame, *, n_boot: int, seed: int
) -> dict[tuple, N50Fit]:
    """fit_n50 for each success curve (facet, series, d, k) over n."""
    fits: dict[tuple, N50Fit] = {}
    if not (layout.has_n and layout.has_success):
        return fits
    for key, curve in table.groupby(CURVE_KEY, dropna=False, sort=True):
        if curve["_n"].nunique() < 2:
            continue
        fits[curve_key(*key)] = fit_n50(
            curve["_n"], curve["successes"], curve["trials"],
            n_boot=n_boot, seed=_curve_seed(seed, key),
        )  # fmt: skip
    return fits


def exponent_fits(layout: Layout, fits: dict[tuple, N50Fit]) -> list[tuple[dict, ExponentFit]]:
    """Log-log slope of n50 against each varying size, the other sizes held fixed."""
    out = []
    for size in layout.sizes:
        other = "k" if size == "d" else "d"
        groups: dict[tuple, list[tuple[float, N50Fit]]] = {}
        for (facet, series, d, k), fit in fits.items():
            sizes = {"d": d, "k": k}
            if sizes[size] is not None:  # a curve of a problem without this size
                groups.setdefault((facet, series, sizes[other]), []).append((sizes[size], fit))
        for (facet, series, fixed), items in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if len(items) < 2:
                continue
            items.sort(key=lambda t: t[0])
            ef = fit_exponent([s for s, _ in items], [f for _, f in items])
            info = {"facet": facet, "series": series, "against": size}
            info["fixed"] = f"{other}={fmt(fixed)}" if other in layout.sizes else ""
            out.append((info, ef))
    return out


def _n50_text(fit: N50Fit) -> tuple[str, str]:
    if fit.status == "below_range":
        return f"< {fmt(fit.n_min)}", "success >= 1/2 at every n"
    if fit.status == "above_range":
        return f"> {fmt(fit.n_max)}", "success < 1/2 at every n"
    if fit.status == "insufficient":
        return "", "fewer than two n"
    return f"{fit.n50:.4g}", f"[{fit.low:.4g}, {fit.high:.4g}]"


def _metric_cell(values: pd.Series, *, success: bool = False) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return ""
    if success:  # a 0/1 outcome: a proportion with its Wilson interval, not mean +- sd
        low, high = wilson_interval(v.sum(), len(v))
        return f"{fmt(v.sum())}/{len(v)} = {v.mean():.3g} [{float(low):.2g}, {float(high):.2g}]"
    if len(v) == 1:
        return f"{v.iloc[0]:.4g}"
    return f"{v.mean():.4g} ± {v.std():.2g}"


def build_report(
    results_dir: Path,
    out_dir: Path | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    profile: str | None = None,
    only: tuple[str, ...] | list[str] = (),
    rows: ReportRows | None = None,
) -> Path:
    """Write figures (PNG + SVG), ``summary.md``, CSV tables and an offline ``index.html``.

    ``results_dir`` is a suite's results folder (holding ``runs/`` and maybe
    ``traces/``); ``out_dir`` defaults to ``results_dir/report``. ``n_boot``
    bootstrap resamples per n50 interval, drawn reproducibly from ``seed``.
    The rows are those of one profile (``profile``, default the most recent; ``all``
    mixes them) and of the ``only`` terms (``KEY=VALUE``), or ``rows`` already
    chosen with :func:`~harness.report.data.select_rows`. Returns ``out_dir``.
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "report"
    rows = rows if rows is not None else select_rows(results_dir, profile, only)
    runs = rows.runs
    if "split" in runs.columns:  # tuning trials (split = tune) are not reported results
        runs = runs[runs["split"].fillna("test") != "tune"].reset_index(drop=True)
    if runs.empty:
        raise InputError(f"{results_dir / 'runs'}: no rows to report on")
    layout = build_layout(runs, load_declarations(results_dir, runs))
    traces = _traces_of(load_traces(results_dir), runs)
    fig_dir = out_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Figures of an earlier report of this folder would linger beside the new ones.
    if fig_dir.is_dir():
        for old in list(fig_dir.glob("*.png")) + list(fig_dir.glob("*.svg")):
            old.unlink()

    r = layout.runs
    doc = Document(f"relubench report: {layout.suite}")
    meta = file_metadata(results_dir)
    if rows.profile != ALL:  # the claims of the profile the rows are from
        meta["relubench.profile"] = "null" if rows.profile == DEFAULT else rows.profile
    doc.p(rows.note)
    _overview(doc, layout, results_dir)
    _expectations_section(doc, runs, meta, traces, covered_only=bool(only) or bool(rows.only))
    _tuning_section(doc, results_dir)

    table = success_table(layout) if layout.has_success else None
    fits = boundary_fits(layout, table, n_boot=n_boot, seed=seed) if table is not None else {}
    exponents = exponent_fits(layout, fits)
    _boundary_section(doc, layout, fits, exponents, n_boot)

    # The columns the figures and tables of final metrics read, not a copy of every column.
    per_trial = r.loc[r["_status"] == "ok", _per_trial_columns(r)]

    def all_plots() -> Iterator[figures.Plot]:
        if table is not None:
            yield from figures.heatmaps(layout, table, fits)
            yield from figures.success_curves(layout, table, fits)
        yield from figures.metric_curves(layout, per_trial)
        if traces is not None:
            yield from figures.convergence(layout, traces)
        yield from figures.bars(layout, per_trial)

    used: set[str] = set()
    for plot in all_plots():  # saved and freed one at a time
        if not used:
            doc.h(1, "Figures")
        stem, i = plot.stem, 2
        while stem in used:  # two titles that slug alike
            stem, i = f"{plot.stem}-{i}", i + 1
        used.add(stem)
        plot.stem = stem
        png, svg = figures.save(plot, fig_dir)
        plot.figure.clf()
        doc.image(plot.title, f"figures/{png}", f"figures/{svg}", plot.caption)

    _metrics_section(doc, layout, per_trial)
    _compare_section(doc, rows.runs, traces, results_dir, fig_dir / "compare")
    _environment(doc, meta)
    _write_tables(out_dir, table, fits, exponents)
    (out_dir / "summary.md").write_text(doc.markdown(), encoding="utf-8")
    (out_dir / "index.html").write_text(doc.html(out_dir), encoding="utf-8")
    return out_dir


def _per_trial_columns(runs: pd.DataFrame) -> list[str]:
    """The layout's helper columns, the metrics, iterations and time of ``runs``."""
    return [
        c for c in runs.columns if c.startswith(("_", "metric.")) or c in ("iterations", "time_s")
    ]


def _traces_of(traces: pd.DataFrame | None, runs: pd.DataFrame) -> pd.DataFrame | None:
    """The curves of the trials in ``runs`` only (another profile's trials left out)."""
    if traces is None:
        return None
    keys = pd.MultiIndex.from_frame(runs[["cell_id", "trial"]])
    kept = traces[pd.MultiIndex.from_frame(traces[["cell_id", "trial"]]).isin(keys)]
    return kept.reset_index(drop=True) if not kept.empty else None


def _overview(doc: Document, layout: Layout, results_dir: Path) -> None:
    r = layout.runs
    doc.h(1, "Overview")
    rows = [["results", str(results_dir)], ["rows (trials)", str(len(r))]]
    if "cell_id" in r.columns:
        rows.append(["cells", str(r["cell_id"].nunique())])
    if "run_id" in r.columns:
        rows.append(["runs", str(r["run_id"].nunique())])
    for col, name in (("harness_version", "harness version"), ("host", "hosts")):
        if col in r.columns:
            rows.append([name, ", ".join(sorted(map(str, r[col].dropna().unique())))])
    if "created_at" in r.columns and r["created_at"].notna().any():
        # as text per distinct time (a few per run), formatted as the whole column would be
        created = pd.Series(r["created_at"].dropna().unique()).astype(str)
        rows.append(["created", f"{created.min()} .. {created.max()}"])
    rows.append(["problems", ", ".join(sorted(r["_problem"].unique()))])
    rows.append(["series (solver / initializer)", "; ".join(sorted(r["_series"].unique()))])
    rows.append(["sample-size axis", "n" if layout.has_n else "none (n does not vary)"])
    rows.append(["size axes", ", ".join(layout.sizes) or "none"])
    rows.append(["facets", ", ".join(layout.facets) or "none"])
    rows.append(["metrics", ", ".join(m.removeprefix("metric.") for m in layout.metrics)])
    doc.table(["item", "value"], rows)

    doc.h(2, "Trial status")
    statuses = sorted(r["_status"].unique())
    counts = r.groupby(["_series", "_status"]).size().unstack(fill_value=0)
    rows = []
    for series, row in counts.iterrows():
        errors = r[(r["_series"] == series) & (r["_status"] != "ok")]
        first = ""
        if "error" in errors.columns and errors["error"].notna().any():
            first = str(errors["error"].dropna().iloc[0]).splitlines()[0][:120]
        rows.append([series, *(str(int(row.get(s, 0))) for s in statuses), first])
    doc.table(["series", *statuses, "first error"], rows)
    doc.p(
        "Success curves count ok, diverged and timeout trials (the last two as failures); "
        "trials with status error are left out of them."
    )


def _tuning_section(doc: Document, results_dir: Path) -> None:
    """What the tuning protocol tuned, over which grid, and what it chose (``tuning.json``)."""
    path = results_dir / "tuning.json"
    if not path.is_file():
        return
    import json

    from harness.run import TuningChoice, tuning_lines

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        choices = [TuningChoice(**{**c, "scores": [float(x) for x in c["scores"]]}) for c in raw]
    except (ValueError, TypeError) as exc:
        doc.p(f"{path} could not be read: {exc}")
        return
    doc.h(1, "Tuning")
    doc.p(
        "Reported cells use each solver's selected value; tuning trials (split = tune) ran on "
        "seeds disjoint from the reported trials and are left out of every table and figure."
    )
    for line in tuning_lines(choices):
        doc.p(line.removeprefix("tuned "))


def _expectations_section(
    doc: Document,
    runs: pd.DataFrame,
    meta: dict[str, str],
    traces: pd.DataFrame | None = None,
    *,
    covered_only: bool = False,
) -> None:
    """The suite's ``[[expect]]`` claims, judged on the report's rows. With
    ``covered_only`` (an ``--only`` selection) a claim about no selected row is skipped.

    The suite file is the one the store recorded; a report made elsewhere
    (the file moved, or results copied from another machine) says so and
    goes on.
    """
    suite_file = meta.get("relubench.suite_file")
    if not suite_file or suite_file == "null":
        return
    doc.h(1, "Expectations")
    path = Path(suite_file)
    if not path.is_file():
        doc.p(f"Suite file {suite_file} not found from here: expectations not evaluated.")
        return
    import tomllib

    from harness.expect import parse_expectations

    profile = meta.get("relubench.profile")
    profile = None if profile in (None, "null") else profile
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("expect", [])
        expectations = parse_expectations(entries, str(path))
    except (InputError, tomllib.TOMLDecodeError, OSError) as exc:
        doc.p(f"Expectations of {suite_file} could not be read: {exc}")
        return
    rows, skipped = [], 0
    for e in expectations:
        if not e.applies(profile):
            continue
        if covered_only and _selects_nothing(e, runs):
            skipped += 1
            continue
        for o in e.evaluate(runs, traces):
            group = " ".join(f"{k}={fmt(v)}" for k, v in o.group.items())
            value = o.value if not isinstance(o.value, float) else f"{o.value:.4g}"
            rows.append([
                "held" if o.held else "FAILED", e.label, group,
                "" if value is None else str(value), str(len(o.rows)),
            ])  # fmt: skip
    if not rows:
        doc.p(f"{suite_file} states no expectation for this profile.")
        return
    held = sum(r[0] == "held" for r in rows)
    doc.p(
        f"The claims of {suite_file} (profile {profile or 'default'}) on the rows named "
        f"above: {held} of {len(rows)} held"
        + (f"; {skipped} claims about cells --only left out not judged." if skipped else ".")
    )
    doc.table(["verdict", "claim", "group", "measured", "rows"], rows)


def _selects_nothing(claim, runs: pd.DataFrame) -> bool:
    try:
        return claim.select(runs).empty
    except ValueError:  # a filter that does not evaluate is reported by evaluate()
        return False


FIGURE_CAPTIONS = {
    "cd": "Critical-difference diagram (Demsar 2006): average ranks over the problem points, "
    "best on the left; a bar joins methods the Nemenyi test does not separate.",
    "performance": "Performance profiles (Dolan and More 2002): the share of paired trials "
    "each method solves within a factor tau of the best method's cost.",
    "ecdf": "Runtime-to-target ECDF (COCO): the share of (trial, target) pairs reached "
    "within each budget.",
}


def _compare_section(
    doc: Document,
    runs: pd.DataFrame,
    traces: pd.DataFrame | None,
    results_dir: Path,
    fig_dir: Path,
) -> None:
    """What ``relubench compare RESULTS`` prints for these rows: ranks, paired tests,
    profiles, ERT, with the CD diagrams, profiles and ECDFs as figures.

    ``runs`` are the selected rows with any tuning rows still in: the analysis leaves
    them out and says how many.
    """
    from harness.analysis.compare import analyze_rows
    from harness.analysis.render import folder_tables

    if fig_dir.is_dir():  # figures of an earlier report
        for old in list(fig_dir.glob("*.png")) + list(fig_dir.glob("*.svg")):
            old.unlink()
    fig_dir.mkdir(parents=True, exist_ok=True)
    doc.h(1, "Comparison of methods")
    try:
        analysis = analyze_rows(runs, traces, results_dir, figures=fig_dir, svg=True)
    except InputError as exc:
        doc.p(f"No comparison: {exc}")
        return
    doc.p(
        "The sections of `relubench compare` on the rows above: every trial of a point sees "
        "the same data and initial weights whichever solver runs it, so methods are compared "
        "trial by trial (exact McNemar for success, Wilcoxon signed-rank otherwise; "
        "docs/statistics.md). Trials that are not ok count as failures."
    )
    if analysis.tuning_left_out:
        doc.p(
            f"{analysis.tuning_left_out} tuning trials (split = tune) are left out of this "
            "comparison: they chose parameters and are not reported results."
        )
    if len(analysis.methods) < 2:
        doc.p(
            f"One method only ({', '.join(analysis.methods)}): nothing to rank or pair; "
            "the trial counts follow."
        )
    for t in folder_tables(analysis):
        if t.title == "figures" or (len(analysis.methods) < 2 and "rank" in t.title):
            continue
        doc.h(2, t.title)
        if t.rows:
            doc.table(t.columns, t.rows)
        for note in t.notes:
            doc.p(note)
    for path in map(Path, analysis.figures):
        kind, _, rest = path.stem.partition("-")
        title = {
            "cd": f"Critical difference: {rest}",
            "performance": "Performance profiles",
            "ecdf": f"Runtime-to-target ECDF: {rest.replace('-', ' against ')}",
        }[kind]
        rel = f"figures/{fig_dir.name}"
        doc.image(title, f"{rel}/{path.name}", f"{rel}/{path.stem}.svg", FIGURE_CAPTIONS[kind])


def _environment(doc: Document, meta: dict[str, str]) -> None:
    if meta:
        doc.h(1, "Environment")
        doc.p("As recorded by the store in the Parquet metadata of the newest runs part file.")
        doc.table(["key", "value"], [[k, str(v)[:160]] for k, v in sorted(meta.items())][:40])


def _boundary_section(
    doc: Document,
    layout: Layout,
    fits: dict[tuple, N50Fit],
    exponents: list[tuple[dict, ExponentFit]],
    n_boot: int,
) -> None:
    if not fits:
        return
    doc.h(1, "Phase-transition boundary")
    doc.p(
        "n50 is where a logistic fit of success probability in log n crosses 1/2; the "
        f"interval is the bootstrap 95% percentile interval ({n_boot} resamples of the trials "
        "within each n). Where every trial failed at one n and succeeded at the next, the "
        "interval is at least that bracket."
    )
    norm = layout.sizes[0] if layout.sizes else None
    headers = ["facet", "series", *layout.sizes, "n points", "trials", "n50", "95% CI"]
    headers += [f"n50/{norm}"] if norm else []
    counts = layout.runs[layout.runs["_counted"]].groupby(CURVE_KEY, dropna=False)["_n"].nunique()
    counts = {curve_key(*key): v for key, v in counts.items()}
    rows = []
    for key, fit in fits.items():
        facet, series, d, k = key
        n50, ci = _n50_text(fit)
        sizes = {"d": d, "k": k}
        row = [facet, series, *(fmt(sizes[s]) for s in layout.sizes)]
        row += [str(counts.get(key, "")), str(fit.trials), n50, ci]
        if norm:
            row.append(f"{fit.n50 / sizes[norm]:.3g}" if fit.in_range else "")
        rows.append(row)
    doc.table(*_drop_blank(headers, rows))
    if exponents:
        doc.h(2, "Scaling of n50")
        doc.p(
            "Slope of log n50 against log d (or log k) over the in-range n50: 1 means the "
            "samples needed grow linearly. Interval: 95% percentiles of the slope refitted to "
            "bootstrap draws of every n50."
        )
        rows = []
        for info, ef in exponents:
            ci = f"[{ef.low:.3g}, {ef.high:.3g}]" if np.isfinite(ef.low) else ""
            rows.append([
                info["facet"], info["series"], info["against"], info["fixed"],
                str(len(ef.sizes)), str(ef.dropped),
                f"{ef.slope:.3g}" if np.isfinite(ef.slope) else "", ci,
            ])  # fmt: skip
        headers = ["facet", "series", "against", "held fixed", "points", "out of range"]
        doc.table(*_drop_blank([*headers, "slope", "95% CI"], rows))


def _drop_blank(
    headers: list[str], rows: list[list[str]], optional: tuple[str, ...] = ("facet", "held fixed")
) -> tuple[list[str], list[list[str]]]:
    """Leave out the optional columns that are blank in every row (no facets, nothing fixed)."""
    keep = [i for i, h in enumerate(headers) if h not in optional or any(r[i] for r in rows)]
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]


def _metrics_section(doc: Document, layout: Layout, per_trial: pd.DataFrame) -> None:
    if per_trial.empty:
        return
    doc.h(1, "Final metrics")
    doc.p(
        "Mean ± standard deviation over trials with status ok; success metrics: successes/"
        "trials = proportion [Wilson 95% interval]; iterations and time: median."
    )
    cols = layout.config_columns()
    metrics = [m for m in layout.metrics if per_trial[m].notna().any()]
    names = [m.removeprefix("metric.") for m in metrics]
    successes = {f"metric.{n}" for n in layout.declarations.with_role("success", names)}
    headers = ["configuration", "series", "trials", *(m.removeprefix("metric.") for m in metrics)]
    has_it = "iterations" in per_trial.columns
    has_time = "time_s" in per_trial.columns
    headers += ["iterations"] * has_it + ["time_s"] * has_time
    rows = []
    for key, g in per_trial.groupby([*cols, "_series"], dropna=False, sort=True):
        row = [figures.config_text(layout, pd.Series(dict(zip([*cols, "_series"], key)))), key[-1]]
        row.append(str(len(g)))
        row += [_metric_cell(g[m], success=m in successes) for m in metrics]
        if has_it:
            row.append(fmt(float(pd.to_numeric(g["iterations"], errors="coerce").median())))
        if has_time:
            row.append(f"{pd.to_numeric(g['time_s'], errors='coerce').median():.3g}")
        rows.append(row)
    doc.table(headers, rows)


def _write_tables(
    out_dir: Path,
    table: pd.DataFrame | None,
    fits: dict[tuple, N50Fit],
    exponents: list[tuple[dict, ExponentFit]],
) -> None:
    """CSV copies of the tables, for docs and notebooks."""
    rename = {"_facet": "facet", "_series": "series", "_solver": "solver", "_init": "initializer"}
    rename |= {"_n": "n", "_d": "d", "_k": "k"}
    if table is not None:
        table.rename(columns=rename).to_csv(out_dir / "success.csv", index=False)
    if fits:
        rows = [
            {"facet": f, "series": s, "d": d, "k": k, "n50": x.n50, "low": x.low, "high": x.high,
             "status": x.status, "trials": x.trials, "logistic_slope": x.slope}
            for (f, s, d, k), x in fits.items()
        ]  # fmt: skip
        pd.DataFrame(rows).to_csv(out_dir / "boundaries.csv", index=False)
    if exponents:
        rows = [
            {**info, "slope": ef.slope, "low": ef.low, "high": ef.high, "points": len(ef.sizes),
             "dropped": ef.dropped}
            for info, ef in exponents
        ]  # fmt: skip
        pd.DataFrame(rows).to_csv(out_dir / "exponents.csv", index=False)
