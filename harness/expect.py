"""Suite expectations: a small, safe expression language over the ``runs`` table.

A suite states a paper's claim as ``[[expect]]`` entries::

    [[expect]]
    where = "solver == 'altmin' and problem.n >= 3 * problem.d"   # row filter
    check = "mean(success) >= 0.95"                               # claim per group
    by = ["problem.d"]                                            # one verdict per d

Expressions are parsed with :mod:`ast` and checked against a whitelist when the
suite is loaded; nothing is ever passed to ``eval``. Allowed:

* column names: dotted names read that exact column (``problem.n``); a bare
  name reads the column of that name, else ``metric.<name>`` (``success``);
* numbers, strings, ``True``/``False``; arithmetic ``+ - * / // % **``;
  comparisons ``== != < <= > >=`` (chained too) and ``in``/``not in`` a
  literal list such as ``solver in ['altmin', 'gd']``; ``and``, ``or``, ``not``;
* the aggregates ``mean(x)``, ``median(x)``, ``min(x)``, ``max(x)``,
  ``quantile(x, q)`` and ``count()`` / ``count(condition)`` in ``check``.

* trace values of each trial (read from the suite's ``traces`` table; the
  metric must be listed in ``[metrics] trace``): ``at(m, x)`` the value of
  trace ``m`` at the last traced point with iteration <= x; ``first_below(m,
  level)`` / ``first_above(m, level)`` the first iteration with ``m <= level``
  (``>= level``), ``inf`` if never; ``auc(m, x)`` the area under ``m`` from
  the first traced point to iteration x (trapezoids over the traced points).
  A third argument names another axis instead of the iteration: ``time_s`` or
  a budget axis the solver traces (``at(train_loss, 5e7, weights_updated)``).
  ``m`` and the axis are bare names, ``x`` and ``level`` number literals. A
  trace value is a per-trial value like a column: aggregate it in ``check``
  (``median(first_below(rel_error_sq, 1e-4)) <= 100``) or filter on it.

* paired tests in ``check`` (one-sided: solver A beats solver B on a metric, trials
  paired by point and seed; :func:`harness.analysis.claims.paired_claim`):
  ``paired_p(m, 'A', 'B')`` the p-value (exact McNemar for success, Wilcoxon
  signed-rank otherwise), ``paired_wins`` / ``paired_losses`` the paired trials A
  wins / loses, ``paired_effect`` A against B (difference of success rates, median
  paired difference or ratio). ``m`` is a bare metric name or a trace value; A and B
  are string literals naming solvers of the suite (:func:`check_solvers`).

``where`` is evaluated row by row (vectorised with pandas) and may not
aggregate. ``check`` is evaluated once per group; outside an aggregate it may
only read a column that is constant in the group (a ``by`` column, say).
Missing values are never skipped silently: an aggregate that comes out NaN
makes the outcome fail and says how many values were missing. Filter with
``where = "status == 'ok'"`` to judge only finished trials.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import InputError, closest, did_you_mean
from harness.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")  # only evaluating a claim needs pandas

AGGREGATES: dict[str, tuple[int, int]] = {
    # name -> (min args, max args)
    "mean": (1, 1),
    "median": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "quantile": (2, 2),
    "count": (0, 1),
}
PAIRED_FUNCTIONS: dict[str, str] = {
    # name -> what it measures of the one-sided paired test "A beats B on metric"
    "paired_p": "p-value",
    "paired_wins": "trials A wins",
    "paired_losses": "trials A loses",
    "paired_effect": "effect of A against B",
}
TRACE_FUNCTIONS: dict[str, tuple[int, int]] = {
    # name -> (min args, max args): (metric, number[, axis])
    "at": (2, 3),
    "first_below": (2, 3),
    "first_above": (2, 3),
    "auc": (2, 3),
}
ENTRY_KEYS = ("check", "where", "by", "name", "profiles", "origin")
ORIGINS = ("paper", "addition")
"""``origin`` of a claim: stated by the paper (default) or our addition beyond it."""
MAX_EXPRESSION_CHARS = 2000

ALLOWED_TEXT = (
    "allowed: column names (problem.n, solver, success -> metric.success), numbers, "
    "strings, True/False, + - * / // % **, comparisons (== != < <= > >=, chained, "
    "in/not in a literal list), and/or/not, and the aggregates mean(x), median(x), "
    "min(x), max(x), quantile(x, q), count(), and the trace values at(m, x), "
    "first_below(m, level), first_above(m, level), auc(m, x) (optional third argument: the "
    "axis, e.g. weights_updated), and the paired tests paired_p(metric, 'A', 'B'), "
    "paired_wins(...), paired_losses(...), paired_effect(...) (solver names in quotes)"
)

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    # float powers: Python ints would make 9**9**9 a denial of service
    ast.Pow: lambda a, b: np.power(_as_float(a), _as_float(b)),
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


class _EvalError(Exception):
    """An expression that cannot be evaluated on these rows (becomes a failed Outcome)."""


# --------------------------------------------------------------------------- parsing


class _Rejected(Exception):
    """Raised by the validator; turned into an InputError naming file and key."""


def _column_of(node: ast.AST) -> str | None:
    """``problem.n`` -> "problem.n" for a Name/Attribute chain of names, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_boolean(node: ast.AST) -> bool:
    """Whether a node is statically a truth value (so and/or/not never see numbers)."""
    if isinstance(node, (ast.Compare, ast.BoolOp)):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return True
    # a column may hold booleans; checked when evaluated
    return _column_of(node) is not None


