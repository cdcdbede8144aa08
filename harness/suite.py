"""Suite files: TOML -> validated :class:`Suite`.

:func:`load_suite` parses a suite file, applies a profile and ``--set``
overrides, and validates every key against the registered components: each
``[[problems]]``, ``[[initializers]]`` and ``[[solvers]]`` entry becomes a
:class:`SuiteEntry` (its component class and parameter grid), each metric a
:class:`~harness.expand.ComponentSpec`, and the ``[[expect]]`` entries are
parsed once into :class:`~harness.expect.Expectation` objects. Errors name the
file, the key, the bad value and what is allowed.

:meth:`Suite.expand` (:mod:`harness.expand`) turns the suite into cells.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.components import Component
from harness.errors import InputError, did_you_mean
from harness.expand import (
    Cell,
    ComponentSpec,
    Dropped,
    Limits,
    component_spec,
    expand,
    make_params,
)
from harness.expect import Expectation, check_columns, check_solvers, parse_expectations
from harness.plugins import Registry
from harness.rows import METRIC_PREFIX, empty_runs_columns

__all__ = ["Suite", "SuiteEntry", "load_suite"]

SECTIONS = {"problems": "problem", "initializers": "initializer", "solvers": "solver"}
SUITE_KEYS = {
    "name": str,
    "title": str,
    "source": str,
    "trials": int,
    "seed": int,
    "dtype": str,
    "device": str,
    "chunk_trials": int,
    "timeout_s": float,
    "description": str,
}
TOP_KEYS = {
    "suite",
    "problems",
    "initializers",
    "solvers",
    "metrics",
    "profiles",
    "expect",
    "tuning",
}
TUNING_KEYS = {"metric": str, "goal": str, "trials": int}
TUNING_GOALS = ("min", "max")
METRIC_KEYS = {"names", "trace", "trace_every"}
NAME_RE = re.compile(r"^[a-z0-9_-]+$")
MAX_NAME_LENGTH = 100
"""A suite name names a folder; file systems allow 255 bytes per name."""
INT64_MAX = 2**63 - 1
LAZY_AXIS = 10_000
"""A range axis longer than this is kept as a lazy sequence (its length known at once)."""
# [suite] integers: (smallest allowed, what the bound means). All must fit a 64-bit
# Parquet column (trial numbers and seeds are stored in every row).
INT_BOUNDS = {
    "trials": (1, "must be >= 1"),
    "seed": (0, "must be >= 0 (seeds derive from it with numpy's SeedSequence)"),
    "chunk_trials": (0, "must be >= 0 (0 = whole cell)"),
}
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class SuiteEntry:
    """One validated ``[[problems]]``, ``[[initializers]]`` or ``[[solvers]]`` entry.

    ``grid`` maps each parameter the entry sets to the values it takes (one
    value for a scalar); :func:`harness.expand.expand` takes their cross product.
    """

    kind: str
    name: str
    cls: type[Component]
    grid: dict[str, Sequence[Any]]
    where: str
    """Where it sits in the suite file, e.g. ``problems[0]`` (for error messages)."""
    tuned: tuple[str, ...] = ()
    """Parameters written ``{ tune = [...] }``: tuning axes, not grid axes (solvers only)."""


@dataclass(frozen=True)
class Tuning:
    """The ``[tuning]`` table: how each solver's tuning axes are settled before the run.

    Every tuning axis value runs ``trials`` tuning trials on seeds disjoint from the
    reported trials (:func:`harness.seeds.tuning_seed`); per reported cell the value
    with the best mean ``metric`` (``goal`` ``min`` or ``max``) is selected.
    """

    metric: str
    goal: str
    trials: int


@dataclass
class Suite:
    """A validated suite: what to run, how many trials, what to measure and expect."""

    path: Path
    name: str
    title: str
    source: str
    trials: int
    seed: int
    dtype: str
    device: str
    chunk_trials: int
    timeout_s: float | None
    profile: str | None
    profiles: tuple[str, ...]
    entries: dict[str, list[SuiteEntry]]
    """Section (``problems``, ``initializers``, ``solvers``) -> its entries, in file order."""
    metrics: list[ComponentSpec]
    trace: tuple[str, ...]
    trace_every: Any
    tuning: Tuning | None = None
    """The ``[tuning]`` table (None without one)."""
    expectations: tuple[Expectation, ...] = ()
    """Every ``[[expect]]`` entry, parsed and validated; :meth:`Expectation.applies`
    says which are checked under a profile (see :attr:`active_expectations`)."""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def active_expectations(self) -> list[Expectation]:
        """The expectations checked under this suite's profile, in file order."""
        return [e for e in self.expectations if e.applies(self.profile)]

    @property
    def tuned(self) -> bool:
        """Whether some solver has a tuning axis (the run tunes before it reports)."""
        return any(e.tuned for e in self.entries.get("solvers", []))

    def expand(
        self,
        registry: Registry,
        selected: dict[str, dict[str, Any]] | None = None,
        limits: Limits | None = None,
    ) -> tuple[list[Cell], list[Dropped]]:
        """The cross product as cells, and the combinations dropped as incompatible;
        an :class:`InputError` if the suite is larger than ``limits`` (see
        :func:`harness.expand.check_size`).

        For a suite with tuning axes: without ``selected``, the tuning cells (every
        tuning value, ``split = "tune"``); with it, the reported cells, each with the
        tuned values selected for it (:func:`harness.run.select_tuned`)."""
        return expand(self, registry, selected, limits)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such suite file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``KEY=VALUE`` from ``--set``: a dotted key and a TOML value (bare words are strings)."""
    if "=" not in text:
        raise InputError(f"--set {text!r}: expected KEY=VALUE, e.g. --set trials=5")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in key.split(".")):
        raise InputError(f"--set {text!r}: {key!r} is not a dotted key like problems.d")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def _flatten(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []
    for k, v in table.items():
        path = (*prefix, k)
        # A {start, stop, step} table is a value (a range), not a nesting level.
        if (
            isinstance(v, dict)
            and not _is_range(v)
            and not _is_tune(v)
            and not (path[0] == "metrics" and len(path) >= 2)
        ):
            out.extend(_flatten(v, path))
        else:
            out.append((list(path), v))
    return out


def _is_tune(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"tune"}


def _is_range(v: Any) -> bool:
    return isinstance(v, dict) and set(v) <= {"start", "stop", "step"} and "start" in v


def _apply_override(
    doc: dict[str, Any], path: list[str], value: Any, origin: str, registry: Registry
) -> None:
    head = path[0]
    if head == "suite":
        path = path[1:]
        head = path[0] if path else ""
    if head in SUITE_KEYS and len(path) == 1:
        doc.setdefault("suite", {})[head] = value
        return
    if head == "tuning" and len(path) == 2 and path[1] in TUNING_KEYS:
        doc.setdefault("tuning", {})[path[1]] = value
        return
    if head in SECTIONS and len(path) in (2, 3):
        entries = doc.get(head, [])
        kind = SECTIONS[head]
        if len(path) == 3:
            targets = [e for e in entries if e.get("name") == path[1]]
            if not targets:
                names = ", ".join(sorted({str(e.get("name")) for e in entries})) or "none"
                raise InputError(
                    f"{origin}: key {'.'.join(path)!r}: no {kind} named {path[1]!r} in this "
                    f"suite (it has: {names})"
                )
        else:
            targets, params = [], set()
            for e in entries:
                cls = registry.components.get(kind, {}).get(str(e.get("name")))
                names = {s.name for s in cls.param_specs()} if cls is not None else set()
                params |= names
                if path[1] in names:
                    targets.append(e)
            if not targets:
                raise InputError(
                    f"{origin}: key {'.'.join(path)!r}: no {kind} of this suite has a "
                    f"parameter {path[1]!r}{did_you_mean(path[1], params)}"
                )
        for e in targets:
            e[path[-1]] = value
        return
    if head == "metrics" and len(path) >= 2:
        node = doc.setdefault("metrics", {})
        for p in path[1:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"{origin}: key {'.'.join(path)!r} is not a table")
        node[path[-1]] = value
        return
    allowed = ", ".join(
        [
            *sorted(SUITE_KEYS),
            "problems.PARAM",
            "problems.NAME.PARAM",
            "solvers.PARAM",
            "metrics.NAME.PARAM",
            *(f"tuning.{k}" for k in sorted(TUNING_KEYS)),
        ]
    )
    raise InputError(f"{origin}: cannot override key {'.'.join(path)!r}; allowed: {allowed}")


def load_suite(
    path: str | Path,
    registry: Registry,
    *,
    profile: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> Suite:
    """Read, override and validate a suite file. Raises :class:`InputError` on bad input."""
    path = Path(path)
    doc = read_toml(path)
    src = str(path)
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise InputError(
            f"{src}: unknown table {unknown[0]!r}{did_you_mean(unknown[0], TOP_KEYS)}; "
            f"allowed: {', '.join(sorted(TOP_KEYS))}"
        )
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise InputError(f"{src}: key 'profiles': each profile must be a table [profiles.NAME]")
    if profile is not None and profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise InputError(
            f"{src}: unknown profile {profile!r}{did_you_mean(profile, profiles)}; "
            f"profiles in this suite: {known}"
        )
    base = copy.deepcopy(doc)
    if profile is not None:
        for p, value in _flatten(profiles[profile]):
            _apply_override(doc, p, value, f"{src} [profiles.{profile}]", registry)
    for text in overrides:
        p, value = parse_override(text)
        _apply_override(doc, p, value, f"--set {text}", registry)
    # The suite as asked for first: an error there is not blamed on another profile.
    suite = _validate(doc, path, registry, profile, tuple(profiles))
    # A typo in a profile fails on every load, not only on the day the profile is used.
    for other in sorted(set(profiles) - {profile}):
        trial_doc = copy.deepcopy(base)
        for p, value in _flatten(profiles[other]):
            _apply_override(trial_doc, p, value, f"{src} [profiles.{other}]", registry)
        try:
            _validate(trial_doc, path, registry, other, tuple(profiles))
        except InputError as exc:
            raise InputError(f"{exc} (with [profiles.{other}] applied)") from None
    return suite


def _validate(
    doc: dict[str, Any], path: Path, registry: Registry, profile: str | None, profiles: tuple
) -> Suite:
    src = str(path)
    meta = doc.get("suite")
    if not isinstance(meta, dict):
        raise InputError(f"{src}: missing [suite] table (with at least name and trials)")
    for key, value in meta.items():
        if key not in SUITE_KEYS:
            raise InputError(
                f"{src}: unknown key 'suite.{key}'{did_you_mean(key, SUITE_KEYS)}; "
                f"allowed: {', '.join(sorted(SUITE_KEYS))}"
            )
        want = SUITE_KEYS[key]
        ok = isinstance(value, want) and not isinstance(value, bool)
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise InputError(
                f"{src}: key 'suite.{key}': {value!r} is not a{'n' if want is int else ''} "
                f"{want.__name__}"
            )
    name = meta.get("name")
    if not name:
        raise InputError(f"{src}: key 'suite.name' is required ([a-z0-9_-]+)")
    if not NAME_RE.match(name):
        raise InputError(
            f"{src}: key 'suite.name': {name!r} is not allowed; use lowercase letters, digits, "
            "'-' and '_' only (it names the results folder)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(
            f"{src}: key 'suite.name': {len(name)} characters ({name[:20]}...); at most "
            f"{MAX_NAME_LENGTH} (it names the results folder)"
        )
    _check_int_range(meta, src)
    trials = meta.get("trials", 1)
    chunk = meta.get("chunk_trials", 0)
    dtype = meta.get("dtype", "float64")
    if dtype not in DTYPES:
        raise InputError(f"{src}: key 'suite.dtype': {dtype!r} is not one of {', '.join(DTYPES)}")
    timeout = meta.get("timeout_s")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise InputError(
            f"{src}: key 'suite.timeout_s': {timeout} must be > 0 and finite (seconds; "
            "leave the key out for no timeout)"
        )

    entries: dict[str, list[SuiteEntry]] = {}
    for section, kind in SECTIONS.items():
        items = doc.get(section)
        if not items:
            raise InputError(f"{src}: at least one [[{section}]] entry is required")
        if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
            raise InputError(f"{src}: key {section!r} must be an array of tables [[{section}]]")
        checked = []
        for i, entry in enumerate(items):
            where = f"{section}[{i}]"
            cname = entry.get("name")
            if not isinstance(cname, str):
                raise InputError(f"{src}: key '{where}.name' is required (a {kind} name)")
            cls = registry.get(kind, cname, where=f"{src}: key '{where}.name'")
            grid = {}
            tuned = []
            for key, value in entry.items():
                if key == "name":
                    continue
                if _is_tune(value) or (isinstance(value, dict) and "tune" in value):
                    grid[key] = _tune_axis(value, f"{src}: key '{where}.{key}'", kind)
                    tuned.append(key)
                    continue
                grid[key] = _axis(value, f"{src}: key '{where}.{key}'")
            # Validate every value of every axis alone, so a bad value is named
            # even if the cross product would be large.
            for key, values in grid.items():
                for v in _checked_values(values):
                    make_params(cls, {key: v}, src, where, only_key=key)
            checked.append(SuiteEntry(kind, cname, cls, grid, where, tuple(tuned)))
        entries[section] = checked

    metrics_doc = doc.get("metrics", {})
    if not isinstance(metrics_doc, dict):
        raise InputError(f"{src}: key 'metrics' must be a table [metrics]")
    names = metrics_doc.get("names", [])
    trace = metrics_doc.get("trace", [])
    for key, val in (("names", names), ("trace", trace)):
        if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
            raise InputError(f"{src}: key 'metrics.{key}' must be a list of metric names")
    all_names = list(dict.fromkeys([*names, *trace]))
    extra = set(metrics_doc) - METRIC_KEYS - set(all_names)
    if extra:
        bad = sorted(extra)[0]
        raise InputError(
            f"{src}: key 'metrics.{bad}': not a metric listed in metrics.names or metrics.trace "
            f"(listed: {', '.join(all_names) or 'none'}); "
            f"other keys: {', '.join(sorted(METRIC_KEYS))}"
        )
    metric_specs = []
    for mname in all_names:
        cls = registry.get("metric", mname, where=f"{src}: key 'metrics.names'")
        mparams = metrics_doc.get(mname, {})
        if not isinstance(mparams, dict):
            raise InputError(f"{src}: key 'metrics.{mname}' must be a table of parameters")
        params = make_params(cls, mparams, src, f"metrics.{mname}")
        metric_specs.append(component_spec(cls, params, registry))
    trace_every = metrics_doc.get("trace_every", "log")
    if not (
        trace_every in ("log", "all")
        or (isinstance(trace_every, int) and not isinstance(trace_every, bool) and trace_every > 0)
    ):
        raise InputError(
            f"{src}: key 'metrics.trace_every': {trace_every!r}; allowed: 'log', 'all' or a "
            "positive integer"
        )
    tuning = _tuning(doc, src, entries, all_names, names)
    # Parsed once, here: a bad expression fails before anything runs.
    expectations = parse_expectations(doc.get("expect", []), src)
    check_columns(expectations, result_columns(entries, metric_specs), src)
    check_solvers(expectations, [e.name for e in entries["solvers"]], src)
    return Suite(
        path=path,
        name=name,
        title=meta.get("title", name),
        source=meta.get("source", ""),
        trials=trials,
        seed=meta.get("seed", 0),
        dtype=dtype,
        device=meta.get("device", "cpu"),
        chunk_trials=chunk,
        timeout_s=float(timeout) if timeout is not None else None,
        profile=profile,
        profiles=profiles,
        entries=entries,
        metrics=metric_specs,
        trace=tuple(trace),
        trace_every=trace_every,
        tuning=tuning,
        expectations=tuple(expectations),
        raw=doc,
    )


def result_columns(entries: dict[str, list[SuiteEntry]], metrics: list[ComponentSpec]) -> list[str]:
    """The ``runs`` columns a suite's rows will have: the standard columns, every
    parameter of its components (defaults included), ``metric.<name>`` of its metrics
    and of the budget axes its solvers declare (stored from ``SolveResult.info``)."""
    columns = list(empty_runs_columns())
    for section in entries.values():
        for entry in section:
            columns += [f"{entry.kind}.{s.name}" for s in entry.cls.param_specs()]
            columns += [METRIC_PREFIX + a for a in getattr(entry.cls, "budget_axes", ())]
    columns += [METRIC_PREFIX + m.name for m in metrics]
    return list(dict.fromkeys(columns))


def _tune_axis(value: Any, where: str, kind: str) -> list[Any]:
    """``{ tune = [v1, v2, ...] }``: the values a solver parameter is tuned over."""
    if kind != "solver":
        raise InputError(
            f"{where}: {{ tune = [...] }} is for solver parameters only; a {kind} parameter "
            "takes a value, a list (grid axis) or a range"
        )
    if not _is_tune(value):
        extra = ", ".join(sorted(set(value) - {"tune"}))
        raise InputError(f"{where}: a tuning axis is {{ tune = [v1, v2, ...] }} alone; got {extra}")
    values = value["tune"]
    if not isinstance(values, list) or len(values) < 2:
        raise InputError(
            f"{where}: tune needs a list of at least two values to choose from, got {values!r}"
        )
    return _axis(values, where)


def _tuning(
    doc: dict[str, Any],
    src: str,
    entries: dict[str, list[SuiteEntry]],
    metrics: list[str],
    final: list[str],
) -> Tuning | None:
    """The validated ``[tuning]`` table; tuning axes and the table need each other, and every
    tuned solver entry gets the same budget (as many tuning values)."""
    table = doc.get("tuning")
    tuned = [e for e in entries["solvers"] if e.tuned]
    if table is None:
        if tuned:
            e = tuned[0]
            raise InputError(
                f"{src}: key '{e.where}.{e.tuned[0]}' is a tuning axis but the suite has no "
                '[tuning] table (metric, goal = "min" | "max", trials)'
            )
        return None
    if not isinstance(table, dict):
        raise InputError(f"{src}: key 'tuning' must be a table [tuning]")
    for key, value in table.items():
        if key not in TUNING_KEYS:
            raise InputError(
                f"{src}: unknown key 'tuning.{key}'; allowed: {', '.join(sorted(TUNING_KEYS))}"
            )
        want = TUNING_KEYS[key]
        if not isinstance(value, want) or isinstance(value, bool):
            raise InputError(f"{src}: key 'tuning.{key}': {value!r} is not a {want.__name__}")
    missing = sorted(set(TUNING_KEYS) - set(table))
    if missing:
        raise InputError(f"{src}: key 'tuning.{missing[0]}' is required")
    if table["goal"] not in TUNING_GOALS:
        raise InputError(
            f"{src}: key 'tuning.goal': {table['goal']!r}; allowed: {', '.join(TUNING_GOALS)}"
        )
    if table["trials"] < 1:
        raise InputError(f"{src}: key 'tuning.trials': {table['trials']} must be >= 1")
    if table["metric"] not in final:
        raise InputError(
            f"{src}: key 'tuning.metric': {table['metric']!r} is not a metric of metrics.names "
            f"(listed: {', '.join(final) or 'none'})"
        )
    sizes = {e.where: math.prod(len(e.grid[k]) for k in e.tuned) for e in tuned}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{w}: {n}" for w, n in sizes.items())
        raise InputError(
            f"{src}: every tuned solver gets the same tuning budget, so each needs as many "
            f"tuning values; got {shown}"
        )
    return Tuning(table["metric"], table["goal"], table["trials"])


def _check_int_range(meta: dict[str, Any], src: str) -> None:
    """``trials``, ``seed`` and ``chunk_trials`` within their bounds and a 64-bit integer."""
    for key, (low, rule) in INT_BOUNDS.items():
        value = meta.get(key)
        if value is None:
            continue
        if value < low:
            raise InputError(f"{src}: key 'suite.{key}': {value} {rule}")
        if value > INT64_MAX:
            raise InputError(
                f"{src}: key 'suite.{key}': {value} is out of range (at most 2**63 - 1)"
            )


def _axis(value: Any, where: str) -> Sequence[Any]:
    """A TOML value as a grid axis: a list, an inclusive {start, stop, step} range, or a scalar."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}: empty grid (an empty list gives no cells)")
        if any(isinstance(v, dict) for v in value):
            raise InputError(f"{where}: a grid list holds plain values, not tables")
        if len({json.dumps(v, sort_keys=True, default=str) for v in value}) != len(value):
            raise InputError(f"{where}: the grid repeats a value: {value!r}")
        return list(value)
    if isinstance(value, dict):
        extra = set(value) - {"start", "stop", "step"}
        if extra or not {"start", "stop"} <= set(value):
            raise InputError(
                f"{where}: a range is {{ start = A, stop = B, step = C }} (inclusive); got "
                f"keys {', '.join(sorted(value))}"
            )
        start, stop, step = value["start"], value["stop"], value.get("step", 1)
        nums = (start, stop, step)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in nums):
            raise InputError(f"{where}: range start, stop and step must be numbers")
        if not all(math.isfinite(x) for x in nums):
            raise InputError(f"{where}: range start, stop and step must be finite numbers")
        if step <= 0:
            raise InputError(f"{where}: range step {step!r} must be > 0")
        if stop < start:
            raise InputError(f"{where}: inverted range: stop {stop!r} < start {start!r}")
        # Counted, not built: a range of 10**9 values stays a lazy sequence, so the
        # suite's size is known (and refused, see harness.expand.check_size) in no time.
        if all(isinstance(x, int) for x in nums):
            ints = range(start, stop + 1, step)
            return ints if len(ints) > LAZY_AXIS else list(ints)
        quotient = (stop - start) / step
        if not quotient < INT64_MAX:
            raise InputError(f"{where}: a range of more than 2**63 values")
        floats = FloatRange(start, step, int(math.floor(quotient + 1e-9)) + 1)
        return floats if len(floats) > LAZY_AXIS else list(floats)
    return [value]


class FloatRange(Sequence):
    """The values ``start + i * step`` (rounded to 12 decimals) for ``i < count``, lazily."""

    def __init__(self, start: float, step: float, count: int) -> None:
        self.start, self.step, self.count = start, step, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.count))]
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(i)
        return round(self.start + i * self.step, 12)


def _checked_values(values: Sequence[Any]) -> Sequence[Any]:
    """The values of an axis to validate one by one: all of a short axis; of a long
    (lazy) range, its first values and its last (a range's values share a type and
    its bounds are at its ends)."""
    if len(values) <= LAZY_AXIS:
        return values
    return [*values[:1000], values[-1]]
