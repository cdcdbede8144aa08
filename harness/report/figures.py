"""The report's figures, drawn with matplotlib's object API (no pyplot state, no GUI backend).

Each function takes the :class:`~harness.report.data.Layout` (and the
aggregate tables computed in :mod:`harness.report.build`) and yields
:class:`Plot` objects (file stem, title, caption, Figure); :func:`save`
writes PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)
from matplotlib.transforms import ScaledTranslation

from harness.report.boundary import N50Fit
from harness.report.data import Layout, curve_key, fmt
from harness.report.stats import wilson_interval

MAX_PANELS = 6  # convergence panels per figure; more problem configurations are sampled
MAX_BAR_CONFIGS = 12  # bar charts only for tables, not for sweeps
MAX_CURVE_POINTS = 1500  # a trace longer than this is thinned for drawing
DODGE_POINTS = 3.0  # sideways offset between the groups of a success plot
# SVG text stays text (smaller, faster, searchable); a fixed hash salt keeps
# the SVG ids stable so an unchanged report is byte-identical.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "relubench"}


@dataclass
class Plot:
    """A figure and what the report says about it."""

    stem: str
    title: str
    caption: str
    figure: Figure


def log_scale(ax: Any, axis: str = "y") -> None:
    """Log scale with plain-text tick labels (``1e-05``); call it after plotting.

    matplotlib's default log labels are mathtext, whose parsing was half the
    drawing time of a report, and minor ticks were most of the rest: they are
    kept (at 2 and 5, labelled) only on axes spanning under three decades,
    where there are too few major ticks to read values from.
    """
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    target.set_major_formatter(LogFormatter())
    if lo > 0 and np.log10(hi / lo) < 1:
        # Under a decade matplotlib places ticks between powers of ten, which the log
        # formatter rounds to one digit ("9e-01" twice): label them as plain numbers.
        plain = FuncFormatter(lambda v, _: f"{v:.3g}")
        target.set_major_formatter(plain)
        target.set_minor_formatter(plain)
    elif lo > 0 and np.log10(hi / lo) < 3:
        target.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        # x labels sit side by side: "5e-03" and "1e-02" collide beyond 1.5 decades
        if axis == "y" or np.log10(hi / lo) < 1.5:
            target.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(3, 3)))
        else:
            target.set_minor_formatter(NullFormatter())
    else:
        target.set_minor_locator(NullLocator())


def integer_ticks(ax: Any, axis: str = "x") -> None:
    """Ticks only at whole numbers (an iteration or a sample count is never 1.5)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    if (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "linear":
        target.set_major_locator(MaxNLocator(integer=True))


@dataclass
class PanelScales:
    """What each panel of one figure asks of its axes, applied to every panel alike, so
    panels side by side never switch between linear and log.

    ``y_positive``: every value drawn is > 0 (log y possible); ``x_spread``: the x values
    span more than ``x_spread_limit`` between curves (log x wanted); ``x_geometric``:
    the x grid is log-spaced; ``x_starts_positive``: no x is 0 (else symlog).
    """

    y_positive: bool = True
    x_spread: bool = False
    x_geometric: bool = True
    x_starts_positive: bool = True
    integer_x: bool = False

    def panel(
        self,
        *,
        y_positive: bool = True,
        x_spread: bool = False,
        x_geometric: bool = True,
        x_starts_positive: bool = True,
    ) -> None:
        """Record one panel's wishes."""
        self.y_positive &= y_positive
        self.x_spread |= x_spread
        self.x_geometric &= x_geometric
        self.x_starts_positive &= x_starts_positive

    def apply(self, axes: list[Any], *, log_y: bool = True) -> None:
        """Set every panel's scales (after plotting: log scales read the limits)."""
        for ax in axes:
            if log_y and self.y_positive:
                log_scale(ax)
            if self.x_spread or self.x_geometric:
                if self.x_starts_positive:
                    log_scale(ax, "x")
                else:
                    ax.set_xscale("symlog", linthresh=1.0)
            if self.integer_x:
                integer_ticks(ax)


def geometric(values: np.ndarray) -> bool:
    """True when positive values span a decade or more and are spaced evenly in log."""
    v = np.unique(np.asarray(values, float))
    v = v[np.isfinite(v)]
    if len(v) < 3 or v.min() <= 0 or v.max() / v.min() < 10:
        return False
    return np.std(np.diff(np.log(v))) < np.std(np.diff(v) / v.mean())


def slug(text: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:90] or "figure"


def new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(plot: Plot, folder: Path) -> tuple[str, str]:
    """Write ``<stem>.png`` and ``<stem>.svg`` under ``folder``; return their names."""
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = f"{plot.stem}.png", f"{plot.stem}.svg"
    # No dates or random ids in the files, so an unchanged report is byte-identical.
    with rc_context(_RC):
        plot.figure.savefig(folder / png, dpi=100, metadata={"Software": None})
        # The constrained layout is solved by the first save; freezing it
        # saves the SVG from solving it again (each solve draws the figure).
        plot.figure.set_layout_engine("none")
        plot.figure.savefig(folder / svg, metadata={"Date": None, "Creator": None})
    return png, svg


def size_text(d: float, k: float, sizes: list[str]) -> str:
    parts = []
    if "d" in sizes:
        parts.append(f"d={fmt(d)}")
    if "k" in sizes:
        parts.append(f"k={fmt(k)}")
    return ", ".join(parts)


def _title(*parts: str) -> str:
    return " | ".join(p for p in parts if p)


# -- phase-transition heatmaps ---------------------------------------------------


def _fill(x: np.ndarray, y: np.ndarray) -> float:
    pairs = len(set(zip(x.tolist(), y.tolist())))
    return pairs / (len(np.unique(x)) * len(np.unique(y)))


def ratio_axis(n: np.ndarray, size: np.ndarray) -> bool:
    """Whether a heatmap's x-axis should be n/size rather than n: the fuller grid wins.

    A suite that sweeps n = 5d, 10d, ... per d fills an (n/d, d) grid and
    only a diagonal band of an (n, d) one; a suite sweeping one n list for
    every d is the other way round. Ties keep n.
    """
    n, size = np.asarray(n, float), np.asarray(size, float)
    return _fill(np.round(n / size, 9), size) > _fill(n, size)


def heatmaps(layout: Layout, table: pd.DataFrame, fits: dict[tuple, N50Fit]) -> Iterator[Plot]:
    """Mean success over (n, d), (n, k) or (n/d, d): one map per series and facet.

    ``table`` has one row per (facet, series, n, d, k) with ``rate``; ``fits``
    maps (facet, series, d, k) to the boundary fit, drawn on each row.
    """
    if not (layout.has_n and layout.sizes and layout.has_success):
        return
    y_size = layout.sizes[0]
    other = [s for s in layout.sizes if s != y_size]
    keys = ["_facet", "_series", *[f"_{s}" for s in other]]
    for key, part in table.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        facet, series = key[0], key[1]
        fixed = ", ".join(f"{s}={fmt(v)}" for s, v in zip(other, key[2:]))
        n = part["_n"].to_numpy(float)
        yv = part[f"_{y_size}"].to_numpy(float)
        use_ratio = ratio_axis(n, yv)
        xv = np.round(n / yv, 9) if use_ratio else n
        xs, ys = np.unique(xv), np.unique(yv)
        if len(ys) < 2 or len(xs) < 2:  # one row is a success curve, drawn elsewhere
            continue
        grid = np.full((len(ys), len(xs)), np.nan)
        grid[np.searchsorted(ys, yv), np.searchsorted(xs, xv)] = part["rate"].to_numpy(float)

        fig = new_figure(6.4, 0.6 + 0.32 * max(len(ys), 6))
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(
            np.arange(len(xs) + 1) - 0.5,
            np.arange(len(ys) + 1) - 0.5,
            np.ma.masked_invalid(grid),
            cmap="gray",
            vmin=0.0,
            vmax=1.0,
            edgecolors="face",
        )
        fig.colorbar(mesh, ax=ax, label="success probability")
        step_x = max(1, len(xs) // 12)
        ax.set_xticks(np.arange(len(xs))[::step_x], [fmt(v) for v in xs[::step_x]])
        ax.set_yticks(np.arange(len(ys)), [fmt(v) for v in ys])
        ax.set_xlabel(f"n/{y_size}" if use_ratio else "n")
        ax.set_ylabel(y_size)
        ax.set_facecolor("#d9c7a0")  # cells never run show as tan, not as failures
        # The fitted boundary: n50 and its interval per row, on the index axis.
        for i, yval in enumerate(ys):
            row = part[yv == yval].iloc[0]
            fit = fits.get(curve_key(facet, series, row["_d"], row["_k"]))
            if fit is None or fit.status != "ok":
                continue
            scale = yval if use_ratio else 1.0
            at = np.array([fit.n50, fit.low, fit.high]) / scale
            # Cells are evenly spaced; place n50 between them on the grid's own scale.
            if geometric(xs):
                pos = np.interp(np.log(at), np.log(xs), np.arange(len(xs)))
            else:
                pos = np.interp(at, xs, np.arange(len(xs)))
            ax.errorbar(
                pos[0], i, xerr=[[pos[0] - pos[1]], [pos[2] - pos[0]]], fmt="o", color="tab:red",
                ms=4, capsize=2, lw=1,
            )  # fmt: skip
        title = _title(series, facet, fixed)
        ax.set_title(title, fontsize=9)
        yield Plot(
            slug(f"heatmap {title}"),
            f"Phase transition: {title}",
            f"Fraction of successful trials over ({ax.get_xlabel()}, {y_size}); "
            "red: fitted n50 with its bootstrap 95% interval; tan: not run.",
            fig,
        )


# -- success against n -----------------------------------------------------------


_LINESTYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


class Styler:
    """Colors and line styles of the curves of one panel group.

    With several sizes (d, k) in view, color tells the size and line style the
    group (solver or series), as in the papers' figures; with one size, color
    tells the group. Marker and line style always tell the group too, so curves
    that coincide stay visible (a dashed line over a solid one, a square beside a
    circle). Sizes constant within ``part`` are left out of labels.
    """

    def __init__(self, part: pd.DataFrame, group_col: str, sizes: list[str]) -> None:
        self.sizes = [s for s in sizes if part[f"_{s}"].nunique() > 1]
        self.combos = sorted({self.combo(d, k) for d, k in zip(part["_d"], part["_k"])})
        self.groups = sorted(part[group_col].unique())
        self.by_size = len(self.combos) > 1
        self.colors = _colors(len(self.combos) if self.by_size else len(self.groups))

    def combo(self, d: float, k: float) -> tuple:
        values = {"d": d, "k": k}
        # -inf stands for a missing size: NaN would never equal itself in .index().
        return tuple(float(values[s]) if pd.notna(values[s]) else -np.inf for s in self.sizes)

    def style(self, group: str, d: float, k: float) -> tuple[Any, str, str]:
        """(color, line style, marker) of a curve."""
        g = self.groups.index(group)
        marker = _MARKERS[g % len(_MARKERS)]
        if self.by_size:
            return self.colors[self.combos.index(self.combo(d, k))], _LINESTYLES[g % 4], marker
        return self.colors[g], _LINESTYLES[g % 4], marker

    def label(self, group: str, d: float, k: float) -> str:
        """The legend entry: the group (when there are several) and the sizes in view; the
        group alone when nothing else tells curves apart (a one-series plot keeps a legend)."""
        parts = [group] if len(self.groups) > 1 else []
        parts += [size_text(d, k, self.sizes)] if self.sizes else []
        return ", ".join(p for p in parts if p) or str(group)


def success_curves(
    layout: Layout, table: pd.DataFrame, fits: dict[tuple, N50Fit]
) -> Iterator[Plot]:
    """Success probability against n (and n/d or n/k) with Wilson 95% bars, per facet.

    One panel per initializer; color is the size (d, k), line style the solver.
    The thin line is the fitted logistic curve whose crossing is n50.
    """
    if not (layout.has_n and layout.has_success):
        return
    for facet, part in table.groupby("_facet", sort=True):
        inits = sorted(part["_init"].unique())
        styler = Styler(part, "_solver", layout.sizes)
        # n/d (or n/k) only where that size varies: the papers' "curves coincide" view.
        norms = [None] + styler.sizes[:1]
        for norm in norms:
            ncols = min(len(inits), 3)
            nrows = -(-len(inits) // ncols)
            fig = new_figure(4.6 * ncols, 3.6 * nrows)
            axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
            # One x scale for every panel: log when the facet's n grid is log-spaced.
            scales = PanelScales(x_geometric=geometric(part["_n"]), integer_x=norm is None)
            for ax, init in zip(axes, inits):
                sub = part[part["_init"] == init]
                for (solver, d, k), curve in sub.groupby(["_solver", "_d", "_k"], dropna=False):
                    curve = curve.sort_values("_n")
                    scale = 1.0 if norm is None else float(curve[f"_{norm}"].iloc[0])
                    x = curve["_n"].to_numpy(float) / scale
                    color, ls, marker = styler.style(solver, d, k)
                    label = styler.label(solver, d, k)
                    rate = curve["rate"].to_numpy(float)
                    # Clipped: rounding can put a Wilson bound a hair past the rate.
                    err = np.clip(
                        [rate - curve["low"].to_numpy(float), curve["high"].to_numpy(float) - rate],
                        0.0,
                        None,
                    )
                    # Many curves: thin bars without caps, or the bars hide the curves.
                    crowded = len(styler.combos) * len(styler.groups) > 4
                    # Groups a few points apart sideways, so equal rates (both solvers at
                    # 0 or 1) show both markers and both bars, on any x scale.
                    g = styler.groups.index(solver)
                    shift = (g - (len(styler.groups) - 1) / 2) * DODGE_POINTS / 72
                    dodge = ScaledTranslation(shift, 0, fig.dpi_scale_trans)
                    ax.errorbar(
                        x, rate, yerr=err, color=color, ls=ls, marker=marker, ms=4, lw=1.2,
                        mfc="none", capsize=0 if crowded else 2,
                        elinewidth=0.6 if crowded else 1.0, alpha=0.8, label=label,
                        transform=ax.transData + dodge,
                    )  # fmt: skip
                    fit = fits.get(curve_key(facet, curve["_series"].iloc[0], d, k))
                    if fit is not None and np.isfinite(fit.slope):
                        grid_n = np.linspace(curve["_n"].min(), curve["_n"].max(), 200)
                        ax.plot(grid_n / scale, fit.predict(grid_n), color=color, lw=0.6, alpha=0.6)
                ax.set_title(_title(f"init: {init}", facet), fontsize=9)
                ax.set_xlabel("n" if norm is None else f"n/{norm}")
                ax.set_ylim(-0.03, 1.03)
                ax.axhline(0.5, color="0.7", lw=0.6, zorder=0)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7, loc="lower right")
            scales.apply(list(axes[: len(inits)]), log_y=False)
            for ax in axes[: len(inits) : ncols]:
                ax.set_ylabel("success probability")
            for ax in axes[len(inits) :]:
                ax.set_visible(False)
            xname = "n" if norm is None else f"n/{norm}"
            yield Plot(
                slug(f"success vs {xname.replace('/', ' over ')} {facet}"),
                _title(f"Success probability against {xname}", facet),
                "Fraction of successful trials with Wilson 95% intervals; thin lines: logistic "
                "fit used for n50.",
                fig,
            )


def _colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](v) for v in np.linspace(0.0, 0.9, n)]