class _Validator:
    """Walks a parsed expression and rejects every node outside the whitelist."""

    def __init__(self, *, aggregates_allowed: bool) -> None:
        self.aggregates_allowed = aggregates_allowed
        self.columns: set[str] = set()
        self.trace_calls: list[TraceCall] = []
        self.paired_calls: list[PairedCall] = []

    def visit(self, node: ast.AST, *, in_aggregate: bool = False) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self._need_boolean(value, "and/or")
                self.visit(value, in_aggregate=in_aggregate)
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self._need_boolean(node.operand, "not")
            elif not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise _Rejected(f"operator {type(node.op).__name__} is not allowed")
            self.visit(node.operand, in_aggregate=in_aggregate)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise _Rejected(f"operator {type(node.op).__name__} is not allowed")
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, str):
                    raise _Rejected("arithmetic on strings is not allowed")
                self.visit(side, in_aggregate=in_aggregate)
        elif isinstance(node, ast.Compare):
            self.visit(node.left, in_aggregate=in_aggregate)
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    self._literal_list(right)
                elif type(op) in _CMPOPS:
                    self.visit(right, in_aggregate=in_aggregate)
                else:
                    raise _Rejected(f"comparison {type(op).__name__} is not allowed")
        elif isinstance(node, ast.Call):
            self._call(node, in_aggregate=in_aggregate)
        elif isinstance(node, (ast.Name, ast.Attribute)):
            column = _column_of(node)
            if column is None:
                raise _Rejected(
                    f"attribute access on a value is not allowed: {ast.unparse(node)!r}"
                )
            if "__" in column:
                raise _Rejected(f"dunder names are not allowed: {column!r}")
            if column.split(".")[0] in AGGREGATES:
                raise _Rejected(f"{column.split('.')[0]} is an aggregate; call it: {column}(...)")
            self.columns.add(column)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, (bool, int, float, str)):
                return
            raise _Rejected(f"constant {value!r} is not allowed")
        else:
            raise _Rejected(f"{_describe_node(node)} is not allowed")

    def _need_boolean(self, node: ast.AST, op: str) -> None:
        if not _is_boolean(node):
            raise _Rejected(f"{op} needs conditions (comparisons), not {ast.unparse(node)!r}")

    def _literal_list(self, node: ast.AST) -> None:
        if not isinstance(node, (ast.List, ast.Tuple)) or not all(
            isinstance(e, ast.Constant) and isinstance(e.value, (bool, int, float, str))
            for e in node.elts
        ):
            raise _Rejected(
                "in / not in need a literal list of numbers or strings, "
                f"like solver in ['altmin', 'gd'], not {ast.unparse(node)!r}"
            )

    def _call(self, node: ast.Call, *, in_aggregate: bool) -> None:
        name = _column_of(node.func)
        if name in TRACE_FUNCTIONS:
            call = _trace_call(node, name)
            self.trace_calls.append(call)
            self.columns.add(call.text)
            return
        functions = [*AGGREGATES, *TRACE_FUNCTIONS, *PAIRED_FUNCTIONS]
        if name in PAIRED_FUNCTIONS:
            if not self.aggregates_allowed or in_aggregate:
                where = "inside an aggregate" if in_aggregate else "in `where`"
                raise _Rejected(
                    f"{name}() compares whole groups; it belongs in `check`, not {where}"
                )
            call = _paired_call(node, name)
            self.paired_calls.append(call)
            if call.trace is not None:
                self.trace_calls.append(call.trace)
            self.columns.add(call.metric)
            return
        if name is None or name not in AGGREGATES:
            shown = name if name is not None else ast.unparse(node.func)
            raise _Rejected(
                f"calls to {shown!r} are not allowed"
                f"{did_you_mean(shown, functions)}; the only functions are " + ", ".join(functions)
            )
        if not self.aggregates_allowed:
            raise _Rejected(
                f"{name}() aggregates; `where` filters rows one by one, aggregate in `check`"
            )
        if in_aggregate:
            raise _Rejected(f"aggregates cannot be nested: {ast.unparse(node)!r}")
        if node.keywords:
            raise _Rejected(f"{name}() takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _Rejected(f"{name}() takes no *arguments")
        lo, hi = AGGREGATES[name]
        if not lo <= len(node.args) <= hi:
            wanted = {"quantile": "quantile(x, q)", "count": "count() or count(condition)"}
            raise _Rejected(f"wrong number of arguments; use {wanted.get(name, name + '(x)')}")
        if name == "count" and node.args:
            self._need_boolean(node.args[0], "count(...)")
        if name == "quantile":
            q = node.args[1]
            if not (
                isinstance(q, ast.Constant)
                and isinstance(q.value, (int, float))
                and not isinstance(q.value, bool)
                and 0 <= q.value <= 1
            ):
                raise _Rejected(
                    f"quantile(x, q) needs a number 0 <= q <= 1 as q, not {ast.unparse(q)!r}"
                )
            self.visit(node.args[0], in_aggregate=True)
            return
        for arg in node.args:
            self.visit(arg, in_aggregate=True)


@dataclass(frozen=True)
class TraceCall:
    """One trace value of an expression, e.g. ``first_below(train_loss, 1e-4)``: a
    per-trial number computed from the ``traces`` table (:func:`trace_values`)."""

    function: str
    metric: str
    number: float
    axis: str = "iteration"

    @property
    def text(self) -> str:
        """The call as written (normalised by :func:`ast.unparse`): its column name."""
        axis = "" if self.axis == "iteration" else f", {self.axis}"
        return f"{self.function}({self.metric}, {self.number!r}{axis})"


@dataclass(frozen=True)
class PairedCall:
    """One paired test of an expression, e.g. ``paired_p(success, 'altmin', 'gd')``: the
    one-sided paired test that ``better`` beats ``worse`` on ``metric`` over the group's
    rows (:func:`harness.analysis.claims.paired_claim`)."""

    function: str
    metric: str
    """A metric's bare name, or the text of a trace value (``first_below(train_loss, 1e-10)``)."""
    better: str
    worse: str
    trace: TraceCall | None = None
    """The trace value compared, when ``metric`` is one."""


def _paired_call(node: ast.Call, name: str) -> PairedCall:
    """Validate ``paired_p(metric, 'A', 'B')`` and its kin: a bare name (or a trace value)
    and two strings."""
    usage = f"{name}(metric, 'solver A', 'solver B')"
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise _Rejected(f"{name}() takes plain arguments: {usage}")
    if len(node.args) != 3:
        raise _Rejected(f"wrong number of arguments; use {usage}")
    metric, *solvers = node.args
    trace = None
    if isinstance(metric, ast.Call) and _column_of(metric.func) in TRACE_FUNCTIONS:
        trace = _trace_call(metric, _column_of(metric.func) or "")
    elif not isinstance(metric, ast.Name) or "__" in metric.id or metric.id in AGGREGATES:
        raise _Rejected(
            f"{name}() compares a metric named by a bare name (success, rel_error, time_s) "
            f"or a trace value (first_below(train_loss, 1e-10)), not {ast.unparse(metric)!r}"
        )
    names = []
    for arg in solvers:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value):
            raise _Rejected(
                f"{name}() names the two solvers as strings ({usage}), not {ast.unparse(arg)!r}"
            )
        names.append(arg.value)
    if names[0] == names[1]:
        raise _Rejected(f"{name}() compares two different solvers, not {names[0]!r} with itself")
    label = trace.text if trace is not None else metric.id  # type: ignore[union-attr]
    return PairedCall(name, label, names[0], names[1], trace)


def _number(node: ast.AST) -> float | None:
    """A number literal (``3``, ``1e-4``, ``-0.5``), else None."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return sign * float(node.value)
    return None


def _trace_call(node: ast.Call, name: str) -> TraceCall:
    """Validate ``at(m, x[, axis])`` and its kin: bare names and a number literal."""
    usage = f"{name}(metric, number) or {name}(metric, number, axis)"
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise _Rejected(f"{name}() takes plain arguments: {usage}")
    lo, hi = TRACE_FUNCTIONS[name]
    if not lo <= len(node.args) <= hi:
        raise _Rejected(f"wrong number of arguments; use {usage}")
    metric = node.args[0]
    if not isinstance(metric, ast.Name) or "__" in metric.id:
        raise _Rejected(
            f"{name}() reads a traced metric named by a bare name "
            f"(e.g. train_loss), not {ast.unparse(metric)!r}"
        )
    number = _number(node.args[1])
    if number is None or not math.isfinite(number):
        raise _Rejected(
            f"{name}()'s second argument must be a number literal, "
            f"not {ast.unparse(node.args[1])!r}"
        )
    axis = "iteration"
    if len(node.args) == 3:
        arg = node.args[2]
        if not isinstance(arg, ast.Name) or "__" in arg.id:
            raise _Rejected(
                f"{name}()'s axis is a bare name (iteration, time_s or a traced budget axis "
                f"such as weights_updated), not {ast.unparse(arg)!r}"
            )
        axis = arg.id
    return TraceCall(name, metric.id, number, axis)


def trace_values(call: TraceCall, runs: pd.DataFrame, traces: pd.DataFrame) -> pd.Series:
    """``call`` for every row of ``runs`` (matched on ``cell_id`` and ``trial``), from the
    long ``traces`` table (columns cell_id, trial, iteration, time_s, metric, value).

    NaN where the trial has no point of the metric (or none up to ``x`` for ``at``);
    ``inf`` for ``first_below``/``first_above`` that never reach the level.
    """
    out = pd.Series(math.nan, index=runs.index, dtype="float64")
    if runs.empty or traces is None or traces.empty:
        return out
    wanted = ["cell_id", "trial", "iteration", "time_s", "value"]
    series = traces[traces["metric"] == call.metric][wanted]
    if call.axis == "iteration":
        series = series.assign(x=series["iteration"].astype("float64"))
    elif call.axis == "time_s":
        series = series.assign(x=series["time_s"].astype("float64"))
    else:
        axis = traces[traces["metric"] == call.axis][["cell_id", "trial", "iteration", "value"]]
        axis = axis.rename(columns={"value": "x"})
        series = series.merge(axis, on=["cell_id", "trial", "iteration"], how="inner")
    series = series.dropna(subset=["x"]).sort_values(["cell_id", "trial", "x", "iteration"])
    values: dict[tuple[str, int], float] = {}
    for (cell_id, trial), group in series.groupby(["cell_id", "trial"], sort=False):
        x = group["x"].to_numpy(dtype="float64")
        v = group["value"].to_numpy(dtype="float64")
        values[(cell_id, int(trial))] = _trace_value(call, x, v)
    keys = zip(runs["cell_id"], runs["trial"])
    found = [values.get((c, int(t)), math.nan) if t == t else math.nan for c, t in keys]
    return pd.Series(found, index=runs.index, dtype="float64")


def _trace_value(call: TraceCall, x: np.ndarray, v: np.ndarray) -> float:
    if call.function == "at":
        upto = np.nonzero(x <= call.number)[0]
        return float(v[upto[-1]]) if len(upto) else math.nan
    if call.function in ("first_below", "first_above"):
        hit = v <= call.number if call.function == "first_below" else v >= call.number
        where = np.nonzero(hit)[0]
        return float(x[where[0]]) if len(where) else math.inf
    # auc: trapezoids over the points up to x, the curve cut at x by linear interpolation
    keep = x <= call.number
    xs, vs = x[keep], v[keep]
    if len(xs) == 0:
        return math.nan
    if len(xs) < len(x) and xs[-1] < call.number:
        nxt = len(xs)
        frac = (call.number - xs[-1]) / (x[nxt] - xs[-1])
        xs = np.append(xs, call.number)
        vs = np.append(vs, vs[-1] + frac * (v[nxt] - vs[-1]))
    return float(np.sum((xs[1:] - xs[:-1]) * (vs[1:] + vs[:-1]) / 2.0))


def _describe_node(node: ast.AST) -> str:
    kinds = {
        ast.Subscript: "subscripts (x[...])",
        ast.Lambda: "lambda",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.IfExp: "conditional expressions (a if c else b)",
        ast.NamedExpr: "assignment expressions (:=)",
        ast.JoinedStr: "f-strings",
        ast.Starred: "starred expressions",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield",
        ast.List: "lists (outside `in [...]`)",
        ast.Tuple: "tuples",
        ast.Dict: "dicts",
        ast.Set: "sets",
        ast.Slice: "slices",
    }
    return kinds.get(type(node), type(node).__name__)


def _compile(
    text: Any, *, source: str, key: str, aggregates_allowed: bool, must_be_boolean: bool
) -> tuple[ast.expr, frozenset[str], tuple[TraceCall, ...], tuple[PairedCall, ...]]:
    """Parse and validate one expression; errors name the file and key."""

    def fail(why: str) -> InputError:
        return InputError(f"{source}: {key}: {why} in {text!r}; {ALLOWED_TEXT}")

    if not isinstance(text, str):
        kind = type(text).__name__
        raise InputError(f"{source}: {key}: must be a string expression, got {kind} {text!r}")
    if not text.strip():
        raise InputError(f"{source}: {key}: empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InputError(
            f"{source}: {key}: expression longer than {MAX_EXPRESSION_CHARS} characters"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InputError(f"{source}: {key}: not a valid expression ({exc.msg}): {text!r}") from None
    except (RecursionError, MemoryError, ValueError):
        raise InputError(f"{source}: {key}: expression too deeply nested: {text!r}") from None
    body = tree.body
    validator = _Validator(aggregates_allowed=aggregates_allowed)
    try:
        validator.visit(body)
    except _Rejected as exc:
        raise fail(str(exc)) from None
    except RecursionError:
        raise InputError(f"{source}: {key}: expression too deeply nested: {text!r}") from None
    if must_be_boolean and not _is_boolean(body):
        raise InputError(
            f"{source}: {key}: must be a condition (a comparison such as "
            f"mean(success) >= 0.95), not {text!r}"
        )
    columns = frozenset(validator.columns)
    return body, columns, tuple(validator.trace_calls), tuple(validator.paired_calls)


def _string_list(value: Any, *, source: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{source}: {key}: must be a list of column names, got {value!r}")
    return tuple(value)


def parse_expectations(entries: Iterable[Mapping[str, Any]], source: str) -> list[Expectation]:
    """Validate the ``[[expect]]`` entries of a suite file (as read from TOML).

    ``source`` names the suite file in error messages. Raises
    :class:`harness.InputError` naming the key (``expect[2].check``) on an
    unknown key, a missing ``check``, or an expression outside the language.
    """
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError(
            f"{source}: expect: must be an array of tables ([[expect]]), got {entries!r}"
        )
    out: list[Expectation] = []
    for i, entry in enumerate(entries):
        key = f"expect[{i}]"
        if not isinstance(entry, Mapping):
            raise InputError(f"{source}: {key}: must be a table with check/where/by, got {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise InputError(
                f"{source}: {key}.{unknown[0]}: unknown key; allowed: {', '.join(ENTRY_KEYS)}"
            )
        if "check" not in entry:
            raise InputError(
                f'{source}: {key}.check: missing (e.g. check = "mean(success) >= 0.9")'
            )
        check_tree, check_cols, check_traces, paired = _compile(
            entry["check"],
            source=source,
            key=f"{key}.check",
            aggregates_allowed=True,
            must_be_boolean=True,
        )
        where = entry.get("where")
        where_tree: ast.expr | None = None
        where_cols: frozenset[str] = frozenset()
        where_traces: tuple[TraceCall, ...] = ()
        if where is not None:
            where_tree, where_cols, where_traces, _ = _compile(
                where,
                source=source,
                key=f"{key}.where",
                aggregates_allowed=False,
                must_be_boolean=True,
            )
        by = _string_list(entry.get("by", []), source=source, key=f"{key}.by")
        for column in by:
            if "__" in column:
                raise InputError(f"{source}: {key}.by: dunder names are not allowed: {column!r}")
        profiles = _string_list(entry.get("profiles", []), source=source, key=f"{key}.profiles")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise InputError(f"{source}: {key}.name: must be a string, got {name!r}")
        origin = entry.get("origin", "paper")
        if origin not in ORIGINS:
            raise InputError(
                f"{source}: {key}.origin: {origin!r}; allowed: {', '.join(ORIGINS)} "
                "(a claim the paper states, or our addition beyond it)"
            )
        out.append(
            Expectation(
                index=i,
                source=source,
                check=entry["check"].strip(),
                where=where.strip() if isinstance(where, str) else None,
                by=by,
                name=name,
                profiles=profiles,
                _check_tree=check_tree,
                _where_tree=where_tree,
                columns=frozenset(check_cols | where_cols | set(by)),
                origin=origin,
                trace_calls=tuple(dict.fromkeys(where_traces + check_traces)),
                paired_calls=tuple(dict.fromkeys(paired)),
            )
        )
    return out


def check_columns(expectations: Iterable[Expectation], columns: Iterable[str], source: str) -> None:
    """Every column an expectation names must be one the suite's rows will have.

    ``columns`` are the runs columns of the suite (standard columns, the parameters
    of its components, ``metric.<name>`` of its metrics). A bare name may also name
    a metric (``success`` reads ``metric.success``). Raises :class:`InputError`
    naming the key and the closest valid name, so a typo fails when the suite
    loads, not after the run.
    """
    known = set(columns)
    bare_metrics = {c.removeprefix("metric.") for c in known if c.startswith("metric.")}
    for e in expectations:
        for key, names in _named_columns(e):
            for name in names:
                if name in known or ("." not in name and f"metric.{name}" in known):
                    continue
                pool = known | bare_metrics if "." not in name else known
                match = closest(name, pool)
                hint = f"; did you mean {match!r}?" if match else ""
                metrics = ", ".join(sorted(bare_metrics)) or "none"
                raise InputError(
                    f"{source}: {e.key}.{key}: no column {name!r} in this suite's results"
                    f"{hint} (metrics: {metrics}; parameters are problem.NAME, "
                    "initializer.NAME, solver.NAME; see 'relubench show suite FILE')"
                )


def check_solvers(expectations: Iterable[Expectation], solvers: Iterable[str], source: str) -> None:
    """Every solver a paired test names (``paired_p(success, 'altmin', 'gd')``) must be a
    solver of the suite (or a method label ``name[param=value]`` of one). Raises
    :class:`InputError` naming the key and the closest solver, so a typo fails at load."""
    names = sorted(set(solvers))
    for e in expectations:
        for call in e.paired_calls:
            for solver in (call.better, call.worse):
                if solver.split("[", 1)[0] in names:
                    continue
                raise InputError(
                    f"{source}: {e.key}.check: {call.function}(): no solver {solver!r} in this "
                    f"suite{did_you_mean(solver, names)} (solvers: {', '.join(names) or 'none'})"
                )


def _named_columns(e: Expectation) -> list[tuple[str, list[str]]]:
    """(key, column names) of each part of an expectation, in the order a reader checks."""
    out: list[tuple[str, list[str]]] = []
    for key, tree in (("where", e._where_tree), ("check", e._check_tree)):
        if tree is not None:
            validator = _Validator(aggregates_allowed=True)
            validator.visit(tree)
            # A trace value (``auc(train_loss, 50.0)``) is a column of its own making; what
            # it reads is the traced metric, which must be one of the suite's.
            calls = {c.text: c for c in validator.trace_calls}
            names = {n for n in validator.columns if n not in calls}
            names |= {f"metric.{c.metric}" for c in calls.values()}
            out.append((key, sorted(names)))
    out.append(("by", list(e.by)))
    return out


# ------------------------------------------------------------------------ evaluation


def _resolve(name: str, frame: pd.DataFrame) -> str:
    """The column a name in an expression reads (exact, else ``metric.<name>``)."""
    if name in frame.columns:
        return name
    if "." not in name and f"metric.{name}" in frame.columns:
        return f"metric.{name}"
    tried = name if "." in name else f"{name!r} or 'metric.{name}'"
    raise _EvalError(f"no column {tried} in the results")


def _as_float(x: Any) -> Any:
    if isinstance(x, pd.Series):
        return _numeric(x, "**")
    return float(x)


def _is_text(x: Any) -> bool:
    if isinstance(x, pd.Series):
        return pd.api.types.is_string_dtype(x.dtype) or pd.api.types.is_object_dtype(x.dtype)
    return isinstance(x, str)


def _numeric(series: pd.Series, label: str) -> pd.Series:
    """A float copy of a numeric or boolean column (missing -> NaN)."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64")
    try:
        return series.astype("float64")
    except (TypeError, ValueError):
        raise _EvalError(f"{label} needs numbers or booleans, got text") from None