# -- final metrics against n ------------------------------------------------------


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def metric_curves(layout: Layout, per_trial: pd.DataFrame) -> Iterator[Plot]:
    """Each final metric (other than the success metric) against n: median and interquartile
    band.

    One panel per facet (nine to a figure). Against n/d (or n/k) where that
    size varies within the facet, the axis on which the papers show error
    curves lining up (Zhang et al. Fig. 2d, Oymak & Asif Fig. 2).
    """
    if not layout.has_n:
        return
    for metric in layout.metrics:
        if metric == layout.success:
            continue
        data = per_trial.dropna(subset=[metric])
        if data.empty:
            continue
        name = metric.removeprefix("metric.")
        facets = sorted(data["_facet"].unique())
        chunks = _chunks(facets, 9)
        for c_i, chunk in enumerate(chunks):
            ncols = 2 if len(chunk) == 4 else min(len(chunk), 3)
            nrows = -(-len(chunk) // ncols)
            fig = new_figure(4.6 * ncols if ncols > 1 else 6.4, 3.6 * nrows if nrows > 1 else 4.2)
            axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
            xnames = set()
            scales = PanelScales(integer_x=True)
            for ax, facet in zip(axes, chunk):
                part = data[data["_facet"] == facet]
                styler = Styler(part, "_series", layout.sizes)
                norm = styler.sizes[0] if styler.sizes else None
                part = part.assign(_x=part["_n"] / (part[f"_{norm}"] if norm else 1.0))
                positive = True
                for (series, d, k), curve in part.groupby(["_series", "_d", "_k"], dropna=False):
                    # The median inside its interquartile band: the line is always in its band
                    # (a mean can sit outside it).
                    stats = curve.groupby("_x")[metric].quantile([0.25, 0.5, 0.75]).unstack()
                    stats.columns = ["q1", "median", "q3"]
                    positive &= bool((stats[["median", "q1"]] > 0).all().all())
                    c, ls, marker = styler.style(series, d, k)
                    ax.plot(
                        stats.index, stats["median"], marker=marker, ms=4, mfc="none", color=c,
                        ls=ls, alpha=0.9, label=styler.label(series, d, k),
                    )  # fmt: skip
                    ax.fill_between(
                        stats.index, stats["q1"], stats["q3"], color=c, alpha=0.12, lw=0
                    )  # noqa: E501
                scales.panel(y_positive=positive, x_geometric=geometric(part["_x"]))
                scales.integer_x &= norm is None  # n is whole; n/d is not
                xname = f"n/{norm}" if norm else "n"
                xnames.add(xname)
                ax.set_xlabel(xname)
                ax.set_ylabel(name)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7, loc="upper right")
                ax.set_title(facet or name, fontsize=9)
            scales.apply(list(axes[: len(chunk)]))
            for ax in axes[len(chunk) :]:
                ax.set_visible(False)
            xname = " or ".join(sorted(xnames))
            part_no = f" ({c_i + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            yield Plot(
                slug(f"{name} vs {xname.replace('/', ' over ')}{part_no}"),
                f"{name} against {xname}{part_no}",
                f"Median {name} over trials (line) and interquartile range (band)"
                + ("; one panel per facet." if len(facets) > 1 else "."),
                fig,
            )


# -- convergence curves from traces -------------------------------------------------


def _thin(index: np.ndarray) -> np.ndarray:
    if len(index) <= MAX_CURVE_POINTS:
        return np.arange(len(index))
    return np.unique(np.linspace(0, len(index) - 1, MAX_CURVE_POINTS).astype(int))


def trial_quantiles(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Quartiles over trials of ``column`` per iteration, a stopped trial holding its last value.

    A trial that stopped early (converged, or hit its budget) keeps its last
    value afterwards; dropping it instead would leave only the slow trials in
    the median and bend the curve upward.
    """
    wide = frame.pivot_table(index="iteration", columns="trial", values=column, aggfunc="last")
    wide = wide.sort_index().ffill()
    q = wide.quantile([0.25, 0.5, 0.75], axis=1).T
    q.columns = ["q1", "median", "q3"]
    return q


def convergence(layout: Layout, traces: pd.DataFrame) -> Iterator[Plot]:
    """Median and interquartile band over trials of each traced metric, log y.

    x-axis: iteration; also solver time when the traces have it, and every
    budget axis a solver declares (:attr:`harness.Solver.budget_axes`) and
    records: those series are x-axes, not curves. One panel per problem
    configuration (sampled when there are many), one curve per series.
    """
    cells = layout.runs.drop_duplicates("cell_id")[
        ["cell_id", "solver", "_series", "_facet", "_n", "_d", "_k"]
    ]
    data = traces.merge(cells, on="cell_id", how="inner")
    if data.empty:
        return
    panel_cols = ["_facet", "_n", "_d", "_k"]
    axis_of = {(s, a) for s in data["solver"].unique() for a in layout.declarations.extra_axes(s)}
    pairs = pd.MultiIndex.from_frame(data[["solver", "metric"]].astype(str))
    is_axis = pd.Series(pairs.isin(list(axis_of)) if axis_of else False, index=data.index)
    budget = {a: data[is_axis & (data["metric"] == a)] for a in sorted({a for _, a in axis_of})}
    budget = {a: rows for a, rows in budget.items() if not rows.empty}
    data = data[~is_axis]
    has_time = "time_s" in data.columns and data["time_s"].notna().any()

    def panel_label(key: tuple) -> str:
        facet, n, d, k = key
        parts = [facet] if facet else []
        if np.isfinite(n):
            parts.append(f"n={fmt(n)}")
        parts += [f"{s}={fmt(v)}" for s, v in (("d", d), ("k", k)) if np.isfinite(v)]
        return ", ".join(parts)

    for metric, mdata in data.groupby("metric", sort=True):
        panels = sorted(
            mdata.groupby(panel_cols, dropna=False).groups,
            key=lambda t: tuple(np.nan_to_num(np.array(t[1:], float))) + (t[0],),
        )  # noqa: E501
        skipped = 0
        if len(panels) > MAX_PANELS:
            pick = np.unique(np.linspace(0, len(panels) - 1, MAX_PANELS).round().astype(int))
            skipped = len(panels) - len(pick)
            panels = [panels[i] for i in pick]
        axes_kinds = ["iteration"] + (["time_s"] if has_time else []) + list(budget)
        series_all = sorted(mdata["_series"].unique())
        colors = _colors(len(series_all))
        for xkind in axes_kinds:
            ncols = min(len(panels), 3)
            nrows = -(-len(panels) // ncols)
            fig = new_figure(4.6 * ncols, 3.4 * nrows)
            axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
            scales = PanelScales(x_geometric=False, integer_x=xkind == "iteration")
            for ax, pkey in zip(axes, panels):
                sel = np.ones(len(mdata), bool)
                for col, v in zip(panel_cols, pkey):
                    colv = mdata[col]
                    sel &= (colv == v).to_numpy() | (colv.isna().to_numpy() & pd.isna(v))
                pdata = mdata[sel]
                all_positive = True
                ends, starts = [], []
                for series, sdata in pdata.groupby("_series", sort=True):
                    q = trial_quantiles(sdata, "value")
                    if xkind == "iteration":
                        x = q.index.to_numpy(float)
                    elif xkind == "time_s":
                        x = trial_quantiles(sdata, "time_s")["median"].reindex(q.index).to_numpy()
                    else:
                        w = budget[xkind]
                        w = w[w["cell_id"].isin(sdata["cell_id"].unique())]
                        x = (
                            trial_quantiles(w, "value")["median"]
                            .reindex(q.index)
                            .ffill()
                            .to_numpy()
                        )
                    keep = _thin(q.index.to_numpy())
                    i = series_all.index(series)
                    c = colors[i]
                    vals = q.to_numpy()[keep]
                    all_positive &= bool(np.all(vals[np.isfinite(vals)] > 0))
                    if np.isfinite(x).any():
                        ends.append(np.nanmax(x))
                        starts.append(np.nanmin(x))
                    ax.plot(
                        x[keep], vals[:, 1], color=c, lw=1.3, ls=_LINESTYLES[i % 4],
                        marker=_MARKERS[i % len(_MARKERS)], ms=4, mfc="none",
                        markevery=max(1, len(keep) // 8), alpha=0.9, label=series,
                    )  # fmt: skip
                    ax.fill_between(x[keep], vals[:, 0], vals[:, 2], color=c, alpha=0.2, lw=0)
                # Curves of very different lengths (AltMin's 10 steps beside GD's
                # 1000) share the panel only on a log x-axis, as in Oymak & Asif Fig. 3;
                # every panel of the figure then gets it.
                scales.panel(
                    y_positive=all_positive,
                    x_spread=bool(ends) and min(ends) > 0 and max(ends) / min(ends) > 10,
                    x_starts_positive=not starts or min(starts) > 0,
                )
                ax.set_xlabel(
                    {"iteration": "iteration", "time_s": "solver time (s)"}.get(
                        xkind, xkind.replace("_", " ")
                    )
                )
                ax.set_ylabel(metric)
                ax.set_title(panel_label(pkey), fontsize=9)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7, loc="upper right")
            scales.apply(list(axes[: len(panels)]))
            for ax in axes[len(panels) :]:
                ax.set_visible(False)
            note = f" {skipped} more problem configurations not drawn." if skipped else ""
            yield Plot(
                slug(f"convergence {metric} vs {xkind}"),
                f"Convergence of {metric} against {xkind.replace('_', ' ')}",
                "Median over trials (line) and interquartile range (band); a trial that "
                f"stopped early holds its last value.{note}",
                fig,
            )


# -- final metrics as bars --------------------------------------------------------


def bars(layout: Layout, per_trial: pd.DataFrame) -> Iterator[Plot]:
    """Grouped bars of each final metric: the median with its interquartile range, or for a
    success metric (0/1 per trial) the proportion of successes with its Wilson 95% interval.

    Drawn when the results are a table (a few problem configurations, such as
    datasets x architectures), not a sweep over n (the curves say it better).
    """
    config_cols = layout.config_columns()
    configs = per_trial.groupby(config_cols, dropna=False).ngroups
    if layout.has_n or configs > MAX_BAR_CONFIGS:  # a sweep: curves say it better
        return
    for metric in layout.metrics:
        data = per_trial.dropna(subset=[metric])
        if data.empty:
            continue
        name = metric.removeprefix("metric.")
        success = layout.declarations.role(name) == "success"
        stats = data.groupby([*config_cols, "_series"], dropna=False)[metric].agg(
            value="median" if not success else "mean",
            low=lambda v: v.quantile(0.25),
            high=lambda v: v.quantile(0.75),
            successes="sum",
            trials="count",
        )
        if success:
            stats["low"], stats["high"] = wilson_interval(stats["successes"], stats["trials"])
        stats = stats.reset_index()
        stats["config"] = stats.apply(lambda r: config_text(layout, r) or "all", axis=1)
        cfgs = list(dict.fromkeys(stats["config"]))
        series = sorted(stats["_series"].unique())
        width = 0.8 / len(series)
        colors = _colors(len(series))
        fig = new_figure(max(5.0, 1.0 + 0.5 * len(cfgs) * len(series) ** 0.5 + 1.5), 4.0)
        ax = fig.add_subplot()
        for j, s in enumerate(series):
            rows = stats[stats["_series"] == s].set_index("config").reindex(cfgs)
            xs = np.arange(len(cfgs)) + (j - (len(series) - 1) / 2) * width
            err = np.clip([rows["value"] - rows["low"], rows["high"] - rows["value"]], 0.0, None)
            ax.bar(xs, rows["value"], width, yerr=np.nan_to_num(err), color=colors[j], label=s,
                   capsize=2)  # fmt: skip
        vals = stats["value"].to_numpy(float)
        vals = vals[np.isfinite(vals)]
        if success:
            ax.set_ylim(0.0, 1.03)
        elif len(vals) and np.all(vals > 0) and vals.max() / vals.min() > 100:
            log_scale(ax)
        ax.set_xticks(
            np.arange(len(cfgs)),
            cfgs,
            rotation=20 if len(cfgs) > 3 else 0,
            ha="right" if len(cfgs) > 3 else "center",
            fontsize=8,
        )  # noqa: E501
        ax.set_ylabel(f"{name} (proportion of trials)" if success else name)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
        ax.set_title(name, fontsize=9)
        caption = (
            "Proportion of successful trials; error bars: Wilson 95% interval."
            if success
            else "Median over trials; error bars: interquartile range."
        )
        yield Plot(slug(f"bars {name}"), f"Final {name} per solver", caption, fig)


def config_text(layout: Layout, row: pd.Series) -> str:
    """``facet, n=.., d=..`` for a row with the helper columns."""
    parts = [row["_facet"]] if row.get("_facet") else []
    if layout.has_n and np.isfinite(row["_n"]):
        parts.append(f"n={fmt(row['_n'])}")
    parts += [f"{s}={fmt(row[f'_{s}'])}" for s in layout.sizes if np.isfinite(row[f"_{s}"])]
    return ", ".join(parts)