def _truth(x: Any) -> bool:
    if x is None or x is pd.NA:
        return False
    if isinstance(x, (float, np.floating)) and math.isnan(x):
        return False
    return bool(x)


@dataclass
class _Scope:
    """Evaluation state of one group: its rows and the aggregates measured so far."""

    frame: pd.DataFrame
    measured: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


def _eval(node: ast.expr, scope: _Scope, *, rowwise: bool) -> Any:
    """Evaluate a validated node: row-wise to a Series, or per group to a scalar."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call) and _column_of(node.func) in TRACE_FUNCTIONS:
        call = _trace_call(node, _column_of(node.func) or "")
        if call.text not in scope.frame.columns:
            raise _EvalError(
                f"{ast.unparse(node)} needs the suite's traces table (none was given to judge)"
            )
        return _read_column(call.text, scope, rowwise=rowwise)
    if isinstance(node, (ast.Name, ast.Attribute)):
        column = _resolve(_column_of(node) or "", scope.frame)
        return _read_column(column, scope, rowwise=rowwise)
    return _eval_operator(node, scope, rowwise=rowwise)


def _read_column(column: str, scope: _Scope, *, rowwise: bool) -> Any:
    """A column: the Series row-wise, else its one value in the group."""
    series = scope.frame[column]
    if rowwise:
        return series
    values = series.unique()
    if len(values) != 1:
        raise _EvalError(
            f"column {column} takes {len(values)} values in this group; "
            f"aggregate it (mean({column}), ...) or add it to `by`"
        )
    value = values[0]
    return value.item() if isinstance(value, np.generic) else value


def _eval_operator(node: ast.expr, scope: _Scope, *, rowwise: bool) -> Any:
    """Operators, comparisons and aggregates (constants and columns: :func:`_eval`)."""
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, scope, rowwise=rowwise)
        if isinstance(node.op, ast.Not):
            if isinstance(operand, pd.Series):
                return ~_boolean(operand, ast.unparse(node.operand))
            return not _truth(operand)
        if _is_text(operand):
            raise _EvalError(f"arithmetic on text: {ast.unparse(node)!r}")
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, scope, rowwise=rowwise)
        right = _eval(node.right, scope, rowwise=rowwise)
        if _is_text(left) or _is_text(right):
            raise _EvalError(f"arithmetic on text: {ast.unparse(node)!r}")
        try:
            with np.errstate(all="ignore"):
                return _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            return math.nan
        except (OverflowError, TypeError) as exc:
            raise _EvalError(f"{ast.unparse(node)!r}: {exc}") from None
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, scope, rowwise=rowwise) for v in node.values]
        is_and = isinstance(node.op, ast.And)
        if any(isinstance(v, pd.Series) for v in values):
            parts = [
                _boolean(v, ast.unparse(n)) if isinstance(v, pd.Series) else _truth(v)
                for v, n in zip(values, node.values)
            ]
            result = parts[0]
            for part in parts[1:]:
                result = (result & part) if is_and else (result | part)
            return result
        truths = [_truth(v) for v in values]
        return all(truths) if is_and else any(truths)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope, rowwise=rowwise)
        result: Any = True
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                choices = [e.value for e in comp.elts]  # type: ignore[attr-defined]
                if isinstance(left, pd.Series):
                    step = left.isin(choices)
                    step = ~step if isinstance(op, ast.NotIn) else step
                else:
                    step = (left in choices) != isinstance(op, ast.NotIn)
                right = None
            else:
                right = _eval(comp, scope, rowwise=rowwise)
                try:
                    step = _CMPOPS[type(op)](left, right)
                except TypeError as exc:
                    raise _EvalError(f"cannot compare in {ast.unparse(node)!r}: {exc}") from None
                if isinstance(step, pd.Series):
                    step = step.fillna(False).astype(bool)
            if result is True:
                result = step
            elif isinstance(result, pd.Series) or isinstance(step, pd.Series):
                result = result & step
            else:
                result = bool(result) and bool(step)
            left = right
        return result
    if isinstance(node, ast.Call):
        return _aggregate(node, scope)
    raise _EvalError(f"cannot evaluate {ast.unparse(node)!r}")  # unreachable after validation


def _boolean(series: pd.Series, label: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.dropna().unique()
        if set(values.tolist()) <= {0, 1}:
            return series.fillna(0).astype(bool)
    if pd.api.types.is_object_dtype(series.dtype) and all(
        isinstance(v, (bool, np.bool_)) or v is None for v in series
    ):
        return series.fillna(False).astype(bool)
    raise _EvalError(f"{label} is not a condition (its values are not True/False)")


def _paired(node: ast.Call, scope: _Scope) -> float:
    """``paired_p(m, 'A', 'B')`` and kin on the group's rows: the one-sided paired test that
    A beats B on ``m`` (direction as the metric declares it), pairs by (point, seed)."""
    from harness.analysis.claims import paired_claim

    name = _column_of(node.func) or ""
    call = _paired_call(node, name)
    frame, declared, directions = scope.frame, _declarations(), None
    if call.trace is not None:  # a trace value: a per-trial column of its own
        if call.metric not in frame.columns:
            raise _EvalError(f"{call.metric} needs the suite's traces table (none was given)")
        frame = frame.assign(**{f"metric.{call.metric}": frame[call.metric]})
        higher = declared is not None and declared.direction(call.trace.metric) == "higher"
        same_way = call.trace.function == "at" or (call.trace.function == "auc" and higher)
        directions = {call.metric: "max" if same_way and higher else "min"}
    try:
        test = paired_claim(
            frame,
            call.metric,
            call.better,
            call.worse,
            directions=directions,
            declarations=declared,
        )
    except InputError as exc:
        raise _EvalError(str(exc).replace("paired claim: method", f"{name}():")) from None
    except KeyError as exc:
        raise _EvalError(f"{name}() needs the column {exc} in the results") from None
    if test.n == 0:
        raise _EvalError(
            f"{name}(): {call.better} and {call.worse} share no trial (same point and seed) "
            "in these rows"
        )
    scope.measured[f"wins/ties/losses of {call.better} vs {call.worse} ({call.metric})"] = (
        f"{test.wins}/{test.ties}/{test.losses}"
    )
    value = {
        "paired_p": test.p,
        "paired_wins": float(test.wins),
        "paired_losses": float(test.losses),
        "paired_effect": test.estimate,
    }[name]
    scope.measured[ast.unparse(node)] = value
    return value


def _declarations() -> Any:
    """What the installed metrics declare (direction, role), for the paired tests; nothing
    when the plugins cannot be loaded (then every metric is minimised and none is binary)."""
    from harness.declarations import Declarations, live

    try:
        return live()
    except Exception:  # noqa: BLE001 - a broken plugin leaves the defaults
        return Declarations()


def _aggregate(node: ast.Call, scope: _Scope) -> Any:
    name = _column_of(node.func)
    text = ast.unparse(node)
    frame = scope.frame
    if name in PAIRED_FUNCTIONS:
        return _paired(node, scope)
    if name == "count":
        if not node.args:
            value: Any = len(frame)
        else:
            cond = _eval(node.args[0], scope, rowwise=True)
            if isinstance(cond, pd.Series):
                value = int(_boolean(cond, ast.unparse(node.args[0])).sum())
            else:
                value = len(frame) if _truth(cond) else 0
        scope.measured[text] = value
        return value
    arg = _eval(node.args[0], scope, rowwise=True)
    if not isinstance(arg, pd.Series):  # a constant: broadcast to the rows
        arg = pd.Series([arg] * len(frame), index=frame.index, dtype="object")
    series = _numeric(arg, f"{name}({ast.unparse(node.args[0])})")
    missing = int(series.isna().sum())
    if len(series) == 0:
        raise _EvalError(f"{text} over zero rows")
    if missing:
        scope.missing[text] = missing
        value = math.nan
    elif name == "mean":
        value = float(series.mean())
    elif name == "median":
        value = float(series.median())
    elif name == "min":
        value = float(series.min())
    elif name == "max":
        value = float(series.max())
    else:  # quantile
        q = float(node.args[1].value)  # type: ignore[attr-defined]
        value = float(series.quantile(q))
    scope.measured[text] = value
    return value


# -------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Expectation:
    """One ``[[expect]]`` entry of a suite: a claim checked against the runs table."""

    index: int
    source: str
    check: str
    where: str | None = None
    by: tuple[str, ...] = ()
    name: str | None = None
    profiles: tuple[str, ...] = ()
    columns: frozenset[str] = frozenset()
    origin: str = "paper"
    """``paper`` (the paper states the claim) or ``addition`` (ours, beyond the paper)."""
    trace_calls: tuple[TraceCall, ...] = ()
    """The trace values the expressions read (:func:`trace_values`); empty: no traces needed."""
    paired_calls: tuple[PairedCall, ...] = ()
    """The paired tests ``check`` computes (``paired_p(success, 'altmin', 'gd')``)."""
    _check_tree: ast.expr | None = field(default=None, repr=False, compare=False)
    _where_tree: ast.expr | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Where it sits in the suite file, e.g. ``expect[2]``."""
        return f"expect[{self.index}]"

    @property
    def label(self) -> str:
        """One line naming the claim: its name if given, else the check and filter."""
        suffix = " (addition)" if self.origin == "addition" else ""
        if self.name:
            return self.name + suffix
        text = self.check
        if self.where:
            text += f" where {self.where}"
        if self.by:
            text += f" by {', '.join(self.by)}"
        return text + suffix

    @property
    def needs_traces(self) -> bool:
        """Whether the claim reads trace values (judge it with the traces table)."""
        return bool(self.trace_calls)

    def with_traces(self, runs: pd.DataFrame, traces: pd.DataFrame | None) -> pd.DataFrame:
        """``runs`` with one column per trace value the claim reads (named by the call), from
        the long ``traces`` table; ``runs`` unchanged when the claim reads none or no
        traces are given (then evaluating a trace value fails with a message)."""
        if not self.trace_calls or traces is None:
            return runs
        new = {c.text: trace_values(c, runs, traces) for c in self.trace_calls}
        return runs.assign(**new)

    def applies(self, profile: str | None) -> bool:
        """Whether this claim is checked under ``profile`` (``profiles = [...]`` restricts it)."""
        return not self.profiles or profile in self.profiles

    def select(self, runs: pd.DataFrame, traces: pd.DataFrame | None = None) -> pd.DataFrame:
        """The rows ``where`` keeps (all rows without ``where``); ``traces`` as in
        :meth:`evaluate`.

        Raises :class:`ValueError` when the filter cannot be evaluated on these
        columns (a column the results do not have, a non-boolean column).
        """
        if self._where_tree is None:
            return runs
        runs = self.with_traces(runs, traces)
        try:
            mask = _eval(self._where_tree, _Scope(runs), rowwise=True)
            if isinstance(mask, pd.Series):
                mask = _boolean(mask, f"where {self.where!r}")
                return runs[mask.to_numpy()]
            return runs if _truth(mask) else runs.iloc[0:0]
        except _EvalError as exc:
            raise ValueError(f"where {self.where!r}: {exc}") from None

    def evaluate(self, runs: pd.DataFrame, traces: pd.DataFrame | None = None) -> list[Outcome]:
        """Judge the claim on a runs table: one :class:`Outcome` per ``by`` group.

        ``traces`` is the suite's long traces table (:func:`harness.store.load_traces`),
        needed when the claim reads trace values (:attr:`needs_traces`).
        """
        assert self._check_tree is not None
        runs = self.with_traces(runs, traces)
        try:
            rows = self.select(runs)
        except ValueError as exc:
            return [self._failed({}, runs.iloc[0:0], str(exc))]
        if rows.empty:
            why = f"no rows to aggregate: where {self.where!r} matches none of {len(runs)} rows"
            if runs.empty:
                why = "no rows to aggregate: the results table is empty"
            return [self._failed({}, rows, why)]
        if not self.by:
            return [self._judge({}, rows)]
        try:
            keys = [_resolve(c, rows) for c in self.by]
        except _EvalError as exc:
            return [self._failed({}, rows, f"by: {exc}")]
        outcomes = []
        for values, group in rows.groupby(keys, sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            labels = {
                k: (v.item() if isinstance(v, np.generic) else v) for k, v in zip(keys, values)
            }
            outcomes.append(self._judge(labels, group))
        return outcomes

    def _failed(self, group: dict[str, Any], rows: pd.DataFrame, message: str) -> Outcome:
        return Outcome(self, group, None, False, rows, message=message)

    def _judge(self, group: dict[str, Any], rows: pd.DataFrame) -> Outcome:
        assert self._check_tree is not None
        scope = _Scope(rows)
        tree = self._check_tree
        try:
            result = _eval(tree, scope, rowwise=False)
            value: Any = (
                scope.measured if len(scope.measured) != 1 else next(iter(scope.measured.values()))
            )
            if isinstance(tree, ast.Compare):
                # the measured side: the first operand that aggregates (0 < mean(x) < 1)
                operands = [tree.left, *tree.comparators]
                side = next(
                    (o for o in operands if any(isinstance(n, ast.Call) for n in ast.walk(o))),
                    tree.left,
                )
                value = _eval(side, _Scope(rows), rowwise=False)
        except _EvalError as exc:
            return Outcome(
                self, group, None, False, rows, measured=scope.measured, message=str(exc)
            )
        if scope.missing:
            parts = [
                f"{k} has {n} missing (NaN) of {len(rows)} values" for k, n in scope.missing.items()
            ]
            return Outcome(
                self,
                group,
                value,
                False,
                rows,
                measured=scope.measured,
                message="; ".join(parts) + " (filter with where = \"status == 'ok'\"?)",
            )
        if isinstance(result, pd.Series):  # pragma: no cover - validation prevents it
            return Outcome(self, group, value, False, rows, message="check did not aggregate")
        return Outcome(self, group, value, _truth(result), rows, measured=scope.measured)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


@dataclass
class Outcome:
    """The verdict of one expectation on one group of rows."""

    expectation: Expectation
    group: dict[str, Any]
    value: Any
    """The measured value: the left side of the check's comparison (e.g. the
    value of ``mean(success)``), or every aggregate by its text otherwise."""
    held: bool
    rows: pd.DataFrame = field(repr=False)
    measured: dict[str, Any] = field(default_factory=dict)
    """Every aggregate the check computed, by its text."""
    message: str | None = None
    """Why it could not be judged (no rows, a missing column, NaN values), else None."""

    def describe(self) -> str:
        """One line: ``held   mean(success) >= 0.95  [problem.d=50]  measured 0.97 (n=40 rows)``."""
        parts = [f"{'held' if self.held else 'failed':<6} {self.expectation.check}"]
        if self.group:
            parts.append("[" + " ".join(f"{k}={_fmt(v)}" for k, v in self.group.items()) + "]")
        if self.value is not None and self.value != {}:
            parts.append(f"measured {_fmt(self.value)} (n={len(self.rows)} rows)")
        else:
            parts.append(f"(n={len(self.rows)} rows)")
        line = "  ".join(parts)
        if self.message:
            line += f"  -- {self.message}"
        return line

    def table(self, max_rows: int = 12) -> str:
        """The rows it was computed from, as a short text table of the relevant columns."""
        frame = self.rows
        wanted: list[str] = []
        for column in ("solver", "problem", "cell_id", "trial", "status"):
            if column in frame.columns:
                wanted.append(column)
        for name in sorted(self.expectation.columns):
            try:
                column = _resolve(name, frame)
            except _EvalError:
                continue
            if column not in wanted:
                wanted.append(column)
        shown = frame[wanted] if wanted else frame
        text = shown.head(max_rows).to_string(index=False, max_colwidth=24)
        if len(frame) > max_rows:
            text += f"\n... {len(frame) - max_rows} more rows"
        return text


def evaluate_all(
    expectations: Iterable[Expectation],
    runs: pd.DataFrame,
    profile: str | None = None,
    traces: pd.DataFrame | None = None,
) -> list[Outcome]:
    """Every outcome of the expectations that apply under ``profile``, in file order."""
    return [o for e in expectations if e.applies(profile) for o in e.evaluate(runs, traces)]
